"""`LLMExplanation`: what reasoning with a language model added to a report, and what it cost.

Always complete, also when the model failed: then `fallback_reason` says why in one line,
`findings` are the rules' own, and nothing else is filled in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..rules.base import Finding, Recommendation
from .guard import Hypothesis

__all__ = ["LLMExplanation", "TokenUsage", "ToolCall"]


@dataclass
class TokenUsage:
    """Tokens the model read and wrote, as its server reported them, and the number of calls."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    calls: int = 0


@dataclass
class ToolCall:
    """One tool the model called in the loop: name, arguments, time, and the first line it got back."""

    name: str
    args: dict[str, Any]
    seconds: float
    ok: bool
    summary: str = ""

    def to_text(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.name}({args}) {self.seconds:.2f} s{'' if self.ok else ' FAILED'}: {self.summary}"


@dataclass
class LLMExplanation:
    """The explanation of one report or agent response.

    `findings` hold every rule finding (copies; order changed only where the evidence ranks findings
    equally); `hypotheses` and `recommendations` are the model's own, never verified or run.
    """

    model: str
    question: str | None
    findings: list[Finding]
    root_cause: str = ""
    answer: str = ""
    hypotheses: list[Hypothesis] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)
    #: what the guard overrode or noticed, one sentence each
    notes: list[str] = field(default_factory=list)
    #: finding ids (F1.. = the rules' order) in the merged order; those the model named, in its order
    order: list[str] = field(default_factory=list)
    llm_order: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tokens: TokenUsage = field(default_factory=TokenUsage)
    seconds: float = 0.0
    #: why the model's answer was not used (None when it was)
    fallback_reason: str | None = None
    #: the model's code that was not shown because it touches files, processes or the network:
    #: {"where", "reason"} each (the code itself is not kept)
    withheld: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.fallback_reason is None

    def fallback_line(self) -> str:
        """The one line shown when the model's answer is not used."""
        return f"modeldebug: LLM explanation unavailable ({self.fallback_reason}); the rule report stands."

    def cost_text(self) -> str:
        t = self.tokens
        n = len(self.tool_calls)
        tools = f", {n} tool call{'s' if n != 1 else ''}" if n else ""
        return (f"{t.calls} LLM call{'s' if t.calls != 1 else ''}, {t.total_tokens} tokens ({t.prompt_tokens} in, {t.completion_tokens} out)"
                f"{tools}, {self.seconds:.1f} s")

    def to_text(self) -> str:
        """Plain text for the terminal; one line when the model's answer was not used."""
        if not self.ok:
            return self.fallback_line()
        lines = [f"LLM explanation ({self.model}; {self.cost_text()})"]
        if self.question:
            lines += _block("question: ", self.question)
        if self.answer:
            lines += _block("answer: ", self.answer)
        if self.root_cause:
            lines += _block("root cause: ", self.root_cause)
        for fid, f in zip(self.order, self.findings):
            note = f.evidence.get("llm_note")
            if note:
                lines += _block(f"  {fid} {f.code} {f.kind}{f' at {f.location}' if f.location else ''}: ", note)
        if self.order != sorted(self.order, key=lambda i: int(i[1:])):
            lines.append("order (reordered only where the evidence ranks findings equally): " + ", ".join(self.order))
        if self.hypotheses:
            lines.append("hypotheses of the LLM (no rule found these; check before acting):")
            for h in self.hypotheses:
                lines += _block("  - ", h.to_text())
        if self.recommendations:
            lines.append("suggestions of the LLM (not verified; nothing was run):")
            for r in self.recommendations:
                lines += _block(f"  - {r.type}: ", r.description)
                if r.implementation:
                    lines += [f"      {ln}" for ln in r.implementation.splitlines()]
        if self.notes:
            lines.append("guard:")
            for n in self.notes:
                lines += _block("  - ", n)
        if self.tool_calls:
            lines.append("tools the LLM used:")
            lines += [f"  - {c.to_text()}" for c in self.tool_calls]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        from ..jsonsafe import json_safe

        return json_safe({
            "model": self.model, "question": self.question, "ok": self.ok, "fallback_reason": self.fallback_reason,
            "root_cause": self.root_cause, "answer": self.answer, "order": self.order, "llm_order": self.llm_order,
            "findings": [f.to_dict() for f in self.findings],
            "hypotheses": [h.to_dict() for h in self.hypotheses],
            "recommendations": [asdict(r) for r in self.recommendations],
            "notes": self.notes, "tool_calls": [asdict(c) for c in self.tool_calls],
            "tokens": asdict(self.tokens), "seconds": self.seconds, "withheld": self.withheld,
        })


def _block(head: str, text: str) -> list[str]:
    """`head` and the model's `text`; its further lines indented under it, so no line of the model's
    starts where modeldebug's own output does (a "modeldebug: No problems found." of its own)."""
    first, *rest = str(text).splitlines() or [""]
    return [head + first] + ["      " + ln for ln in rest]
