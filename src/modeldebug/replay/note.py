"""The one line after a run's report that says where its repro bundle is (or why none was saved).

`modeldebug run` says it once, here, after the report (the bundle is not announced while the script
trains). A loss-spike bundle that no finding of the report needs (a spike no rule judged a problem:
a healthy run with a noisy loss) is removed, and the line says so: a bundle can weigh 200 MB. A
bundle of a non-finite value or a crash is always kept: those are problems by themselves.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from ..capture.bundle import bundle_message

__all__ = ["SPIKE_EXPLAINED_BY", "bundle_needed", "print_bundle_note"]

#: Findings that a loss spike is evidence of: instability, divergence, exploding gradients, NaN,
#: accumulated gradients, and the invariants of the same (a changed learning rate, loss progress).
SPIKE_EXPLAINED_BY = frozenset({"NUM001", "GRD001", "LOS001", "LOS003", "LRN001", "LOP001",
                                "INV002", "INV004", "INV005", "INV006", "INV008", "DST006"})
_SPIKE_CATEGORIES = frozenset({"loss", "gradient", "numerics"})  # users' own rules about the same


def bundle_needed(trigger: str, findings: list[Any]) -> bool:
    """Whether the report has a finding that the bundle's trigger is evidence of.

    Non-finite values and crashes always are; a loss spike only when a finding about instability
    is there, or when a rule could not run (its verdict is unknown)."""
    if trigger != "loss_spike":
        return True
    for f in findings:
        if f.code in SPIKE_EXPLAINED_BY or f.category in _SPIKE_CATEGORIES:
            return True
        if f.kind == "internal_error":
            return True
    return False


def _remove(record: Any, info: dict[str, Any]) -> bool:
    """Delete the bundle and mark it removed in the record; False when it could not be deleted."""
    try:
        Path(str(info.get("path"))).unlink(missing_ok=True)
    except OSError:
        return False
    new = {"saved": False, "removed": True, "trigger": info.get("trigger"), "step": info.get("step"),
           "why": "removed at the end of the run: no finding needs it"}
    record.meta["bundle"] = new
    try:
        with record.conn:
            record.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", ("bundle", json.dumps(new)))
    except (sqlite3.Error, AttributeError):
        pass  # the bundle is gone either way; the record keeps its older line
    return True


def print_bundle_note(record: Any, report: Any = None, *, keep: bool = False) -> None:
    """Print where the run's repro bundle is; say nothing when the run saved none and needed none.

    With the run's `report`, a loss-spike bundle that no finding needs is removed (unless `keep`:
    `--break-on loss_spike` asked for spikes) and the line says so."""
    try:
        info = record.meta.get("bundle")
    except Exception:  # noqa: BLE001 - a record without meta
        return
    if not isinstance(info, dict):
        return
    trigger, step = str(info.get("trigger")), int(info.get("step", 0) or 0)
    if info.get("saved"):
        findings = list(getattr(report, "findings", None) or [])
        if report is not None and not keep and not bundle_needed(trigger, findings) and _remove(record, info):
            print(f"modeldebug: step {step} ({trigger.replace('_', ' ')}) was saved as a repro bundle and removed: "
                  "no finding needs it (to stop at such a spike: --break-on loss_spike)", file=sys.stderr)
            return
        print(bundle_message(str(info.get("path")), trigger, step, float(info.get("size_mb", 0.0)),
                             bool(info.get("with_state"))), file=sys.stderr)
        for note in info.get("notes") or []:
            print(f"modeldebug: bundle: {note}", file=sys.stderr)
    else:
        print(f"modeldebug: no repro bundle of step {info.get('step')} ({info.get('trigger')}): {info.get('why')}",
              file=sys.stderr)
