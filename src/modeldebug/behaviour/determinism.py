"""Determinism: the same prompt N times at temperature 0 with a fixed seed must give the same answer.

Per prompt we measure the exact-match rate (outputs equal to the most common one), the number of
distinct outputs and the mean normalised edit distance to the most common output; and, because the
prompts are facts, whether the answers are right. That separates "deterministic but wrong" (the
model learned or loaded something wrong) from "random and wrong" (noise on top: dropout left on,
sampling that ignores the temperature).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..rules.base import Recommendation
from .attempts import Attempt, BehaviourConfig, ProbeResult, call
from .codes import finding
from .datasets import Fact
from .model import Model
from .scoring import match
from .stats import normalized_edit_distance
from .weights import WeightCheck

__all__ = ["probe_determinism", "sample_facts"]


def sample_facts(facts: list[Fact], n: int) -> list[Fact]:
    """`n` facts spread over the capabilities (round-robin), in a stable order."""
    groups: dict[str, list[Fact]] = {}
    for f in facts:
        groups.setdefault(f.capability, []).append(f)
    out: list[Fact] = []
    i = 0
    while len(out) < min(n, len(facts)):
        for g in groups.values():
            if i < len(g) and len(out) < n:
                out.append(g[i])
        i += 1
    return out


def _classify(outputs: list[str], answers: tuple[str, ...], scoring: str = "lenient") -> dict[str, Any]:
    counts = Counter(outputs)
    mode, mode_n = counts.most_common(1)[0]
    right = [match(o, answers, scoring) for o in outputs]
    deterministic = len(counts) == 1
    majority_right = sum(right) * 2 > len(right)
    kind = ("deterministic" if deterministic else "random") + ("_right" if majority_right else "_wrong")
    return {"exact_match_rate": round(mode_n / len(outputs), 4), "distinct": len(counts),
            "edit_distance": round(sum(normalized_edit_distance(o, mode) for o in outputs) / len(outputs), 4),
            "right_rate": round(sum(right) / len(right), 4), "class": kind}


def probe_determinism(model: Model, facts: list[Fact], config: BehaviourConfig,
                      weights: WeightCheck | None = None) -> ProbeResult:
    """Ask each sampled fact `config.repeats` times with the same seed and temperature 0."""
    res = ProbeResult("determinism")
    for fact in sample_facts(facts, config.determinism_prompts):
        a = Attempt("determinism", fact.id, fact.prompt, group="determinism", tags={"capability": fact.capability})
        for _ in range(config.repeats):
            call(model, a, config)
        if len(a.outputs) >= 2:
            a.scores = _classify(a.outputs, fact.answers, config.scoring)
            a.passed = a.scores["distinct"] == 1
        res.attempts.append(a)
    scored = [a for a in res.attempts if a.passed is not None]
    classes = Counter(a.scores["class"] for a in scored)
    unstable = [a for a in scored if not a.passed]
    res.summary = {"prompts": len(scored), "repeats": config.repeats, "classes": dict(classes),
                   "exact_match_rate": round(sum(a.scores["exact_match_rate"] for a in scored) / len(scored), 4)
                   if scored else None,
                   "accepts": sorted(model.accepts)}
    if not unstable:
        return res
    asked = [o for o in ("temperature", "seed") if o in model.accepts]
    dropout = weights.active_dropout if weights is not None and weights.training_mode else []
    cause = []
    if dropout:
        cause.append(f"the model is in training mode with {len(dropout)} active Dropout layer(s) "
                     f"({', '.join(dropout[:3])}): every call drops different units")
    if asked:
        cause.append(f"it accepted {' and '.join(asked)} (we passed temperature={config.temperature:g}, "
                     f"seed={config.seed}) and still varied, so it ignores them or adds other noise")
    else:
        cause.append("it takes neither temperature nor seed, so we could not ask for greedy decoding")
    wrong = classes.get("random_wrong", 0)
    det_wrong = classes.get("deterministic_wrong", 0)
    recs = []
    if dropout:
        recs.append(Recommendation("fix", "Switch the model to evaluation mode before generating.", "model.eval()"))
    recs.append(Recommendation("fix", "Decode greedily at temperature 0 and seed any sampling.",
                               "out = model.generate(**inputs, do_sample=False)  # or torch.manual_seed(seed) first"))
    res.findings.append(finding(
        "BEH010", severity="high" if dropout or asked else "medium", confidence=0.95, location=model.name,
        title=f"{len(unstable)} of {len(scored)} prompts gave different answers over {config.repeats} identical calls",
        description=(f"Mean exact-match rate {res.summary['exact_match_rate']:.0%}. Likely cause: {'; '.join(cause)}. "
                     f"Of the prompts, {wrong} are random and wrong, {det_wrong} deterministic but wrong, "
                     f"{classes.get('random_right', 0)} random but mostly right."),
        evidence={**res.summary, "active_dropout": dropout,
                  "prompts_detail": [{"prompt": a.prompt, **a.scores, "outputs": sorted(set(a.outputs))[:5]}
                                     for a in unstable[:6]]},
        recommendations=recs))
    return res
