"""ONNX: lint (`check`), describe (`inspect`), profile with onnxruntime (`profile`), and compare with
PyTorch down to the first node that introduces error (`compare`).

```python
from modeldebug.onnx import ONNXDebugger, check, compare
findings = check("model.onnx")
result = compare(torch_model, "model.onnx")        # result.first_divergent.node
result = compare_onnx("new.onnx", "old.onnx")       # ONNX vs ONNX, provider vs provider, or golden=
```
Needs the ``onnx`` extra (onnx, onnxruntime, onnxscript). Names are imported on first use, so
importing this package loads neither onnx nor torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ONNXConfig
    from .debugger import ModelAnalysis, ONNXDebugger
    from .inspection import Inspection
    from .lint import check
    from .load import LoadedModel, ModelLoadError, load_model
    from .pair import compare_onnx
    from .parity import compare
    from .parity_result import ComparisonResult, Divergence
    from .profiling import ProfileResult
    from .tolerance import ErrorStats, compare_arrays

_LAZY = {
    "ONNXConfig": "config", "ModelAnalysis": "debugger", "ONNXDebugger": "debugger", "Inspection": "inspection",
    "check": "lint", "LoadedModel": "load", "ModelLoadError": "load", "load_model": "load", "compare": "parity",
    "compare_onnx": "pair",
    "ComparisonResult": "parity_result", "Divergence": "parity_result", "ProfileResult": "profiling",
    "ErrorStats": "tolerance", "compare_arrays": "tolerance",
}
# `inspect` and `profile` are functions whose modules are named inspection/profiling, so that
# importing a submodule never replaces a function of the same name on this package.
_FUNCTIONS = {"inspect": ("inspection", "inspect"), "profile": ("profiling", "profile")}

__all__ = sorted([*_LAZY, *_FUNCTIONS])


def __getattr__(name: str) -> Any:
    if name in _FUNCTIONS:
        module, attr = _FUNCTIONS[name]
    elif name in _LAZY:
        module, attr = _LAZY[name], name
    else:
        raise AttributeError(f"module 'modeldebug.onnx' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
