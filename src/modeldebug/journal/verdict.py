"""What the rules say of a journaled run, computed from its record the first time something asks
(`history`, the default reference) and kept in the journal: the run ends as fast as without a journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..catalogue import SEVERITY_ORDER
from .journal import Entry, Journal

__all__ = ["is_clean", "reference", "verdict"]


def verdict(journal: Journal, entry: Entry) -> dict[str, Any]:
    """{"top": the first finding (code, kind, severity, title, step) or None, "clean": bool, "serious": n,
    "judged": the report's verdict code (`no_training_step`, `too_short`, ...)};
    {"error": why} when the record cannot be read (not kept: the file may come back)."""
    if entry.verdict is not None:
        return entry.verdict
    if not entry.record or not Path(entry.record).is_file():
        return {"error": "record missing"}
    from ..errors import DebuggingError
    from ..record import Record
    from ..report import Report
    from ..report.verdict import verdict as run_verdict

    try:
        record = Record.open(entry.record)
        try:
            report = Report.from_record(record)
            findings, judged = report.findings, run_verdict(report).code
        finally:
            record.conn.close()
    except DebuggingError as exc:
        return {"error": exc.message}
    serious = [f for f in findings if SEVERITY_ORDER[f.severity] >= SEVERITY_ORDER["medium"]]
    top = findings[0] if findings else None
    result = {
        "top": None if top is None else {"code": top.code, "kind": top.kind, "severity": top.severity,
                                         "title": top.title, "step": top.step, "location": top.location},
        "serious": len(serious),
        # a run that trained nothing, or too little to judge, is no known-good reference
        "clean": not serious and entry.exit_code == 0 and entry.status == "finished"
                 and judged not in ("no_training_step", "too_short"),
        "judged": judged,
    }
    journal.set_verdict(entry, result)
    return result


def is_clean(journal: Journal, entry: Entry) -> bool:
    """Exit code 0, finished, long enough to judge, and no medium or high finding."""
    if entry.exit_code != 0 or entry.status != "finished":
        return False
    return bool(verdict(journal, entry).get("clean"))


def reference(journal: Journal, *, before: Entry | None = None, limit: int = 200) -> Entry | None:
    """The default reference run: the run named `good`, else the newest clean run (older than `before`)."""
    good = journal.named("good")
    if good is not None and (before is None or good.id != before.id):
        return good
    for entry in journal.entries(limit):
        if before is not None and entry.id >= before.id:
            continue
        if is_clean(journal, entry):
            return entry
    return None
