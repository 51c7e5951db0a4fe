"""Series and Frame: a record's numbers as numpy arrays, read in bulk and shared read-only.

A `Frame` is one statistic of many entities over steps, in long form, read with one query; it
splits into one `Series` per entity without copying. Arrays are read-only because the record
caches them and every rule, report and exporter shares them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["Frame", "Series", "frozen"]


def frozen(a: np.ndarray) -> np.ndarray:
    """`a`, made read-only (the record hands the same array to every reader)."""
    a.flags.writeable = False
    return a


_EMPTY_STEPS = frozen(np.array([], dtype=np.int64))
_EMPTY_VALUES = frozen(np.array([], dtype=float))


@dataclass(frozen=True)
class Series:
    """Values of one statistic over steps (NaN where it was not finite or not recorded)."""

    steps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)

    def finite(self) -> Series:
        keep = np.isfinite(self.values)
        if keep.all():
            return self
        return Series(self.steps[keep], self.values[keep])

    @classmethod
    def empty(cls) -> Series:
        return cls(_EMPTY_STEPS, _EMPTY_VALUES)


def _sorted(entity: np.ndarray, steps: np.ndarray) -> bool:
    """Sorted by entity, then step?"""
    if len(entity) < 2:
        return True
    d = np.diff(entity)
    return bool(((d > 0) | ((d == 0) & (np.diff(steps) >= 0))).all())


class Frame:
    """One statistic of many entities: parallel arrays `entity`, `steps`, `values`, sorted by entity
    id, then step (rows of one step keep the order they were written in)."""

    def __init__(self, stat: str, entity: np.ndarray, steps: np.ndarray, values: np.ndarray) -> None:
        if not _sorted(entity, steps):
            order = np.argsort(entity, kind="stable")  # rows come step by step from a table scan
            if not _sorted(entity[order], steps[order]):
                order = np.lexsort((steps, entity))  # stable: ties keep their written order
            entity, steps, values = entity[order], steps[order], values[order]
        self.stat = stat
        self.entity = frozen(entity)
        self.steps = frozen(steps)
        self.values = frozen(values)
        bounds = (np.flatnonzero(np.diff(entity)) + 1).tolist()
        starts, ends = [0, *bounds], [*bounds, len(entity)]
        ids = entity[starts].tolist() if len(entity) else []
        self._slices = dict(zip(ids, map(slice, starts, ends)))

    def __len__(self) -> int:
        return len(self.entity)

    def __contains__(self, entity_id: int) -> bool:
        return entity_id in self._slices

    def entity_ids(self) -> list[int]:
        """The entities that have rows, in id order."""
        return list(self._slices)

    def series(self, entity_id: int) -> Series:
        """One entity's series (views into the frame's arrays); empty when it has no rows."""
        sl = self._slices.get(entity_id)
        if sl is None:
            return Series.empty()
        return Series(self.steps[sl], self.values[sl])

    def all_rows(self, cond: np.ndarray) -> dict[int, bool]:
        """For each entity with rows: does `cond` (one boolean per row, aligned with `values`) hold on
        every one of them? One vectorised pass, for rules that test every tensor of a deep model."""
        if not len(self.entity):
            return {}
        starts = np.fromiter((sl.start for sl in self._slices.values()), dtype=np.int64, count=len(self._slices))
        failing = np.add.reduceat((~np.asarray(cond, dtype=bool)).astype(np.int64), starts)
        return dict(zip(self._slices, (failing == 0).tolist()))

    def medians(self) -> dict[int, float]:
        """Each entity's median over its finite values (NaN when it has none), in one vectorised pass:
        the rows are laid out as an entities x positions grid padded with NaN."""
        if not len(self.entity):
            return {}
        ids = np.array(list(self._slices), dtype=np.int64)
        starts = np.array([sl.start for sl in self._slices.values()], dtype=np.int64)
        lengths = np.array([sl.stop - sl.start for sl in self._slices.values()], dtype=np.int64)
        group = np.repeat(np.arange(len(ids)), lengths)
        grid = np.full((len(ids), int(lengths.max())), np.nan)
        vals = np.where(np.isfinite(self.values), self.values, np.nan)
        grid[group, np.arange(len(self.entity)) - starts[group]] = vals
        with warnings.catch_warnings():  # an entity with no finite value: NaN, said by the caller
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(grid, axis=1)
        return dict(zip(ids.tolist(), med.tolist()))

    def __repr__(self) -> str:
        return f"Frame({self.stat!r}: {len(self)} rows, {len(self._slices)} entities)"
