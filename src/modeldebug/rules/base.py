"""The Rule base class: a detector that judges a training record under one catalogue spec.

Adding a rule is a spec in the catalogue (code, kind, category, documentation, options) and one
class here: subclass ``Rule``, set ``code``, implement ``check``. Kind, category, what it explains
and its options come from the spec, never from the class. Codes are a family prefix plus digits
(``GRD001``); a published code is never reused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from ..catalogue import CATALOGUE, SEVERITY_ORDER, Finding, Recommendation, Severity, Spec

if TYPE_CHECKING:
    from .context import Context

__all__ = ["Finding", "Recommendation", "Rule", "RULES", "SEVERITY_ORDER", "Severity"]


RULES: dict[str, type[Rule]] = {}


class Rule:
    """A pure function of a run record: evidence in, findings out. No I/O, no LLM, no torch."""

    code: ClassVar[str]
    spec: ClassVar[Spec]
    kind: ClassVar[str]
    category: ClassVar[str]
    #: Finding kinds this rule's problem causes; when both fire, those become its evidence.
    explains: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            if cls.code not in CATALOGUE:
                raise ValueError(f"rule {cls.__name__} has code {cls.code}, which no catalogue spec declares")
            if cls.code in RULES and RULES[cls.code] is not cls:
                raise ValueError(f"rule code {cls.code} is used twice")
            cls.spec = CATALOGUE[cls.code]
            cls.kind, cls.category, cls.explains = cls.spec.kind, cls.spec.category, cls.spec.explains
            RULES[cls.code] = cls

    @classmethod
    def name(cls) -> str:
        """The spec's kebab-case name (dead-activations)."""
        return cls.spec.name

    @classmethod
    def summary(cls) -> str:
        return cls.spec.summary

    def check(self, ctx: Context) -> Iterator[Finding]:
        raise NotImplementedError

    def finding(self, *, severity: Severity, confidence: float, title: str, description: str,
                location: str | None = None, step: int | None = None,
                evidence: dict[str, Any] | None = None,
                recommendations: list[Recommendation] | None = None) -> Finding:
        return self.spec.finding(severity=severity, confidence=confidence, title=title, description=description,
                                 location=location, step=step, evidence=evidence,
                                 recommendations=recommendations)
