"""Journal: the project's list of runs, one SQLite file (`.modeldebug/journal.db`) that many
processes append to at once.

WAL mode, a busy timeout and one short `BEGIN IMMEDIATE` transaction per append: concurrent runs
wait their turn for a few milliseconds, never fail. A row holds what identifies a run (its facts:
see `facts`), its outcome, its record's path, the script's source (compressed) and, once something
asked for it, its verdict (the top finding, and whether the run was clean). Names (`good`, ...)
point at runs; a name given again moves to the new run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sqlite3
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInputError

__all__ = ["ENV", "Entry", "Journal", "journal_path"]

ENV = "MODELDEBUG_JOURNAL"  # a journal file to use instead of ./.modeldebug/journal.db; "off" disables it
MAGIC = "modeldebug-journal"
SCHEMA = 1
_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, created REAL NOT NULL, mode TEXT, script TEXT,
    argv TEXT, steps INTEGER, status TEXT, exit_code INTEGER, record TEXT, facts TEXT NOT NULL,
    source BLOB, verdict TEXT);
CREATE TABLE IF NOT EXISTS names (name TEXT PRIMARY KEY, run INTEGER NOT NULL, marked REAL NOT NULL);
"""
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_RESERVED = {"last", "ref"}


def journal_path(cwd: str | Path | None = None) -> Path | None:
    """Where this project's journal is: `$MODELDEBUG_JOURNAL`, else .modeldebug/journal.db in `cwd` (the
    folder the run started in; the current one by default); None when the variable is `off`/`0`/empty
    (no journal)."""
    env = os.environ.get(ENV)
    if env is not None:
        return None if env.strip().lower() in ("", "0", "off", "no", "false") else Path(env)
    return Path(cwd if cwd is not None else Path.cwd()) / ".modeldebug" / "journal.db"


@dataclass
class Entry:
    """One journaled run."""

    id: int
    uid: str
    created: float
    mode: str | None
    script: str | None
    argv: list[str]
    steps: int | None
    status: str | None
    exit_code: int | None
    record: str | None
    facts: dict[str, Any]
    verdict: dict[str, Any] | None = None
    names: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """`3fa2c1d0` or `3fa2c1d0 (good)`."""
        return f"{self.uid} ({', '.join(self.names)})" if self.names else self.uid

    @property
    def command(self) -> str:
        """The script and its arguments, as typed."""
        return " ".join(self.argv) if self.argv else (self.script or "?")


class Journal:
    """Open (or create) the journal at `path`."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self.path = Path(path)
        if not create:
            _check_file(self.path)
        elif not self.path.parent.is_dir():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path), timeout=10.0, isolation_level=None)
        try:
            self.conn.execute("PRAGMA busy_timeout=10000")
            tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"meta", "runs", "names"} <= tables:
                if not create or tables:  # never add our tables to someone else's database
                    raise BadInputError(f"{str(self.path)!r} is not a modeldebug journal")
                with self._transaction():
                    for statement in filter(str.strip, _DDL.split(";")):  # executescript would commit
                        self.conn.execute(statement)
                    self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('magic', ?), ('schema', ?)",
                                      (json.dumps(MAGIC), json.dumps(SCHEMA)))
            magic = self.conn.execute("SELECT value FROM meta WHERE key = 'magic'").fetchone()
            if magic is None or _loads(magic[0], None) != MAGIC:
                raise BadInputError(f"{str(self.path)!r} is not a modeldebug journal")
            if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self.conn.execute("PRAGMA journal_mode=WAL")  # once: the mode is kept in the file
            self.conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise BadInputError(f"{str(self.path)!r} is not a readable modeldebug journal: {exc}") from None
        except BaseException:
            self.conn.close()
            raise

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One short write transaction, taken at once (BEGIN IMMEDIATE): concurrent writers queue on the
        busy timeout instead of failing halfway."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Journal:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------
    def append(self, facts: dict[str, Any], *, record: str | Path | None, source: bytes | None = None) -> Entry:
        """Add one run (its `facts`, see `facts.record_facts`); returns its entry with a fresh short id."""
        rec = str(Path(record).resolve()) if record is not None else None
        blob = zlib.compress(source) if source else None
        row = (time.time(), facts.get("mode"), facts.get("script"), json.dumps(facts.get("argv") or []),
               facts.get("steps"), facts.get("status"), facts.get("exit_code"), rec,
               json.dumps(facts, default=str), blob)
        for _ in range(20):
            uid = secrets.token_hex(4)
            try:
                with self._transaction():
                    cur = self.conn.execute(
                        "INSERT INTO runs (uid, created, mode, script, argv, steps, status, exit_code, record, "
                        "facts, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (uid, *row))
            except sqlite3.IntegrityError:  # that short id is taken: draw another
                continue
            return self._get("WHERE id = ?", (cur.lastrowid,))[0]
        raise RuntimeError("no free journal id after 20 tries")

    def mark(self, entry: Entry, name: str) -> None:
        """Name `entry` (a name already used moves to it)."""
        if not _NAME.match(name) or name.lower() in _RESERVED or re.fullmatch(r"[0-9a-f]{4,8}", name):
            raise BadInputError(f"run name {name!r} cannot be used: a name starts with a letter, holds letters, "
                                "digits, '_', '.', '-', and is not 'last', 'ref' or a hex id")
        self.conn.execute("INSERT OR REPLACE INTO names VALUES (?, ?, ?)", (name, entry.id, time.time()))

    def set_verdict(self, entry: Entry, verdict: dict[str, Any]) -> None:
        """Keep what the rules said of the run, so that it is computed once."""
        entry.verdict = verdict
        self.conn.execute("UPDATE runs SET verdict = ? WHERE id = ?", (json.dumps(verdict, default=str), entry.id))

    # -- reading ---------------------------------------------------------------------------------
    def entries(self, limit: int | None = None) -> list[Entry]:
        """Runs, newest first."""
        tail = "ORDER BY id DESC" + (f" LIMIT {min(int(limit), 2**63 - 1)}" if limit else "")  # SQLite's largest
        return self._get(tail, ())

    def source(self, entry: Entry) -> str | None:
        """The script's source as it was run, when it was kept."""
        row = self.conn.execute("SELECT source FROM runs WHERE id = ?", (entry.id,)).fetchone()
        if not row or row[0] is None:
            return None
        try:
            return zlib.decompress(row[0]).decode("utf-8", "replace")
        except zlib.error:
            return None

    def named(self, name: str) -> Entry | None:
        found = self._get("WHERE id = (SELECT run FROM names WHERE name = ?)", (name,))
        return found[0] if found else None

    def by_record(self, path: str | Path) -> Entry | None:
        found = self._get("WHERE record = ? ORDER BY id DESC", (str(Path(path).resolve()),))
        return found[0] if found else None

    def find(self, ref: str) -> Entry | None:
        """The run `ref` names: a name, `last`, a short id (or a unique prefix of 4+), a record path."""
        ref = ref.strip()
        entry = self.named(ref)
        if entry is not None:
            return entry
        if ref == "last":
            newest = self.entries(1)
            return newest[0] if newest else None
        if re.fullmatch(r"[0-9a-fA-F]{4,8}", ref):
            hits = self._get("WHERE uid LIKE ? ORDER BY id DESC", (ref.lower() + "%",))
            if len(hits) > 1:
                raise BadInputError(f"run id {ref!r} is ambiguous: {', '.join(h.uid for h in hits[:5])}; give more digits")
            if hits:
                return hits[0]
        if Path(ref).is_file():
            return self.by_record(ref)
        return None

    def _get(self, tail: str, args: tuple[Any, ...]) -> list[Entry]:
        names: dict[int, list[str]] = {}
        for name, run in self.conn.execute("SELECT name, run FROM names ORDER BY marked"):
            names.setdefault(run, []).append(name)
        out = []
        cols = "id, uid, created, mode, script, argv, steps, status, exit_code, record, facts, verdict"
        for row in self.conn.execute(f"SELECT {cols} FROM runs {tail}", args):
            rid, uid, created, mode, script, argv, steps, status, code, record, facts, verdict = row
            out.append(Entry(rid, uid, created, mode, script, _loads(argv, []), steps, status, code, record,
                             _loads(facts, {}), _loads(verdict, None), names.get(rid, [])))
        return out


def _loads(text: str | None, default: Any) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise BadInputError(f"no journal at {str(path)!r}: runs are journaled by `modeldebug run` and watch() "
                            "in the folder they start in (or set MODELDEBUG_JOURNAL)")
    with path.open("rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise BadInputError(f"{str(path)!r} is not a modeldebug journal (not an SQLite file)")
