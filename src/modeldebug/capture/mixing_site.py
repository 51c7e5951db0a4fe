"""Where a model mixes the samples of its batch: the module, or the code between two modules.

The batch-mixing probe (probes.py) learns *that* sample 0's output depends on other samples. To say
*where*, the probe's private copy of the model records, in call order, every module's first tensor
input and output that hold the batch on axis 0. After the probe's backward pass from samples 0 and
N-1, each of those tensors is either **spread** (a row other than the two probed ones has a
non-zero gradient: the mixing is still ahead of it) or **confined** (only the probed rows: the
mixing is behind it). The model's input is spread and its output confined; the mixing sits at the
first step from spread to confined:

- a module whose input is spread and whose output is confined mixes inside its own forward
  (an RNN or attention layer run along the batch axis);
- otherwise it is the code after the last spread tensor: the module that was called after it and
  contains the first confined one (`MultiheadAttention` around its `out_proj`), or, when none,
  the forward of the smallest module that contains both (a `.view` between two layers of
  ``Net.forward``).

Only the probe's copy is hooked; the user's model is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["CallLog", "mixing_site"]


@dataclass
class _Call:
    name: str
    type: str
    start: int
    end: int = -1
    input: torch.Tensor | None = None
    output: torch.Tensor | None = None


class CallLog:
    """Forward pre-hooks and hooks on every module of a (copied) model: the calls in order, each with
    the first tensor input and output that hold `batch` rows on axis 0 and require grad."""

    def __init__(self, model: nn.Module, batch: int) -> None:
        self.batch = batch
        self.calls: list[_Call] = []
        self.clock = 0
        self.open: list[_Call] = []
        self.handles = []
        for name, m in model.named_modules():
            self.handles.append(m.register_forward_pre_hook(self._pre(name or type(m).__name__, m)))
            self.handles.append(m.register_forward_hook(self._post()))

    def _tick(self) -> int:
        self.clock += 1
        return self.clock

    def _rows(self, value: Any) -> torch.Tensor | None:
        if isinstance(value, (tuple, list)):
            value = next((v for v in value if isinstance(v, torch.Tensor)), None)
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == self.batch \
                and value.requires_grad and value.is_floating_point():
            return value
        return None

    def _pre(self, name: str, module: nn.Module) -> Any:
        def hook(_: nn.Module, args: tuple[Any, ...]) -> None:
            call = _Call(name, type(module).__name__, self._tick(), input=self._rows(args))
            self.calls.append(call)
            self.open.append(call)

        return hook

    def _post(self) -> Any:
        def hook(_: nn.Module, __: tuple[Any, ...], output: Any) -> None:
            if self.open:
                call = self.open.pop()
                call.end = self._tick()
                call.output = self._rows(output)

        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def mixing_site(log: CallLog, objective: torch.Tensor, probed: tuple[int, ...]) -> dict[str, Any] | None:
    """Where the samples mix, from the gradient of `objective` (the probed samples' outputs summed) on
    each logged tensor; None when no step from spread to confined is seen (nothing logged on one side)."""
    # (time, tensor, the call it belongs to, "input"/"output"): inputs at the call's start, outputs at its end
    points = [(c.start, c.input, c, "input") for c in log.calls if c.input is not None]
    points += [(c.end, c.output, c, "output") for c in log.calls if c.output is not None and c.end >= 0]
    points.sort(key=lambda p: p[0])
    unique: dict[int, int] = {}
    tensors = []
    for _, t, _, _ in points:
        if id(t) not in unique:
            unique[id(t)] = len(tensors)
            tensors.append(t)
    if not tensors:
        return None
    grads = torch.autograd.grad(objective, tensors, allow_unused=True, retain_graph=True)
    keep = torch.ones(log.batch, dtype=torch.bool)
    keep[list(probed)] = False

    def spread(t: torch.Tensor) -> bool | None:
        g = grads[unique[id(t)]]
        if g is None:
            return None  # not on the path to the probed outputs
        return bool((g.detach().flatten(1).abs().amax(1)[keep.to(g.device)] > 0).any())

    marks = [(time, call, side, spread(t)) for time, t, call, side in points]
    marks = [m for m in marks if m[3] is not None]
    last_spread = None
    for i, (time, call, side, is_spread) in enumerate(marks):
        if is_spread:
            last_spread = i
            continue
        if last_spread is None:
            continue  # confined before anything spread: a branch that does not reach the mixing
        t0, before, before_side, _ = marks[last_spread]
        if side == "output" and before is call and before_side == "input":
            return {"module": call.name, "module_type": call.type, "inside": True}
        # the code between the last spread value and this one: the outermost module called after the
        # first and still running at the second (not the one this value is the input of), else the
        # smallest module around both
        opened = [c for c in log.calls if t0 < c.start < time and (c.end < 0 or c.end >= time)]
        if opened:
            site = min(opened, key=lambda c: c.start)
            return {"module": site.name, "module_type": site.type, "inside": True,
                    "after": before.name, "before": call.name}
        if before_side == "input" and before.start <= t0 and before.end >= time:  # at the start of its forward
            return {"module": before.name, "module_type": before.type, "inside": False, "after": None,
                    "before": call.name}
        around = [c for c in log.calls if c.start <= t0 and (c.end < 0 or c.end >= time)]
        site = max(around, key=lambda c: c.start) if around else None
        return {"module": site.name if site else None, "module_type": site.type if site else None,
                "inside": False, "after": before.name, "before": None if call is site else call.name}
    return None
