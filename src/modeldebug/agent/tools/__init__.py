"""The agent's tools; each also works alone: `Tool().run(model, (x, y), loss_fn)`."""

from __future__ import annotations

from .base import Tool, ToolResult
from .errors import ErrorDiagnoser, ErrorDiagnosis, diagnose_exception
from .gradients import GradientDebugger, GradientFlow
from .layers import LayerAnalyzer, LayerReport
from .memory import MemoryReport, MemoryTracker
from .profiler import PerformanceProfiler, ProfileResult

__all__ = ["ErrorDiagnoser", "ErrorDiagnosis", "GradientDebugger", "GradientFlow", "LayerAnalyzer", "LayerReport",
           "MemoryReport", "MemoryTracker", "PerformanceProfiler", "ProfileResult", "TOOLS", "Tool", "ToolResult",
           "diagnose_exception"]

TOOLS: dict[str, type[Tool]] = {t.name: t for t in (ErrorDiagnoser, GradientDebugger, LayerAnalyzer, MemoryTracker,
                                                    PerformanceProfiler)}
