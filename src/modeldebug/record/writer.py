"""RunWriter: appends a run to SQLite in batches from the training process.

WAL mode with ``synchronous=NORMAL``: a commit costs ~0.15 ms here and everything committed
survives ``kill -9`` of the training process. Rows are buffered in memory and written with one
``executemany`` per table and one commit per flush.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from ..errors import BadInputError, RecordBusyError
from .lock import RecordLock, check_replaceable
from .schema import DDL, MAGIC, SCHEMA_VERSION

__all__ = ["RunWriter"]

log = logging.getLogger("modeldebug")

_STEP_COLUMNS = (
    "loss", "lr", "n_backward", "grad_norm", "t_data", "t_forward", "t_backward",
    "t_optimizer", "t_step", "rss_mb", "cuda_mb", "t_loader", "zero_grad_calls", "carried_grad_norm",
    "clip_norm", "clip_max", "live_losses", "fwd_eval_mode", "fwd_train_mode_nograd", "sampled", "t_cpu", "t_inference",
)
_SAMPLED_AT = 1 + _STEP_COLUMNS.index("sampled")


_STEP_SET = frozenset(_STEP_COLUMNS)


def _claim(path: Path, *, new: bool, flag: str) -> RecordLock:
    """Lock `path`, then check what is there and clear an old record of ours (never anything else)."""
    if not path.parent.is_dir():
        raise BadInputError(f"{flag} {str(path)!r}: the folder {str(path.parent)!r} does not exist; create it first")
    check_replaceable(path, flag=flag)  # before the lock file is made beside a file we must not touch
    try:
        lock = RecordLock(path, flag=flag)
    except PermissionError:
        raise BadInputError(f"{flag} {str(path)!r} cannot be written: permission denied in {str(path.parent)!r}") from None
    except OSError as exc:
        raise BadInputError(f"{flag} {str(path)!r} cannot be written: {exc.strerror or exc}") from None
    try:
        check_replaceable(path, flag=flag)  # again under the lock: it may have changed meanwhile
        if new and path.exists() and path.stat().st_size > 0:
            raise RecordBusyError(f"{flag} {str(path)!r} already holds a record")
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    except BaseException:
        lock.release()
        raise
    return lock


class RunWriter:
    """Writes one run record. Not thread-safe: call it from the training thread only."""

    def __init__(self, path: str | Path, *, new: bool = False, flag: str = "--db") -> None:
        """Claim `path` and start a fresh record there.

        An old record of ours at `path` is replaced; any other file is refused (BadInputError), and
        so is a record another live run is writing (RecordBusyError). With `new=True` the path must
        not hold a record yet (fresh default names: two runs never share one).
        """
        self.path = str(path)
        self._lock: RecordLock | None = None
        if self.path != ":memory:":
            self._lock = _claim(Path(self.path), new=new, flag=flag)
        try:
            self.conn = sqlite3.connect(self.path, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(DDL)
        except sqlite3.Error as exc:
            self._release()
            raise BadInputError(f"{flag} {self.path!r} cannot be written: {exc}") from None
        self._entities: dict[tuple[str, str], int] = {
            (kind, name): eid for eid, kind, name in self.conn.execute("SELECT id, kind, name FROM entities")
        }
        self._steps: list[tuple[Any, ...]] = []
        self._stats: list[tuple[int, int, str, float | None]] = []
        self._hists: list[tuple[int, int, float, float, str]] = []
        self._events: list[tuple[int | None, str, str]] = []
        self._meta: dict[str, str] = {}
        self.failed: str | None = None  # the first write that failed (`flush`), if any
        self.set_meta(magic=MAGIC, schema_version=SCHEMA_VERSION, created=time.time())
        try:
            self._write()
        except sqlite3.Error as exc:
            self._release()
            raise BadInputError(f"{flag} {self.path!r} cannot be written: {exc}") from None

    # -- buffered appends ----------------------------------------------------------------------
    def entity(self, kind: str, name: str, *, type: str | None = None, model: str | None = None,
               info: dict[str, Any] | None = None) -> int:
        """The id of a module/parameter/loss entity, created on first use."""
        key = (kind, name)
        eid = self._entities.get(key)
        if eid is None:
            cur = self.conn.execute(
                "INSERT INTO entities (kind, name, type, model, info) VALUES (?, ?, ?, ?, ?)",
                (kind, name, type, model, json.dumps(info or {})),
            )
            eid = int(cur.lastrowid or 0)
            self._entities[key] = eid
        return eid

    def add_step(self, step: int, **columns: Any) -> None:
        self.add_step_row(step, columns)

    def add_step_row(self, step: int, columns: dict[str, Any]) -> None:
        """`add_step` with the columns in a dict (the tracer's every-step call: no keyword copy).
        A NaN is stored as NULL: SQLite binds NaN as NULL itself (tests/test_record.py checks it)."""
        if not columns.keys() <= _STEP_SET:
            raise ValueError(f"unknown step columns: {sorted(set(columns) - _STEP_SET)}")
        row = [step, *map(columns.get, _STEP_COLUMNS)]
        row[_SAMPLED_AT] = int(bool(row[_SAMPLED_AT]))
        self._steps.append(tuple(row))

    def add_stats(self, step: int, rows: list[tuple[int, str, float]]) -> None:
        """Statistic rows ``(entity, name, value)`` of `step`. A NaN is stored as NULL by SQLite
        itself, here and in every table (tests/test_record.py)."""
        self._stats.extend((step, eid, stat, v) for eid, stat, v in rows)

    def add_stat_values(self, step: int, rows: list[tuple[int, str | None]], values: list[float]) -> None:
        """Value i as the statistic ``rows[i] = (entity, name)`` of `step`; a value whose name is None
        is not kept. One pass (a sampled step of a deep model writes ~10,000 of these)."""
        self._stats.extend((step, eid, name, v) for (eid, name), v in zip(rows, values) if name is not None)

    def add_histogram(self, step: int, entity: int, lo: float, hi: float, counts: list[float]) -> None:
        self._hists.append((step, entity, lo, hi, json.dumps([int(c) for c in counts])))

    def add_event(self, step: int | None, kind: str, data: dict[str, Any]) -> None:
        self._events.append((step, kind, json.dumps(data, default=str)))

    def set_meta(self, **values: Any) -> None:
        self._meta.update({k: json.dumps(v, default=str) for k, v in values.items()})

    # -- durability ------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write everything buffered in one transaction. A record that cannot be written (a full disk, a
        file size limit, an I/O error) never stops the user's training: the first failure is said in one
        line, the rows are dropped, and later flushes try again (space may have been freed)."""
        try:
            self._write()
        except sqlite3.Error as exc:
            self._drop()
            if self.failed is None:
                log.warning("modeldebug: the record %s cannot be written (%s): the run goes on, the report will "
                            "miss the steps from here", self.path, exc)
            self.failed = f"{type(exc).__name__}: {exc}"

    def _write(self) -> None:
        c = self.conn
        placeholders = ", ".join("?" * (len(_STEP_COLUMNS) + 1))
        with c:
            if self._steps:
                c.executemany(
                    f"INSERT OR REPLACE INTO steps (step, {', '.join(_STEP_COLUMNS)}) VALUES ({placeholders})",
                    self._steps,
                )
            if self._stats:
                c.executemany("INSERT INTO stats VALUES (?, ?, ?, ?)", self._stats)
            if self._hists:
                c.executemany("INSERT INTO histograms VALUES (?, ?, ?, ?, ?)", self._hists)
            if self._events:
                c.executemany("INSERT INTO events (step, kind, data) VALUES (?, ?, ?)", self._events)
            if self._meta:
                c.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(self._meta.items()))
        self._drop()

    def _drop(self) -> None:
        self._steps.clear()
        self._stats.clear()
        self._hists.clear()
        self._events.clear()
        self._meta.clear()

    def finish(self) -> None:
        """End the run: flush, fold the WAL into the one record file, give up the path.

        The connection stays open for reading (the report), and reads this run even if another run
        replaces the file afterwards. A finished record is a single self-contained file to copy.
        """
        try:
            self.flush()
            if self.path != ":memory:":
                self.conn.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error as exc:  # a full disk must not hide the run's own outcome
            log.warning("modeldebug: could not finish the record %s: %s", self.path, exc)
        finally:
            self._release()

    def close(self) -> None:
        try:
            self.finish()
        finally:
            if self.path != ":memory:":
                self.conn.close()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
