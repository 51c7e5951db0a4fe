"""diagnose(record, config) -> Diagnosis: the pipeline's one entry point from a record to findings.

Every view (terminal, JSON, HTML, export, the agent, the LLM explanation) is a view of a Diagnosis;
none of them runs rules itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._version import __version__
from ..catalogue import Finding
from ..config import DebuggingConfig
from ..record import Record
from ..record.lock import live_writer

__all__ = ["Diagnosis", "diagnose", "run_summary"]

_META = ("script", "argv", "duration_s", "exit_code", "status", "level", "models", "optimizers", "overhead_s",
         "torch", "device")


@dataclass
class Diagnosis:
    """What the rules concluded about one record: ranked findings and what the run was."""

    findings: list[Finding]
    run: dict[str, Any]
    config: DebuggingConfig
    record: Record | None = None
    rules_run: list[str] = field(default_factory=list)

    @property
    def rules_failed(self) -> list[Finding]:
        """Rules that could not run: their verdict is unknown."""
        return [f for f in self.findings if f.kind == "internal_error"]


def _status_note(record: Record, status: str | None) -> tuple[str | None, str | None]:
    """A record still marked "running": is a live process writing it, or did the run end unclosed?"""
    if status != "running":
        return status, None
    pid = live_writer(record.path) if record.path != ":memory:" else None
    if pid is not None:
        who = f" (pid {pid})" if pid > 0 else ""
        return "running", f"The run is still in progress{who}: this report covers the steps written so far."
    return "unfinished", ("The run ended without closing its record: the process was killed (kill -9, out of "
                          "memory, a crash of Python itself), or the record was copied while the run was going or "
                          "without its -wal file. The last steps before the end may be missing.")


def run_summary(record: Record) -> dict[str, Any]:
    """The report's `run` block: what the record says about the run, and how it ended."""
    meta = record.meta
    run: dict[str, Any] = {k: meta.get(k) for k in _META}
    run["steps"] = record.n_steps
    run["status"], note = _status_note(record, meta.get("status"))
    if note:
        run["status_note"] = note
    run["record"] = record.path if record.path != ":memory:" else None
    run["modeldebug"] = __version__
    loss = record.column("loss").finite()
    if len(loss):
        run["first_loss"] = float(loss.values[0])
        run["final_loss"] = float(loss.values[-1])
    return run


def diagnose(record: Record, config: DebuggingConfig | None = None) -> Diagnosis:
    """Run every selected rule (ours and plugins') on `record` and rank the findings."""
    from . import analyze, selected_rules

    config = config or DebuggingConfig()
    run = run_summary(record)
    findings = analyze(record, config)
    d = Diagnosis(findings, run, config, record, [r.code for r in selected_rules(config)])
    if d.rules_failed:  # the JSON says so too, beside the findings that explain it
        run["rules_failed"] = [f"{f.evidence.get('rule')}: {f.evidence.get('error')}" for f in d.rules_failed]
    return d
