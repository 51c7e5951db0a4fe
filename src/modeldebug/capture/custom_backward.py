"""Does each custom ``torch.autograd.Function`` in the training graph differentiate what it computes?

A hand-written ``backward`` is easy to get wrong: one that returns the local derivative and forgets
to multiply it by ``grad_output`` (the chain rule), a wrong sign, a missing factor. Training then
follows gradients of another function, and what shows is only their effect (an explosion, a loss
that does not fall). This probe looks at the backward graph of the first sampled steps' losses (before
their backward runs), finds the nodes of Functions defined outside torch (``_forward_cls``), and
checks each class once, on a fresh float64 input of its own, outside the user's graph:

    d/de <v, f(x + e u)> at e = 0   (central difference of the forward)
    <u, backward(v)>                (the Function's own backward, through autograd)

for three random direction pairs (u, v). For a correct backward the two agree to ~1e-6 relative;
a backward that ignores ``grad_output`` or has a wrong factor misses by O(1). A backward may differ
from the forward's derivative on purpose (a straight-through estimator, a gradient reversal layer),
but never be other than linear in ``grad_output`` (the chain rule): that is checked too, with
g(2v) = 2 g(v) and g(v + w) = g(v) + g(w), and only its failure is a sure bug. Only a Function that
takes one tensor (an activation, a custom op on one input) is checked: the arguments of others are
not known. The random state is forked and our own patches are muted while it runs.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import torch

from .. import measures as M

__all__ = ["CustomBackwardProbe", "check_function", "custom_functions", "softmax_saturation", "walk"]

_LOOKS = 3  # sampled steps whose loss graph is searched
_MAX_NODES = 20_000  # a graph walked no further than this (a deep or long unrolled model)
_EPS = 1e-6
_PAIRS = 3
_MAX_SOFTMAX = 32


def custom_functions(root: Any, limit: int = _MAX_NODES) -> list[type]:
    """The autograd.Function classes defined outside torch whose nodes the graph from `root` holds."""
    return walk(root, limit)[0]


#: Backward nodes of operations whose derivative is infinite at the edge of their domain (acos at
#: +-1, sqrt and log at 0): what turns a finite forward pass into a NaN gradient.
#: (A norm and cdist are not among them: PyTorch defines their gradient at 0 as 0.)
EDGE_OPS = {"AcosBackward0": "acos", "AsinBackward0": "asin", "AtanhBackward0": "atanh", "SqrtBackward0": "sqrt",
            "RsqrtBackward0": "rsqrt", "PowBackward0": "pow", "LogBackward0": "log"}


def _at_an_edge(node: Any, name: str) -> bool:
    """A power has an infinite derivative at 0 only for an exponent below 1 (x ** 2 does not)."""
    if name != "PowBackward0":
        return True
    exponent = getattr(node, "_saved_exponent", None)
    return not isinstance(exponent, (int, float)) or exponent < 1


def walk(root: Any, limit: int = _MAX_NODES, edge: dict[str, int] | None = None) -> tuple[list[type], list[Any]]:
    """One walk of the graph from `root`: (the autograd.Function classes defined outside torch whose
    nodes it holds, its softmax nodes, at most `_MAX_SOFTMAX`, in the order reached). `edge`, when
    given, counts the graph's `EDGE_OPS` nodes by operation."""
    found: dict[type, None] = {}
    softmax: list[Any] = []
    seen: set[int] = set()
    stack = [root]
    while stack and len(seen) < limit:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        cls = getattr(node, "_forward_cls", None)
        if isinstance(cls, type) and not (cls.__module__ or "").startswith("torch"):
            found[cls] = None
        else:
            name = type(node).__name__
            if len(softmax) < _MAX_SOFTMAX and name == "SoftmaxBackward0":
                softmax.append(node)
            elif edge is not None and name in EDGE_OPS and _at_an_edge(node, name):
                op = EDGE_OPS[name]
                edge[op] = edge.get(op, 0) + 1
        stack.extend(f for f, _ in getattr(node, "next_functions", ()))
    return list(found), softmax


def check_function(cls: type) -> dict[str, Any]:
    """Compare `cls`'s backward with central differences of its forward on a (4, 6) float64 input."""
    name = f"{cls.__module__}.{cls.__qualname__}"
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, dtype=torch.float64, generator=gen)
    try:  # (its forward runs 9 more times here: what it prints is not the user's output)
        with torch.random.fork_rng(devices=[]), torch.enable_grad(), \
                contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            xs = x.clone().requires_grad_(True)
            y = cls.apply(xs)  # type: ignore[attr-defined]
            if not isinstance(y, torch.Tensor) or not y.requires_grad or not y.is_floating_point():
                return {"function": name, "checked": False, "why": "its output is not a differentiable tensor"}
            # the chain rule makes every backward linear in grad_output: g(2v) = 2 g(v), g(v + w) = g(v) + g(w)
            v, w = (torch.randn(y.shape, dtype=torch.float64, generator=gen) for _ in range(2))
            grads = [torch.autograd.grad(y, xs, o, retain_graph=True, allow_unused=True)[0] for o in (v, 2 * v, w, v + w)]
            if any(g is None for g in grads):
                return {"function": name, "checked": False, "why": "its backward gives its input no gradient"}
            g1, g2, g3, g4 = grads
            size = float(g1.abs().sum() + g3.abs().sum()) or 1e-12
            nonlinear = float(max((g2 - 2 * g1).abs().sum(), (g4 - g1 - g3).abs().sum())) / size
            worst = 0.0
            for _ in range(_PAIRS):
                u = torch.randn(x.shape, dtype=torch.float64, generator=gen)
                v = torch.randn(y.shape, dtype=torch.float64, generator=gen)
                (g,) = torch.autograd.grad(y, xs, v, retain_graph=True, allow_unused=True)
                if g is None:
                    return {"function": name, "checked": False, "why": "its backward gives its input no gradient"}
                analytic = float((g * u).sum())
                with torch.no_grad():
                    plus, minus = cls.apply(x + _EPS * u), cls.apply(x - _EPS * u)  # type: ignore[attr-defined]
                numeric = float(((plus - minus) * v).sum()) / (2 * _EPS)
                scale = max(abs(numeric), abs(analytic), 1e-8)
                worst = max(worst, abs(analytic - numeric) / scale)
    except Exception as exc:  # noqa: BLE001 - a Function of other arguments or dtypes: not checked, said why
        return {"function": name, "checked": False, "why": f"{type(exc).__name__}: {str(exc)[:160]}"}
    return {"function": name, "checked": True, "relative_error": worst, "nonlinear_in_grad_output": nonlinear,
            "pairs": _PAIRS, "input_shape": [4, 6]}


def softmax_saturation(nodes: list[Any]) -> list[dict[str, Any]]:
    """How peaked each softmax over the last axis of a tensor of at least 3 axes, at least 4 long in its
    last two (attention weights [.., queries, keys], a router over experts per token), is: the share of
    its rows whose largest probability is above 0.99, over the rows of the second half of the query
    axis (under a causal mask the first rows have few keys to choose from, one for the first)."""
    out = []
    for node in nodes:
        try:
            p = node._saved_result
            dim = int(node._saved_dim)
        except (AttributeError, RuntimeError):  # freed, or another layout
            continue
        if not isinstance(p, torch.Tensor) or p.dim() < 3 or dim not in (-1, p.dim() - 1, 2**64 - 1):
            continue
        queries, keys = p.shape[-2], p.shape[-1]
        if queries < 4 or keys < 4 or not p.is_floating_point():
            continue
        with torch.no_grad():
            rows = p.detach()[..., queries // 2:, :].reshape(-1, keys).float()
            top = rows.max(dim=1).values
            live = top > 0  # a row of a masked-out query (all zeros or NaN) is not judged
            if not bool(live.any()):
                continue
            top = top[live]
            out.append({"shape": list(p.shape), "rows": int(top.numel()),
                        "saturated_frac": float((top > 0.99).float().mean()),
                        "median_max_prob": float(top.median()), "uniform_prob": 1.0 / keys})
    return out


class CustomBackwardProbe:
    """Runs `check_function` once per custom Function class seen in the loss graphs of the first sampled
    steps (tracer._backward_before); each result is a `custom_backward_check` event."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.looks = 0
        self.checked: set[type] = set()
        self.softmax_on = M.SOFTMAX_SATURATION in tracer.plan

    @property
    def pending(self) -> bool:
        return self.looks < _LOOKS

    def look(self, loss: torch.Tensor) -> None:
        self.looks += 1
        if loss.grad_fn is None:
            return
        tr = self.tracer
        edge: dict[str, int] | None = {} if self.looks == 1 else None
        classes, softmax = walk(loss.grad_fn, edge=edge)
        if self.looks == 1 and self.softmax_on:
            for data in softmax_saturation(softmax):
                tr.writer.add_event(tr.step, M.SOFTMAX_SATURATION.name, data)
        if edge:
            tr.writer.add_event(tr.step, M.EDGE_OPS.name, {"ops": edge})
        for cls in classes:
            if cls in self.checked:
                continue
            self.checked.add(cls)
            tr.replaying = True  # our own patches stay out of the check's forward and backward
            try:
                result = check_function(cls)
            finally:
                tr.replaying = False
            tr.writer.add_event(tr.step, M.CUSTOM_BACKWARD_CHECK.name, result)
