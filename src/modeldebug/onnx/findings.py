"""ONNX findings: one catalogue entry per code, and the builder every ONNX check uses.

Codes: ONX0xx structure and export hazards (`modeldebug onnx check`), ONX1xx PyTorch-vs-onnxruntime
parity (`modeldebug onnx compare`), ONX2xx execution (`modeldebug onnx profile`). Every finding has
category ``onnx`` and, where there is one, the ONNX node name as its location.

The catalogue entries (``catalogue_lint``, ``catalogue_run``) subclass ``Rule`` so that
`modeldebug rules` and `modeldebug explain ONX003` show them; their ``check`` yields nothing because
ONNX findings come from analysing a model file, not from a training record. Each catalogue module
imports only ``rules.base``, so ``rules/__init__`` may import them in any order. Nothing here
imports onnx or torch.
"""

from __future__ import annotations

from typing import Any

from ..rules.base import RULES, Finding, Recommendation, Rule, Severity

__all__ = ["finding", "rule_for"]


def rule_for(code: str) -> type[Rule]:
    """The catalogue entry of an ONNX code; importing the catalogues registers them."""
    from . import catalogue_lint, catalogue_run  # noqa: F401  (registers the entries)

    return RULES[code]


def finding(code: str, *, severity: Severity, confidence: float, title: str, description: str,
            location: str | None = None, evidence: dict[str, Any] | None = None,
            recommendations: list[Recommendation] | None = None) -> Finding:
    """A Finding for an ONNX code, with the kind and category taken from its catalogue entry."""
    rule = rule_for(code)
    return Finding(code=code, kind=rule.kind, category="onnx", severity=severity,
                   confidence=round(float(confidence), 3), title=title, description=description,
                   location=location, step=None, evidence=evidence or {},
                   recommendations=recommendations or [])
