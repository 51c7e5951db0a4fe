"""Findings, recommendations, and the Rule base class with its one flat registry.

Adding a rule is one class: subclass ``Rule``, set ``code``, ``kind``, ``category``, write the
docstring with the fixed headings, and implement ``check``. Importing the module registers it.
Codes are a family prefix plus digits (``GRD001``); a published code is never reused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from .context import Context

__all__ = ["Finding", "Recommendation", "Rule", "RULES", "SEVERITY_ORDER", "Severity"]

Severity = Literal["low", "medium", "high"]
SEVERITY_ORDER: dict[str, int] = {"low": 0, "medium": 1, "high": 2}


@dataclass
class Recommendation:
    """What to do: a fix (with code), an optimization, or a best practice."""

    type: Literal["fix", "optimization", "best_practice"]
    description: str
    implementation: str | None = None


@dataclass
class Finding:
    """One diagnosed problem, in the contract's JSON shape."""

    code: str
    kind: str
    category: str
    severity: Severity
    confidence: float
    title: str
    description: str
    location: str | None = None
    step: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    recommendations: list[Recommendation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        recs = [Recommendation(**r) for r in data.get("recommendations", [])]
        return cls(**{**data, "recommendations": recs})


RULES: dict[str, type[Rule]] = {}


class Rule:
    """A pure function of a run record: evidence in, findings out. No I/O, no LLM, no torch."""

    code: ClassVar[str]
    kind: ClassVar[str]
    category: ClassVar[str]
    #: Finding kinds this rule's problem causes; when both fire, those become its evidence.
    explains: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            if cls.code in RULES and RULES[cls.code] is not cls:
                raise ValueError(f"rule code {cls.code} is used twice")
            RULES[cls.code] = cls

    @classmethod
    def name(cls) -> str:
        """kebab-case name from the class name: DeadActivations -> dead-activations."""
        return re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else cls.kind

    def check(self, ctx: Context) -> Iterator[Finding]:
        raise NotImplementedError

    def finding(self, *, severity: Severity, confidence: float, title: str, description: str,
                location: str | None = None, step: int | None = None,
                evidence: dict[str, Any] | None = None,
                recommendations: list[Recommendation] | None = None) -> Finding:
        return Finding(
            code=self.code, kind=self.kind, category=self.category, severity=severity,
            confidence=round(float(confidence), 3), title=title, description=description,
            location=location, step=step, evidence=evidence or {}, recommendations=recommendations or [],
        )
