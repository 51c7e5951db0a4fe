"""Ranking: root causes first, their symptoms folded into them as evidence.

The logic, in order:
1. Each rule declares the kinds it `explains` (a dead ReLU layer explains vanishing gradients and a
   flat loss; exploding gradients explain a diverging loss and the NaN that follows).
2. A finding is a symptom when another finding in the same run explains its kind (and is not itself
   explained by it). Steps are not compared: detectors see a cause at different delays (the loss
   turns before the gradient norm crosses its threshold), so the causal graph decides. It is removed
   from the list and attached to its cause under `evidence["symptoms"]`, its title and step kept.
   The cause's severity is raised to its worst symptom's.
3. What remains is sorted by severity, then by how many symptoms a finding explains (a cause that
   explains more is more central), then confidence, then the earliest step.
Runtime crashes are never folded: they are what the user saw last, and they sort by severity.
"""

from __future__ import annotations

from .base import RULES, SEVERITY_ORDER, Finding

__all__ = ["rank"]


def _explains(cause: Finding, symptom: Finding) -> bool:
    rule = RULES.get(cause.code)
    return rule is not None and cause is not symptom and symptom.kind in rule.explains


def rank(findings: list[Finding]) -> list[Finding]:
    """Fold symptoms into their causes and sort: most important first."""
    roots: list[Finding] = []
    folded: dict[int, Finding] = {}
    for f in findings:
        causes = [c for c in findings if _explains(c, f) and not _explains(f, c)]
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
    return sorted(roots, key=lambda f: (-SEVERITY_ORDER[f.severity], -len(f.evidence.get("symptoms", [])),
                                        -f.confidence, f.step if f.step is not None else 1 << 30))
