"""The one-line verdict of a report, shared by the terminal, JSON and HTML views.

"No problems found" is a claim about training; a run in which no training step happened (the script
stopped early, only ran inference, or trains in another process) has nothing to judge and says so,
with what was seen instead. A run of fewer steps than the rules need (`min_steps`) in which
nothing was found is "too short to judge", not a clean bill of health.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import DebuggingConfig

if TYPE_CHECKING:
    from .model import Report

__all__ = ["NO_STEP_HINT", "Verdict", "verdict"]

#: What to check when a script that should train shows no step (terminal and HTML).
NO_STEP_HINT = ("If this script should train, check that it reaches its training loop (its arguments, data path "
                "and epoch count) and that it trains in this process, not in a subprocess.")


class Verdict:
    """`code` is one of "problems_found", "no_problems_found", "no_training_step", "too_short"; `text`
    is the line shown; `detail` says what was seen when no training step happened, or what a run too
    short to judge could not show (else None)."""

    def __init__(self, code: str, text: str, detail: str | None = None) -> None:
        self.code = code
        self.text = text
        self.detail = detail

    def fields(self) -> dict[str, Any]:
        """The JSON report's `run.verdict` and `run.verdict_detail`."""
        return {"verdict": self.code, "verdict_detail": self.detail}


def verdict(report: Report) -> Verdict:
    """The verdict of `report`: problems found, none, or no training step to judge."""
    if report.findings:
        n = len(report.findings)
        worst = report.worst() or "low"
        return Verdict("problems_found", f"{n} problem{'s' if n > 1 else ''} found (worst: {worst}). Root causes first.")
    if report.run.get("steps") == 0:
        meta = report.record.meta if getattr(report, "record", None) is not None else {}
        return Verdict("no_training_step", "No training step observed: nothing to diagnose.",
                       _seen(report.run, watched=meta.get("mode") == "watch"))
    steps, needed = report.run.get("steps"), _min_steps(report)
    if isinstance(steps, int) and 0 < steps < needed:
        return Verdict("too_short", f"No problems found in {steps} training step{'s' if steps > 1 else ''}, "
                                    "but the run is too short to judge.",
                       f"Most rules (the loss curve, the learning rate, dead units, timing) need at least {needed} "
                       "steps; only problems that show at once (a crash, a NaN, a loss that blows up) were judged. "
                       "Run more steps to judge the training.")
    return Verdict("no_problems_found", "No problems found.")


def _min_steps(report: Report) -> int:
    """The `min_steps` the rules ran with (the report's configuration, else the default)."""
    diagnosis = getattr(report, "diagnosis", None)
    config = getattr(diagnosis, "config", None) or DebuggingConfig()
    return int(config.thresholds.min_steps)


def _seen(run: dict[str, Any], *, watched: bool = False) -> str:
    """What a run without a training step did, from its metadata.

    `watched`: a `watch()` session, whose models are named when it starts, not when they first run,
    so its model list says nothing about a forward pass.
    """
    status, code = run.get("status"), run.get("exit_code")
    if status == "crashed":
        ran = f"the script crashed (exit code {code}) before its first training step"
    elif status == "interrupted":
        ran = "the script was interrupted before its first training step"
    elif status == "terminated":
        ran = "the script was terminated before its first training step"
    elif status == "running":
        ran = "the run is still going and has not finished a training step yet"
    elif status == "unfinished":  # killed (kill -9, out of memory) before its record was closed
        ran = "the run ended, without closing its record, before its first training step was written"
    elif code is not None and not watched:
        ran = f"the script ran to the end (exit code {code})"
    else:
        ran = "the watched code ran to the end"
    models = [str(m) for m in run.get("models") or []]
    if models and watched:
        seen = f"{', '.join(models)} was watched, but no backward pass or optimizer step happened"
    elif models:
        seen = f"the forward pass of {', '.join(models)} ran, but no backward pass or optimizer step happened"
    else:
        seen = "no model's forward pass, backward pass or optimizer step was seen"
    text = f"{ran}; {seen}."
    return text[0].upper() + text[1:]
