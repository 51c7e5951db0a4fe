"""Record: read access to a stored run, for rules, reports and exporters. Nothing else writes SQL.

Rules ask for series by name (``record.series("fc1", "grad_norm")``) and get numpy arrays; SQL NULL
(how SQLite stores NaN) comes back as NaN. Everything is read in bulk and cached: the steps, the
entities and the events with one query each when the record is opened (and checked then, with the
layout: see `store.Store`), and each statistic of every entity of a kind with one query the first
time anything asks for it (`frame`), or every statistic at once (`frames`). `series`, `stat` and
`column` are views of those caches, so analysing a 1,000-layer record runs tens of statements, not
tens of thousands. A Record is a snapshot: open a new one to see rows written since.
"""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ..errors import BadInputError, RecordCorruptError
from .frames import Frame, Series, frozen
from .store import Store

__all__ = ["Entity", "Event", "Frame", "Record", "Series"]

_BAD = "bad"  # what a text or blob value reads as: numpy refuses it, so damage cannot pass as a number
_DENSE_MIN_ROWS = 200_000  # below this, every statistic is read through the index


@dataclass(frozen=True)
class Entity:
    """A module, parameter or loss seen in the run, by stable name."""

    id: int
    kind: str
    name: str
    type: str | None
    model: str | None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """Something that happened once (an optimizer seen, a crash, a probe's result), with its data."""

    step: int | None
    kind: str
    data: dict[str, Any]


class Record:
    """One stored run, opened read-only in spirit (we never write through it)."""

    def __init__(self, conn: sqlite3.Connection, *, path: str = ":memory:", check_file: bool = False) -> None:
        self.conn = conn
        self.path = path
        self._store = Store(conn, path, quick_check=check_file)
        self.meta: dict[str, Any] = self._store.meta
        self._frames: dict[tuple[str, str | None], Frame] = {}
        self._all_frames = False
        self._stats_size: int | None = None
        self._named: dict[tuple[str, str | None], dict[str, Series]] = {}
        self._hists: dict[str | None, dict[int, list[tuple[int, float, float, list[int]]]]] = {}

    @classmethod
    def open(cls, path: str | Path) -> Record:
        """Open a stored run; a missing, foreign or damaged file raises a one-line error."""
        p = Path(path)
        if p.is_dir():
            raise BadInputError(f"no run record at {str(path)!r}: it is a directory; give a .db file "
                                "(`modeldebug history` lists the runs)")
        if not p.is_file():
            raise BadInputError(f"no run record at {str(path)!r}: the file does not exist")
        try:
            with p.open("rb") as fh:
                header = fh.read(16)
        except OSError as exc:
            raise BadInputError(f"cannot read {str(path)!r}: {exc.strerror}") from None
        if not header:
            raise RecordCorruptError(f"{str(path)!r} is empty, not a run record: was it copied while its run "
                                     "was starting, or cut short?")
        if header != b"SQLite format 3\x00":
            raise RecordCorruptError(f"{str(path)!r} is not a modeldebug run record (not an SQLite file)")
        # Read-only: a read-write connection that is the last to close a killed run's record folds its
        # -wal into the file and deletes it, and the next open then takes the file for a WAL-less copy.
        conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        try:
            record = cls(conn, path=str(p), check_file=True)
            record.check()
        except BaseException:
            conn.close()
            raise
        return record

    def check(self) -> None:
        """Read and check the steps, entities and events now (statistics are checked as they are read).

        `Record.open` does this; a Record made on a live connection reads them on first use.
        """
        _ = self._step_table, self._entity_index, self._events

    @property
    def schema_version(self) -> int:
        """The schema version the file was written with (older ones are read as the current one)."""
        return self._store.version

    # -- steps -------------------------------------------------------------------------------------
    @cached_property
    def _step_table(self) -> _Steps:
        st = self._store
        names = list(st.plan["steps"].columns)
        rows = st.read("steps", tail=" ORDER BY 1")
        table = _numbers_by_column(rows, len(names))
        if table is None:  # a cell that is not a number: the column-by-column checks name it
            cols = list(zip(*rows)) if rows else [() for _ in names]
            index = frozen(st.ints("steps", "step", cols[0]))
            if None in cols[names.index("sampled")]:
                raise st.damaged("table steps: column sampled holds NULL, expected 0 or 1")
            arrays = {"step": frozen(index.astype(float))}
            for name, values in zip(names[1:], cols[1:]):
                arrays[name] = frozen(st.floats("steps", name, values))
            return _Steps(names, rows, index, arrays)
        if not set(map(type, (r[0] for r in rows))) <= {int}:
            raise st.bad_cell("steps", "step", "an integer")
        if np.isnan(table[names.index("sampled")]).any():  # NULL (SQLite stores no NaN)
            raise st.damaged("table steps: column sampled holds NULL, expected 0 or 1")
        index = frozen(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
        arrays = {"step": frozen(index.astype(float))}
        arrays.update((name, frozen(table[i])) for i, name in enumerate(names) if i)
        return _Steps(names, rows, index, arrays)

    @property
    def n_steps(self) -> int:
        return len(self._step_table.index)

    def column(self, name: str) -> Series:
        """A per-step column (loss, lr, grad_norm, t_forward, rss_mb, ...); KeyError for an unknown name."""
        t = self._step_table
        return Series(t.index, t.arrays[name])

    def steps(self) -> tuple[list[str], list[tuple[Any, ...]]]:
        """The whole steps table as stored: column names and rows (None for NULL), by step."""
        t = self._step_table
        return list(t.names), list(t.rows)

    # -- entities --------------------------------------------------------------------------------------
    @cached_property
    def _entity_index(self) -> _Entities:
        st = self._store
        rows = st.read("entities", tail=" ORDER BY 1")
        cols = list(zip(*rows)) if rows else [()] * 6
        st.ints("entities", "id", cols[0])
        for i, col in enumerate(("kind", "name", "type", "model")):
            st.texts("entities", col, cols[i + 1], nullable=col in ("type", "model"))
        return _Entities([
            Entity(i, k, n, t, m, st.json(info, dict, f"entities row {i} ({k} {n!r}): info", empty={}))
            for i, k, n, t, m, info in rows
        ])

    def _ids(self, kind: str) -> list[int]:
        return [e.id for e in self._entity_index.of_kind(kind)]

    def entities(self, kind: str | None = None) -> list[Entity]:
        """Entities of a kind (module, param, input, loss), or all, in the order they were first seen."""
        return list(self._entity_index.all if kind is None else self._entity_index.of_kind(kind))

    def entity(self, name: str, kind: str | None = None) -> Entity | None:
        """The entity of that name (and kind); the first one seen when the kind is not given."""
        for e in self._entity_index.by_name.get(name, ()):
            if kind is None or e.kind == kind:
                return e
        return None

    # -- statistics ----------------------------------------------------------------------------------
    def frame(self, stat: str, *, kind: str | None = None) -> Frame:
        """One statistic of every entity (of `kind`), all steps, read with one query and cached."""
        key = (stat, kind)
        frame = self._frames.get(key)
        if frame is None:
            if kind is not None and (stat, None) in self._frames:
                frame = self._subframe(self._frames[(stat, None)], kind)
            elif self._all_frames:
                frame = Frame(stat, *_empty_long())
            else:
                frame = self._read_frame(stat, kind)
            self._frames[key] = frame
        return frame

    def _read_frame(self, stat: str, kind: str | None) -> Frame:
        ids = self._ids(kind) if kind is not None else [e.id for e in self._entity_index.all]
        if self._dense(stat, ids):  # most of the table: one sequential scan beats a seek per row
            frame = self._read_long(stat, " WHERE stat = ?", (stat,))
            return frame if kind is None else self._subframe(frame, kind)
        # The (entity, stat, step) index answers each entity in order, reading only this statistic.
        return self._read_long(stat, " WHERE entity IN (SELECT value FROM json_each(?)) AND stat = ? "
                               "ORDER BY entity, step", (json.dumps(ids), stat))

    def _read_long(self, stat: str, tail: str, args: tuple[Any, ...]) -> Frame:
        """One statistic's rows (entity, step, value) as a Frame, streamed into numpy; a cell that is
        not a number is found again in the rows and named."""
        table = self._store.numbers("stats", self._stat_columns(), tail=tail, args=args)
        frame = None if table is None else self._table_frame(stat, table)
        if frame is None:
            rows = self._store.read("stats", self._stat_columns(), tail=tail, args=args)
            self._bad_row(rows)
        return frame

    def _stat_columns(self) -> list[str]:
        """entity, step, value: the value guarded, so that text (even 'nan') or a blob reads as _BAD."""
        v = self._store.plan["stats"].columns["value"]
        return ["entity", "step", f"CASE WHEN typeof({v}) IN ('real', 'integer', 'null') THEN {v} ELSE '{_BAD}' END"]

    def _dense(self, stat: str, ids: list[int]) -> bool:
        """Does `stat` of these entities hold a tenth of the stats table or more? Estimated from a few
        entities with the index, only for a big table (a small one is read fast either way)."""
        st = self._store
        if self._stats_size is None:  # max(rowid): the rows ever written, read from the b-tree's edge
            self._stats_size = int(st.scalar("stats", "max(rowid)") or 0)
        if self._stats_size < _DENSE_MIN_ROWS or not ids:
            return False
        probe = ids[:: max(1, len(ids) // 4)][:4]
        n = st.scalar("stats", "count(*)", " WHERE entity IN (SELECT value FROM json_each(?)) AND stat = ?",
                      (json.dumps(probe), stat))
        return n / len(probe) * len(ids) > 0.1 * self._stats_size

    def _to_frame(self, stat: str, rows: list[tuple[Any, ...]]) -> Frame:
        try:  # one conversion (fromiter: half the time of np.array on tuples); NULL -> NaN, and
            # _stat_columns turned any text or blob into 'bad'
            table = np.fromiter(itertools.chain.from_iterable(rows), dtype=float, count=3 * len(rows)).reshape(-1, 3)
        except (ValueError, TypeError):
            self._bad_row(rows)
        frame = self._table_frame(stat, table)
        if frame is None:
            self._bad_row(rows)
        return frame

    @staticmethod
    def _table_frame(stat: str, table: np.ndarray) -> Frame | None:
        """A Frame from (entity, step, value) rows as floats; None when an entity or step is not a whole number."""
        if not len(table):
            return Frame(stat, *_empty_long())
        entity, steps = table[:, 0], table[:, 1]
        if np.isnan(entity).any() or np.isnan(steps).any() or (entity % 1).any() or (steps % 1).any():
            return None
        return Frame(stat, entity.astype(np.int64), steps.astype(np.int64), table[:, 2].copy())

    def _bad_row(self, rows: list[tuple[Any, ...]]) -> NoReturn:
        """Find the bad cell of these rows again, to name its row."""
        st = self._store
        cols = list(zip(*rows)) if rows else [(), (), ()]
        st.ints("stats", "entity", cols[0])
        st.ints("stats", "step", cols[1])
        st.floats("stats", "value", [v for v in cols[2] if v != _BAD])
        raise st.bad_cell("stats", "value", "a number")

    def _subframe(self, frame: Frame, kind: str) -> Frame:
        keep = np.isin(frame.entity, np.array(self._ids(kind), dtype=np.int64))
        if keep.all():  # every row is of that kind (parameter norms are only parameters'): shared as is
            return frame
        return Frame(frame.stat, frame.entity[keep], frame.steps[keep], frame.values[keep])

    def frames(self) -> dict[str, Frame]:
        """Every statistic of every entity, read with one query (and cached), by statistic name."""
        if not self._all_frames:
            st = self._store
            rows = st.read("stats", ["stat", *self._stat_columns()])
            by_stat: dict[str, list[tuple[Any, ...]]] = {}
            if rows:
                stats = [r[0] for r in rows]
                st.texts("stats", "stat", stats, nullable=False)
                for r in rows:
                    by_stat.setdefault(r[0], []).append(r[1:])
            self._frames = {(s, None): self._to_frame(s, rs) for s, rs in sorted(by_stat.items())}
            self._all_frames = True
        return {stat: f for (stat, kind), f in self._frames.items() if kind is None}

    def stat_rows(self) -> list[tuple[int, str, str, str, float | None]]:
        """Every statistic as long rows (step, kind, entity, stat, value), by entity, statistic, step.

        Rows of entities the record does not list are left out; NaN is None (as SQLite stores it).
        """
        frames = self.frames()
        order = sorted(frames)
        out: list[tuple[int, str, str, str, float | None]] = []
        for e in self._entity_index.all:
            for stat in order:
                s = frames[stat].series(e.id)
                out.extend((step, e.kind, e.name, stat, None if math.isnan(v) else v)
                           for step, v in zip(s.steps.tolist(), s.values.tolist()))
        return out

    def series(self, name: str, stat: str, *, kind: str | None = None) -> Series:
        """One statistic of one module/parameter over steps (empty if never recorded)."""
        e = self.entity(name, kind)
        if e is None:
            return Series.empty()
        return self.frame(stat, kind=e.kind).series(e.id)

    def stat(self, stat: str, *, kind: str | None = None) -> dict[str, Series]:
        """Every entity's series of one statistic, in the order entities were first seen."""
        key = (stat, kind)
        named = self._named.get(key)
        if named is None:
            frame = self.frame(stat, kind=kind)
            by_id = self._entity_index.by_id
            named = {by_id[i].name: frame.series(i) for i in frame.entity_ids() if i in by_id}
            self._named[key] = named
        return dict(named)

    # -- histograms and events ---------------------------------------------------------------------------
    def histograms(self, name: str, kind: str = "module") -> list[tuple[int, float, float, list[int]]]:
        """(step, lo, hi, counts) per recorded step: activation histograms, or label counts of a loss."""
        e = self.entity(name, kind)
        if e is None:
            return []
        if e.kind not in self._hists:
            self._hists[e.kind] = self._read_histograms(e.kind)
        return list(self._hists[e.kind].get(e.id, ()))

    def _read_histograms(self, kind: str) -> dict[int, list[tuple[int, float, float, list[int]]]]:
        """Every histogram of the entities of one kind, one query, decoded and checked."""
        st = self._store
        ids = json.dumps(self._ids(kind))
        rows = st.read("histograms", ["entity", "step", "lo", "hi", "counts"],
                       tail=" WHERE entity IN (SELECT value FROM json_each(?)) ORDER BY entity, step", args=(ids,))
        out: dict[int, list[tuple[int, float, float, list[int]]]] = {}
        if not rows:
            return out
        entity, steps, lo, hi, _ = zip(*rows)
        st.ints("histograms", "entity", entity)
        st.ints("histograms", "step", steps)
        los, his = st.floats("histograms", "lo", lo), st.floats("histograms", "hi", hi)
        for (eid, step, _, _, counts), a, b in zip(rows, los, his):
            where = f"histograms row of {self._entity_index.by_id[eid].name!r} at step {step}: counts"
            values = st.json(counts, list, where)
            if not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in values):
                raise st.damaged(f"{where} holds a value that is not a number")
            out.setdefault(eid, []).append((step, float(a), float(b), values))
        return out

    @cached_property
    def _events(self) -> list[Event]:
        st = self._store
        rows = st.read("events", tail=" ORDER BY 1")
        cols = list(zip(*rows)) if rows else [()] * 4
        st.ints("events", "id", cols[0])
        st.ints("events", "step", cols[1], nullable=True)
        st.texts("events", "kind", cols[2], nullable=False)
        return [Event(s, k, st.json(d, dict, f"events row {i} ({k}): data")) for i, s, k, d in rows]

    def events(self, kind: str | None = None) -> list[Event]:
        """Events of one kind (optimizer, nonfinite, exception, ...), or all, in the order they happened."""
        return [e for e in self._events if kind is None or e.kind == kind]


@dataclass(frozen=True)
class _Steps:
    names: list[str]
    rows: list[tuple[Any, ...]]
    index: np.ndarray
    arrays: dict[str, np.ndarray]


class _Entities:
    def __init__(self, entities: list[Entity]) -> None:
        self.all = entities
        self.by_id = {e.id: e for e in entities}
        self.by_name: dict[str, list[Entity]] = {}
        self.by_kind: dict[str, list[Entity]] = {}
        for e in entities:
            self.by_name.setdefault(e.name, []).append(e)
            self.by_kind.setdefault(e.kind, []).append(e)

    def of_kind(self, kind: str) -> list[Entity]:
        """The entities of one kind, in id order (the caller must not change the list)."""
        return self.by_kind.get(kind, [])


def _numbers_by_column(rows: list[tuple[Any, ...]], width: int) -> np.ndarray | None:
    """Rows whose every cell is a number or NULL as a (columns x rows) float64 array, each column
    contiguous (NULL -> NaN, one conversion for a long run's 70,000 rows); None when there are no
    rows or a cell is anything else."""
    if not rows or not set(map(type, itertools.chain.from_iterable(rows))) <= _NUMERIC_CELLS:
        return None
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=float, count=len(rows) * width)
    return flat.reshape(len(rows), width).T.copy()


_NUMERIC_CELLS = {int, float, type(None)}


def _empty_long() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.array([], dtype=np.int64), np.array([], dtype=np.int64), np.array([], dtype=float)
