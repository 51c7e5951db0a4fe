"""What the agent answers: the seed's `issues` and `recommendations`, with everything behind them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..jsonsafe import json_safe
from ..rules.base import Finding, Recommendation

__all__ = ["AgentMetrics", "DebuggingResponse", "Issue"]


@dataclass
class Issue:
    """The seed's issue shape (type, severity, description, location) plus the finding's code and kind."""

    type: str
    severity: str
    description: str
    location: str | None
    code: str
    kind: str
    confidence: float

    @classmethod
    def from_finding(cls, f: Finding) -> Issue:
        return cls(type=f.category, severity=f.severity, description=f"{f.title}. {f.description}",
                   location=f.location, code=f.code, kind=f.kind, confidence=f.confidence)


@dataclass
class AgentMetrics:
    """What the analysis itself cost and produced."""

    analysis_time_s: float = 0.0
    issues_found: int = 0
    recommendations_given: int = 0
    #: the process's resident memory growth during the analysis (CUDA: the allocator's peak)
    peak_memory_mb: float = 0.0
    tool_time_s: dict[str, float] = field(default_factory=dict)
    #: torch CPU threads the analysis ran on (`AnalysisOptions.threads`)
    threads: int = 0

    def slowest(self, n: int = 3) -> list[tuple[str, float]]:
        """The `n` parts of the analysis that took longest, slowest first."""
        return sorted(self.tool_time_s.items(), key=lambda kv: -kv[1])[:n]


@dataclass
class DebuggingResponse:
    """The agent's answer. `issues` and `recommendations` follow the seed; `findings` carry the evidence."""

    issue: str
    findings: list[Finding]
    tool_results: dict[str, Any]
    probes: dict[str, Any]
    fixes: list[Any]
    visualizations: dict[str, str]
    metrics: AgentMetrics
    #: the user's model was left exactly as it came (weights, buffers, grads, flags); see `changed`
    model_unchanged: bool = True
    changed: list[str] = field(default_factory=list)
    record: Any = None
    run: dict[str, Any] = field(default_factory=dict)
    #: the language model's explanation (`modeldebug.llm.LLMExplanation`) when the agent was given an `lm`
    explanation: Any = None

    @property
    def issues(self) -> list[Issue]:
        return [Issue.from_finding(f) for f in self.findings]

    @property
    def recommendations(self) -> list[Recommendation]:
        """Every distinct recommendation, most important finding first; verified fixes say so."""
        verified = {(v.for_kind, v.fix): v for v in self.fixes}
        seen: set[str] = set()
        out: list[Recommendation] = []
        for f in self.findings:
            for r in f.recommendations:
                if r.description not in seen:
                    seen.add(r.description)
                    out.append(r)
            for v in verified.values():
                if v.for_kind == f.kind and v.description not in seen:
                    seen.add(v.description)
                    out.append(Recommendation("fix", f"{v.description} (tried on a copy: {v.note.split(';')[0]} "
                                              f"{v.before:.3g} -> {v.after:.3g}, {'helped' if v.helped else 'did not help'})",
                                              v.implementation))
        return out

    def report(self):  # type: ignore[no-untyped-def]
        """The findings as a `modeldebug.Report` (terminal, JSON, HTML with the probe run's plots)."""
        from ..report import Report

        return Report(self.findings, self.run, self.record)

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "version": 1, "issue": self.issue, "run": self.run,
            "issues": [asdict(i) for i in self.issues],
            "recommendations": [asdict(r) for r in self.recommendations],
            "findings": [f.to_dict() for f in self.findings],
            "tools": {k: v.to_dict() for k, v in self.tool_results.items()},
            "probes": {k: v.to_dict() for k, v in self.probes.items()},
            "verified_fixes": [v.to_dict() for v in self.fixes],
            "visualizations": self.visualizations, "metrics": asdict(self.metrics),
            "model_unchanged": self.model_unchanged, "changed": self.changed,
            "explanation": self.explanation.to_dict() if self.explanation is not None else None,
        })

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def to_text(self) -> str:
        """Plain text for people and language models: findings, probes, fixes, tools."""
        lines = [f"modeldebug agent: {self.issue or 'general check'}",
                 f"{len(self.findings)} issue(s) in {self.metrics.analysis_time_s:.1f} s"]
        for i, f in enumerate(self.findings, 1):
            where = f" at {f.location}" if f.location else ""
            lines.append(f"{i}. [{f.severity}] {f.code} {f.kind}{where}: {f.title}")
            lines += [f"   fix: {r.description}" + ("\n      " + r.implementation.replace("\n", "\n      ")
                                                      if r.implementation else "")
                      for r in f.recommendations[:2]]
        if self.fixes:
            lines.append("verified fixes:")
            lines += ["  " + v.to_text() for v in self.fixes]
        lines.append("probes:")
        lines += ["  " + p.to_text() for p in self.probes.values()]
        lines.append("tools:")
        lines += ["  " + t.to_text().replace("\n", "\n  ") for t in self.tool_results.values()]
        if self.explanation is not None:
            lines.append(self.explanation.to_text())
        return "\n".join(lines)
