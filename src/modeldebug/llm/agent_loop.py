"""The tool loop: `dspy.ReAct` over `DebugAnalysis`, with our tools and read-only run queries.

The model calls tools by name with string arguments only: `layer_analyzer()` runs the real
LayerAnalyzer on the request's model (on a copy, under `ModelGuard`), `series_summary(entity="1",
stat="dead_frac")` reads the run record. It sees what the tools print (statistics, module names,
findings), never tensors or data. Every call is timed and logged as a `ToolCall`; a failing tool
answers with its error instead of stopping the loop; once the analysis has timed out, tools
answer "cancelled" without running. Importing this module imports DSPy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dspy

from .queries import RunQueries
from .result import ToolCall
from .signatures import DebugAnalysis

__all__ = ["DebugAnalysisModule", "ToolSpec", "build_tools", "tool_specs"]

_MAX_OBSERVATION = 4000


@dataclass
class ToolSpec:
    """A tool the model may call: name, what it does, its string parameters (name -> (help, default))."""

    name: str
    description: str
    fn: Callable[..., str]
    params: dict[str, tuple[str, str | None]]


def _query_specs(q: RunQueries, has_record: bool) -> list[ToolSpec]:
    specs = [
        ToolSpec("list_findings", "List the rule findings with their ids, severity and location.", q.list_findings, {}),
        ToolSpec("finding_details", "Show one rule finding in full: description, evidence numbers, symptoms.",
                 q.finding_details, {"finding_id": ("the finding id, e.g. F1", None)}),
    ]
    if has_record:
        specs += [
            ToolSpec("loss_curve", "Summarise the training loss, learning rate and total gradient norm over the run.",
                     q.loss_curve, {}),
            ToolSpec("list_entities", "List the recorded modules, parameters, inputs and losses by name.",
                     q.list_entities, {"kind": ("module, param, input or loss; empty for all", "")}),
            ToolSpec("series_summary", "Summarise one statistic of one entity over the steps (first, last, min, max, "
                     "non-finite steps). Module stats: mean, std, min, max, zero_frac, dead_frac, nonfinite, "
                     "saturated_frac; param stats: grad_norm, param_norm, update_ratio; entity 'run' for per-step "
                     "columns: loss, lr, grad_norm, t_step, rss_mb, clip_norm.",
                     q.series_summary, {"entity": ("module or parameter name, or 'run'", None),
                                        "stat": ("the statistic's name", None)}),
            ToolSpec("events", "List the run's events: exception, nonfinite, optimizer, data_overlap, ...",
                     q.events, {"kind": ("one event kind; empty for all", "")}),
        ]
    return specs


def _workload_specs(work: Any, cancel: threading.Event | None = None) -> list[ToolSpec]:
    """One no-argument tool per agent tool, bound to the request's workload; each runs once, then answers from memory.
    A tool still running when the loop is `cancel`led (out of time: the caller has its model back) leaves the
    model alone at its end: the guard's snapshot is not put back over what the user did since."""
    from ..agent.guard import ModelGuard
    from ..agent.tools import TOOLS

    specs = []
    for name, cls in TOOLS.items():
        memo: dict[str, str] = {}

        def run(_name: str = name, _cls: Any = cls, _memo: dict[str, str] = memo) -> str:
            if "text" not in _memo:
                with ModelGuard(work.model, live=None if cancel is None else lambda: not cancel.is_set()):
                    _memo["text"] = _cls(work.options).timed(work).to_text()
            return _memo["text"]

        specs.append(ToolSpec(name, f"Run the {name} tool on the model and one batch: {cls.description}", run, {}))
    return specs


def tool_specs(queries: RunQueries | None = None, work: Any = None,
               cancel: threading.Event | None = None) -> list[ToolSpec]:
    """The tools for one analysis: run queries (when there is a run), and the agent's tools (when there is a model)."""
    specs: list[ToolSpec] = []
    if queries is not None:
        specs += _query_specs(queries, queries.record is not None)
    if work is not None:
        specs += _workload_specs(work, cancel)
    return specs


def _wrap(spec: ToolSpec, calls: list[ToolCall], cancel: threading.Event) -> dspy.Tool:
    def call(**kwargs: Any) -> str:
        if cancel.is_set():
            return "cancelled: the analysis ran out of time"
        t0 = time.perf_counter()
        args = {k: v for k, v in kwargs.items()}
        try:
            unknown = sorted(set(args) - set(spec.params))
            if unknown:
                raise TypeError(f"unexpected argument(s) {', '.join(unknown)}; "
                                f"{spec.name} takes {', '.join(spec.params) or 'no arguments'}")
            missing = [p for p, (_, default) in spec.params.items() if default is None and p not in args]
            if missing:
                raise TypeError(f"missing argument(s) {', '.join(missing)}")
            out, ok = str(spec.fn(**{k: str(v) for k, v in args.items()})), True
        except Exception as exc:  # noqa: BLE001 - the model reads the error and may try again
            out, ok = f"error: {type(exc).__name__}: {exc}", False
        calls.append(ToolCall(spec.name, args, round(time.perf_counter() - t0, 4), ok,
                              (out.splitlines() or [""])[0][:160]))
        return out if len(out) <= _MAX_OBSERVATION else out[:_MAX_OBSERVATION] + "\n... (cut)"

    args = {p: {"type": "string", "description": desc, **({} if default is None else {"default": default})}
            for p, (desc, default) in spec.params.items()}
    return dspy.Tool(call, name=spec.name, desc=spec.description, args=args, arg_types={p: str for p in spec.params})


def build_tools(specs: list[ToolSpec], calls: list[ToolCall], cancel: threading.Event) -> list[dspy.Tool]:
    """`dspy.Tool`s for the loop; every call is appended to `calls`."""
    return [_wrap(s, calls, cancel) for s in specs]


class DebugAnalysisModule(dspy.Module):
    """The seed's DebugAnalysisModule: `DebugAnalysis` with tools (`dspy.ReAct`), or one prediction without.

    A DSPy program like any other: it can be saved, or compiled with a DSPy optimizer.
    """

    def __init__(self, tools: list[dspy.Tool] | None = None, *, max_iters: int = 6) -> None:
        super().__init__()
        self.tools = list(tools or [])
        self.analyze = (dspy.ReAct(DebugAnalysis, tools=self.tools, max_iters=max_iters) if self.tools
                        else dspy.Predict(DebugAnalysis))

    def forward(self, **inputs: Any) -> dspy.Prediction:
        return self.analyze(**inputs)
