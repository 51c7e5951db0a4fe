"""UpdateCollector: what an optimizer step does to the weights, on sampled steps.

Before a sampled optimizer step, a copy of every parameter that optimizer holds (another
optimizer's weights do not move in its step: a GAN's, or several models' stepped in turn); after
it, the change is subtracted into that copy in place and the norms of the changes and of the
weights are taken in one fused call per device and dtype: ``update_ratio`` (‖Δw‖/‖w‖) and
``param_norm`` rows. The copy is the cost, so it is taken only when a rule reads either measure.

On the CPU the copy goes into buffers kept between sampled steps, one set per optimizer (for up to
64 MiB of parameters, all optimizers' together): a fresh 2 MB copy (the MLP's weights) cost 0.35-0.77 ms a sampled step, as the C
allocator returned the memory and faulted it back in, the kept one 0.34 ms every time. The price is
that memory, held between sampled steps (the peak is the same as before) until `release` (the
session's end). On accelerators the caching allocator already reuses the blocks, so the copy is made
afresh and freed after the step.

The copy is bounded: a model of more than 64 MiB of parameters would otherwise add a whole copy of
its weights to the peak memory of every sampled step (a 7B model in bf16: 14 GB, every 50 steps).
Above that, each tensor's update is measured on a systematic sample of its values (every k-th, k the
model's size over 64 MiB, at least 1,024 values a tensor, and a value of every row of a matrix where
that costs at most twice its share: `_samples`): ``update_ratio`` is then ‖Δw‖/‖w‖ over those values,
an estimate (unknown, NaN, when a sample that skipped rows saw no change but the whole norm moved),
and ``param_norm`` stays exact (taken on the whole tensor after the step, without a copy).
`benchmarks/peak_memory.py` measures what watching adds to the peak.

The kept copies are views into one flat buffer per dtype, the tensors ordered by size (`_Kept`): the
norms of the updates are one row-wise ``vector_norm`` per size, and a model of many small tensors
(at most 16 MiB, 16 KiB a tensor on average) keeps a second copy for the weights after the step, so
its weight norms are row-wise too (a 500-layer MLP's 2,004 norms: ~2.8 ms one tensor at a time, a
few kernels now). Whether the parameters are still the same is one comparison of data pointers.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .. import measures as M
from . import stats as S
from .buffer import stats_sink

__all__ = ["UpdateCollector", "update_rows"]

# CPU models with at most this many bytes of parameters keep the copy's buffers between sampled steps.
_KEEP_MAX_BYTES = 1 << 26
# ... and with at most this many bytes and tensors of this mean size or less, a second kept copy
# for the weights after the step: their norms then come from a few row-wise kernels instead of one
# per tensor (a 500-layer model's 1,002 small tensors: ~1.4 µs of dispatch each)
_SMALL_MAX_BYTES = 1 << 24
_SMALL_MEAN_BYTES = 1 << 14
# The most bytes the copy of the weights before a sampled step may take; above it, samples of them
_COPY_MAX_BYTES = 1 << 26
# ... of at least this many values a tensor (a smaller tensor is copied whole)
_MIN_SAMPLE = 1024


def _samples(ps: list[torch.Tensor]) -> list[torch.Tensor] | None:
    """Views of every k-th value of each weight, so that their copies take at most about
    `_COPY_MAX_BYTES` (plus `_MIN_SAMPLE` values a tensor, and up to twice a matrix's share to hold
    a value of each of its rows: `_matrix_stride`); None when the whole weights fit. See
    `_skips_rows` for the matrices whose sample leaves rows out."""
    total = sum(p.numel() * p.element_size() for p in ps)
    if total <= _COPY_MAX_BYTES:
        return None
    k = -(-total // _COPY_MAX_BYTES)
    views = []
    for p in ps:
        # (a tensor subclass, a DTensor shard, say, whose views may gather it: copied whole, as before)
        step = min(k, max(1, p.numel() // _MIN_SAMPLE)) if type(p) is torch.Tensor else 1
        if step > 1 and p.dim() == 2 and p.is_contiguous():
            step = _matrix_stride(step, p.shape[1])
        if step == 1:
            views.append(p)
        elif p.is_contiguous():
            views.append(p.view(-1)[::step])
        else:  # (a transposed weight, say): every step-th slice of its first dimension, or all of it
            views.append(p[::step] if p.shape[0] >= step * 2 else p)
    return views


def _skips_rows(p: torch.Tensor, view: torch.Tensor) -> bool:
    """Does `view`, `p`'s sample, leave rows of the matrix `p` out (an update of those rows alone
    would read as 0)?"""
    if p.dim() != 2 or view is p:
        return False
    if p.is_contiguous():
        return view.stride()[0] > p.shape[1]
    return view.shape[0] < p.shape[0]


def _matrix_stride(step: int, cols: int) -> int:
    """The stride of a sample of a matrix of `cols` columns, near `step` (its share of the budget).

    A matrix's rows may be updated alone (an embedding's, by the ids of a batch), and a sample that
    skipped them would read such an update as 0, "never moved" (OPT001). A stride of at most a row's
    length puts a value of every row in the sample, and one sharing no factor with it walks them over
    the columns (a column without gradient, an input feature always 0, cannot hide a row). Rows
    shorter than `step` would need more than the share: up to twice it, a stride of `cols - 1` (every
    row, the columns in turn); beyond, a stride from `step` up that shares no factor with `cols` (all
    the columns, rows skipped)."""
    if step <= cols:
        return _coprime_near(step, cols, range(step, 1, -1), range(step + 1, 2 * step + 1)) or step
    if step <= 2 * cols and cols >= 2:
        return max(cols - 1, 2)
    return _coprime_near(step, cols, range(step, 2 * step + 1)) or step


def _coprime_near(step: int, cols: int, *tries: range) -> int | None:
    """The first stride of `tries` that shares no factor with `cols`, if any."""
    return next((s for r in tries for s in r if math.gcd(s, cols) == 1), None)


class _Kept:
    """The CPU buffers of one tracked-parameter list, kept between sampled steps.

    Each dtype's copies are views into one flat buffer, the parameters ordered by size, so that the
    copies of the tensors of one size form one (count, size) block: the norms of the updates are one
    ``vector_norm(block, dim=1)`` per size, not one kernel per tensor. Rows and values follow that
    order (`ps`, `eids`)."""

    __slots__ = ("after", "after_blocks", "blocks", "bufs", "eids", "nbytes", "ps", "ptrs", "rows", "tracked")

    def __init__(self, tracked: list[Any], ps: list[torch.Tensor], eids: list[int], small: bool) -> None:
        order = sorted(range(len(ps)), key=lambda i: (str(ps[i].dtype), ps[i].numel()))
        self.tracked = tracked
        self.ps = [ps[i] for i in order]
        self.eids = [eids[i] for i in order]
        self.ptrs = [p.data_ptr() for p in self.ps]
        self.bufs, self.blocks = _flat_views(self.ps)
        self.after, self.after_blocks = _flat_views(self.ps) if small else (None, [])
        self.nbytes = sum(p.numel() * p.element_size() for p in self.ps)  # of the weights (`_KEEP_MAX_BYTES`)
        self.rows = [(e, M.UPDATE_RATIO.name) for e in self.eids] + [(e, M.PARAM_NORM.name) for e in self.eids]


def _flat_views(ps: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One view per tensor of `ps` (ordered by dtype and size) into one new flat buffer per dtype,
    and the (count, size) blocks of the views of one dtype and size."""
    views: list[torch.Tensor] = []
    blocks: list[torch.Tensor] = []
    i = 0
    while i < len(ps):
        dtype = ps[i].dtype
        j = i
        while j < len(ps) and ps[j].dtype == dtype:
            j += 1
        flat = torch.empty(sum(p.numel() for p in ps[i:j]), dtype=dtype)
        pos = 0
        while i < j:
            size = ps[i].numel()
            k = i
            while k < j and ps[k].numel() == size:
                k += 1
            block = flat[pos:pos + (k - i) * size].view(k - i, size)
            blocks.append(block)
            views.extend(block[r].view(ps[i + r].shape) for r in range(k - i))
            pos += (k - i) * size
            i = k
    return views, blocks


class UpdateCollector:
    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.on = tracer.plan.any((M.UPDATE_RATIO, M.PARAM_NORM))
        # (the weights, their entities, their copies from before the step, the views copied when
        # those are samples of the weights, and of the matrices whose samples skip rows their
        # positions and whole norms before the step), off the kept path
        self._before: tuple[list[torch.Tensor], list[int], list[torch.Tensor], list[torch.Tensor] | None,
                            list[int], list[torch.Tensor]] | None = None
        # the kept CPU buffers of this step's optimizer; `_armed`: they hold this step's copy
        self._kept: _Kept | None = None
        self._armed = False
        # every optimizer's kept buffers (several step in turn), by id of its `held_params` list,
        # for the registry's `version` (a model or optimizer added: its lists are new)
        self._kept_by: dict[int, _Kept] = {}
        self._version = -1

    def before_step(self, opt: torch.optim.Optimizer) -> None:
        """Copy the weights the optimizer `opt` is about to change (its own: another optimizer's
        weights do not move in this step)."""
        if not self.on:
            return
        reg = self.tracer.registry
        tracked = reg.held_params(opt)
        if not tracked:
            return
        if reg.version != self._version:
            self._kept_by.clear()
            self._version = reg.version
        kept = self._kept = self._kept_by.get(id(tracked))
        if kept is None or list(map(torch.Tensor.data_ptr, kept.ps)) != kept.ptrs:
            kept = self._keep(tracked)  # new parameters, or one moved (`.to`, `.data = ...`): made anew
        if kept is not None:
            with torch.no_grad():
                self._weight_copies(kept.bufs, kept.ps)
            self._armed = True
            return
        ps = [p.detach() for p, _ in tracked]
        views = _samples(ps)
        skips = [i for i, (p, v) in enumerate(zip(ps, views)) if _skips_rows(p, v)] if views is not None else []
        self._before = (ps, [info.eid for _, info in tracked], [v.clone() for v in (views or ps)], views, skips,
                        S.norms([ps[i] for i in skips]))

    @staticmethod
    def _weight_copies(bufs: list[torch.Tensor], ps: list[torch.Tensor]) -> None:
        """A copy of each weight, into the kept buffers (one fused call)."""
        torch._foreach_copy_(bufs, ps)

    def _keep(self, tracked: list[Any]) -> _Kept | None:
        """The kept CPU buffers for `tracked`, or None: parameters off the CPU, not strided, or too
        large to keep (then copied afresh each sampled step)."""
        self._kept = None
        self._kept_by.pop(id(tracked), None)  # what it kept before: let go
        ps = [p.detach() for p, _ in tracked]
        if any(p.device.type != "cpu" or p.layout != torch.strided for p in ps):
            return None
        total = sum(p.numel() * p.element_size() for p in ps)
        kept = sum(k.nbytes for k in self._kept_by.values())  # the bound is on every optimizer's weights together
        if total + kept > _KEEP_MAX_BYTES:
            return None
        small = total <= _SMALL_MAX_BYTES and total <= _SMALL_MEAN_BYTES * len(ps)
        self._kept = self._kept_by[id(tracked)] = _Kept(tracked, [p for p, _ in tracked],
                                                        [info.eid for _, info in tracked], small)
        return self._kept

    def after_step(self, step: int) -> None:
        """The step's update ratios and weight norms (they ride on the next step's host copy)."""
        tr = self.tracer
        if self._armed:
            self._armed = False
            kept = self._kept
            if kept is None:  # let go meanwhile (`release`: a watched model was collected)
                return
            rows = _kept_rows(kept)
            tr.buffer.add_host(rows, stats_sink(tr.writer, step, kept.rows))
            return
        before, self._before = self._before, None
        if not before:
            return
        ps, eids, copies, views, skips, skipped_before = before
        torch._foreach_sub_(copies, views or ps)  # w_before - w_after: the norm of the update, in the copy
        n = len(ps)
        if views is None:
            norms = S.norms(copies + ps)  # one fused call per device and dtype
        else:  # ‖Δw‖/‖w‖ over the samples, the weight norms of the whole tensors
            norms = S.norms(copies + views)
            whole = S.norms(ps)
        rows = update_rows(norms, n, host=all(v.device.type == "cpu" for v in norms))
        if views is not None:
            rows = _whole_norms(rows, whole, n)
            if skips:
                rows = _unseen_updates(rows, n, skips, skipped_before)
        sink = stats_sink(tr.writer, step, [(e, M.UPDATE_RATIO.name) for e in eids] +
                          [(e, M.PARAM_NORM.name) for e in eids])
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
        self._armed = False

    def release(self) -> None:
        """Let the kept buffers go (the session is over, or a watched model was collected)."""
        self._before = self._kept = None
        self._kept_by.clear()
        self._armed = False


@torch.no_grad()
def _kept_rows(kept: _Kept) -> list[float]:
    """The update ratios then the weight norms, in `kept`'s order, from its copy of the weights
    before the step (`update_rows`' values: the same norms, the ratios divided in float64)."""
    if kept.after is not None:  # small tensors: the weights after the step copied too, then row norms
        torch._foreach_copy_(kept.after, kept.ps)
        for before, after in zip(kept.blocks, kept.after_blocks):
            before.sub_(after)  # w_before - w_after, a block at a time
        d = torch.cat([torch.linalg.vector_norm(b, dim=1) for b in kept.blocks]).tolist()
        w = torch.cat([torch.linalg.vector_norm(b, dim=1) for b in kept.after_blocks]).tolist()
    else:
        torch._foreach_sub_(kept.bufs, kept.ps)
        if 2 * len(kept.blocks) > len(kept.bufs):  # mostly one tensor a size (an MLP): one fused call
            d = torch.stack(torch._foreach_norm(kept.bufs)).tolist()
        else:
            d = torch.cat([torch.linalg.vector_norm(b, dim=1) for b in kept.blocks]).tolist()
        w = torch.stack(torch._foreach_norm(kept.ps)).tolist()
    return [a / max(b, 1e-30) for a, b in zip(d, w)] + w


def _whole_norms(rows: list[float] | torch.Tensor, whole: list[torch.Tensor], n: int) -> list[float] | torch.Tensor:
    """`update_rows`' ratios with the norms of the whole weights after them, in its form."""
    if type(rows) is list:
        return rows[:n] + torch.stack(whole).tolist()
    device = rows.device
    return torch.cat([rows[:n], torch.stack([v.to(device) for v in whole]).to(torch.float64)])


def _unseen_updates(rows: list[float] | torch.Tensor, n: int, skips: list[int],
                    before: list[torch.Tensor]) -> list[float] | torch.Tensor:
    """A sample that skipped rows and saw no change is no proof of none: when the matrix's whole norm
    moved, its ratio is unknown (NaN), not 0 ("never moved")."""
    if type(rows) is list:
        for i, b in zip(skips, before):
            if rows[i] == 0.0 and float(b) != rows[n + i]:
                rows[i] = math.nan
        return rows
    idx = torch.tensor(skips, device=rows.device)
    b64 = torch.stack([b.to(rows.device) for b in before]).to(torch.float64)
    ratio = rows[idx]
    rows[idx] = torch.where((ratio == 0) & (b64 != rows[n + idx]), torch.full_like(ratio, math.nan), ratio)
    return rows


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
