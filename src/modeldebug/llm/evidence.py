"""What a language model is shown: findings reduced to facts, a run summary, a few statistics.

`Evidence` is built from a rule `Report` or an agent `DebuggingResponse`. It gives each finding a
short id (`F1`, `F2`, ... in the rules' order), keeps only scalar evidence (numbers rounded, short
strings, short lists), and knows the run's module and parameter names so the guard can tell a real
location from an invented one. Nothing here holds or prints a tensor or a data sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .schema import FindingBrief

if TYPE_CHECKING:
    from ..record import Record
    from ..rules.base import Finding

__all__ = ["Evidence"]

_MAX_FINDINGS = 30
_MAX_TEXT = 4000


def _scalar(v: Any) -> Any:
    """A JSON-friendly short form of an evidence value, or None to leave it out."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if not math.isfinite(v) else float(f"{v:.4g}")
    if isinstance(v, str):
        return v if len(v) <= 160 else v[:157] + "..."
    if isinstance(v, (list, tuple)) and len(v) <= 8 and all(isinstance(x, (int, float, str, bool)) for x in v):
        return [_scalar(x) for x in v]
    return None


def brief(f: Finding, fid: str) -> FindingBrief:
    """The facts of one finding the model may see."""
    ev: dict[str, Any] = {}
    for k, v in f.evidence.items():
        if k in ("symptoms", "llm_note", "llm_severity"):
            continue
        s = _scalar(v)
        if s is not None:
            ev[k] = s if not (isinstance(s, float) and not math.isfinite(s)) else str(s)
    symptoms = []
    for sym in f.evidence.get("symptoms", []):
        if isinstance(sym, dict):
            step = sym.get("step")
            symptoms.append(f"{sym.get('kind')}" + (f" from step {step}" if step is not None else ""))
    return FindingBrief(id=fid, code=f.code, kind=f.kind, category=f.category, severity=f.severity,
                        confidence=round(float(f.confidence), 3), title=f.title, location=f.location, step=f.step,
                        evidence=ev, symptoms=symptoms)


@dataclass
class Evidence:
    """A run's findings and context, as the language model sees them."""

    findings: list[Finding]
    run_summary: str
    debug_metrics: str
    record: Record | None = None
    #: module and parameter names of the run (for checking locations the model names)
    locations: set[str] = field(default_factory=set)
    ids: list[str] = field(init=False)
    briefs: list[FindingBrief] = field(init=False)

    def __post_init__(self) -> None:
        self.ids = [f"F{i}" for i in range(1, len(self.findings) + 1)]
        self.briefs = [brief(f, i) for f, i in zip(self.findings[:_MAX_FINDINGS], self.ids)]
        self.run_summary = self.run_summary[:_MAX_TEXT]
        self.debug_metrics = self.debug_metrics[:_MAX_TEXT]

    @classmethod
    def from_report(cls, report: Any) -> Evidence:
        """From a rule `Report` (a stored run, `modeldebug run`, `watch(...).report()`)."""
        run = report.run or {}
        keys = ("script", "steps", "duration_s", "exit_code", "status", "level", "device", "torch",
                "first_loss", "final_loss")
        lines = [f"{k}: {_short(run[k])}" for k in keys if run.get(k) is not None]
        if run.get("final_loss_finite") is False:  # `final_loss` is the last finite one: say how it ended
            lines = [ln for ln in lines if not ln.startswith("final_loss:")]
            lines.append(f"final_loss: {run.get('final_loss_value', 'nan')} (the run ended non-finite; last finite "
                         f"loss {_short(run.get('final_loss'))} at step {run.get('last_finite_step')})")
        for m in (run.get("models") or [])[:4]:
            lines.append(f"model: {_short(m)}")
        for o in (run.get("optimizers") or [])[:2]:
            lines.append(f"optimizer: {_short(o)}")
        record = report.record
        return cls(list(report.findings), "\n".join(lines), _record_metrics(record), record, _record_names(record))

    @classmethod
    def from_response(cls, response: Any, model: Any = None) -> Evidence:
        """From an agent `DebuggingResponse`; `model` (the user's, read-only) adds its module names."""
        run = response.run or {}
        lines = [f"complaint: {response.issue or 'general check'}"]
        lines += [f"{k}: {run[k]}" for k in ("script", "steps", "mode", "torch") if run.get(k) is not None]
        if run.get("context"):
            lines.append(f"context: {_short(run['context'])}")
        metrics = ["probes:"] + ["  " + p.to_text() for p in response.probes.values()]
        metrics += ["tools:"] + ["  " + t.to_text().splitlines()[0] for t in response.tool_results.values()]
        if response.fixes:
            metrics += ["verified fixes:"] + ["  " + v.to_text() for v in response.fixes]
        if response.record is not None:
            metrics.append(_record_metrics(response.record))
        names = _record_names(response.record)
        if model is not None:
            names |= {n for n, _ in model.named_modules() if n} | {n for n, _ in model.named_parameters()}
        return cls(list(response.findings), "\n".join(lines), "\n".join(metrics), response.record, names)

    def findings_text(self) -> str:
        """The briefs as plain lines (for people and for logs)."""
        return "\n".join(f"{b.id} [{b.severity}] {b.code} {b.kind}{f' at {b.location}' if b.location else ''}: {b.title}"
                         for b in self.briefs)


def _short(value: Any, limit: int = 300) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _record_names(record: Record | None) -> set[str]:
    if record is None:
        return set()
    return {e.name for e in record.entities() if e.kind in ("module", "param")}


def _record_metrics(record: Record | None) -> str:
    if record is None:
        return "no run record"
    from .queries import RunQueries

    return RunQueries(None, record).loss_curve()
