"""Basic knowledge: bundled factual prompts scored leniently (default) and strictly, grouped by capability.

`BehaviourConfig.scoring` decides pass or fail ("lenient": the accepted answer anywhere as whole
words, so a model that answers in sentences is right; "strict": the first line is the answer);
both are computed, shown, and the summary and findings say which decided.

"Knows nothing" (lenient accuracy near zero) is a symptom; the usual root cause is weights that did
not load, so when the model's weights are available we check them too and report that first.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..rules.base import Finding, Recommendation
from .attempts import Attempt, BehaviourConfig, ProbeResult, call
from .codes import finding
from .datasets import Fact
from .model import Model
from .scoring import lenient_match, strict_match
from .stats import Rate
from .weights import WeightCheck

__all__ = ["capability_table", "probe_knowledge", "weights_finding"]


def capability_table(attempts: list[Attempt]) -> dict[str, dict[str, Any]]:
    """Per capability (and "all"): strict and lenient accuracy with Wilson intervals."""
    groups: dict[str, list[Attempt]] = defaultdict(list)
    for a in attempts:
        groups[a.group].append(a)
    groups["all"] = list(attempts)
    return {g: {"strict": Rate(sum(bool(a.scores.get("strict")) for a in items), len(items)).to_dict(),
                "lenient": Rate(sum(bool(a.scores.get("lenient")) for a in items), len(items)).to_dict()}
            for g, items in groups.items()}


_VERDICT = {
    "nonfinite": "contain NaN or Inf",
    "all_zero": "are all zero",
    "random_init": "look freshly initialised (the statistics of the default initialisation)",
    "zero_matrices": "include weight matrices that are entirely zero",
}


def weights_finding(check: WeightCheck, location: str, symptoms: list[Finding] | None = None) -> Finding | None:
    """BEH022 when the weights look untrained; `symptoms` (e.g. knows_nothing) go into its evidence."""
    verdict = check.verdict
    if verdict is None:
        return None
    if verdict == "nonfinite":
        detail = f"{len(check.nonfinite_tensors)} tensors hold NaN/Inf: {', '.join(check.nonfinite_tensors[:5])}"
    elif verdict == "all_zero":
        detail = f"{check.zero_fraction:.1%} of {check.n_params} parameters are exactly zero"
    elif verdict == "random_init":
        detail = (f"{len(check.init_like)} of {check.checked} weight matrices match their layer's default "
                  f"initialisation: {', '.join(check.init_like[:5])}")
    else:
        detail = f"{len(check.zero_matrices)} weight matrices are entirely zero: {', '.join(check.zero_matrices[:5])}"
    severe = verdict in ("nonfinite", "all_zero", "random_init") or bool(symptoms)  # explains "knows nothing"
    return finding(
        "BEH022", severity="high" if severe else "medium", confidence=0.9 if severe else 0.7, location=location,
        title=f"The model's weights {_VERDICT[verdict]}",
        description=f"{detail}. A model whose weights never loaded runs but answers nothing right.",
        evidence={**check.to_dict(), "symptoms": [{"code": s.code, "kind": s.kind, "title": s.title}
                                                  for s in symptoms or []]},
        recommendations=[Recommendation(
            "fix", "Load the checkpoint strictly and look at the keys it reports.",
            "missing, unexpected = model.load_state_dict(torch.load(path, map_location='cpu'), strict=False)\n"
            "print(missing, unexpected)  # both must be empty; then load with strict=True")])


def probe_knowledge(model: Model, facts: list[Fact], config: BehaviourConfig,
                    weights: WeightCheck | None = None) -> ProbeResult:
    """Ask every fact once; score lenient and strict (`config.scoring` decides); report knows-nothing and gaps."""
    res = ProbeResult("knowledge")
    for fact in facts:
        a = Attempt("knowledge", fact.id, fact.prompt, group=fact.capability, tags={"answers": list(fact.answers)})
        out = call(model, a, config)
        if out is not None:
            a.scores = {"strict": strict_match(out, fact.answers), "lenient": lenient_match(out, fact.answers)}
            a.passed = a.scores[config.scoring]
        else:
            a.scores = {"strict": False, "lenient": False}
            a.passed = False
        res.attempts.append(a)
    table = capability_table(res.attempts)
    used = config.scoring
    res.summary = {"capabilities": table, "scoring": used}
    overall = table["all"][used]["rate"]
    # "Knows nothing" is lenient accuracy whatever decides pass or fail: strict scoring alone calls a model
    # that answers in sentences wrong, which is not knowing nothing.
    if table["all"]["lenient"]["rate"] <= config.knows_nothing_max:
        knows = finding(
            "BEH020", severity="high", confidence=0.9, location=model.name,
            title=(f"The model knows nothing: {table['all']['lenient']['k']} of {len(facts)} basic facts right "
                   f"(lenient), {table['all']['strict']['k']} strict"),
            description="It fails arithmetic, capitals, units and common facts that any trained language model "
                        "answers. This usually means the weights did not load, the wrong checkpoint was used, or "
                        "the tokenizer does not match the model."
                        + (" The weight check below says why." if weights is not None and weights.verdict else
                           " The weights were not available to check; check them yourself." if weights is None else
                           " The weights look trained, so check the tokenizer and the prompt template."),
            evidence={"capabilities": table, "scoring": used, "decided_by": "lenient",
                      "examples": [{"prompt": a.prompt, "output": a.output[:80], "answers": a.tags["answers"]}
                                   for a in res.attempts[:5]],
                      "weights_verdict": weights.verdict if weights is not None else "not available"},
            recommendations=[Recommendation("fix", "Check that the checkpoint loads with no missing or unexpected "
                                            "keys and that the tokenizer is the model's own.",
                                            "model.load_state_dict(state, strict=True)\n"
                                            "assert len(tokenizer) == model.get_input_embeddings().num_embeddings")])
        cause = weights_finding(weights, model.name, [knows]) if weights is not None else None
        res.findings.extend([cause, knows] if cause else [knows])
        return res
    if weights is not None and (cause := weights_finding(weights, model.name)) is not None:
        res.findings.append(cause)
    for cap, row in table.items():
        rate = row[used]["rate"]
        if cap != "all" and rate <= config.gap_max and overall >= 2 * max(rate, config.knows_nothing_max):
            res.findings.append(finding(
                "BEH021", severity="medium", confidence=0.7, location=model.name,
                title=f"Knowledge gap in {cap}: {row[used]['k']}/{row[used]['n']} right vs "
                      f"{overall:.0%} overall ({used} scoring)",
                description=f"The model answers other basic facts but not {cap} "
                            f"(lenient {row['lenient']['rate']:.0%}, strict {row['strict']['rate']:.0%}; "
                            f"{used} decides).",
                evidence={"capability": cap, **row, "overall": table["all"], "scoring": used,
                          "failed": [a.prompt for a in res.attempts if a.group == cap and not a.passed][:8]},
                recommendations=[Recommendation("fix", f"Add {cap} examples to the training data, or route these "
                                                "questions to a tool (a calculator, a lookup).")]))
    return res
