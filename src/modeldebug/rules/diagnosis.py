"""diagnose(record, config) -> Diagnosis: the pipeline's one entry point from a record to findings.

Every view (terminal, JSON, HTML, export, the agent, the LLM explanation) is a view of a Diagnosis;
none of them runs rules itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .._version import __version__
from ..catalogue import Finding
from ..config import DebuggingConfig
from ..record import Record
from ..record.lock import live_writer

__all__ = ["Diagnosis", "diagnose", "rules_config", "run_summary"]

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
                          "memory, a crash of Python itself), the record could not be written to the end (a full "
                          "disk), or it was copied while the run was going or without its -wal file. The last steps "
                          "before the end may be missing.")


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
    run.update(_loss_summary(record))
    return run


def _loss_summary(record: Record) -> dict[str, Any]:
    """`first_loss`/`final_loss`: the first and last finite losses (numbers: JSON has no NaN). A run whose
    loss ended NaN/Inf says so beside them: `final_loss_finite: false`, `final_loss_value` ("nan", "inf"
    or "-inf") and `last_finite_step`, the step `final_loss` was seen at."""
    series = record.column("loss")
    loss = series.finite()
    if not len(loss):
        return {}
    out: dict[str, Any] = {"first_loss": float(loss.values[0]), "final_loss": float(loss.values[-1]),
                           "final_loss_finite": True}
    last = float(series.values[-1])
    # NaN also stands for a step without a loss: only a non-finite event recorded by then makes it NaN
    nonfinite = math.isinf(last) or any(e.step is not None and e.step <= int(series.steps[-1])
                                        for e in record.events("nonfinite"))
    if not math.isfinite(last) and nonfinite:
        out.update(final_loss_finite=False, final_loss_value=str(last),
                   last_finite_step=int(loss.steps[-1]))
    return out


def rules_config(config: DebuggingConfig) -> DebuggingConfig | None:
    """The config the rules run with when invariants (`--against`) are judged too: `--select` less its
    invariant codes (INV...), which no rule finds; None when it names nothing but invariants."""
    from ..catalogue import CATALOGUE

    invariant = CATALOGUE.family("invariant")
    rules = [s for s in config.select if not any(CATALOGUE.matches(sp, s) for sp in invariant)
             or any(CATALOGUE.matches(sp, s) for sp in CATALOGUE if sp.family != "invariant")]
    if len(rules) == len(config.select):
        return config
    return config.model_copy(update={"select": rules}) if rules else None


def diagnose(record: Record, config: DebuggingConfig | None = None, *, against: bool = False) -> Diagnosis:
    """Run every selected rule (ours and plugins') on `record` and rank the findings.

    `against`: invariants will be judged too (`--against`), so `--select` may name their codes (INV004):
    the rules run with the rest of the selection, none when it names only invariants. The diagnosis
    keeps the whole config, which picks the invariant findings.
    """
    from . import analyze, selected_rules

    config = config or DebuggingConfig()
    run = run_summary(record)
    rules = rules_config(config) if against else config
    findings = analyze(record, rules) if rules is not None else []
    d = Diagnosis(findings, run, config, record, [r.code for r in selected_rules(rules)] if rules is not None else [])
    if d.rules_failed:  # the JSON says so too, beside the findings that explain it
        run["rules_failed"] = [f"{f.evidence.get('rule')}: {f.evidence.get('error')}" for f in d.rules_failed]
    return d
