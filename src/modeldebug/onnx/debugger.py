"""ONNXDebugger: the seed's `analyzeModel` / `profileExecution`, returning typed results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..rules.base import Finding
from .config import ONNXConfig
from .inspection import Inspection, inspect
from .lint import check
from .load import load_model
from .parity import compare
from .parity_result import ComparisonResult
from .profiling import ProfileResult, profile

__all__ = ["ModelAnalysis", "ONNXDebugger"]


@dataclass
class ModelAnalysis:
    """`check` findings plus the `inspect` description of one model."""

    inspection: Inspection
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(f.severity in ("medium", "high") for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {"inspection": self.inspection.to_dict(), "findings": [f.to_dict() for f in self.findings],
                "passed": self.passed}

    def to_text(self, *, findings: bool = True) -> str:
        """The model summary, then one line per finding (or a count when `findings` is False)."""
        advice = f"`modeldebug onnx inspect {self.inspection.source} --shape NAME=D0,D1,...`"
        lines = [self.inspection.to_text(max_nodes=0, shape_advice=advice).rsplit("\nnodes:", 1)[0]]
        if not self.findings:
            lines.append("check: no problems found")
        elif not findings:
            lines.append(f"check: {len(self.findings)} finding(s)")
        for f in self.findings if findings else []:
            where = f" at {f.location}" if f.location else ""
            lines.append(f"[{f.severity.upper()}] {f.code} {f.title}{where}")
        return "\n".join(lines)


class ONNXDebugger:
    """Lint, describe, profile and compare ONNX models.

    ```python
    dbg = ONNXDebugger()
    analysis = dbg.analyze_model("model.onnx")          # ModelAnalysis: .findings, .inspection
    prof = dbg.profile_execution("model.onnx")          # ProfileResult: .nodes, .ops, .hotspots
    parity = dbg.compare(torch_model, "model.onnx")     # ComparisonResult: .first_divergent
    ```
    """

    def __init__(self, config: ONNXConfig | None = None) -> None:
        self.config = config or ONNXConfig()

    def analyze_model(self, model: Any, config: ONNXConfig | None = None) -> ModelAnalysis:
        """Check and inspect a model given as a path, bytes or ModelProto."""
        loaded = load_model(model)
        return ModelAnalysis(inspect(loaded), check(loaded, config or self.config))

    def profile_execution(self, model: Any, inputs: Any = None, config: ONNXConfig | None = None) -> ProfileResult:
        """Profile onnxruntime on `inputs` (None: seeded random inputs)."""
        return profile(model, inputs, config or self.config)

    def compare(self, torch_model: Any, onnx_model: Any = None, inputs: Any = None, *,
                repro_dir: str | None = None) -> ComparisonResult:
        """PyTorch vs onnxruntime parity with first-divergent-node localisation."""
        return compare(torch_model, onnx_model, inputs, self.config, repro_dir=repro_dir)
