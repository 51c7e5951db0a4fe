"""The tool interface: a name, a description, a category, and `run(...)` -> a typed result.

Each tool works alone (`LayerAnalyzer().run(model, (x, y), loss_fn)`) and inside the agent, which
hands it the validated `Workload` via `analyze(work)`. Results are dataclasses with the numbers,
the findings they support, and `to_text()` for people and language models.

Tools measure; the catalogue judges. A tool writes what it measured into an in-memory record
(`agent.measure.Measurement`) and the same rules that judge `modeldebug run` judge it, with the
workload's config (`work.config`: the one the user gave the agent, or `Tool(config=...)` alone).
Only the agent's own probe codes (PRB, MEM002) have detectors here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ...config import DebuggingConfig
from ...jsonsafe import json_safe
from ...rules.base import Finding, Recommendation, Severity
from ..request import AnalysisOptions, DebuggingRequest, Workload

__all__ = ["Tool", "ToolResult", "backward_once", "make_finding", "rule_code"]


@dataclass
class ToolResult:
    """What a tool measured (`data`), what it concluded (`findings`), and a one-line summary."""

    tool: str
    summary: str
    findings: list[Finding] = field(default_factory=list)
    duration_s: float = 0.0

    def lines(self) -> list[str]:
        """Detail lines for `to_text`; tools override."""
        return []

    def to_text(self) -> str:
        out = [f"{self.tool}: {self.summary}", *("  " + line for line in self.lines())]
        out += [f"  finding [{f.severity}] {f.kind}{f' at {f.location}' if f.location else ''}: {f.title}"
                for f in self.findings]
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["findings"] = [f.to_dict() for f in self.findings]
        return json_safe(d)


class Tool:
    """Base of the agent's tools."""

    name: ClassVar[str]
    description: ClassVar[str]
    category: ClassVar[str]

    def __init__(self, options: AnalysisOptions | None = None, *, config: DebuggingConfig | None = None) -> None:
        self.options = options or AnalysisOptions()
        #: what `run` judges with; inside the agent a tool judges with the workload's config
        self.config = config

    def run(self, model: nn.Module, batch: tuple[Any, Any], loss_fn: Callable[..., torch.Tensor] | None = None,
            **kwargs: Any) -> ToolResult:
        """Analyse `model` on `batch` with `loss_fn`; the model is left exactly as it was."""
        from ..guard import ModelGuard

        work = Workload(DebuggingRequest(model=model, batch=batch, loss_fn=loss_fn, options=self.options, **kwargs),
                        config=self.config)
        with ModelGuard(model):
            return self.timed(work)

    def timed(self, work: Workload) -> ToolResult:
        t0 = time.perf_counter()
        result = self.analyze(work)
        result.duration_s = round(time.perf_counter() - t0, 4)
        return result

    def analyze(self, work: Workload) -> ToolResult:
        raise NotImplementedError


def backward_once(work: Workload, model: nn.Module, handles: list[Any], batch: tuple[Any, Any] | None = None) -> float:
    """One forward, loss and backward pass on `model` (on `batch`, else the first); returns the loss.

    The hook `handles` are removed whatever happens.
    """
    try:
        loss = work.loss(model, batch)
        if loss.requires_grad:
            loss.backward()
        return float(loss.detach())
    finally:
        for h in handles:
            h.remove()


def rule_code(kind: str, fallback: str) -> str:
    """The catalogue's code for `kind` (training rules first, then the agent's probes), else `fallback`."""
    from ...catalogue import CATALOGUE
    from ...errors import UnknownRuleError

    try:
        return CATALOGUE.find(kind).code
    except UnknownRuleError:
        return fallback


def make_finding(code: str, kind: str, category: str, *, severity: Severity, confidence: float, title: str,
                 description: str, location: str | None = None, evidence: dict[str, Any] | None = None,
                 recommendations: list[Recommendation] | None = None) -> Finding:
    """A finding from a tool or probe (no step: it comes from the tool's own run, not the user's).

    Code, kind and category come from the catalogue spec of `kind` (or of `code` for the agent's own).
    """
    from ...catalogue import CATALOGUE

    spec = CATALOGUE[rule_code(kind, code)]
    if spec.kind != kind:
        raise ValueError(f"{code}: kind {kind!r} is not in the catalogue (spec {spec.code} is {spec.kind!r})")
    return spec.finding(severity=severity, confidence=confidence, title=title, description=description,
                        location=location, evidence=evidence, recommendations=recommendations)
