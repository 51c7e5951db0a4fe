"""One-time active probes the tracer runs on the user's batch, leaving no trace in the run.

Each probe runs on a private twin of the model (see isolation.py): a deep copy without hooks,
its ``training`` flags set directly, called with the random state forked and every global hook
suspended. The user's model, its hooks, its ``requires_grad`` flags, its state and the random
stream are never touched, so the run's losses stay bit-identical. A model that cannot be copied is
not probed; the probe says why.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .. import measures as M
from .isolation import TwinError, quiet, set_training, twin
from .stats import first_tensor, unmeasurable

__all__ = ["MixingProbe", "batch_mixing"]


class MixingProbe:
    """Runs `batch_mixing` once per run, on the first step's own batch, when a rule reads it."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.done = M.BATCH_MIXING_PROBE not in tracer.plan

    def once(self) -> None:
        tr = self.tracer
        if self.done or tr.replay is None:
            return
        self.done = True
        root, args, _ = tr.replay
        tr.replaying = True
        try:
            result = batch_mixing(root, args)
        except Exception as exc:  # a model the probe cannot call like this: skip it, say why
            result = {"skipped": f"{type(exc).__name__}: {exc}"}
        finally:
            tr.replaying = False
        if result is not None:
            tr.writer.add_event(tr.step, M.BATCH_MIXING_PROBE.name, result)


def batch_mixing(root: nn.Module, args: tuple[Any, ...]) -> dict[str, Any] | None:
    """Do the outputs of the first and last samples depend on the other samples of the batch?

    Backpropagates from the outputs of samples 0 and N-1 (the last one catches a recurrence run
    along the batch axis, where sample 0 only sees itself), in eval mode (so BatchNorm, which mixes
    samples by design in training, does not count), and measures the gradient on every other
    sample's input. A model that keeps samples apart gives exactly zero there; a `.view`/`reshape`
    that mixes the batch axis gives non-zero gradients. Returns None when the probe does not apply
    (no floating input, batch of one, output without the batch axis first); raises TwinError when
    the model could not be copied.
    """
    x = first_tensor(args)
    if x is None or unmeasurable(x) is not None or x.dim() < 2 or x.shape[0] < 3:
        return None
    if not any(a is x for a in args):
        return None
    index = next(i for i, a in enumerate(args) if a is x)
    probe = x.detach().clone().requires_grad_(True)
    try:
        model, call, _ = twin(root, tuple(args), replace={id(x): probe})
    except TwinError as exc:
        raise TwinError(f"the model could not be copied ({exc}); the probe never runs on the model itself") from exc
    call = list(call)
    call[index] = probe
    set_training(model, False)
    with quiet(model), torch.enable_grad():
        out = first_tensor(model(*call))
        if out is None or out.dim() == 0 or out.shape[0] != x.shape[0] or not out.requires_grad:
            return None
        (grad,) = torch.autograd.grad(out[0].sum() + out[-1].sum(), probe, allow_unused=True)
    if grad is None:
        return None
    per_sample = grad.detach().flatten(1).abs().amax(1)
    others = per_sample[1:-1]
    return {
        "batch": int(x.shape[0]),
        "probed_samples": [0, int(x.shape[0]) - 1],
        "own_grad": float(per_sample[0]),
        "mixed_samples": int((others > 0).sum()),
        "max_other_grad": float(others.max()),
        "fraction_mixed": float((others > 0).float().mean()),
    }
