"""Finding and Recommendation: the one shape every family's findings take (the JSON contract)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Finding", "Recommendation", "SEVERITY_ORDER", "Severity"]

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
