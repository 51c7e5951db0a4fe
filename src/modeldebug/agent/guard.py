"""The user's model comes back exactly as it went in: weights, buffers, gradients, flags, hooks, RNG.

The agent works on copies, but a tool that forwards the original (a layer probe, say) could still
touch BatchNorm statistics or `.grad`, and an optimizer factory handed the user's parameters could
register hooks on them. `ModelGuard` snapshots everything before the call, checks it after, and
puts back whatever changed, saying what it was (a bug of ours, reported not hidden). Values are
compared NaN-aware (a NaN weight that is still NaN is unchanged), and what did not change is left
alone: a gradient is copied back into the user's own tensor, never replaced by another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

import torch
from torch import nn

__all__ = ["ModelGuard", "same_values"]

log = logging.getLogger(__name__)

#: the hook tables of a module and of a parameter that a tool or an optimizer factory could add to
_MODULE_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_PARAM_HOOKS = ("_backward_hooks", "_post_accumulate_grad_hooks")
_EXTRA_TABLES = ("_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")


def same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same dtype, shape and values, a NaN equal to a NaN in the same place."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if torch.equal(a, b):
        return True
    if not (a.is_floating_point() or a.is_complex()):
        return False
    return bool(torch.isclose(a, b, rtol=0.0, atol=0.0, equal_nan=True).all())


def _hook_keys(obj: Any, tables: tuple[str, ...]) -> dict[str, set[Any]]:
    return {t: set(getattr(obj, t, None) or {}) for t in tables}


class ModelGuard:
    """Context manager: snapshot `model` (and the global RNG) on entry, verify and restore on exit."""

    def __init__(self, model: nn.Module, *, live: Callable[[], bool] | None = None) -> None:
        self.model = model
        self.changed: list[str] = []
        # False once the caller has its model back (an LLM's tool loop that ran past its timeout): the
        # model, its hooks and the random state are the user's again, and restoring the snapshot would
        # undo what was done with them since
        self.live = live

    def __enter__(self) -> ModelGuard:
        m = self.model
        self._state = {k: v.detach().clone() for k, v in m.state_dict(keep_vars=True).items()}
        self._training = {name: mod.training for name, mod in m.named_modules()}
        self._requires = {name: p.requires_grad for name, p in m.named_parameters()}
        self._grads = {name: (None if p.grad is None else p.grad.detach().clone()) for name, p in m.named_parameters()}
        self._module_hooks = {name: _hook_keys(mod, _MODULE_HOOKS) for name, mod in m.named_modules()}
        self._param_hooks = {name: _hook_keys(p, _PARAM_HOOKS) for name, p in m.named_parameters()}
        self._rng = torch.random.get_rng_state()
        self._cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.live is not None and not self.live():
            return
        m = self.model
        live = m.state_dict(keep_vars=True)
        with torch.no_grad():
            for k, saved in self._state.items():
                cur = live.get(k)
                if cur is None:
                    continue
                if not same_values(cur.detach(), saved):
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
            if (saved_g is None) != (p.grad is None) or (saved_g is not None and not same_values(p.grad, saved_g)):
                self.changed.append(f"grad of {name}")
                if saved_g is not None and p.grad is not None and p.grad.shape == saved_g.shape:
                    with torch.no_grad():
                        p.grad.copy_(saved_g)  # the user's own gradient tensor, its values put back
                else:
                    p.grad = saved_g
        self._remove_hooks(m)
        torch.random.set_rng_state(self._rng)
        if self._cuda_rng is not None:
            torch.cuda.set_rng_state_all(self._cuda_rng)
        if self.changed:
            log.warning("modeldebug: restored the model after the analysis changed %s", ", ".join(self.changed[:5]))

    def _remove_hooks(self, m: nn.Module) -> None:
        """Drop the hooks registered on the model's modules and parameters while the guard held them."""
        found = [(f"module {name or 'the model'}", mod, self._module_hooks.get(name), _MODULE_HOOKS)
                 for name, mod in m.named_modules()]
        found += [(name, p, self._param_hooks.get(name), _PARAM_HOOKS) for name, p in m.named_parameters()]
        for name, obj, before, tables in found:
            if before is None:
                continue
            for t in tables:
                table = getattr(obj, t, None)
                added = [k for k in (table or {}) if k not in before.get(t, set())]
                if added:
                    self.changed.append(f"hooks added to {name}")
                    for k in added:
                        del table[k]
                        for extra in _EXTRA_TABLES:  # what a RemovableHandle also clears
                            getattr(obj, extra, {}).pop(k, None)
