"""Naming runs on the command line: a journal name (`good`), `last`, a short id (or a unique prefix
of 4+ hex digits), or a record path. Shared by `mark`, `learn` and `diff`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import BadInputError
from ..journal import Entry, Journal, journal_path
from .diff import Side

__all__ = ["open_journal", "resolve", "side"]


def open_journal(option: str | None, *, required: bool) -> Journal | None:
    """The journal named by `--journal`, else this project's; None when there is none and it is not required."""
    path = Path(option) if option else journal_path()
    if path is None:
        if required:
            raise BadInputError("the journal is off (MODELDEBUG_JOURNAL=off): pass --journal FILE to read one")
        return None
    if not path.exists() and not required and not option:
        return None
    return Journal(path)


def resolve(ref: str, journal: Journal | None) -> tuple[Entry | None, str | None]:
    """(journal entry, record path) of the run `ref` names; BadInputError naming `ref` when none."""
    if journal is not None:
        entry = journal.named(ref)
        if entry is not None:
            return entry, entry.record
    if Path(ref).is_file():
        return (journal.by_record(ref) if journal is not None else None), ref
    if journal is None:
        raise BadInputError(f"no run {ref!r}: no such record file, and no journal here to look the name up in "
                            "(runs are journaled in ./.modeldebug/journal.db)")
    entry = journal.find(ref)
    if entry is None:
        raise BadInputError(f"no run {ref!r} in the journal {str(journal.path)!r}: give a short id, a name, 'last' "
                            "or a record path (`modeldebug history` lists them)")
    return entry, entry.record


def side(ref: str, journal: Journal | None) -> Side:
    """The run `ref` names, with its record opened when the file is there."""
    from ..journal.facts import record_facts
    from ..record import Record

    entry, path = resolve(ref, journal)
    record = None
    if path is not None and Path(path).is_file():
        record = Record.open(path)
    elif entry is None:
        raise BadInputError(f"no run record at {path!r}")
    facts: dict[str, Any] = dict(entry.facts) if entry is not None else record_facts(record)
    source = journal.source(entry) if entry is not None and journal is not None else None
    label = entry.label if entry is not None else str(path)
    return Side(label, facts, record, source, entry)
