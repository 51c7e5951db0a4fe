"""A graph's adjacency passed to the model beside its node features.

A graph network's forward pass takes the node features ``x`` (nodes x features) and the graph: a
dense or sparse (nodes x nodes) matrix that each layer multiplies the features by (``adj @ x``).
Each such product scales the features by the matrix's row sums, so the matrix is normalised first
(D^-1/2 (A + I) D^-1/2, or D^-1 A): its rows sum to about 1. An adjacency left unnormalised, or
"normalised" the wrong way round (multiplied by the degree), multiplies the activations by the
degree at every layer. This module describes that matrix once per model (the `graph_adjacency`
event), on the first sampled step whose forward pass receives one; rules/data.py judges it.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["adjacency_of", "describe_adjacency"]

#: a dense adjacency larger than this many entries is summarised on its first rows only
_DENSE_ROWS = 4096


def adjacency_of(x: torch.Tensor, args: tuple[Any, ...]) -> tuple[int, torch.Tensor] | None:
    """(its argument position, the matrix) of a floating (nodes x nodes) matrix among `args` whose size
    is the node count of the features `x` (its first dimension, or its second for a batch of graphs
    (graphs x nodes x nodes)); None when there is none."""
    if x.dim() < 2:
        return None
    for i, a in enumerate(args):
        if not isinstance(a, torch.Tensor) or a is x or not a.is_floating_point() or a.dim() not in (2, 3):
            continue
        n = x.shape[0] if a.dim() == 2 else (x.shape[1] if x.dim() == 3 else -1)
        if a.shape[-1] == a.shape[-2] == n and n >= 8:
            return i, a
    return None


@torch.no_grad()
def describe_adjacency(adj: torch.Tensor) -> dict[str, Any] | None:
    """Row sums, degrees and values of `adj` (the first graph of a batch; the first rows of a large
    dense one), as plain numbers; None when it cannot be read (a layout we do not handle)."""
    a = adj[0] if adj.dim() == 3 else adj
    if a.is_sparse:
        a = a.coalesce()
        values = a.values().float()
        rows = a.indices()[0]
        n = a.shape[0]
        row_sum = torch.zeros(n, device=values.device).index_add_(0, rows, values)
        degree = torch.zeros(n, device=values.device).index_add_(0, rows, (values != 0).float())
        nonzero = values[values != 0]
    elif a.layout == torch.strided:
        a = a[:_DENSE_ROWS].float()
        row_sum = a.sum(1)
        degree = (a != 0).sum(1).float()
        nonzero = a[a != 0]
    else:
        return None
    if nonzero.numel() == 0 or not torch.isfinite(nonzero).all():
        return None
    q = torch.tensor([0.0, 0.5, 1.0], device=row_sum.device)
    rs = torch.quantile(row_sum.float(), q).tolist()
    deg = torch.quantile(degree, q).tolist()
    nz = nonzero[:1_000_000]
    return {
        "nodes": int(adj.shape[-1]), "sparse": bool(adj.is_sparse),
        "row_sum_min": rs[0], "row_sum_median": rs[1], "row_sum_max": rs[2],
        "degree_min": deg[0], "degree_median": deg[1], "degree_max": deg[2],
        "value_min": float(nz.min()), "value_max": float(nz.max()),
        "binary": bool(((nz == 1) | (nz == 0)).all()),
        "negative": bool((nz < 0).any()),
        # how the row sums follow the degree: ~1 for a binary adjacency (row sum = degree), ~0 for a
        # normalised one (sums ~1 whatever the degree), ~2 for rows multiplied by their degree
        "row_sum_degree_exponent": _exponent(degree, row_sum),
    }


def _exponent(degree: torch.Tensor, row_sum: torch.Tensor) -> float | None:
    """The slope of log(row sum) on log(degree) over rows with both positive (None when the degrees
    do not vary enough to tell)."""
    ok = (degree > 0) & (row_sum > 0)
    if int(ok.sum()) < 8:
        return None
    ld, ls = degree[ok].double().log(), row_sum[ok].double().log()
    var = float(((ld - ld.mean()) ** 2).mean())
    if var < 0.05:
        return None
    return float(((ld - ld.mean()) * (ls - ls.mean())).mean() / var)
