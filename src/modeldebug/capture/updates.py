"""UpdateCollector: what an optimizer step does to the weights, on sampled steps.

Before a sampled optimizer step, a copy of every tracked parameter; after it, the change is
subtracted into that copy in place and the norms of the changes and of the weights are taken in one
fused call per device and dtype: ``update_ratio`` (‖Δw‖/‖w‖) and ``param_norm`` rows. The copy is
the cost, so it is taken only when a rule reads either measure.

On the CPU the copy goes into buffers kept between sampled steps (for models of up to 64 MiB of
parameters): a fresh 2 MB copy (the MLP's weights) cost 0.35-0.77 ms a sampled step, as the C
allocator returned the memory and faulted it back in, the kept one 0.34 ms every time. The price is
that memory, held between sampled steps (the peak is the same as before) until `release` (the
session's end). On accelerators the caching allocator already reuses the blocks, so the copy is made
afresh and freed after the step.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import measures as M
from . import stats as S
from .buffer import stats_sink

__all__ = ["UpdateCollector", "update_rows"]

# CPU models with at most this many bytes of parameters keep the copy's buffers between sampled steps.
_KEEP_MAX_BYTES = 1 << 26


class UpdateCollector:
    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.on = tracer.plan.any((M.UPDATE_RATIO, M.PARAM_NORM))
        # (the weights, their entities, their copies from before the step)
        self._before: tuple[list[torch.Tensor], list[int], list[torch.Tensor]] | None = None
        # (the tracked-parameter list the buffers were made for, the buffers)
        self._kept: tuple[list[Any], list[torch.Tensor]] | None = None

    def before_step(self) -> None:
        """Copy the weights the optimizer is about to change."""
        if not self.on:
            return
        tracked = self.tracer.registry.tracked_params()
        if not tracked:
            return
        ps = [p.detach() for p, _ in tracked]
        self._before = (ps, [info.eid for _, info in tracked], self._weight_copies(tracked, ps))

    def _weight_copies(self, tracked: list[Any], ps: list[torch.Tensor]) -> list[torch.Tensor]:
        """A copy of each weight: into the kept buffers on the CPU, fresh on accelerators."""
        bufs = self._buffers(tracked, ps)
        if bufs is None:
            return [p.clone() for p in ps]
        torch._foreach_copy_(bufs, ps)
        return bufs

    def _buffers(self, tracked: list[Any], ps: list[torch.Tensor]) -> list[torch.Tensor] | None:
        """The kept CPU buffers for `ps` (made on first use or when a parameter changed shape, dtype
        or device), or None: parameters off the CPU, not strided, or too large to keep."""
        kept = self._kept
        if kept is not None and kept[0] is tracked and all(
                b.shape == p.shape and b.dtype == p.dtype and p.device.type == "cpu" for b, p in zip(kept[1], ps)):
            return kept[1]
        self._kept = None
        if any(p.device.type != "cpu" or p.layout != torch.strided for p in ps):
            return None
        if sum(p.numel() * p.element_size() for p in ps) > _KEEP_MAX_BYTES:
            return None
        bufs = [torch.empty_like(p) for p in ps]
        self._kept = (tracked, bufs)
        return bufs

    def after_step(self, step: int) -> None:
        """The step's update ratios and weight norms (they ride on the next step's host copy)."""
        before, self._before = self._before, None
        if not before:
            return
        ps, eids, copies = before
        torch._foreach_sub_(copies, ps)  # w_before - w_after: the norm of the update, in the copy
        norms = S.norms(copies + ps)  # one fused call per device and dtype
        n = len(ps)
        tr = self.tracer
        sink = stats_sink(tr.writer, step, [(e, M.UPDATE_RATIO.name) for e in eids] +
                          [(e, M.PARAM_NORM.name) for e in eids])
        rows = update_rows(norms, n, host=all(v.device.type == "cpu" for v in norms))
        if type(rows) is list:
            tr.buffer.add_host(rows, sink)
        else:
            tr.buffer.add(rows, sink)

    def weights_only(self, step: int) -> None:
        """Weight norms at the end of a sampled step no optimizer stepped (hand-written updates):
        the `param_norm` rows (no update ratio: nothing marks where such an update starts). They
        ride on the next step's host copy, as the optimizer's do."""
        if M.PARAM_NORM not in self.tracer.plan:
            return
        tracked = self.tracer.registry.tracked_params()
        if not tracked:
            return
        tr = self.tracer
        w = torch.stack(S.norms([p.detach() for p, _ in tracked])).to(torch.float64)
        tr.buffer.add(w, stats_sink(tr.writer, step, [(info.eid, M.PARAM_NORM.name) for _, info in tracked]))

    def drop(self) -> None:
        self._before = None

    def release(self) -> None:
        """Let the kept buffers go (the session is over)."""
        self._before = self._kept = None


def update_rows(norms: list[torch.Tensor], n: int, host: bool) -> list[float] | torch.Tensor:
    """The update ratios ‖Δw‖/‖w‖ then the weight norms, from the norms of the `n` changes then of
    the `n` weights: as floats read now (`host`: on the CPU, where reading waits for nothing), else
    as one float64 tensor on the first norm's device (copied with the step's other numbers)."""
    if host:
        values = torch.stack(norms).tolist()
        d, w = values[:n], values[n:]
        return [a / max(b, 1e-30) for a, b in zip(d, w)] + w
    device = norms[0].device
    w64 = torch.stack([v.to(device) for v in norms[n:]]).to(torch.float64)
    d64 = torch.stack([v.to(device) for v in norms[:n]]).to(torch.float64)
    return torch.cat([d64 / w64.clamp_min(1e-30), w64])
