"""The line after a run's report that says where its repro bundle is (or why none was saved)."""

from __future__ import annotations

import sys
from typing import Any

from ..capture.bundle import bundle_message

__all__ = ["print_bundle_note"]


def print_bundle_note(record: Any) -> None:
    """Print where the run's repro bundle is; say nothing when the run saved none and needed none."""
    try:
        info = record.meta.get("bundle")
    except Exception:  # noqa: BLE001 - a record without meta
        return
    if not isinstance(info, dict):
        return
    if info.get("saved"):
        print(bundle_message(str(info.get("path")), str(info.get("trigger")), int(info.get("step", 0)),
                             float(info.get("size_mb", 0.0)), bool(info.get("with_state"))), file=sys.stderr)
        for note in info.get("notes") or []:
            print(f"modeldebug: bundle: {note}", file=sys.stderr)
    else:
        print(f"modeldebug: no repro bundle of step {info.get('step')} ({info.get('trigger')}): {info.get('why')}",
              file=sys.stderr)
