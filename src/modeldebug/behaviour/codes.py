"""The behaviour finding codes (BEH...), as the one catalogue declares them.

`CODES` is a view of the catalogue's behaviour family (kept for callers that import it;
`modeldebug behaviour codes` reads the catalogue itself); `finding()` builds a `Finding` from a code, so kinds and codes cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..catalogue import CATALOGUE, Finding, Recommendation, Severity

__all__ = ["CODES", "Code", "finding"]


@dataclass(frozen=True)
class Code:
    """One behaviour finding code: kind, summary and documentation."""

    code: str
    kind: str
    summary: str
    doc: str


CODES: dict[str, Code] = {s.code: Code(s.code, s.kind, s.summary, s.doc) for s in CATALOGUE.family("behaviour")}


def finding(code: str, *, severity: Severity, confidence: float, title: str, description: str,
            location: str | None = None, evidence: dict[str, Any] | None = None,
            recommendations: list[Recommendation] | None = None) -> Finding:
    """A `Finding` for behaviour `code` (its kind comes from the catalogue)."""
    return CATALOGUE[code].finding(severity=severity, confidence=confidence, title=title, description=description,
                                   location=location, evidence=evidence, recommendations=recommendations)
