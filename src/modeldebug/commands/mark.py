"""`modeldebug mark RUN [NAME]`: name a run of the journal (default name: good)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add"]


def add(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "mark", help="name a run of the journal (e.g. `mark 3fa2c1d0 good`)",
        description="Name a run: RUN is a short id from `modeldebug history`, a name, 'last' or a record path "
        "(a record not in the journal yet is added). A name given again moves to the new run. The run named "
        "'good' is the default reference of `modeldebug diff`; without one, the newest clean run is.")
    p.add_argument("run", metavar="RUN", help="short id, name, 'last' or record path")
    p.add_argument("name", metavar="NAME", nargs="?", default="good", help="the name (default good)")
    p.add_argument("--journal", metavar="P", help="the journal file (default ./.modeldebug/journal.db)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..compare.resolve import resolve
    from ..errors import BadInputError
    from ..journal import Journal, journal_path

    where = Path(args.journal) if args.journal else journal_path()
    if where is None:
        raise BadInputError("the journal is off (MODELDEBUG_JOURNAL=off): pass --journal FILE")
    is_file = Path(args.run).is_file()
    if is_file and not where.exists():  # a damaged record is one line before any journal is created
        from ..record import Record

        Record.open(args.run).conn.close()
    if not where.exists() and not is_file:
        Journal(where)  # raises the one-line "no journal at ..." error
    with Journal(where, create=is_file) as journal:
        entry, path = resolve(args.run, journal)
        if entry is None:  # a record the journal has not seen: add it, from what the record holds
            from ..journal.facts import record_facts
            from ..record import Record

            record = Record.open(str(path))
            try:
                entry = journal.append(record_facts(record), record=str(path))
            finally:
                record.conn.close()
        journal.mark(entry, args.name)
        why = _unhealthy(entry.uid, journal) if args.name == "good" else None
    print(f"modeldebug: run {entry.uid} ({entry.command}) is now {args.name!r}", file=sys.stderr)
    if why:  # as `learn` warns: a reference with a serious finding makes every diff against it misleading
        print(f"modeldebug: warning: {why}: is it a healthy run? `modeldebug diff` compares with it by default",
              file=sys.stderr)
    return 0


def _unhealthy(uid: str, journal) -> str | None:  # type: ignore[no-untyped-def]
    """Why the run may not be a known-good one (None when it looks healthy or its record is gone)."""
    from ..compare.resolve import side
    from .learn import _healthy

    s = side(uid, journal)
    if s.record is None:
        return None
    try:
        return _healthy(s)
    finally:
        s.record.conn.close()
