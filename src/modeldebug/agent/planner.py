"""How the user's words steer the agent: which tools run first, which findings rank first.

Every tool still runs; the complaint only orders them and breaks ties between findings of the same
severity, so a "training is slow" request sees the profiler's findings before a minor init note,
while a crash or a high-severity root cause still comes first whatever the words.
"""

from __future__ import annotations

import re

from ..rules.base import SEVERITY_ORDER, Finding

__all__ = ["Plan", "plan"]

#: complaint pattern -> (tools first, finding categories it is about)
_TOPICS: list[tuple[re.Pattern[str], tuple[str, ...], tuple[str, ...]]] = [
    (re.compile(r"\b(nan|inf|infinite|non-?finite|diverg|explod|blow)", re.I),
     ("gradient_debugger", "layer_analyzer"), ("numerics", "gradient", "loss", "optimizer")),
    (re.compile(r"(converg|not (learn|train|improv|decreas)|stuck|plateau|flat|accuracy|loss)", re.I),
     ("gradient_debugger", "layer_analyzer"), ("loss", "gradient", "activation", "optimizer", "data", "model")),
    (re.compile(r"\b(slow|speed|throughput|fast|latency|time|gpu util)", re.I),
     ("performance_profiler",), ("performance",)),
    (re.compile(r"(memory|oom|out of memory|ram|vram)", re.I), ("memory_tracker",), ("memory",)),
    (re.compile(r"(error|crash|exception|fails?|traceback|raise)", re.I), ("error_diagnoser",), ("runtime",)),
    (re.compile(r"(overfit|generali[sz]|validation)", re.I), ("layer_analyzer",), ("loss", "data")),
]

DEFAULT_TOOLS = ("error_diagnoser", "gradient_debugger", "layer_analyzer", "memory_tracker", "performance_profiler")


class Plan:
    """The order tools run in and the categories the complaint is about."""

    def __init__(self, tools: list[str], categories: list[str]) -> None:
        self.tools = tools
        self.categories = categories

    def relevance(self, f: Finding) -> int:
        """Higher for findings in the categories the complaint names (earlier ones weigh more)."""
        return len(self.categories) - self.categories.index(f.category) if f.category in self.categories else 0

    def order(self, ranked: list[Finding]) -> list[Finding]:
        """Stable: severity first (root causes already folded), then relevance to the complaint."""
        pos = {id(f): i for i, f in enumerate(ranked)}
        return sorted(ranked, key=lambda f: (-SEVERITY_ORDER[f.severity], -self.relevance(f), pos[id(f)]))


def plan(issue: str) -> Plan:
    tools: list[str] = ["error_diagnoser"]
    categories: list[str] = []
    for pattern, first, cats in _TOPICS:
        if pattern.search(issue or ""):
            tools += [t for t in first if t not in tools]
            categories += [c for c in cats if c not in categories]
    tools += [t for t in DEFAULT_TOOLS if t not in tools]
    return Plan(tools, categories)
