"""DistributionWatch: a `Categorical` given probabilities as its logits.

A policy network that ends in a softmax, sampled with ``Categorical(logits=probs)`` (the RL form of
the double softmax), samples from softmax(probs): a distribution pulled towards uniform whatever the
network learns. The first `CHECKS` constructions with autograd on are looked at (a policy builds one
per action, so the cost stays a few reductions per run); one that holds values in [0, 1] whose rows
sum to 1 is recorded once as a `categorical_probs_as_logits` event.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from .. import measures as M
from .patches import Probe

__all__ = ["DistributionWatch"]

#: Constructions looked at (with autograd on); none after the first hit.
CHECKS = 20
#: |row sum - 1| at or below this: the rows are probability distributions.
ROWSUM_TOL = 1e-3


class DistributionWatch:
    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.left = CHECKS

    def probes(self) -> dict[str, Probe]:
        return {"categorical_init": Probe(None, self._built)}

    def _built(self, token: None, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
               exc: BaseException | None) -> None:
        if self.left <= 0 or exc is not None or not torch.is_grad_enabled() or not self.tracer.active("categorical_init"):
            return
        logits = kwargs.get("logits", args[2] if len(args) > 2 else None)  # Categorical(self, probs, logits, ...)
        if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() < 1 \
                or logits.shape[-1] < 2 or logits.numel() > 1_000_000 or logits.grad_fn is None:
            return  # (a leaf, such as a learnable mixture's logits, is no network's softmax)
        self.left -= 1
        with torch.no_grad():
            x = logits.detach()
            lo, hi = float(x.min()), float(x.max())
            if lo < 0.0 or hi > 1.0:
                return
            dev = float((x.sum(-1) - 1.0).abs().max())
            uniform = float((x.amax(-1) - x.amin(-1)).max()) < 1e-6  # a second softmax changes nothing
        if dev <= ROWSUM_TOL and not uniform:
            self.left = 0
            self.tracer.writer.add_event(self.tracer.step, M.CATEGORICAL_PROBS_AS_LOGITS.name, {
                "shape": list(x.shape), "min": lo, "max": hi, "rowsum_dev": dev,
                "distribution": _built_by(args[0] if args else None)})


def _built_by(dist: Any) -> str:
    """The distribution the user built: a `OneHotCategorical` builds its `Categorical` inside its own
    ``__init__`` (looked up only on a hit)."""
    frame = sys._getframe(2)
    for _ in range(8):
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if owner is not dist and isinstance(owner, torch.distributions.Distribution):
            return type(owner).__name__
        frame = frame.f_back
    return type(dist).__name__ if dist is not None else "Categorical"

