"""Optional reasoning with a language model (DSPy), local first, never worse than the rules.

```python
from modeldebug.llm import explain_report, make_lm
explanation = explain_report(report, make_lm("ollama_chat/llama3.2"), question="why did it diverge?")
print(explanation.to_text())          # or explanation.fallback_reason when the model failed
```
Names load on first use: importing `modeldebug.llm` imports no DSPy; `make_lm`, `explain_*`
import it when called. Without a model configured nothing here runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cli import add_llm_options, check_llm_args, handle_llm
    from .evidence import Evidence
    from .explain import attach_explanation, explain_evidence, explain_report, explain_response
    from .guard import GuardOutcome, Hypothesis, InvalidAnswer, apply_guard, validate_answer
    from .lm import make_lm, resolve_lm
    from .queries import RunQueries
    from .result import LLMExplanation, TokenUsage, ToolCall
    from .schema import DebugAnswer, FindingBrief, LLMIssue, LLMRecommendation

_LAZY = {
    "add_llm_options": "cli", "check_llm_args": "cli", "handle_llm": "cli",
    "Evidence": "evidence",
    "attach_explanation": "explain", "explain_evidence": "explain", "explain_report": "explain",
    "explain_response": "explain",
    "GuardOutcome": "guard", "Hypothesis": "guard", "InvalidAnswer": "guard", "apply_guard": "guard",
    "validate_answer": "guard",
    "make_lm": "lm", "resolve_lm": "lm",
    "RunQueries": "queries",
    "LLMExplanation": "result", "TokenUsage": "result", "ToolCall": "result",
    "DebugAnswer": "schema", "FindingBrief": "schema", "LLMIssue": "schema", "LLMRecommendation": "schema",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modeldebug.llm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
