"""modeldebug: finds out why a PyTorch model will not train, and says how to fix it.

```python
import modeldebug as md

with md.watch(model, optimizer=opt) as session:
    ...                                    # your training loop, unchanged
print(session.report().to_text())
```
Names are imported on first use, so `modeldebug report` and `modeldebug rules` start without
loading PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .agent import AnalysisOptions, DebuggingRequest, DebuggingResponse, ModelDebuggingAgent
    from .capture import WatchSession, run_script, watch
    from .llm import LLMExplanation, explain_report, explain_response, make_lm
    from .monitor import ProductionMonitor
    from .onnx import ONNXConfig, ONNXDebugger
    from .config import ConfigError, DebuggingConfig
    from .errors import (BadInputError, DebuggingError, MissingDependencyError, RecordCorruptError,
                         ScriptNotFoundError, UnknownRuleError)
    from .record import Record
    from .report import Report
    from .rules import Diagnosis, Finding, Recommendation, analyze, diagnose

_LAZY = {
    "AnalysisOptions": "agent", "DebuggingRequest": "agent", "DebuggingResponse": "agent",
    "ModelDebuggingAgent": "agent",
    "behaviour": "behaviour", "monitor": "monitor", "ProductionMonitor": "monitor",
    "ONNXDebugger": "onnx", "ONNXConfig": "onnx",
    "llm": "llm", "LLMExplanation": "llm", "explain_report": "llm", "explain_response": "llm", "make_lm": "llm",
    "WatchSession": "capture", "run_script": "capture", "watch": "capture",
    "DebuggingConfig": "config", "ConfigError": "config",
    "BadInputError": "errors", "DebuggingError": "errors", "MissingDependencyError": "errors",
    "RecordCorruptError": "errors", "ScriptNotFoundError": "errors", "UnknownRuleError": "errors",
    "Record": "record", "Report": "report",
    "Finding": "rules", "Recommendation": "rules", "analyze": "rules", "diagnose": "rules", "Diagnosis": "rules",
    "testing": "testing",
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modeldebug' has no attribute {name!r}")
    mod = importlib.import_module(f".{module}", __name__)
    value = mod if name == module else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
