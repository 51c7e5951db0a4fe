"""Active debugging: `ModelDebuggingAgent().debug_model(DebuggingRequest(...))` -> `DebuggingResponse`."""

from __future__ import annotations

from .core import ModelDebuggingAgent
from .fixes import VerifiedFix
from .probes import ProbeResult
from .request import AnalysisOptions, DebuggingRequest
from .response import AgentMetrics, DebuggingResponse, Issue
from .tools import (TOOLS, ErrorDiagnoser, GradientDebugger, LayerAnalyzer, MemoryTracker, PerformanceProfiler, Tool,
                    ToolResult, diagnose_exception)

__all__ = ["AgentMetrics", "AnalysisOptions", "DebuggingRequest", "DebuggingResponse", "ErrorDiagnoser",
           "GradientDebugger", "Issue", "LayerAnalyzer", "MemoryTracker", "ModelDebuggingAgent", "PerformanceProfiler",
           "ProbeResult", "TOOLS", "Tool", "ToolResult", "VerifiedFix", "diagnose_exception"]
