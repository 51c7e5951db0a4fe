"""Spec and Option: what the catalogue declares once for every code.

A spec is data: code, kind, category, family, its documentation under five fixed headings, the
finding kinds its problem explains, and its typed options with their defaults. Detectors (training
rules, ONNX checks, behaviour probes, monitor alerts, agent probes) live with their subject and
refer to their spec by code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .finding import Finding, Recommendation, Severity

__all__ = ["FAMILIES", "HEADINGS", "Option", "Spec"]

#: Who produces a family's findings.
FAMILIES: dict[str, str] = {
    "training": "a training run's record (`modeldebug run`, `watch()`, the agent's probe run)",
    "onnx": "an ONNX model file (`modeldebug onnx check|compare|profile`)",
    "behaviour": "a generative model's answers (`modeldebug behaviour ...`)",
    "monitor": "a production request log (`modeldebug monitor`)",
    "probe": "the agent's active probes (`ModelDebuggingAgent`, `modeldebug doctor`)",
    "invariant": "a run judged against invariants learned from healthy runs (`--against INVARIANTS.json`)",
    "distributed": "the records of every rank of a distributed job, compared after it (`torchrun ... -m modeldebug run`)",
    "plugin": "a user's own rule (entry point `modeldebug.rules` or `--rules FILE`)",
    "internal": "modeldebug itself: a rule of any family that could not run on the record",
}
HEADINGS = ("What it detects", "Why is this bad?", "Example", "Recommended fix", "Known problems")
_CODE = re.compile(r"^[A-Z][A-Z0-9]{1,5}\d{3}$")


@dataclass(frozen=True)
class Option:
    """A typed, documented setting of one rule (or of many, when declared as a common option)."""

    name: str
    default: Any
    doc: str
    type: Any = float

    def check(self, value: Any) -> Any:
        """`value` converted to this option's type, or ValueError naming the option."""
        if value is None:
            if self.default is None:
                return None
            raise ValueError(f"option {self.name} must be set (default {self.default!r})")
        base = int if self.type is int else float
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"option {self.name} takes a number, got {value!r}")
        if base is int and float(value) != int(value):
            raise ValueError(f"option {self.name} takes a whole number, got {value!r}")
        return base(value)


@dataclass(frozen=True)
class Spec:
    """Everything about one finding code except how it is detected."""

    code: str
    kind: str
    category: str
    family: str
    name: str
    summary: str
    doc: str
    explains: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    severity: Severity | None = None  # a fixed severity, for families whose findings always have one
    source: str = "modeldebug"  # or the plugin that declared it
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def sections(self) -> dict[str, str]:
        """The documentation's sections by heading."""
        parts = re.split(r"^## (.+)$", self.doc, flags=re.M)
        return {parts[i].strip(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}

    def problems(self) -> list[str]:
        """What is wrong with this spec as declared (the catalogue refuses a spec with problems)."""
        out = []
        if not _CODE.match(self.code):
            out.append(f"code {self.code!r} is not a family prefix plus three digits (e.g. GRD001)")
        if not re.match(r"^[a-z][a-z0-9_]*$", self.kind):
            out.append(f"kind {self.kind!r} is not snake_case")
        if self.family not in FAMILIES:
            out.append(f"family {self.family!r} is not one of {', '.join(FAMILIES)}")
        if not self.summary.strip():
            out.append("no summary")
        missing = [h for h in HEADINGS if not self.sections().get(h)]
        if missing:
            out.append(f"documentation lacks {', '.join(missing)}")
        return out

    def finding(self, *, severity: Severity | None = None, confidence: float, title: str, description: str,
                location: str | None = None, step: int | None = None, evidence: dict[str, Any] | None = None,
                recommendations: list[Recommendation] | None = None) -> Finding:
        """The one finding builder: code, kind and category always come from the spec."""
        sev = severity or self.severity
        if sev is None:
            raise ValueError(f"{self.code}: a finding needs a severity")
        return Finding(code=self.code, kind=self.kind, category=self.category, severity=sev,
                       confidence=round(float(confidence), 3), title=title, description=description,
                       location=location, step=step, evidence=evidence or {},
                       recommendations=recommendations or [])

    def explain(self) -> str:
        """The documentation as Markdown, headed by what the code is."""
        head = f"# {self.code} {self.kind}\n\n`{self.name}`, category {self.category}, from {FAMILIES[self.family]}.\n\n"
        tail = ""
        if self.explains:
            tail = (f"\n\nWhen it fires together with {', '.join(f'`{k}`' for k in self.explains)}, "
                    "those are listed as its symptoms.")
        if self.options:
            rows = "\n".join(f"- `{o.name}` (default `{o.default!r}`): {o.doc}" for o in self.options)
            tail += f"\n\n## Options\n{rows}"
        return f"{head}{self.summary}\n\n{self.doc.strip()}{tail}\n"
