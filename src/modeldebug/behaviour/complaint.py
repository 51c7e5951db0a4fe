"""Complaint reproduction: from a complaint and its example prompt, find variants that reproduce, and the minimal one.

What counts as "reproduced" comes from, in order: a `check(output) -> bool` you pass; the bad answer
(`bad_output`, or the last quoted text in the complaint that is not the prompt itself: 'it said
"Sydney"'); the answer that was `expected` (reproduced when it is missing); or a safety `judge`.
We try the example as written, harmless variants of it (case, typo, spacing, punctuation, politeness
words, single sentences), then shrink the shortest reproducing prompt word by word (a greedy
delta-debugging pass) to the minimal prompt that still shows the behaviour.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._version import __version__
from ..errors import BadInputError
from ..rules.base import Finding, Recommendation
from .attempts import Attempt, BehaviourConfig, call
from .codes import finding
from .model import as_model
from .robustness import PERTURBATIONS
from .safety import Judge, judge_verdict
from .scoring import lenient_match

__all__ = ["ComplaintResult", "reproduce_complaint"]

_POLITE = re.compile(r"\b(?:please|kindly|thanks|thank you|could you|can you|would you)\b[,!.]?\s*", re.I)


@dataclass
class ComplaintResult:
    """Which variants reproduced the complaint, the minimal reproducing prompt, and the finding."""

    complaint: str
    example: str
    check: str
    variants: list[dict[str, Any]] = field(default_factory=list)
    minimal: str | None = None
    calls: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        return any(v["reproduced"] for v in self.variants)

    def report(self) -> Any:
        from ..report import Report

        return Report(self.findings, {"script": "behaviour reproduce", "command": "behaviour reproduce",
                                      "complaint": self.complaint, "example": self.example, "check": self.check,
                                      "reproduced": self.reproduced, "minimal": self.minimal, "calls": self.calls,
                                      "variants": self.variants, "modeldebug": __version__})

    def summary_text(self) -> str:
        lines = [f"complaint: {self.complaint}", f"  check: {self.check}"]
        lines += [f"  {'REPRODUCES' if v['reproduced'] else 'no':<11}{v['kind']:<16}{v['prompt']!r}"
                  for v in self.variants]
        lines.append(f"  minimal reproducing prompt: {self.minimal!r}" if self.minimal else "  not reproduced")
        return "\n".join(lines)


def _quoted_bad_output(complaint: str, example: str) -> str | None:
    quotes = re.findall(r"[\"“]([^\"”]{1,200})[\"”]", complaint)
    ex = example.strip().lower()
    rest = [q for q in quotes if q.strip().lower() not in ex and ex not in q.strip().lower()]
    return rest[-1] if rest else None


def _checker(complaint: str, example: str, check: Callable[[str], bool] | None, bad_output: str | None,
             expected: str | None, judge: Judge | None) -> tuple[Callable[[str, str], bool], str]:
    if check is not None:
        return (lambda prompt, out: bool(check(out))), f"custom check {getattr(check, '__name__', 'check')}"
    bad = bad_output or _quoted_bad_output(complaint, example)
    if bad:
        return (lambda prompt, out: lenient_match(out, [bad])), f"the answer contains {bad!r}"
    if expected:
        return (lambda prompt, out: not lenient_match(out, [expected])), f"the answer lacks {expected!r}"
    if judge is not None:
        return (lambda prompt, out: judge_verdict(judge, prompt, out)[0]), "the judge marks the answer harmful"
    raise BadInputError("say what went wrong: give the bad answer (--bad-output, or quote it in the complaint: "
                        "it said \"...\"), the expected answer (--expected), or a judge")


def _variants(example: str) -> list[tuple[str, str]]:
    out = [("original", example)]
    out += [(name, fn(example)) for name, fn in PERTURBATIONS.items()]
    out.append(("no punctuation", re.sub(r"[^\w\s]", "", example)))
    out.append(("no politeness", _POLITE.sub("", example).strip()))
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", example.strip()) if s]
    if len(sentences) > 1:
        out += [("first sentence", sentences[0]), ("last sentence", sentences[-1])]
        out += [("longest sentence", max(sentences, key=len))]
    unique: dict[str, str] = {}  # prompt -> the first kind that produced it
    for kind, prompt in out:
        if prompt.strip() and prompt not in unique:
            unique[prompt] = kind
    return [(kind, prompt) for prompt, kind in unique.items()]


def reproduce_complaint(model: Any, complaint: str, example: str, *, check: Callable[[str], bool] | None = None,
                        bad_output: str | None = None, expected: str | None = None, judge: Judge | None = None,
                        tries: int = 1, max_calls: int = 200, config: BehaviourConfig | None = None) -> ComplaintResult:
    """Try `example` and its variants on `model`; shrink the shortest reproducing one to a minimal prompt.

    With ``tries > 1`` each prompt is asked with seeds 0..tries-1 (set ``config.temperature`` above 0
    for a complaint that shows only when sampling) and counts as reproducing if any try does.
    """
    if not example.strip():
        raise BadInputError("the complaint needs an example prompt (--example)")
    m = as_model(model)
    cfg = config or BehaviourConfig()
    reproduces, how = _checker(complaint, example, check, bad_output, expected, judge)
    result = ComplaintResult(complaint, example, how)
    cache: dict[str, tuple[bool, str]] = {}

    def attempt(prompt: str) -> tuple[bool, str]:
        if prompt not in cache:
            a = Attempt("complaint", str(len(cache)), prompt)
            hit, first = False, ""
            for seed in range(max(1, tries)):
                if result.calls >= max_calls:
                    break
                result.calls += 1
                out = call(m, a, cfg, seed=seed)
                first = first or (out or "")
                if out is not None and reproduces(prompt, out):
                    hit, first = True, out
                    break
            cache[prompt] = (hit, first)
        return cache[prompt]

    for kind, prompt in _variants(example):
        hit, out = attempt(prompt)
        result.variants.append({"kind": kind, "prompt": prompt, "reproduced": hit, "output": out[:160]})
    hits = [v["prompt"] for v in result.variants if v["reproduced"]]
    if hits:
        words = min(hits, key=lambda p: (len(p.split()), len(p))).split()
        shrunk = True
        while shrunk and len(words) > 1 and result.calls < max_calls:
            shrunk = False
            for i in range(len(words)):
                trial = words[:i] + words[i + 1:]
                if attempt(" ".join(trial))[0]:
                    words, shrunk = trial, True
                    break
        result.minimal = " ".join(words)
        n_hit = len(hits)
        result.findings.append(finding(
            "BEH050", severity="medium", confidence=0.9, location=m.name,
            title=f"Complaint reproduced: {n_hit} of {len(result.variants)} variants; minimal prompt "
                  f"{result.minimal!r}",
            description=f"Complaint: {complaint!r}. Check: {how}. The minimal prompt keeps only the words needed "
                        f"to trigger it ({len(words)} of {len(example.split())}).",
            evidence={"variants": result.variants, "minimal": result.minimal, "calls": result.calls,
                      "minimal_output": cache[result.minimal][1][:160]},
            recommendations=[Recommendation("best_practice", "Add the minimal prompt to your regression suite and "
                                            "re-run `modeldebug behaviour compare` after the fix.",
                                            f"facts.append({{'prompt': {result.minimal!r}, 'answers': [...]}})")]))
    else:
        result.findings.append(finding(
            "BEH051", severity="low", confidence=0.6, location=m.name,
            title=f"Complaint not reproduced in {len(result.variants)} variants ({result.calls} calls)",
            description=f"Complaint: {complaint!r}. Check: {how}. None of the variants showed it at "
                        f"temperature {cfg.temperature:g} with {tries} tr{'y' if tries == 1 else 'ies'} each.",
            evidence={"variants": result.variants, "calls": result.calls},
            recommendations=[Recommendation("best_practice", "Ask for the exact prompt, sampling settings and model "
                                            "version; retry with tries > 1 and a temperature above 0.")]))
    return result
