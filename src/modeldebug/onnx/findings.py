"""ONNX findings: one catalogue entry per code, and the builder every ONNX check uses.

Codes: ONX0xx structure and export hazards (`modeldebug onnx check`), ONX1xx PyTorch-vs-onnxruntime
parity (`modeldebug onnx compare`), ONX2xx execution (`modeldebug onnx profile`). Every finding has
category ``onnx`` and, where there is one, the ONNX node name as its location.

Their specs (kind, documentation) are in the one catalogue, `modeldebug.catalogue`.
Nothing here imports onnx or torch.
"""

from __future__ import annotations

from typing import Any

from ..catalogue import CATALOGUE, Finding, Recommendation, Severity

__all__ = ["finding"]


def finding(code: str, *, severity: Severity, confidence: float, title: str, description: str,
            location: str | None = None, evidence: dict[str, Any] | None = None,
            recommendations: list[Recommendation] | None = None) -> Finding:
    """A Finding for an ONNX code, with the kind and category taken from its catalogue spec."""
    return CATALOGUE[code].finding(severity=severity, confidence=confidence, title=title, description=description,
                                   location=location, evidence=evidence, recommendations=recommendations)
