"""The typed shapes a language model reads and writes (pydantic; no DSPy needed to import them).

The model reads `FindingBrief`s (a rule finding reduced to its code, kind, severity, location and a
few evidence numbers, under a short id `F1`, `F2`, ...) and writes a `DebugAnswer`: issues and
recommendations in the seed's format, a root-cause explanation, an answer to the user's question,
and the order it would put the findings in. Validation is lenient about spelling ("Gradients",
"critical") and strict about meaning: an unknown issue type or severity is an error.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["CATEGORIES", "DebugAnswer", "FindingBrief", "LLMIssue", "LLMRecommendation"]

#: the contract's finding categories (the seed's issue types and more)
CATEGORIES = ("gradient", "activation", "loss", "optimizer", "data", "numerics", "model", "memory",
              "performance", "runtime", "onnx", "behaviour")
IssueType = Literal["gradient", "activation", "loss", "optimizer", "data", "numerics", "model", "memory",
                    "performance", "runtime", "onnx", "behaviour"]

_SEVERITY_WORDS = {"critical": "high", "severe": "high", "major": "high", "moderate": "medium",
                   "minor": "low", "info": "low", "informational": "low"}
_TYPE_WORDS = {"gradients": "gradient", "activations": "activation", "optimization": "optimizer",
               "numerical": "numerics", "numeric": "numerics", "architecture": "model", "speed": "performance",
               "behavior": "behaviour", "error": "runtime", "crash": "runtime"}
_RECOMMENDATION_WORDS = {"best practice": "best_practice", "best-practice": "best_practice", "bestpractice": "best_practice",
                         "optimisation": "optimization"}


def _word(value: Any, synonyms: dict[str, str]) -> Any:
    if not isinstance(value, str):
        return value
    v = value.strip().lower()
    return synonyms.get(v, v)


class FindingBrief(BaseModel):
    """What the language model is told about one rule finding: no tensors, no data, only facts."""

    id: str = Field(description="short id to refer to this finding: F1, F2, ...")
    code: str
    kind: str
    category: str
    severity: Literal["low", "medium", "high"]
    confidence: float
    title: str
    location: str | None = None
    step: int | None = None
    evidence: dict[str, Any] = Field(default_factory=dict, description="the numbers that show it")
    symptoms: list[str] = Field(default_factory=list, description="findings this one explains (folded into it)")


class LLMIssue(BaseModel):
    """One issue in the seed's shape; `finding` names the rule finding it restates, or None for a new hypothesis."""

    model_config = ConfigDict(extra="ignore")

    type: IssueType
    severity: Literal["low", "medium", "high"]
    description: str
    location: str | None = None
    finding: str | None = Field(default=None, description="the id (F1, F2, ...) of the rule finding this restates; "
                                                          "null when it is your own hypothesis")

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, v: Any) -> Any:
        return _word(v, _TYPE_WORDS)

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, v: Any) -> Any:
        return _word(v, _SEVERITY_WORDS)

    @field_validator("finding", "location", mode="before")
    @classmethod
    def _blank(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("", "none", "null", "n/a", "-"):
            return None
        return v.strip() if isinstance(v, str) else v


class LLMRecommendation(BaseModel):
    """A recommendation in the seed's shape. Its `implementation` is shown, never run."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["fix", "optimization", "best_practice"]
    description: str
    implementation: str | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, v: Any) -> Any:
        return _word(v, _RECOMMENDATION_WORDS)


class DebugAnswer(BaseModel):
    """Everything a language model may contribute, validated before anything of it is used."""

    model_config = ConfigDict(extra="ignore")

    root_cause: str = ""
    answer: str = ""
    issues: list[LLMIssue] = Field(default_factory=list)
    recommendations: list[LLMRecommendation] = Field(default_factory=list)
    finding_order: list[str] = Field(default_factory=list)

    @field_validator("finding_order", mode="before")
    @classmethod
    def _order(cls, v: Any) -> Any:
        if isinstance(v, str):  # "F2, F1" from a model that ignored the list format
            return [s.strip() for s in v.replace(";", ",").split(",") if s.strip()]
        return v
