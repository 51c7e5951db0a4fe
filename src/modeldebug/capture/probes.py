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

    The batch size may also be the size of another axis (a time-first model whose sequence is as
    long as the batch: input ``[T, B, F]`` with T == B, or a ``[T, B, C]`` output): then every
    pairing of an input axis and an output axis of that size is tried, and when one of them keeps
    its samples apart (each probed sample's output depends on its own input, and on no other) the
    model is consistent with a batch there. Which axis holds the user's samples cannot be told from
    the model (an RNN run across a batch-first batch computes what a time-first one does), so the
    probe says so and finds nothing.
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
        n = x.shape[0]
        in_axes = [a for a in range(x.dim()) if x.shape[a] == n]
        out_axes = [b for b in range(out.dim()) if out.shape[b] == n]
        first: dict[str, Any] | None = None
        for b in out_axes:  # axis 0 first: the usual reading, and the only one when no other axis has the batch's size
            (grad,) = torch.autograd.grad(out.select(b, 0).sum() + out.select(b, -1).sum(), probe, allow_unused=True,
                                          retain_graph=b != out_axes[-1])
            if grad is None:
                if b == 0:
                    return None
                continue
            for a in in_axes:
                per_sample = grad.detach().movedim(a, 0).flatten(1).abs().amax(1)
                others = per_sample[1:-1]
                apart = not bool((others > 0).any())
                if first is None:
                    first = {
                        "batch": int(n),
                        "probed_samples": [0, int(n) - 1],
                        "own_grad": float(per_sample[0]),
                        "mixed_samples": int((others > 0).sum()),
                        "max_other_grad": float(others.max()),
                        "fraction_mixed": float((others > 0).float().mean()),
                    }
                    if apart:
                        return first  # samples kept apart along axis 0: the common, healthy case
                elif apart and bool(per_sample[0] > 0) and bool(per_sample[-1] > 0):  # (not a reading that sees nothing)
                    return {"skipped": f"the batch size {n} is also the size of axis {a} of the input {list(x.shape)}"
                                       f" or axis {b} of the output {list(out.shape)}, and samples read along those "
                                       "axes stay apart: which axis is the batch cannot be told"}
    return first
