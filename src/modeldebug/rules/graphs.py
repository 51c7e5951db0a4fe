"""A graph's adjacency that is not normalised (DAT001's second check; capture/graphs.py records it).

Each propagation ``adj @ h`` scales the node features by the adjacency's row sums. Normalised
(D^-1/2 (A + I) D^-1/2, or D^-1 A), they are about 1; left as 0/1 entries they are the degree (a
sum over the neighbours, as GIN means to do); multiplied by the degree instead of divided, they are
the degree squared, and the activations grow by that factor at every layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .. import measures as M
from .base import Finding, Recommendation, Rule
from .context import Context, fmt

__all__ = ["adjacency_findings"]

_FIX = ("A = A + torch.eye(A.size(0))                  # self-loops\n"
        "d = A.sum(1).pow(-0.5)                         # D^-1/2\n"
        "adj = d[:, None] * A * d[None, :]              # D^-1/2 (A + I) D^-1/2: rows sum to about 1")


def adjacency_findings(rule: Rule, ctx: Context) -> Iterator[Finding]:
    """Findings of `rule` (DAT001) for each model's recorded adjacency that scales its features up."""
    scale = ctx.option("input_scale")
    for ev in ctx.record.events(M.GRAPH_ADJACENCY.name):
        d = ev.data
        m, exponent = float(d.get("row_sum_median") or 0.0), d.get("row_sum_degree_exponent")
        if d.get("negative") or m <= 0:
            continue  # a Laplacian or a signed graph: not a propagation matrix of this kind
        by_degree = (not d.get("binary") and exponent is not None and exponent >= 1.5
                     and float(d.get("value_max") or 0.0) > 1.0 and m >= 2)
        if not by_degree and m < scale:
            continue
        yield _finding(rule, ev.step, d, m, by_degree)


def _finding(rule: Rule, step: int | None, d: dict[str, Any], m: float, by_degree: bool) -> Finding:
    model, arg = d.get("model"), int(d.get("argument", 1))
    deg = float(d.get("degree_median") or 0.0)
    binary = bool(d.get("binary"))
    if by_degree:
        title = (f"The graph's adjacency multiplies each node by its degree: rows sum to {fmt(m)} (median), "
                 f"up to {fmt(float(d.get('row_sum_max') or m))}")
        what = (f"its row sums grow as the degree to the power {fmt(float(d['row_sum_degree_exponent']))} (a "
                "normalised adjacency's do not grow with the degree; 0/1 entries give the power 1): its rows were "
                "multiplied by the degree (D (A + I)) where they should be divided (D^-1/2 (A + I) D^-1/2)")
        severity, confidence = "high", 0.85
    elif binary:
        title = f"The graph's adjacency is not normalised: 0/1 entries, rows sum to the degree ({fmt(m)}, median)"
        what = ("its entries are 0 and 1, so each product sums the neighbours' features instead of averaging them. "
                "A network built for sums (GIN, with its own normalisation layers) expects this; a GCN does not")
        severity, confidence = "low", 0.5
    else:
        title = f"The graph's adjacency is not normalised: rows sum to {fmt(m)} (median)"
        what = "its rows sum to far more than 1, so each product scales the features up"
        severity, confidence = "medium", 0.7
    description = (f"{model}'s argument {arg + 1} is a {d.get('nodes')} x {d.get('nodes')} matrix over the nodes of its "
                   f"first input (median degree {fmt(deg)}), and {what}. Every layer that multiplies by it scales the "
                   f"activations by about {fmt(m)}: two layers, about {fmt(m * m)}. The logits and the loss start far "
                   "too large and the gradients explode; the layers look badly initialised, but the scale comes from "
                   "the graph.")
    return rule.finding(
        severity=severity, confidence=confidence, title=title, description=description, location=model, step=step,
        evidence={"graph_adjacency": dict(d), "row_sum_median": m, "scale_per_layer": m},
        recommendations=[Recommendation("fix", "Normalise the adjacency once, before training: "
                                        "symmetric normalisation with self-loops (Kipf & Welling's GCN).", _FIX)])
