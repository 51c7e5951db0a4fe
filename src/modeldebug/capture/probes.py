"""One-time active probes the tracer runs on the user's own batch, leaving no trace.

Each probe runs with the tracer's hooks quiet, the RNG forked, BatchNorm buffers restored and the
`training` flags put back, and only asks autograd for gradients of the INPUT (`torch.autograd.grad`),
so no parameter's `.grad` is touched.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .stats import first_tensor

__all__ = ["batch_mixing"]


def batch_mixing(root: nn.Module, args: tuple[Any, ...]) -> dict[str, Any] | None:
    """Do the outputs of the first and last samples depend on the other samples of the batch?

    Backpropagates from the outputs of samples 0 and N-1 (the last one catches a recurrence run
    along the batch axis, where sample 0 only sees itself), in eval mode (so BatchNorm, which mixes samples
    by design in training, does not count), and measures the gradient on every other sample's
    input. A model that keeps samples apart gives exactly zero there; a `.view`/`reshape` that
    mixes the batch axis gives non-zero gradients. Returns None when the probe does not apply
    (no floating input, batch of one, output without the batch axis first).
    """
    x = first_tensor(args)
    if x is None or x.dim() < 2 or x.shape[0] < 3:
        return None
    index = next(i for i, a in enumerate(args) if a is x) if any(a is x for a in args) else None
    if index is None:
        return None
    modes = {m: m.training for m in root.modules()}
    buffers = [(b, b.detach().clone()) for b in root.buffers()]
    devices = sorted({t.device.index for t in [*root.parameters(), *root.buffers()]
                      if t.device.type == "cuda" and t.device.index is not None})
    try:
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            root.eval()
            probe = x.detach().clone().requires_grad_(True)
            call = list(args)
            call[index] = probe
            out = first_tensor(root(*call))
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
    finally:
        for m, mode in modes.items():
            m.training = mode
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
