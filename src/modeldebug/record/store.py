"""Store: a checked, read-only view of a record's SQLite file.

On open it checks the whole layout (every table, every column and its declared type, after the
migrations of an older version), the meta keys that must be present and the types of the known
ones, and, for a file on disk, SQLite's own `PRAGMA quick_check`. Every later read goes through it:
an SQLite error becomes a `RecordCorruptError`, a text or blob where a number belongs is damage,
and a JSON cell that does not decode (or decodes to the wrong shape) names its table and row.
Every message is one line that names the file and what is wrong.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RecordCorruptError
from .migrations import Plan, plan_reads
from .schema import MAGIC, META, OLDEST_SCHEMA, REQUIRED_META, SCHEMA_VERSION, TABLES

__all__ = ["QUICK_CHECK_WHOLE_FILE", "Store"]

_NONE = type(None)
_FLOATS = {float, int, _NONE}
_SQL_NUMBER = "('integer', 'real', 'null')"
_HINT = "was the file changed, cut short, or copied while its run was writing?"
QUICK_CHECK_WHOLE_FILE = 16 * 2**20  # bytes: bigger files get the per-table check of the small tables


class Store:
    """The checked layout and meta of one record, and typed reads from it."""

    def __init__(self, conn: sqlite3.Connection, path: str, *, quick_check: bool) -> None:
        self.conn = conn
        self.path = path
        self.where = "the in-memory record" if path == ":memory:" else repr(path)
        if quick_check:
            self._quick_check()
        layout = self._layout()
        self.meta = self._meta(layout)
        if quick_check:
            self._check_complete()
        self.version: int = self.meta["schema_version"]
        self.plan: Plan = plan_reads(self.version, layout)
        self._check_plan()

    # -- errors and queries -----------------------------------------------------------------------
    def damaged(self, what: str) -> RecordCorruptError:
        """The one-line error for damage: the file, then what is wrong."""
        text = " ".join(what.split())
        return RecordCorruptError(f"{self.where} is damaged: {text}", details={"path": self.path})

    def query(self, sql: str, args: Sequence[Any] = (), *, reading: str) -> list[tuple[Any, ...]]:
        """Rows of one statement; any SQLite error is a one-line RecordCorruptError."""
        try:
            return self.conn.execute(sql, tuple(args)).fetchall()
        except sqlite3.DatabaseError as exc:  # OperationalError, "malformed", "disk I/O error", ...
            raise self._sqlite_error(exc, reading) from None

    def _sqlite_error(self, exc: sqlite3.DatabaseError, reading: str) -> RecordCorruptError:
        msg = str(exc)
        if "locked" in msg or "busy" in msg:
            return RecordCorruptError(f"{self.where} is locked by another process ({msg}) while "
                                      f"reading {reading}: try again when it has finished")
        return self.damaged(f"SQLite says '{msg}' while reading {reading}: {_HINT}")

    def numbers(self, table: str, columns: list[str], *, tail: str = "", args: Sequence[Any] = ()) -> np.ndarray | None:
        """The rows of one table, all numeric, as a float64 array (rows x columns; NULL is NaN), streamed
        from SQLite into numpy without holding a list of row tuples; None when a cell is not a number
        (the caller reads the rows again to name it)."""
        sql = self.plan[table].select(columns) + tail
        try:
            cells = itertools.chain.from_iterable(self.conn.execute(sql, tuple(args)))
            flat = np.fromiter(cells, dtype=float)
        except (ValueError, TypeError):
            return None
        except sqlite3.DatabaseError as exc:
            raise self._sqlite_error(exc, f"table {table}") from None
        return flat.reshape(-1, len(columns))

    def read(self, table: str, columns: list[str] | None = None, *, tail: str = "",
             args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one table through its read plan (columns in the declared order by default)."""
        return self.query(self.plan[table].select(columns) + tail, args, reading=f"table {table}")

    def scalar(self, table: str, expr: str, tail: str = "", args: Sequence[Any] = ()) -> Any:
        """One value computed over a table of the file (`max(rowid)`, `count(*)`), or None."""
        rows = self.query(f"SELECT {expr} FROM main.{_quote(self.plan[table].source)}{tail}", args,
                          reading=f"table {table}")
        return rows[0][0] if rows else None

    # -- typed cells --------------------------------------------------------------------------------
    def floats(self, table: str, column: str, values: Sequence[Any]) -> np.ndarray:
        """A numeric column as float64 (NULL -> NaN); a text or blob value is damage."""
        if not set(map(type, values)) <= _FLOATS:
            raise self.bad_cell(table, column, "a number")
        return np.array(values, dtype=float)

    def ints(self, table: str, column: str, values: Sequence[Any], *, nullable: bool = False) -> np.ndarray:
        """An integer column as int64 (step numbers, entity ids); anything else is damage.

        A nullable one (an event's step) is only checked: NULL has no int64, so it returns an empty array.
        """
        if not set(map(type, values)) <= ({int, _NONE} if nullable else {int}):
            raise self.bad_cell(table, column, "an integer")
        return np.array([], dtype=np.int64) if nullable else np.array(values, dtype=np.int64)

    def texts(self, table: str, column: str, values: Sequence[Any], *, nullable: bool) -> None:
        """Check a text column (names, kinds): a number, a blob or a NULL where none belongs is damage."""
        allowed = {str, _NONE} if nullable else {str}
        if not set(map(type, values)) <= allowed:
            raise self.bad_cell(table, column, "text")

    def json(self, text: Any, expect: type, where: str, *, empty: Any = None) -> Any:
        """Decode one JSON cell that must hold a `expect` (dict or list); `where` names table and row."""
        if text is None or text == "":
            if empty is not None:
                return empty
            raise self.damaged(f"{where} is empty, expected JSON")
        if not isinstance(text, str):
            raise self.damaged(f"{where} holds {_kind(text)}, expected JSON text")
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise self.damaged(f"{where} is not valid JSON ({reason})") from None
        if not isinstance(value, expect):
            raise self.damaged(f"{where} holds JSON {type(value).__name__}, expected {expect.__name__}")
        return value

    def bad_cell(self, table: str, column: str, expected: str) -> RecordCorruptError:
        """The error for the first cell of a column that is not `expected` (a number, an integer,
        text), found again in SQL to name its row."""
        want = {"a number": _SQL_NUMBER, "an integer": "('integer', 'null')", "text": "('text', 'null')"}[expected]
        read = self.plan[table]
        expr = read.columns[column]
        rows = self.query(f"SELECT rowid, {expr} FROM main.{_quote(read.source)} WHERE typeof({expr}) NOT IN "
                          f"{want} LIMIT 1", reading=f"table {table}")
        if not rows:
            return self.damaged(f"table {table}: column {column} holds a value that is not {expected}")
        rowid, value = rows[0]
        row = f"step {rowid}" if table == "steps" else f"row {rowid}"
        return self.damaged(f"{table} {row}: {column} holds {_kind(value)}, expected {expected}")

    # -- opening checks -------------------------------------------------------------------------------
    def _quick_check(self) -> None:
        """SQLite's structural check: of the whole file when it is small, else of the small tables
        (about 1 s per 100 MB here); a damaged page of a big stats or histograms table is then
        found when it is read, and is the same one-line error."""
        if _size(self.path) <= QUICK_CHECK_WHOLE_FILE:
            checks = ["PRAGMA quick_check(1)"]
        else:
            checks = [f"PRAGMA quick_check('{t}')" for t in ("meta", "entities", "steps", "events")]
        for sql in checks:
            rows = self.query(sql, reading="the file's structure")
            if rows and rows[0][0] != "ok":
                raise self.damaged(f"SQLite's quick_check found '{rows[0][0]}': {_HINT}")

    def _check_complete(self) -> None:
        """A file in WAL mode with no -wal beside it, of a run that never ended, is a copy made while
        the run was writing: its last rows are in the -wal file that was left behind."""
        status = self.meta.get("status")
        if status in (None, "running") and _wal_mode(self.path) and not _size(self.path + "-wal"):
            name = Path(self.path).name
            raise RecordCorruptError(
                f"{self.where} holds part of a run (status {status or 'unknown'}, WAL mode, no {name}-wal beside "
                f"it): it looks like a copy made without its -wal file while its run was writing; copy "
                f"{name}-wal beside it, or copy again after the run has finished")

    def _layout(self) -> dict[str, dict[str, str]]:
        rows = self.query("SELECT m.name, p.name, p.type FROM sqlite_master AS m, pragma_table_info(m.name) AS p "
                          "WHERE m.type IN ('table', 'view') ORDER BY m.name, p.cid", reading="the list of tables")
        layout: dict[str, dict[str, str]] = {}
        for table, column, type_ in rows:
            layout.setdefault(table, {})[column] = (type_ or "").upper()
        if not set(layout) & set(TABLES):
            raise RecordCorruptError(self._not_ours(layout))
        return layout

    def _not_ours(self, layout: dict[str, dict[str, str]]) -> str:
        if not layout and self.path != ":memory:" and _wal_mode(self.path) and not _size(self.path + "-wal"):
            return (f"{self.where} holds no tables: it looks like a copy made without its -wal file while "
                    f"its run was writing; copy {Path(self.path).name}-wal beside it, or copy again after "
                    "the run has finished")
        return (f"{self.where} is an SQLite file but not a modeldebug run record (it has none of the tables "
                "meta, entities, steps, stats, histograms, events); was it written by `modeldebug run`?")

    def _meta(self, layout: dict[str, dict[str, str]]) -> dict[str, Any]:
        if "meta" not in layout:
            raise self.damaged("table meta is missing, so its schema version is unknown")
        if not {"key", "value"} <= set(layout["meta"]):
            raise self.damaged("table meta has no key or value column")
        rows = self.query("SELECT key, value FROM main.meta", reading="table meta")
        meta: dict[str, Any] = {}
        for key, value in rows:
            if not isinstance(key, str):
                raise self.damaged(f"meta holds a key that is {_kind(key)}, expected text")
            if not isinstance(value, str):
                raise self.damaged(f"meta key {key!r} holds {_kind(value)}, expected JSON text")
            try:
                meta[key] = json.loads(value)
            except (ValueError, RecursionError):
                raise self.damaged(f"meta key {key!r} is not valid JSON: {value[:40]!r}") from None
        if meta.get("magic") != MAGIC:
            if "magic" not in meta:
                raise self.damaged("meta has no 'magic' key; a modeldebug record always has one")
            raise RecordCorruptError(f"{self.where} is an SQLite file but not a modeldebug run record "
                                     f"(meta magic is {meta['magic']!r}, not {MAGIC!r})")
        for key, types in META.items():
            value = meta.get(key)
            if value is None and key not in REQUIRED_META:
                continue
            if key not in meta:
                raise self.damaged(f"meta has no {key!r} key; a modeldebug record always has one")
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                names = " or ".join(t.__name__ for t in types)
                raise self.damaged(f"meta key {key!r} is {value!r:.40}, expected {names}")
        version = meta["schema_version"]
        if version > SCHEMA_VERSION:
            raise RecordCorruptError(f"{self.where} has record schema {version}; this modeldebug reads schemas "
                                     f"{OLDEST_SCHEMA} to {SCHEMA_VERSION}: upgrade modeldebug")
        if version < OLDEST_SCHEMA:
            raise self.damaged(f"meta schema_version is {version}; modeldebug records start at {OLDEST_SCHEMA}")
        return meta

    def _check_plan(self) -> None:
        for table, columns in TABLES.items():
            read = self.plan.get(table)
            if read is None:
                raise self.damaged(f"table {table} is missing (a record has {', '.join(TABLES)})")
            for col in columns:
                if col.name not in read.columns:
                    raise self.damaged(f"table {table} has no column {col.name}")
                declared = read.types.get(col.name)
                if declared is not None and declared != col.type:
                    raise self.damaged(f"column {table}.{col.name} is declared {declared or 'without a type'}, "
                                       f"expected {col.type}")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _kind(value: Any) -> str:
    """A cell's value for a message: text 'abc', a blob of 4 bytes, the number 3, NULL."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, bytes):
        return f"a blob of {len(value)} bytes"
    return f"the number {value!r}"


def _size(path: str) -> int:
    """Bytes in a file, 0 when it is missing (SQLite makes an empty -wal when it opens a WAL file)."""
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def _wal_mode(path: str) -> bool:
    """Is the file's header marked for WAL (bytes 18 and 19 are 2)?"""
    try:
        with open(path, "rb") as fh:
            header = fh.read(20)
    except OSError:
        return False
    return header[18:20] == b"\x02\x02"
