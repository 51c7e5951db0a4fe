"""What a repro bundle needs from the model's forward call that a forward pre-hook does not see.

- The keyword arguments: PyTorch's forward pre-hooks get the positional arguments only, so
  ``model(input_ids=ids, attention_mask=mask)`` would reach the bundle as an empty batch. They are
  read, as a reference (no copy), from the ``Module._call_impl`` frame that is running the hooks.
- The autocast state (``torch.autocast("cpu", dtype=torch.bfloat16)``): a step run under autocast
  rounds differently; replay runs the forward pass and the loss under the same state.

Both are read when the model's forward pass begins, on every step: about 1-2 us.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn

from .isolation import unwrap
from .roots import _CALL_CODES

__all__ = ["autocast_state", "call_kwargs"]

_DEPTH = 12  # frames between our hook and Module._call_impl: hook, tracer.call, _root_pre/_pre, _root, ...


def call_kwargs(module: nn.Module | None) -> dict[str, Any] | None:
    """The keyword arguments of the forward call of `module` now starting (a reference), or None when
    the call is not found on the stack (then the batch is its positional arguments only)."""
    frame = sys._getframe(1)
    for _ in range(_DEPTH):
        frame = frame.f_back  # type: ignore[assignment]
        if frame is None:
            return None
        if frame.f_code in _CALL_CODES:
            loc = frame.f_locals
            called = loc.get("self")
            if module is not None and called is not module and unwrap(called) is not module:
                return None  # a wrapper (torch.compile, DDP) is unwrapped; another module is not this call
            kwargs = loc.get("kwargs")
            return kwargs if isinstance(kwargs, dict) else None
    return None


def autocast_state(cuda: bool) -> dict[str, str] | None:
    """{device type: dtype name} of the autocast regions on now (None: none)."""
    out = None
    for dev in ("cpu", "cuda") if cuda else ("cpu",):
        if torch.is_autocast_enabled(dev):
            out = out or {}
            out[dev] = str(torch.get_autocast_dtype(dev)).removeprefix("torch.")
    return out
