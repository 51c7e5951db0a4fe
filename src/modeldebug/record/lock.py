"""Who may write a run record, and whether an existing file may be replaced.

A record path is claimed before anything is written there:
- a file that is not a modeldebug record (a training script, an ONNX model, someone's database)
  is never replaced: that is bad input;
- a record that another live run is writing is never touched: the second run is refused;
- an old record of ours, or an empty file (``mktemp``), is replaced.

The writer holds an exclusive ``flock`` on ``<record>.lock`` for as long as it writes. The kernel
drops the lock when the process dies, even by ``kill -9``, so a stale lock file never blocks
anyone, and a reader can tell "still being written" from "the writer died".
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from ..errors import BadInputError, RecordBusyError
from .schema import MAGIC

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, claim by O_EXCL only
    fcntl = None  # type: ignore[assignment]

__all__ = ["RecordLock", "check_replaceable", "is_record", "live_writer"]

_SQLITE_HEADER = b"SQLite format 3\x00"


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def is_record(path: str | Path) -> bool:
    """True when `path` is an SQLite file whose meta table carries modeldebug's magic."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            if fh.read(16) != _SQLITE_HEADER:
                return False
        conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'magic'").fetchone()
        finally:
            conn.close()
        return row is not None and json.loads(row[0]) == MAGIC
    except (OSError, sqlite3.Error, ValueError, TypeError):
        return False


def check_replaceable(path: str | Path, *, flag: str = "--db") -> None:
    """Raise BadInputError unless a new record may be written at `path`."""
    p = Path(path)
    if p.is_dir():
        raise BadInputError(f"{flag} {str(path)!r} is a directory: give a file name, e.g. {p / 'run.db'}")
    if not p.exists():
        return
    if not p.is_file():
        raise BadInputError(f"{flag} {str(path)!r} exists and is not a regular file: give a new file name")
    if p.stat().st_size == 0 or is_record(p):
        return
    raise BadInputError(
        f"{flag} {str(path)!r} exists and is not a modeldebug run record: it would be overwritten. "
        f"Give a new file name (e.g. {p.with_suffix('.db').name if p.suffix != '.db' else p.stem + '-run.db'})"
    )


def live_writer(path: str | Path) -> int | None:
    """The pid of the live process writing the record at `path`, or None when nobody writes it."""
    lock = _lock_path(Path(path))
    if fcntl is None or not lock.exists():
        return None
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return int(os.pread(fd, 32, 0).split()[0])
            except (ValueError, IndexError, OSError):
                return -1  # held, owner unknown
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class RecordLock:
    """An exclusive claim on one record path for one writer; `release()` gives it up."""

    def __init__(self, path: str | Path, *, flag: str = "--db") -> None:
        self.path = Path(path)
        self.lock_path = _lock_path(self.path.absolute())  # released where it was made, if the script chdir()s
        self._fd: int | None = None
        self._acquire(flag)

    def _acquire(self, flag: str) -> None:
        if fcntl is None:  # pragma: no cover
            return
        for _ in range(10):  # the lock file may be unlinked by a releasing writer between open and flock
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.pread(fd, 32, 0).split()
                os.close(fd)
                who = f" (pid {pid[0].decode()})" if pid else ""
                raise RecordBusyError(
                    f"{flag} {str(self.path)!r} is being written by another modeldebug run{who}: "
                    f"give each run its own {flag}, or leave {flag} out for a fresh name"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                self._fd = fd
                return
            os.close(fd)
        raise RecordBusyError(f"{flag} {str(self.path)!r}: could not claim the record (its lock kept changing)")

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and drop the lock (unlink first, so nobody locks a dead file)."""
        if self._fd is None:
            return
        try:
            self.lock_path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None
