"""Ranking: root causes first, their symptoms folded into them as evidence.

The logic, in order:
1. Each catalogue spec declares the kinds it `explains` (a dead ReLU layer explains vanishing gradients and a
   flat loss; exploding gradients explain a diverging loss and the NaN that follows).
2. A finding is a symptom when another finding in the same run explains its kind (and is not itself
   explained by it) and did not begin clearly later: detectors see a cause at different delays (the
   loss turns before the gradient norm crosses its threshold), so a cause may start up to
   `max(3, 5% of the run)` steps after its symptom, not more. It is removed
   from the list and attached to its cause under `evidence["symptoms"]`, its title and step kept.
   The cause's severity is raised to its worst symptom's.
   A finding whose detection rests on an effect of another kind lists that kind in
   `evidence["rests_on"]` (a class imbalance found at a mild skew only because the model collapsed
   onto the class prior rests on `input_ignored`): a cause that explains the effect explains it too,
   since without the effect the finding would not be there (dead units that cut the input off leave
   the prior as all the model can learn). A loss that "diverged" only by turning NaN (it never
   rose while finite) rests on `nonfinite`, and the non-finite finding itself explains it: NUM001
   (a NaN fed in the input batch, or made by a log of 0) is its root cause and comes first. A
   loss that climbed while finite and then went NaN does not rest on it: there the NaN is the
   symptom (of LRN001, or listed after LOS001 when nothing explains both).
3. What remains is sorted by severity, then by the step it began (a cause starts no later than
   what it causes), then by how many symptoms it explains, then confidence.
Runtime crashes are never folded: they are what the user saw last, and they sort by severity.
"""

from __future__ import annotations

from ..catalogue import CATALOGUE, SEVERITY_ORDER, Finding

__all__ = ["rank"]


def _explains(cause: Finding, symptom: Finding, slack: int = 3) -> bool:
    spec = CATALOGUE[cause.code] if cause.code in CATALOGUE else None
    if spec is None or cause is symptom:
        return False
    if not (_kinds(symptom) & set(spec.explains) or (cause.kind == "nonfinite" and _rests_on_nan(symptom))):
        return False
    return cause.step is None or symptom.step is None or cause.step <= symptom.step + slack


def _kinds(f: Finding) -> set[str]:
    """The finding's kind and the kinds of the effects its detection rests on."""
    rests = f.evidence.get("rests_on") or ()
    kinds = {f.kind, *(str(k) for k in rests if isinstance(rests, (list, tuple)))}
    if _rests_on_nan(f):
        kinds.add("nonfinite")
    return kinds


def _rests_on_nan(f: Finding) -> bool:
    """A loss found diverging only because it ended NaN/Inf: it never climbed while finite."""
    return f.evidence.get("went_nonfinite") is True and not _rose_while_finite(f.evidence)


def _rose_while_finite(ev: dict) -> bool:
    """Did a loss that ended non-finite first climb while finite (LOS001's own test on its finite values:
    `loss_divergence` x its best and back above half-way to its start)? Unknown counts as yes."""
    try:
        start, best, final = (float(ev[k]) for k in ("start_loss", "best_loss", "final_loss"))
    except (KeyError, TypeError, ValueError):
        return True
    factor = float(CATALOGUE.option("loss_divergence").default)
    floor = abs(best) + 1e-12
    return final > best + (factor - 1) * floor and final > best + 0.5 * max(start - best, 0.0)


def rank(findings: list[Finding], n_steps: int = 0) -> list[Finding]:
    """Fold symptoms into their causes and sort: most important first."""
    slack = max(3, n_steps // 20)
    roots: list[Finding] = []
    folded: dict[int, Finding] = {}
    for f in findings:
        causes = [c for c in findings if _explains(c, f, slack) and not _explains(f, c, slack)]
        if causes:
            folded[id(f)] = max(causes, key=lambda c: (SEVERITY_ORDER[c.severity], c.confidence))
    for f in findings:
        if id(f) in folded:
            continue
        roots.append(f)
    for f in findings:
        cause = folded.get(id(f))
        while cause is not None and id(cause) in folded:
            cause = folded[id(cause)]
        if cause is None:
            continue
        cause.evidence.setdefault("symptoms", []).append(
            {"code": f.code, "kind": f.kind, "title": f.title, "step": f.step, "severity": f.severity})
        if SEVERITY_ORDER[f.severity] > SEVERITY_ORDER[cause.severity]:
            cause.severity = f.severity
    return sorted(roots, key=lambda f: (-SEVERITY_ORDER[f.severity], f.step if f.step is not None else 1 << 30,
                                        -len(f.evidence.get("symptoms", [])), -f.confidence))
