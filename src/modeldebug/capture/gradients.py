"""GradientCollector: gradient norms, at the rate the rules read them.

Every step, one fused ``_foreach_norm`` over the tracked gradients (per device and dtype) gives each
parameter's norm ON THE DEVICE (for many small tensors, the gradients are copied into one flat
buffer and normed at once instead, or on the CPU stacked a shape at a time when they come in a few
shapes, as a deep model's do; the per-parameter norms are then taken only when needed);
reduced there to the step's total (the ``grad_norm`` column, whose
finiteness is the step's non-finite flag) and, when the optimizers have two or more parameter
groups, one norm per group. Only those few numbers go to the host. The per-parameter norms are kept
(``param.grad_norm`` rows) on sampled steps, and on steps where the set of parameters that have a
gradient changes (so "never received a gradient" stays exact). When the total turns non-finite on
another step, the per-parameter norms of that step are copied then, once, to name the parameters.

On the CPU the numbers are read at once (a CPU tensor needs no copy): the total is summed in Python
floats (float64) from the per-parameter norms, or, for many small tensors, one float32 norm of the
flat buffer (taken again in float64 only when it overflows). On an accelerator everything stays on
the device until the step's one copy.

So the per-step record cost does not grow with depth: a 500-layer model writes one step row, not a
thousand statistic rows, on its unsampled steps.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch

from .. import measures as M
from . import stats as S
from .buffer import stats_sink

__all__ = ["GradientCollector"]

_GRAD = M.PARAM_GRAD_NORM.name
# Flatten the gradients into one buffer for the total norm when they hold fewer than this many values
# per tensor on average: on the CPU ``_foreach_norm`` costs ~1.3 µs a tensor whatever its size, the
# copy ~0.3 µs per 1,000 values (26 tensors of 2,600 values, a small transformer: 25 µs instead of
# 39 µs; 8 of 8,000: the same; 6 of 89,000, the MLP: 190 µs instead of 60 µs).
_FLATTEN_MAX_MEAN = 8_192
# ... or when they hold this many values in all (a small model: one cat and one norm beat a kernel
# and a read per tensor, ~4 µs instead of ~6-9 µs)
_FLATTEN_MAX_TOTAL = 16_384
# ... and stack the tensors of one shape instead when there are at least this many tensors a shape on
# average (a 500-layer MLP's 1,002 gradients in 3 shapes: ~370 µs instead of ~650 µs, ~1.3 ms in its
# step: `flatten_dense_tensors` makes a view of each tensor first, a dispatch each)
_STACK_MIN_PER_SHAPE = 8
_flatten = torch._C._nn.flatten_dense_tensors
_grad_of = operator.attrgetter("grad")
_item = torch.Tensor.item
_grad_enabled = torch.is_grad_enabled
_set_grad_enabled = torch._C._set_grad_enabled
_NONE_ID = id(None)
# the norms of half-precision gradients are taken in float32 (rounded to 8 bits, a bf16 norm is off by up to 0.4%)
_WIDE = {torch.float16: torch.float32, torch.bfloat16: torch.float32}


def _one(i: int) -> Any:
    get = operator.itemgetter(i)
    return lambda grads: (get(grads),)


def _stacked_total(grads: list[torch.Tensor], shapes: list[Any]) -> float:
    """The total norm of `grads`, from one stack and one norm per shape (norms in float32 or float64,
    summed in float64)."""
    squares = 0.0
    for get in shapes:
        part = get(grads)
        block = torch.stack(part) if len(part) > 1 else part[0]
        v = float(torch.linalg.vector_norm(block, dtype=_WIDE.get(block.dtype)))
        if math.isinf(v):  # float32 overflowed: in float64
            v = float(torch.linalg.vector_norm(block, dtype=torch.float64))
        squares += v * v
    return math.sqrt(squares)


class GradientCollector:
    """Per-step total and group norms; per-parameter norms on sampled steps."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.on = tracer.config.monitoring.gradients
        self.per_param = M.PARAM_GRAD_NORM in tracer.plan
        self.per_group = M.GROUP_GRAD_NORM in tracer.plan
        self._eids: list[int] = []  # the parameters with a gradient at the last measured step
        self._groups: tuple[int, tuple[list[int], list[int]] | None] | None = None  # (registry version, index)
        self._group_idx: tuple[list[int], torch.device, torch.Tensor] | None = None  # that index on the device, once
        # this step's parameters with a gradient (not the gradients: holding them would keep a second
        # set alive through the next forward and backward, after `zero_grad(set_to_none=True)`), their
        # entity ids and their norms (None until needed), to name them after a non-finite total
        self._last: tuple[list[torch.Tensor], list[int], torch.Tensor | list[float] | None] | None = None
        self._layout: tuple[int, list[torch.Tensor], list[int], bool, bool | list[Any], bool] | None = None

    def _tracked(self) -> tuple[list[torch.Tensor], list[int], bool, bool, bool]:
        """(parameters, their entity ids, one fused kernel fits, flatten for the total, on the CPU):
        cached until a model or optimizer is added. A gradient has its parameter's device and dtype."""
        reg = self.tracer.registry
        version = reg.version
        if self._layout is None or self._layout[0] != version:
            tracked = reg.tracked_params()
            params = [p for p, _ in tracked]
            eids = [info.eid for _, info in tracked]
            first = params[0] if params else None
            fused = first is not None and all(
                p.layout == torch.strided and p.device == first.device and p.dtype == first.dtype for p in params)
            # Many small tensors: one copy into a flat buffer and one norm beat a kernel per tensor.
            total = sum(p.numel() for p in params)
            flat: bool | list[Any] = fused and len(params) > 1 and (
                total <= _FLATTEN_MAX_TOTAL or total < _FLATTEN_MAX_MEAN * len(params))
            cpu = fused and first is not None and first.device.type == "cpu"
            if flat and cpu:
                shapes: dict[torch.Size, list[int]] = {}
                for i, p in enumerate(params):
                    shapes.setdefault(p.shape, []).append(i)
                if len(params) >= _STACK_MIN_PER_SHAPE * len(shapes):  # one getter per shape: a tuple of its gradients
                    flat = [operator.itemgetter(*idx) if len(idx) > 1 else _one(idx[0]) for idx in shapes.values()]
            self._layout = (version, params, eids, fused, flat, cpu)
        return self._layout[1:]  # type: ignore[return-value]

    def collect(self, step: int, sampled: bool, scale: Any = None) -> None:
        """Measure the gradients held now (before the optimizer step changes the weights); `scale`:
        the GradScaler scale they still hold (a tensor), divided out (amp.py).

        Runs on every step: written with C-level maps rather than comprehensions (each a Python
        frame in 3.11, and a step's first calls after the optimizer's kernels run cold)."""
        self._last = None
        if not self.on:
            return
        layout = self._layout
        if layout is None or layout[0] != self.tracer.registry.version:
            self._tracked()
            layout = self._layout
        _, params, all_eids, fused, flat, cpu = layout  # type: ignore[misc]
        grads = list(map(_grad_of, params))
        present = grads if _NONE_ID not in map(id, grads) else [g for g in grads if g is not None]
        if not present:
            return
        if len(present) == len(grads):
            eids, owners = all_eids, params
        else:
            eids = [e for e, g in zip(all_eids, grads) if g is not None]
            owners = [p for p, g in zip(params, grads) if g is not None]
        changed = eids is not self._eids and eids != self._eids
        self._eids = eids
        want_params = self.per_param and (sampled or changed)
        index = self._group_index(eids, changed) if self.per_group else None
        # On the CPU the norms are read at once (a norm of gradients made with create_graph=True joins
        # their graph and is dropped with it); on a device they are kept until the step's copy, so they
        # are made outside any graph.
        grad_on = not cpu and _grad_enabled()
        if grad_on:
            _set_grad_enabled(False)
        try:
            if cpu:
                self._on_host(step, present, owners, eids, want_params, index, flat, scale)
            else:
                self._on_device(step, present, owners, eids, want_params, index, fused, flat, scale)
        except RuntimeError:  # a sparse gradient of a dense parameter (nn.Embedding(sparse=True))
            if not fused:
                raise
            self._layout = (self._layout[0], params, all_eids, False, False, False)  # type: ignore[index]
            with torch.no_grad():
                self._on_device(step, present, owners, eids, want_params, index, False, False, scale)
        finally:
            if grad_on:
                _set_grad_enabled(True)

    def _on_host(self, step: int, grads: list[torch.Tensor], owners: list[torch.Tensor], eids: list[int], want_params: bool,
                 index: tuple[list[int], list[int]] | None, flat: bool | list[Any], scale: Any = None) -> None:
        """CPU gradients: the numbers now, as Python floats (float64)."""
        tr = self.tracer
        sink = tr.assembler.grad_norm_sink
        norms: list[float] | None = None
        if flat and not want_params and index is None:
            layout = self._layout  # (None if a watched model was collected meanwhile: `release`)
            if type(flat) is list and layout is not None and owners is layout[1]:  # (every gradient there)
                total = _stacked_total(grads, flat)
            else:
                buf = _flatten(grads)
                total = float(torch.linalg.vector_norm(buf, dtype=_WIDE.get(buf.dtype)))
                if math.isinf(total):  # float32 overflowed (a norm above 1.8e19): in float64
                    total = float(torch.linalg.vector_norm(buf, dtype=torch.float64))
        else:
            norms = list(map(_item, torch._foreach_norm(grads)))
            total = math.hypot(*norms)  # in float64, no overflow of the squares
        if scale is not None:  # still scaled by a GradScaler
            s = float(scale)
            total /= s
            norms = [v / s for v in norms] if norms is not None else None
            sink = tr.assembler.scaled_grad_norm_sink
        self._last = (owners, eids, norms)
        tr.assembler.buffer.add_host([total], sink)
        if index is not None and norms is not None:
            group_of, group_eids = index
            squares = [0.0] * len(group_eids)
            for g, v in zip(group_of, norms):
                squares[g] += v * v
            tr.buffer.add_host([math.sqrt(v) for v in squares],
                               stats_sink(tr.writer, step, [(g, _GRAD) for g in group_eids]))
        if want_params and norms is not None:
            tr.buffer.add_host(norms, stats_sink(tr.writer, step, [(e, _GRAD) for e in eids]))

    def _on_device(self, step: int, grads: list[torch.Tensor], owners: list[torch.Tensor], eids: list[int], want_params: bool,
                   index: tuple[list[int], list[int]] | None, fused: bool, flat: bool, scale: Any = None) -> None:
        """Gradients on an accelerator (or of mixed devices): reduced there, copied with the step."""
        tr = self.tracer
        sink = tr.assembler.grad_norm_sink
        norms = None
        if want_params or index is not None or not flat:
            norms = torch.stack(torch._foreach_norm(grads)) if fused else S.stacked_norms(grads)
            # in float64: the squares of float32 norms above 1.8e19 would overflow
            total = torch.linalg.vector_norm(norms, dtype=torch.float64).reshape(1)
        else:
            total = torch.linalg.vector_norm(_flatten(grads), dtype=torch.float64).reshape(1)
        if scale is not None:  # still scaled by a GradScaler
            s = scale.to(device=total.device, dtype=torch.float64)
            total = total / s
            norms = norms / s if norms is not None else None
            sink = tr.assembler.scaled_grad_norm_sink
        self._last = (owners, eids, norms)
        tr.buffer.add(total, sink)
        if index is not None and norms is not None:
            group_of, group_eids = index
            squares = torch.zeros(len(group_eids), dtype=torch.float64, device=norms.device)
            idx = self._device_index(group_of, norms.device)
            group = squares.index_add_(0, idx, norms.double().square()).sqrt()
            tr.buffer.add(group, stats_sink(tr.writer, step, [(g, _GRAD) for g in group_eids]))
        if want_params and norms is not None:
            tr.buffer.add(norms, stats_sink(tr.writer, step, [(e, _GRAD) for e in eids]))

    def _device_index(self, group_of: list[int], device: torch.device) -> torch.Tensor:
        """`group_of` as a tensor on `device`, copied once per layout (not a host-to-device copy each step)."""
        cached = self._group_idx
        if cached is None or cached[0] is not group_of or cached[1] != device:
            cached = self._group_idx = (group_of, device, torch.tensor(group_of, device=device))
        return cached[2]

    def release(self) -> None:
        """Let go of the parameters held (a watched model was collected): the layout is made anew."""
        self._layout = self._last = None

    def nonfinite_params(self) -> list[str]:
        """Names of the parameters whose gradient norm is not finite at this step (forward order)."""
        if self._last is None:
            return []
        owners, eids, norms = self._last
        if norms is None:  # the gradients the parameters hold now: this step's (an optimizer step
            # leaves them), or at the end of the run the last step's, unless zeroed since
            kept = [(e, p.grad) for e, p in zip(eids, owners) if p.grad is not None]
            if not kept:
                return []
            eids = [e for e, _ in kept]
            norms = S.stacked_norms([g for _, g in kept])
        values = norms.tolist() if isinstance(norms, torch.Tensor) else norms
        names = self.tracer.registry.param_names()
        return [names.get(e, str(e)) for e, v in zip(eids, values) if not math.isfinite(v)]

    def _group_index(self, eids: list[int], changed: bool) -> tuple[list[int], list[int]] | None:
        """Each parameter's group (a position in the group list) and the groups' entities; None with
        fewer than two groups. Cached until the parameters or the registry change."""
        version = self.tracer.registry.version
        if changed or self._groups is None or self._groups[0] != version:
            groups = self.tracer.registry.groups()
            built = None
            if len({groups.get(e) for e in eids}) >= 2:
                order: dict[str | None, int] = {}
                index = [order.setdefault(groups.get(e), len(order)) for e in eids]
                reg = self.tracer.registry
                built = (index, [reg.group_entity(g or "ungrouped") for g in order])
            self._groups = (version, built)
        return self._groups[1]
