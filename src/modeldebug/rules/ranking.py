"""Ranking: root causes first, their symptoms folded into them as evidence.

The logic, in order:
1. Each catalogue spec declares the kinds it `explains` (a dead ReLU layer explains vanishing gradients and a
   flat loss; exploding gradients explain a diverging loss and the NaN that follows).
2. A finding is a symptom when another finding in the same run explains its kind (and is not itself
   explained by it) and did not begin clearly later: detectors see a cause at different delays (the
   loss turns before the gradient norm crosses its threshold), so a cause may start up to
   `max(3, 5% of the run)` steps after its symptom, not more. It is removed
   from the list and attached to its cause under `evidence["symptoms"]`, its title and step kept.
   A symptom may name kinds that cannot cause it (`evidence["not_explained_by"]`: parameters that
   never got a gradient tensor at all are not the work of dead units, whose gradient is zero).
   The cause's severity is raised to its worst symptom's, unless the cause is likely by design
   (`evidence["by_design"]`: constant node features beside a graph's edges): then its symptoms are
   expected consequences, folded into its note.
   A finding whose detection rests on an effect of another kind lists that kind in
   `evidence["rests_on"]` (a class imbalance found at a mild skew only because the model collapsed
   onto the class prior rests on `input_ignored`): a cause that explains the effect explains it too,
   since without the effect the finding would not be there (dead units that cut the input off leave
   the prior as all the model can learn). The finding of that very effect explains it too, unless
   it is itself explained by the symptom (no cycle): LOS001 found only because the loss turned NaN
   (it never rose while finite) rests on `nonfinite`, so NUM001 (a NaN fed in the input batch, or
   made by a log of 0) is its root cause and comes first. A loss that climbed while finite and
   then went NaN does not rest on it: there the NaN is the symptom (of LRN001, or listed after
   LOS001 when nothing explains both).
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
    if cause.kind in (symptom.evidence.get("not_explained_by") or ()):
        return False  # the symptom says what cannot cause it (no gradient at all: not dead units)
    only = cause.evidence.get("explains_only")
    explained = {str(k) for k in only} if isinstance(only, (list, tuple)) else set(spec.explains) | _also_explains(cause)
    if not (_kinds(symptom) & explained or _is_its_ground(cause, symptom)):
        return False
    return cause.step is None or symptom.step is None or cause.step <= symptom.step + slack


def _also_explains(f: Finding) -> set[str]:
    """Kinds this finding explains beyond its rule's catalogue entry (`evidence["explains"]`): one
    rule whose findings differ in what they cause (a loss with no floor, LOS001, explains the
    exploding gradients it drives; a loss that diverges from a too-high rate does not). A finding
    may instead narrow them (`evidence["explains_only"]`: regression targets off scale, LBL001,
    explain a slow loss, not the vanishing gradients that the rule's other findings can cause)."""
    more = f.evidence.get("explains") or ()
    return {str(k) for k in more} if isinstance(more, (list, tuple)) else set()


def _rests_on(f: Finding) -> set[str]:
    rests = f.evidence.get("rests_on") or ()
    return {str(k) for k in rests} if isinstance(rests, (list, tuple)) else set()


def _kinds(f: Finding) -> set[str]:
    """The finding's kind and the kinds of the effects its detection rests on."""
    return {f.kind, *_rests_on(f)}


def _is_its_ground(cause: Finding, symptom: Finding) -> bool:
    """`cause` is the very effect `symptom`'s detection rests on (NUM001 for a loss found diverging
    only because it turned NaN), and is not itself explained by `symptom` (no cycle: a class
    imbalance that rests on a stuck loss also explains a stuck loss)."""
    if cause.kind not in _rests_on(symptom):
        return False
    spec = CATALOGUE[symptom.code] if symptom.code in CATALOGUE else None
    return spec is None or not _kinds(cause) & set(spec.explains)


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
        if SEVERITY_ORDER[f.severity] > SEVERITY_ORDER[cause.severity] and not cause.evidence.get("by_design"):
            cause.severity = f.severity
    return sorted(roots, key=lambda f: (-SEVERITY_ORDER[f.severity], f.step if f.step is not None else 1 << 30,
                                        -len(f.evidence.get("symptoms", [])), -f.confidence))
