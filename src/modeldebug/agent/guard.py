"""The user's model comes back exactly as it went in: weights, buffers, gradients, flags, RNG.

The agent works on copies, but a tool that forwards the original (a layer probe, say) could still
touch BatchNorm statistics or `.grad`. `ModelGuard` snapshots everything before the call, checks it
after, and puts back whatever changed, saying what it was (a bug of ours, reported not hidden).
"""

from __future__ import annotations

import logging
from types import TracebackType

import torch
from torch import nn

__all__ = ["ModelGuard"]

log = logging.getLogger(__name__)


class ModelGuard:
    """Context manager: snapshot `model` (and the global RNG) on entry, verify and restore on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.changed: list[str] = []

    def __enter__(self) -> ModelGuard:
        m = self.model
        self._state = {k: v.detach().clone() for k, v in m.state_dict(keep_vars=True).items()}
        self._training = {name: mod.training for name, mod in m.named_modules()}
        self._requires = {name: p.requires_grad for name, p in m.named_parameters()}
        self._grads = {name: (None if p.grad is None else p.grad.detach().clone()) for name, p in m.named_parameters()}
        self._rng = torch.random.get_rng_state()
        self._cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        m = self.model
        live = m.state_dict(keep_vars=True)
        with torch.no_grad():
            for k, saved in self._state.items():
                cur = live.get(k)
                if cur is None:
                    continue
                if cur.shape != saved.shape or not torch.equal(cur.detach(), saved):
                    self.changed.append(f"value of {k}")
                    cur.detach().copy_(saved) if cur.shape == saved.shape else None
        for name, mod in m.named_modules():
            if name in self._training and mod.training != self._training[name]:
                self.changed.append(f"training flag of {name or 'the model'}")
                mod.training = self._training[name]
        for name, p in m.named_parameters():
            if name in self._requires and p.requires_grad != self._requires[name]:
                self.changed.append(f"requires_grad of {name}")
                p.requires_grad_(self._requires[name])
            saved_g = self._grads.get(name)
            if (saved_g is None) != (p.grad is None) or (saved_g is not None and not torch.equal(p.grad, saved_g)):
                self.changed.append(f"grad of {name}")
                p.grad = saved_g
        torch.random.set_rng_state(self._rng)
        if self._cuda_rng is not None:
            torch.cuda.set_rng_state_all(self._cuda_rng)
        if self.changed:
            log.warning("modeldebug: restored the model after the analysis changed %s", ", ".join(self.changed[:5]))
