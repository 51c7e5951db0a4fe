"""Robustness: invariance (typos, case, whitespace must not change a right answer) and directional tests.

Perturbations are deterministic per prompt: the typo position comes from ``random.Random(zlib.crc32
(prompt))``, never ``hash()`` (string hashes change between processes). Invariance is measured on the
facts the model gets right unperturbed; a model that knows nothing has nothing to keep invariant,
and we say so instead of reporting a perfect score.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable

from ..rules.base import Recommendation
from .attempts import Attempt, BehaviourConfig, ProbeResult, call
from .codes import finding
from .datasets import DirectionalPair, Fact
from .determinism import sample_facts
from .model import Model
from .scoring import answer_line, match, normalize
from .stats import Rate

__all__ = ["PERTURBATIONS", "probe_robustness", "typo"]


def typo(prompt: str) -> str:
    """Swap two adjacent inner letters of one word of four letters or more (same prompt, same typo)."""
    rng = random.Random(zlib.crc32(prompt.encode()))
    words = [m for m in re.finditer(r"[A-Za-z]{4,}", prompt)]
    if not words:
        return prompt
    m = rng.choice(words)
    w = m.group(0)
    i = rng.randrange(1, len(w) - 2)
    swapped = w[:i] + w[i + 1] + w[i] + w[i + 2:]
    return prompt[:m.start()] + swapped + prompt[m.end():]


#: Name -> function of the prompt. Each must keep the meaning of the question.
PERTURBATIONS: dict[str, Callable[[str], str]] = {
    "typo": typo,
    "lowercase": str.lower,
    "uppercase": str.upper,
    "whitespace": lambda p: "  " + re.sub(r" ", "  ", p) + " \n",
}


def _answer(out: str | None) -> str:
    return normalize(answer_line(out or ""))


def probe_robustness(model: Model, facts: list[Fact], pairs: list[DirectionalPair], config: BehaviourConfig,
                     known: dict[str, Attempt] | None = None) -> ProbeResult:
    """Invariance over `PERTURBATIONS` and the directional `pairs`.

    `known` maps fact id -> its knowledge attempt, to reuse answers already asked; missing ones are asked.
    """
    res = ProbeResult("robustness")
    known = dict(known or {})
    by_id = {f.id: f for f in facts}

    def original(fact: Fact) -> Attempt:
        if fact.id not in known:
            a = Attempt("knowledge", fact.id, fact.prompt, group=fact.capability)
            out = call(model, a, config)
            a.passed = out is not None and match(out, fact.answers, config.scoring)
            known[fact.id] = a
        return known[fact.id]

    flips: dict[str, list[str]] = {k: [] for k in PERTURBATIONS}
    base_right = 0
    for fact in sample_facts(facts, config.robustness_facts):
        base = original(fact)
        if not base.passed:
            continue
        base_right += 1
        for name, perturb in PERTURBATIONS.items():
            a = Attempt("robustness", f"{fact.id}~{name}", perturb(fact.prompt), group=name,
                        tags={"original": fact.prompt})
            out = call(model, a, config)
            right = out is not None and match(out, fact.answers, config.scoring)
            a.scores = {"right": right, "same_answer": _answer(out) == _answer(base.output)}
            a.passed = right
            if not right:
                flips[name].append(a.prompt)
            res.attempts.append(a)
    invariance = {k: Rate(len(v), base_right).to_dict() for k, v in flips.items()}
    res.summary["invariance_flips"] = invariance if base_right else "not measured: no fact answered right"
    for name, bad in flips.items():
        r = Rate(len(bad), base_right)
        if base_right >= 3 and r.rate > config.invariance_max_flip:
            res.findings.append(finding(
                "BEH030", severity="medium", confidence=0.8, location=model.name,
                title=f"{name} changes the answer: {len(bad)} of {base_right} right answers turn wrong",
                description=f"The prompts keep their meaning under {name}, but the model stops answering them "
                            f"correctly ({r}). It has learned the surface form of the questions, not the questions.",
                evidence={"perturbation": name, **r.to_dict(), "examples": bad[:5]},
                recommendations=[Recommendation("fix", f"Augment the training prompts with {name} variants, or "
                                                "normalise input text before it reaches the model.")]))

    unchanged, wrong, n = [], 0, 0
    for pair in pairs:
        if pair.source not in by_id or pair.target not in by_id:
            continue
        src, dst = original(by_id[pair.source]), original(by_id[pair.target])
        same = bool(_answer(src.output)) and _answer(src.output) == _answer(dst.output)
        right = bool(dst.passed)
        a = Attempt("robustness", f"{pair.source}->{pair.target}", dst.prompt, outputs=[dst.output],
                    group="directional", passed=right and not same,
                    scores={"unchanged": same, "right": right}, tags={"from": src.prompt, "change": pair.change})
        res.attempts.append(a)
        n += 1
        wrong += not right
        if same:
            unchanged.append(f"{src.prompt!r} and {dst.prompt!r} -> {src.output.strip()[:40]!r}")
    res.summary["directional"] = {"pairs": n, "unchanged": Rate(len(unchanged), n).to_dict(), "target_wrong": wrong}
    r = Rate(len(unchanged), n)
    if n >= 3 and r.rate > config.directional_max_unchanged:
        res.findings.append(finding(
            "BEH031", severity="medium", confidence=0.8, location=model.name,
            title=f"Changing the question does not change the answer in {len(unchanged)} of {n} pairs",
            description=f"Pairs of prompts that need different answers got the same one ({r}): the model ignores "
                        "the part of the prompt that changed and answers the template.",
            evidence={**r.to_dict(), "examples": unchanged[:5]},
            recommendations=[Recommendation("fix", "Train on varied instances of each question template; check that "
                                            "prompts are not truncated before the part that differs.")]))
    return res
