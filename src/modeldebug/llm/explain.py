"""Explaining a report with a language model: never worse than the rules, never in the way.

```python
from modeldebug.llm import explain_report, make_lm
explanation = explain_report(report, make_lm("ollama_chat/llama3.2"), question="why did it diverge?")
print(explanation.to_text())
```
The model gets the findings and statistics (`Evidence`), and with a question or a model to look
at, tools (`agent_loop`). Its answer is validated and merged by the guard. Whatever goes wrong
(no server, an error, a malformed or empty answer, no answer within `timeout` seconds) the result
is the rules' findings and a `fallback_reason`. A malformed model string or a missing `dspy`
raise at once (`BadInputError`, `MissingDependencyError`): those are the caller's to fix.
A model that has not answered after `notice_after` seconds (5 by default; None: never) gets one
line on `notice` (stderr by default), "modeldebug: waiting for MODEL (up to N s) ...", so a slow
local model is not mistaken for a hang.
"""

from __future__ import annotations

import copy
import sys
import threading
import time
from typing import Any, TextIO

from .evidence import Evidence
from .guard import InvalidAnswer, apply_guard, clean_text, validate_answer
from .lm import model_name, resolve_lm
from .queries import RunQueries
from .result import LLMExplanation, TokenUsage, ToolCall

__all__ = ["DEFAULT_NOTICE_AFTER", "DEFAULT_TIMEOUT", "attach_explanation", "explain_evidence", "explain_report",
           "explain_response"]

#: seconds for the whole analysis (all model calls and tools); a local model on a CPU is slow
DEFAULT_TIMEOUT = 120.0
#: seconds without an answer before one "waiting for MODEL" line goes to stderr
DEFAULT_NOTICE_AFTER = 5.0


def explain_report(report: Any, lm: Any, question: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                   loop: bool | None = None, max_iters: int = 6, notice_after: float | None = DEFAULT_NOTICE_AFTER,
                   notice: TextIO | None = None) -> LLMExplanation:
    """Explain a rule `Report`; with a question (or `loop=True`) the model may query the stored run."""
    evidence = Evidence.from_report(report)
    return explain_evidence(evidence, lm, question, queries=RunQueries(evidence), timeout=timeout, loop=loop,
                            max_iters=max_iters, notice_after=notice_after, notice=notice)


def explain_response(response: Any, lm: Any, question: str | None = None, *, work: Any = None,
                     timeout: float = DEFAULT_TIMEOUT, loop: bool | None = None, max_iters: int = 6,
                     notice_after: float | None = DEFAULT_NOTICE_AFTER, notice: TextIO | None = None) -> LLMExplanation:
    """Explain an agent `DebuggingResponse`; `work` (the request's `Workload`) lets the model run the tools."""
    question = question if question is not None else (response.issue or None)
    evidence = Evidence.from_response(response, work.model if work is not None else None)
    return explain_evidence(evidence, lm, question, queries=RunQueries(evidence), work=work, timeout=timeout,
                            loop=loop, max_iters=max_iters, notice_after=notice_after, notice=notice)


def attach_explanation(response: Any, lm: Any, question: str | None = None, *, work: Any = None,
                       timeout: float = DEFAULT_TIMEOUT, notice_after: float | None = DEFAULT_NOTICE_AFTER,
                       notice: TextIO | None = None) -> LLMExplanation:
    """`explain_response` stored on `response.explanation` (the agent calls this when given `lm=`)."""
    explanation = explain_response(response, lm, question, work=work, timeout=timeout, notice_after=notice_after,
                                   notice=notice)
    response.explanation = explanation
    return explanation


def _wait(worker: threading.Thread, timeout: float, notice_after: float | None, notice: TextIO | None,
          model: str) -> None:
    """Join `worker` within `timeout`; if it is still silent after `notice_after` seconds, say so once."""
    timeout = min(timeout, threading.TIMEOUT_MAX)  # a longer wait overflows (OverflowError)
    if notice_after is None or not notice_after < timeout:
        worker.join(timeout)
        return
    t0 = time.monotonic()
    worker.join(max(0.0, notice_after))
    if worker.is_alive():
        out = notice if notice is not None else sys.stderr
        out.write(f"modeldebug: waiting for {model} (up to {timeout:g} s) ...\n")
        out.flush()
        worker.join(max(0.0, timeout - (time.monotonic() - t0)))


def _one_line(exc: BaseException) -> str:
    text = clean_text(" ".join(str(exc).split()), 10_000)  # a server's error text may carry escape sequences
    return text if len(text) <= 160 else text[:157] + "..."


def _reason(exc: BaseException) -> str:
    """Why the model's answer is not used, in one line."""
    names = {c.__name__ for c in type(exc).__mro__}
    if isinstance(exc, InvalidAnswer):
        return f"its answer does not fit the schema: {_one_line(exc)}"
    if "AdapterParseError" in names:
        return "its answer was not in the expected format"
    if "LMTransportError" in names or "LMTimeoutError" in names:
        return f"the model server could not be reached: {_one_line(exc)}"
    if "LMError" in names:
        return f"the model call failed: {type(exc).__name__}: {_one_line(exc)}"
    return f"the analysis failed: {type(exc).__name__}: {_one_line(exc)}"


def _tokens(tracker: Any) -> TokenUsage:
    usage = TokenUsage()
    if tracker is None:
        return usage
    for entries in list(tracker.usage_data.values()):
        for e in list(entries):
            usage.calls += 1
            usage.prompt_tokens += int(e.get("prompt_tokens") or 0)
            usage.completion_tokens += int(e.get("completion_tokens") or 0)
            usage.total_tokens += int(e.get("total_tokens") or 0)
    return usage


def explain_evidence(evidence: Evidence, lm: Any, question: str | None = None, *, queries: RunQueries | None = None,
                     work: Any = None, timeout: float = DEFAULT_TIMEOUT, loop: bool | None = None,
                     max_iters: int = 6, notice_after: float | None = DEFAULT_NOTICE_AFTER,
                     notice: TextIO | None = None) -> LLMExplanation:
    """The common path: run the DSPy program in a worker thread, bounded by `timeout`, then guard the answer.

    After `notice_after` seconds without an answer, one "waiting for MODEL" line goes to `notice`
    (stderr when None); `notice_after=None` never prints it.
    """
    lm_obj = resolve_lm(lm)
    result = LLMExplanation(model=model_name(lm_obj), question=question,
                            findings=[copy.deepcopy(f) for f in evidence.findings], order=list(evidence.ids))
    calls: list[ToolCall] = []
    cancel = threading.Event()
    box: dict[str, Any] = {}
    use_loop = loop if loop is not None else bool(question) or work is not None

    def run() -> None:
        try:
            import dspy

            from .agent_loop import DebugAnalysisModule, build_tools, tool_specs

            with dspy.context(lm=lm_obj), dspy.track_usage() as tracker:
                box["tracker"] = tracker
                tools = build_tools(tool_specs(queries, work, cancel), calls, cancel) if use_loop else []
                program = DebugAnalysisModule(tools, max_iters=max_iters)
                box["prediction"] = program(question=question or "", run_summary=evidence.run_summary,
                                            rule_findings=evidence.briefs, debug_metrics=evidence.debug_metrics)
        except BaseException as exc:  # noqa: BLE001 - any failure of the model path becomes the fallback
            box["error"] = exc

    history0 = len(getattr(lm_obj, "history", None) or [])
    t0 = time.perf_counter()
    worker = threading.Thread(target=run, name="modeldebug-llm", daemon=True)
    worker.start()
    _wait(worker, timeout, notice_after, notice, result.model)
    result.seconds = round(time.perf_counter() - t0, 3)
    result.tokens = _tokens(box.get("tracker"))
    # a server that reports no usage still made calls: count them from the LM's history
    result.tokens.calls = max(result.tokens.calls, len(getattr(lm_obj, "history", None) or []) - history0)
    result.tool_calls = list(calls)
    if worker.is_alive():
        cancel.set()  # the thread cannot be stopped; its remaining tool calls return at once
        result.fallback_reason = f"no answer within {timeout:g} s (--llm-timeout)"
        return result
    if "error" in box:
        result.fallback_reason = _reason(box["error"])
        return result
    try:
        answer = validate_answer(box.get("prediction"))
    except InvalidAnswer as exc:
        result.fallback_reason = _reason(exc)
        return result
    out = apply_guard(evidence, answer)
    result.findings, result.order, result.llm_order = out.findings, out.order, out.llm_order
    result.root_cause, result.answer = out.root_cause, out.answer
    result.hypotheses, result.recommendations, result.notes = out.hypotheses, out.recommendations, out.notes
    result.withheld = out.withheld
    return result
