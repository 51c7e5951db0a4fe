"""Runs at all: exceptions, empty output, output equal to the prompt, latency."""

from __future__ import annotations

from collections import Counter

from ..rules.base import Recommendation
from .attempts import Attempt, BehaviourConfig, ProbeResult, call
from .codes import finding
from .datasets import Fact
from .degenerate import degenerate_reason
from .model import Model
from .stats import Rate, percentile

__all__ = ["probe_runs"]

_SMOKE = ["Hello", "Complete the sentence: The cat sat on the"]


def _echo(prompt: str, output: str) -> bool:
    out, p = output.strip(), prompt.strip()
    return bool(out) and (out == p or (out.startswith(p) and not out[len(p):].strip()))


def probe_runs(model: Model, facts: list[Fact], config: BehaviourConfig) -> ProbeResult:
    """Ask a few prompts once each; report exceptions, empty answers, echoed prompts and slowness."""
    prompts = _SMOKE + [f.prompt for f in facts[:: max(1, len(facts) // 4)][:4]]
    attempts = []
    for i, prompt in enumerate(prompts):
        a = Attempt("runs", f"smoke-{i}", prompt, group="runs")
        out = call(model, a, config)
        a.scores = {"error": out is None, "empty": out is not None and not out.strip(),
                    "echo": out is not None and _echo(prompt, out),
                    "degenerate": degenerate_reason(out) if out is not None else None}
        a.passed = not any(a.scores.values())
        attempts.append(a)
    n = len(attempts)
    errors = [e for a in attempts for e in a.errors]
    n_err = sum(a.scores["error"] for a in attempts)
    n_empty = sum(a.scores["empty"] for a in attempts)
    n_echo = sum(a.scores["echo"] for a in attempts)
    n_degenerate = sum(bool(a.scores["degenerate"]) for a in attempts)
    lat = [t for a in attempts for t in a.latencies_s]
    p95 = percentile(lat, 95)
    summary = {"calls": n, "errors": Rate(n_err, n).to_dict(), "empty": Rate(n_empty, n).to_dict(),
               "echo": Rate(n_echo, n).to_dict(), "degenerate": Rate(n_degenerate, n).to_dict(), "latency_p50_s": percentile(lat, 50), "latency_p95_s": p95}
    res = ProbeResult("runs", attempts, [], summary)
    loc = model.name
    if n_err:
        types = Counter(e.split(":", 1)[0] for e in errors)
        res.findings.append(finding(
            "BEH001", severity="high", confidence=1.0, location=loc,
            title=f"generate() raised on {n_err} of {n} prompts ({', '.join(f'{t} x{c}' for t, c in types.items())})",
            description=f"The first error: {errors[0]}. Nothing else about the model can be trusted until it answers.",
            evidence={"errors": errors[:5], "types": dict(types), **summary},
            recommendations=[Recommendation("fix", "Call the model by hand with the prompt from the evidence and "
                                            "fix the exception; it must return a str.",
                                            f"print(model.generate({attempts[0].prompt!r}))")]))
    if n_empty:
        res.findings.append(finding(
            "BEH002", severity="high" if n_empty == n - n_err else "medium", confidence=0.95, location=loc,
            title=f"Empty output for {n_empty} of {n} prompts",
            description="The model returned nothing (or only whitespace). Typical causes: an end-of-sequence "
                        "token generated first, max_tokens of 0, special tokens stripped when decoding, or a prompt "
                        "template the model was not trained with.",
            evidence={"prompts": [a.prompt for a in attempts if a.scores["empty"]], **summary},
            recommendations=[Recommendation("fix", "Decode once with skip_special_tokens=False to see what was "
                                            "generated, and check max_tokens and the prompt template.")]))
    if n_echo:
        res.findings.append(finding(
            "BEH003", severity="high" if n_echo == n - n_err else "medium", confidence=0.9, location=loc,
            title=f"Output equals the prompt for {n_echo} of {n} prompts",
            description="The model gives back the prompt and nothing after it: the serving code returns the whole "
                        "sequence instead of the new tokens, or the model generates nothing new.",
            evidence={"prompts": [a.prompt for a in attempts if a.scores["echo"]], **summary},
            recommendations=[Recommendation("fix", "Return only the generated tokens.",
                                            "text = tokenizer.decode(out[0, inputs['input_ids'].shape[1]:])")]))
    if p95 is not None and p95 > config.slow_latency_s:
        res.findings.append(finding(
            "BEH004", severity="medium", confidence=0.8, location=loc,
            title=f"Generation is slow: p95 latency {p95:.1f}s (limit {config.slow_latency_s:g}s)",
            description=f"Over {n} calls with max_tokens={config.max_tokens}, the median latency was "
                        f"{summary['latency_p50_s']:.2f}s and the 95th percentile {p95:.2f}s.",
            evidence=summary,
            recommendations=[Recommendation("optimization", "Cap max_tokens, keep the KV cache on, batch requests, "
                                            "or serve on an accelerator.")]))
    return res
