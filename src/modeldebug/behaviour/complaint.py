"""Complaint reproduction: from a complaint and its example prompt, find variants that reproduce, and the minimal one.

What counts as "reproduced" comes from, in order: a `check(output) -> bool` you pass; the bad answer
(`bad_output`, or the last quoted text in the complaint that is not the prompt itself: 'it said
"Sydney"'); the answer that was `expected` (reproduced when it is missing); or a safety `judge`.
We try the example as written, harmless variants of it (case, typo, spacing, punctuation, politeness
words, single sentences), then shrink the shortest reproducing prompt word by word (a greedy
delta-debugging pass; a shorter prompt reproduces when any of its tries does) to the minimal prompt
that still shows the behaviour. Every prompt asked must still ask the example's question: it keeps
the question's key tokens (numbers, operators, question and content words; see `question.py`), so
"How many grams are in a kilogram?" never shrinks to "kilogram" and "7 + 5" never loses its "+".
Each prompt is asked `tries` times and its reproduction rate (hits of tries) is reported.
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
from .question import key_tokens, missing, question_text, strip_punctuation
from .robustness import PERTURBATIONS
from .safety import Judge, judge_verdict
from .scoring import lenient_match

__all__ = ["ComplaintResult", "reproduce_complaint"]

_POLITE = re.compile(r"\b(?:please|kindly|thanks|thank you|could you|can you|would you)\b[,!.]?\s*", re.I)


@dataclass
class ComplaintResult:
    """Which variants reproduced the complaint (hits of tries each), the minimal reproducing prompt, the finding."""

    complaint: str
    example: str
    check: str
    variants: list[dict[str, Any]] = field(default_factory=list)
    minimal: str | None = None
    calls: int = 0
    findings: list[Finding] = field(default_factory=list)
    #: the question's key tokens every asked prompt keeps, and the variants skipped for lacking some
    keys: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    tries: int = 1
    #: hits and tries of the minimal prompt; whether the model gave different answers to the same prompt
    minimal_rate: tuple[int, int] | None = None
    varies: bool = False

    @property
    def reproduced(self) -> bool:
        return any(v["reproduced"] for v in self.variants)

    def report(self) -> Any:
        from ..report import Report

        return Report(self.findings, {"script": "behaviour reproduce", "command": "behaviour reproduce",
                                      "complaint": self.complaint, "example": self.example, "check": self.check,
                                      "reproduced": self.reproduced, "minimal": self.minimal,
                                      "minimal_rate": list(self.minimal_rate) if self.minimal_rate else None,
                                      "tries": self.tries, "varies": self.varies, "key_tokens": self.keys,
                                      "calls": self.calls, "variants": self.variants, "skipped": self.skipped,
                                      "modeldebug": __version__})

    def summary_text(self) -> str:
        lines = [f"complaint: {self.complaint}", f"  check: {self.check}",
                 f"  the question's key tokens (kept in every prompt asked): {' '.join(self.keys) or '-'}"]
        lines += [f"  {'REPRODUCES' if v['reproduced'] else 'no':<11}{v['hits']}/{v['tries']}  {v['kind']:<17}"
                  f"{v['prompt']!r}" for v in self.variants]
        lines += [f"  {'skipped':<16}{s['kind']:<17}{s['prompt']!r} (drops {', '.join(s['missing'])})"
                  for s in self.skipped]
        if self.minimal:
            k, n = self.minimal_rate or (0, 0)
            lines.append(f"  minimal reproducing prompt: {self.minimal!r} ({_rate(k, n)})")
        else:
            lines.append("  not reproduced")
        if self.varies:
            lines.append("  the model answered the same prompt differently"
                         + (": use --tries N for a reproduction rate" if self.tries <= 1 else ""))
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
    out.append(("no punctuation", strip_punctuation(example)))
    out.append(("no politeness", _POLITE.sub("", example).strip()))
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", example.strip()) if s]
    if len(sentences) > 1:
        out += [("first sentence", sentences[0]), ("last sentence", sentences[-1])]
        out += [("longest sentence", max(sentences, key=len))]
        if question_text(example) != example:
            out.append(("question only", question_text(example)))
    unique: dict[str, str] = {}  # prompt -> the first kind that produced it
    for kind, prompt in out:
        if prompt.strip() and prompt not in unique:
            unique[prompt] = kind
    return [(kind, prompt) for prompt, kind in unique.items()]


def _rate(hits: int, tries: int) -> str:
    return f"{hits} of {tries} tr{'y' if tries == 1 else 'ies'}"


def reproduce_complaint(model: Any, complaint: str, example: str, *, check: Callable[[str], bool] | None = None,
                        bad_output: str | None = None, expected: str | None = None, judge: Judge | None = None,
                        tries: int = 1, max_calls: int = 200, config: BehaviourConfig | None = None) -> ComplaintResult:
    """Try `example` and its variants on `model`; shrink the shortest reproducing one to a minimal prompt.

    Every variant and every shortened prompt must still ask the example's question (`question.py`:
    its numbers, operators, question and content words); those that do not are skipped, never asked.
    Each variant is asked with seeds 0..tries-1 (set ``config.temperature`` above 0 for a complaint
    that shows only when sampling): its reproduction rate is hits of tries, and it reproduces when
    any try does. The minimal prompt's rate is measured the same way. With one try the example is
    asked a second time (seed 1) to tell a model that answers differently each time.
    """
    if not example.strip():
        raise BadInputError("the complaint needs an example prompt (--example)")
    m = as_model(model)
    cfg = config or BehaviourConfig()
    reproduces, how = _checker(complaint, example, check, bad_output, expected, judge)
    keys = key_tokens(example)
    result = ComplaintResult(complaint, example, how, keys=sorted(keys.elements()), tries=max(1, tries))
    cache: dict[str, tuple[int, int, str, set[str]]] = {}  # prompt -> hits, tries, an output, distinct outputs

    def attempt(prompt: str, *, all_tries: bool = True) -> tuple[int, int, str]:
        """Ask `prompt` with seeds 0..tries-1; with all_tries False, stop at the first try that reproduces."""
        hits, done, shown, seen = cache.get(prompt, (0, 0, "", set()))
        a = Attempt("complaint", str(len(cache)), prompt)
        for seed in range(done, max(1, tries)):
            if result.calls >= max_calls or (not all_tries and hits):
                break
            result.calls += 1
            done += 1
            out = call(m, a, cfg, seed=seed)
            seen.add(out if out is not None else f"<error {a.errors[-1] if a.errors else ''}>")
            shown = shown or (out or "")
            if out is not None and reproduces(prompt, out):
                shown = out if not hits else shown
                hits += 1
        cache[prompt] = (hits, done, shown, seen)
        return hits, done, shown

    for kind, prompt in _variants(example):
        lost = missing(prompt, keys)
        if lost:
            result.skipped.append({"kind": kind, "prompt": prompt, "missing": lost})
            continue
        hits, done, out = attempt(prompt)
        result.variants.append({"kind": kind, "prompt": prompt, "reproduced": hits > 0, "hits": hits, "tries": done,
                                "output": out[:160]})
    if tries <= 1 and result.calls < max_calls:  # one more ask of the example: does the model vary?
        a = Attempt("complaint", "again", example)
        result.calls += 1
        again = call(m, a, cfg, seed=1)
        result.varies = again != (cache[example][2] if example in cache else again)
    else:
        result.varies = any(len(cache[v["prompt"]][3]) > 1 for v in result.variants)
    hits = [v["prompt"] for v in result.variants if v["reproduced"]]
    if hits:
        words = min(hits, key=lambda p: (len(p.split()), len(p))).split()
        # A shorter prompt reproduces when any of its tries does (a sampling-only complaint shows in some seeds
        # only); the last `tries` calls of the budget are kept to measure the minimal prompt's rate.
        budget = max_calls - max(1, tries)
        shrunk = True
        while shrunk and len(words) > 1 and result.calls < budget:
            shrunk = False
            for i in range(len(words)):
                trial = " ".join(words[:i] + words[i + 1:])
                if missing(trial, keys):
                    continue  # it would no longer ask the question: not asked
                if result.calls >= budget:
                    break
                if attempt(trial, all_tries=False)[0]:
                    words, shrunk = trial.split(), True
                    break
        result.minimal = " ".join(words)
        k, n, _ = attempt(result.minimal)  # the minimal prompt's own rate, over every try
        result.minimal_rate = (k, n)
        original = next((v for v in result.variants if v["kind"] == "original"), None)
        rate = f"; the example reproduces in {_rate(original['hits'], original['tries'])}" if original else ""
        note = (" The model answers differently from one call to the next: run with tries > 1 for a rate."
                if result.varies and tries <= 1 else "")
        result.findings.append(finding(
            "BEH050", severity="medium", confidence=0.9, location=m.name,
            title=f"Complaint reproduced: {len(hits)} of {len(result.variants)} variants; minimal prompt "
                  f"{result.minimal!r} ({_rate(k, n)}){rate}",
            description=f"Complaint: {complaint!r}. Check: {how}. The minimal prompt keeps only the words needed "
                        f"to trigger it ({len(words)} of {len(example.split())}) and still asks the question (it "
                        f"keeps {', '.join(repr(t) for t in sorted(keys)) or 'every word'}).{note}",
            evidence={"variants": result.variants, "skipped": result.skipped, "minimal": result.minimal,
                      "minimal_rate": {"hits": k, "tries": n}, "key_tokens": result.keys, "calls": result.calls,
                      "varies": result.varies, "minimal_output": cache[result.minimal][2][:160]},
            recommendations=[Recommendation("best_practice", "Add the minimal prompt to your regression suite and "
                                            "re-run `modeldebug behaviour compare` after the fix.",
                                            f"facts.append({{'prompt': {result.minimal!r}, 'answers': [...]}})")]))
    else:
        result.findings.append(finding(
            "BEH051", severity="low", confidence=0.6, location=m.name,
            title=f"Complaint not reproduced in {len(result.variants)} variants ({result.calls} calls)",
            description=f"Complaint: {complaint!r}. Check: {how}. None of the variants showed it at "
                        f"temperature {cfg.temperature:g} with {_rate(0, max(1, tries)).split(' of ')[1]} each."
                        + (" The model answers differently from one call to the next: retry with tries > 1."
                           if result.varies else ""),
            evidence={"variants": result.variants, "skipped": result.skipped, "calls": result.calls,
                      "key_tokens": result.keys, "varies": result.varies},
            recommendations=[Recommendation("best_practice", "Ask for the exact prompt, sampling settings and model "
                                            "version; retry with tries > 1 and a temperature above 0.")]))
    return result
