"""Record: read access to a stored run, for rules and reports. Nothing else writes SQL.

Rules ask for series by name (``record.series("fc1", "grad_norm")``) and get numpy arrays;
SQL NULL (how SQLite stores NaN) comes back as NaN.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInputError, RecordCorruptError
from .schema import MAGIC, SCHEMA_VERSION

__all__ = ["Entity", "Event", "Record", "Series"]


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
    step: int | None
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Series:
    """Values of one statistic over steps (NaN where it was not finite or not recorded)."""

    steps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)

    def finite(self) -> Series:
        keep = np.isfinite(self.values)
        return Series(self.steps[keep], self.values[keep])


def _f(rows: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in rows], dtype=float)


class Record:
    """One stored run, opened read-only in spirit (we never write through it)."""

    def __init__(self, conn: sqlite3.Connection, *, path: str = ":memory:") -> None:
        self.conn = conn
        self.path = path
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise RecordCorruptError(
                f"{path} is not a modeldebug run record ({exc}); was it written by `modeldebug run`?"
            ) from None
        if json.loads(meta.get("magic", "null")) != MAGIC:
            raise RecordCorruptError(f"{path} is an SQLite file but not a modeldebug run record")
        version = json.loads(meta.get("schema_version", "0"))
        if version > SCHEMA_VERSION:
            raise RecordCorruptError(
                f"{path} has record schema {version}; this modeldebug reads up to {SCHEMA_VERSION}: upgrade modeldebug"
            )
        self.meta: dict[str, Any] = {k: json.loads(v) for k, v in meta.items()}

    @classmethod
    def open(cls, path: str | Path) -> Record:
        """Open a stored run; a missing, foreign or damaged file raises a one-line error."""
        p = Path(path)
        if not p.is_file():
            raise BadInputError(f"no run record at {str(path)!r}: the file does not exist")
        try:
            with p.open("rb") as fh:
                header = fh.read(16)
        except OSError as exc:
            raise BadInputError(f"cannot read {str(path)!r}: {exc.strerror}") from None
        if header != b"SQLite format 3\x00":
            raise RecordCorruptError(f"{str(path)!r} is not a modeldebug run record (not an SQLite file)")
        return cls(sqlite3.connect(str(p), check_same_thread=False), path=str(p))

    # -- steps -----------------------------------------------------------------------------------
    @cached_property
    def _steps(self) -> dict[str, np.ndarray]:
        cur = self.conn.execute("SELECT * FROM steps ORDER BY step")
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
        cols = list(zip(*rows)) if rows else [[] for _ in names]
        return {n: _f(list(c)) for n, c in zip(names, cols)}

    @property
    def n_steps(self) -> int:
        return len(self._steps["step"])

    def column(self, name: str) -> Series:
        """A per-step column (loss, lr, grad_norm, t_forward, rss_mb, ...)."""
        s = self._steps
        return Series(s["step"].astype(int), s[name])

    # -- entities and stats ---------------------------------------------------------------------
    @cached_property
    def _entities(self) -> list[Entity]:
        return [
            Entity(i, k, n, t, m, json.loads(info or "{}"))
            for i, k, n, t, m, info in self.conn.execute(
                "SELECT id, kind, name, type, model, info FROM entities ORDER BY id"
            )
        ]

    def entities(self, kind: str | None = None) -> list[Entity]:
        return [e for e in self._entities if kind is None or e.kind == kind]

    def entity(self, name: str, kind: str | None = None) -> Entity | None:
        for e in self._entities:
            if e.name == name and (kind is None or e.kind == kind):
                return e
        return None

    def series(self, name: str, stat: str, *, kind: str | None = None) -> Series:
        """One statistic of one module/parameter over steps (empty if never recorded)."""
        e = self.entity(name, kind)
        if e is None:
            return Series(np.array([], dtype=int), np.array([], dtype=float))
        rows = self.conn.execute(
            "SELECT step, value FROM stats WHERE entity = ? AND stat = ? ORDER BY step", (e.id, stat)
        ).fetchall()
        return Series(np.array([r[0] for r in rows], dtype=int), _f([r[1] for r in rows]))

    def stat(self, stat: str, *, kind: str | None = None) -> dict[str, Series]:
        """Every entity's series of one statistic, in the order entities were first seen."""
        out: dict[str, Series] = {}
        for e in self.entities(kind):
            s = self.series(e.name, stat, kind=e.kind)
            if len(s):
                out[e.name] = s
        return out

    def histograms(self, name: str, kind: str = "module") -> list[tuple[int, float, float, list[int]]]:
        """(step, lo, hi, counts) per recorded step: activation histograms, or label counts of a loss."""
        e = self.entity(name, kind)
        if e is None:
            return []
        return [
            (s, lo, hi, json.loads(c))
            for s, lo, hi, c in self.conn.execute(
                "SELECT step, lo, hi, counts FROM histograms WHERE entity = ? ORDER BY step", (e.id,)
            )
        ]

    def events(self, kind: str | None = None) -> list[Event]:
        q = "SELECT step, kind, data FROM events"
        args: tuple[Any, ...] = ()
        if kind is not None:
            q += " WHERE kind = ?"
            args = (kind,)
        return [Event(s, k, json.loads(d)) for s, k, d in self.conn.execute(q + " ORDER BY id", args)]
