"""Activation statistics of a large output, a slice at a time, so that measuring it never costs much memory.

In one piece, the statistics of an output make temporaries as large as the output itself: a float32 copy
of a bf16 or fp16 output, the non-zero pattern, ``x - mean`` (~4.5 times a bf16 output at the peak). On
a sampled step of a model that runs near its memory limit that is enough to run it out of memory: a
language model's logits (8 x 2048 x 32,000 in bf16) are 1 GB. So above `CHUNK_VALUES` values
(`CHUNK_VALUES_CPU` on the CPU: see there), the same statistics come from slices of at most that many values along
the output's outermost axis that allows it, combined exactly: sums, extremes and per-unit counts and
extremes (the temporaries then take at most ~13 bytes per value of a slice, ~55 MB on an accelerator,
whatever the output). The results are those of `stats`'s one-piece kernels up to float rounding, the
counts exact integers, and the standard deviation a cascaded sum of squares: a float32 ``vector_norm``
over 131M values is off by up to 1%.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import torch

__all__ = ["CHUNK_VALUES", "CHUNK_VALUES_CPU", "SLICE_VALUES_CPU", "activation_stats_chunked", "input_chunked", "loss_io_chunked",
           "saturation_chunked", "slices", "unit_axes"]

# Outputs of more values than this are measured a slice at a time, in slices of this many values at
# most (4M values: 16 MB of float32 each temporary; an accelerator's caching allocator reuses their
# blocks slice after slice, and its reductions are cheap passes over memory)
CHUNK_VALUES = 1 << 22
# On the CPU, where the one-piece path (`stats_cpu`) is 4-5x faster than the sliced one (a 32M-value
# output: 80-120 ms against 430-510), outputs of up to 64M values are measured whole (their temporaries
# are then up to ~4x a bf16 output: +1,070 MB for a 250 MB one), larger ones in slices of 16M values:
# glibc serves allocations under 32 MB from its heap, where slice after slice of them grew the peak
# resident set by up to 2.9 GB, at random; 64 MB ones are mapped and unmapped at once.
CHUNK_VALUES_CPU = 1 << 26
SLICE_VALUES_CPU = 1 << 24


def slices(x: torch.Tensor, chunk: int | None = None, keep: int | None = None) -> tuple[int, list[torch.Tensor]] | None:
    """(the axis, the slices of `x` along it, each of at most ~`chunk` values), or None when `x`
    is small enough to measure whole. By default the limits of `x`'s device. `keep`: an axis not to
    slice (a loss input's class axis, summed whole)."""
    if type(x) is not torch.Tensor:  # a subclass (a DTensor's split may gather its shards): in one piece
        return None
    n = x.numel()
    if chunk is None:
        cpu = x.device.type == "cpu"
        if n <= (CHUNK_VALUES_CPU if cpu else CHUNK_VALUES):
            return None
        chunk = SLICE_VALUES_CPU if cpu else CHUNK_VALUES
    if n <= chunk or x.dim() == 0:
        return None
    # the outermost axis whose slices can be small enough: the slices are then long runs of memory
    axes = [d for d in range(x.dim()) if d != keep] or [0]
    axis = next((d for d in axes if n // max(x.shape[d], 1) <= chunk), max(axes, key=lambda d: x.shape[d]))
    per_index = n // x.shape[axis]
    k = max(1, chunk // max(per_index, 1))
    return axis, list(torch.split(x, k, dim=axis))


def unit_axes(x: torch.Tensor) -> list[int]:
    """The candidate unit axes of an output (see `stats.activation_stats`): 1, and for 3-d outputs
    also 2; none for 1-d outputs or a batch of one."""
    if x.dim() < 2 or x.shape[0] < 2:
        return []
    return [1] if x.dim() != 3 else [1, 2]


@torch.no_grad()
def activation_stats_chunked(x: torch.Tensor, names: Collection[str], order: tuple[str, ...], inactive_below: float,
                             chunk: int | None = None) -> torch.Tensor | None:
    """`stats.activation_stats` of a large `x` (the statistics `names`, in `order`), or None when
    `x` is small enough for the one-piece kernels."""
    plan = slices(x.detach(), chunk)
    if plan is None:
        return None
    axis, parts = plan
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    n = x.numel()
    units = unit_axes(x)
    want_units = bool(units) and ("dead_frac" in names or "inactive_frac" in names)
    total = torch.zeros((), device=x.device, dtype=dtype)
    lows: list[torch.Tensor] = []
    highs: list[torch.Tensor] = []
    nonzero = torch.zeros((), device=x.device, dtype=torch.int64)
    # per unit axis: counts of non-zero values, maxima and minima (joined along the slicing axis, summed or
    # reduced across it)
    counts: dict[int, list[torch.Tensor]] = {a: [] for a in units}
    unit_max: dict[int, list[torch.Tensor]] = {a: [] for a in units}
    unit_min: dict[int, list[torch.Tensor]] = {a: [] for a in units}
    for part in parts:
        p = part.detach().to(dtype)
        total += p.sum()
        lo, hi = torch.aminmax(p)
        lows.append(lo)
        highs.append(hi)
        nz = p.ne(0)  # NaN counts as non-zero
        nonzero += nz.sum()
        if want_units:
            for a in units:
                dims = [d for d in range(p.dim()) if d != a]
                counts[a].append(nz.sum(dim=dims))
                if "dead_frac" in names:
                    unit_max[a].append(p.amax(dim=dims))
                    unit_min[a].append(p.amin(dim=dims))
        del p, nz
    mean = total / n
    out: dict[str, torch.Tensor] = {"mean": mean, "nonfinite": (~torch.isfinite(total)).to(dtype),
                                    "min": torch.stack(lows).amin(), "max": torch.stack(highs).amax(),
                                    "zero_frac": (1.0 - nonzero.to(torch.float64) / n).to(dtype)}
    if "std" in names:
        squares = torch.zeros((), device=x.device, dtype=torch.float64)
        for part in parts:
            centred = part.detach().to(dtype) - mean
            squares += centred.square_().sum().to(torch.float64)  # (cascaded; a float32 norm drifts by up to 1%)
        out["std"] = (squares.sqrt() / math.sqrt(n - 1)).to(dtype)
    zero = torch.zeros((), device=x.device, dtype=dtype)
    out["dead_frac"] = out["inactive_frac"] = zero
    if want_units:
        dead, inactive = [], []
        for a in units:
            join = a == axis
            count = torch.cat(counts[a]) if join else torch.stack(counts[a]).sum(0)
            per_unit = n // x.shape[a]
            inactive.append((count.to(torch.float64) / per_unit <= inactive_below).to(dtype).mean())
            if "dead_frac" in names:
                hi = torch.cat(unit_max[a]) if join else torch.stack(unit_max[a]).amax(0)
                lo = torch.cat(unit_min[a]) if join else torch.stack(unit_min[a]).amin(0)
                dead.append(((hi == 0) & (lo == 0)).to(dtype).mean())
        out["inactive_frac"] = torch.stack(inactive).amax()
        if dead:
            out["dead_frac"] = torch.stack(dead).amax()
    return torch.stack([out[k].to(dtype) for k in order if k in names])


@torch.no_grad()
def saturation_chunked(x: torch.Tensor, kind: str, chunk: int | None = None) -> torch.Tensor | None:
    """`stats.saturation` of a large `x` a slice at a time, or None when `x` is small enough."""
    plan = slices(x.detach(), chunk)
    if plan is None:
        return None
    count = torch.zeros((), device=x.device, dtype=torch.int64)
    for part in plan[1]:
        p = part.detach().float()
        count += ((p.abs() > 0.99) if kind in ("Tanh", "Hardtanh") else ((p < 0.01) | (p > 0.99))).sum()
    return (count.to(torch.float64) / x.numel()).to(torch.float32).reshape(1)


@torch.no_grad()
def loss_io_chunked(x: torch.Tensor, tgt: torch.Tensor | None, chunk: int | None = None) -> torch.Tensor | None:
    """`losses.loss_io_stats` of a large loss input `x` (sliced along any axis but the class axis, 1)
    and of its target, or None when both are small enough. The same values as `losses._loss_io_device`
    up to float rounding; its temporaries (a float32 copy, a masked copy, three boolean masks: ~10
    bytes per value of a float32 input) come a slice at a time."""
    if not x.numel():  # (the one-piece path's NaNs)
        return None
    plan = slices(x.detach(), chunk, keep=1)
    tplan = slices(tgt.detach().reshape(-1), chunk) if isinstance(tgt, torch.Tensor) and tgt.numel() else None
    if plan is None and tplan is None:
        return None
    device = x.device
    nan = torch.full((), math.nan, device=device, dtype=torch.float64)
    n = x.numel()
    zero = torch.zeros((), device=device)
    total = torch.zeros((), device=device, dtype=torch.float64)
    in01 = torch.zeros((), device=device, dtype=torch.int64)
    bad = torch.zeros((), device=device, dtype=torch.int64)
    lows, highs, rows = [], [], []
    for part in (plan[1] if plan is not None else [x.detach()]):
        p = part.float()
        finite = torch.isfinite(p)
        bad += p.numel() - finite.sum()
        lo, hi = torch.aminmax(torch.where(finite, p, zero))
        lows.append(lo)
        highs.append(hi)
        total += p.sum().to(torch.float64)  # (a float32 sum: `dtype=float64` would copy the slice on the CPU)
        in01 += ((p >= 0) & (p <= 1)).sum()
        if p.dim() >= 2:
            rows.append((p.sum(1) - 1).abs().amax())
        del p, finite
    values = [torch.stack(lows).amin().double(), torch.stack(highs).amax().double(), total / n,
              torch.stack(rows).amax().double() if rows else nan, in01.double() / n, bad.double() / n]
    tlo = thi = tmean = nan
    if isinstance(tgt, torch.Tensor) and tgt.numel():
        flat = tgt.detach().reshape(-1)
        tl, th, ts = [], [], torch.zeros((), device=device, dtype=torch.float64)
        for part in (tplan[1] if tplan is not None else [flat]):
            t = part.to(device=device, dtype=torch.float32)
            a, b = torch.aminmax(t)
            tl.append(a)
            th.append(b)
            ts += t.sum().to(torch.float64)
        tlo, thi, tmean = torch.stack(tl).amin().double(), torch.stack(th).amax().double(), ts / flat.numel()
    return torch.stack([*values, tlo, thi, tmean])


@torch.no_grad()
def input_chunked(x: torch.Tensor, chunk: int | None = None) -> torch.Tensor | None:
    """`stats.input_stats` of a large model input a slice at a time (never along its channel axis),
    or None when it is small enough: the same values (non-finite values counted, then taken as 0)
    without the one-piece path's float copy, masked copy and centred copies of the whole batch."""
    channels = x.dim() == 4 and x.shape[1] <= 4
    plan = slices(x.detach(), chunk, keep=1 if channels else None)
    if plan is None:
        return None
    axis, parts = plan
    device, n = x.device, x.numel()
    zero = torch.zeros((), device=device)
    f64 = torch.float64
    total = torch.zeros((), device=device, dtype=f64)
    bad = torch.zeros((), device=device, dtype=torch.int64)
    lows, highs = [], []
    batch = x.dim() >= 2 and x.shape[0] > 1
    same = torch.zeros((), device=device, dtype=torch.int64)  # features constant over the batch (sliced across features)
    fmax: torch.Tensor | None = None  # ... or each feature's range (sliced across the batch)
    fmin: torch.Tensor | None = None
    ch_sum = torch.zeros(x.shape[1] if channels else 0, device=device, dtype=f64)

    def clean(part: torch.Tensor) -> torch.Tensor:
        p = part.detach().float()
        return torch.where(torch.isfinite(p), p, zero)

    for part in parts:
        p = part.detach().float()
        finite = torch.isfinite(p)
        bad += p.numel() - finite.sum()
        c = torch.where(finite, p, zero)
        del p, finite
        lo, hi = torch.aminmax(c)
        lows.append(lo)
        highs.append(hi)
        total += c.sum().to(f64)
        if batch:
            flat = c.reshape(c.shape[0], -1)
            if axis == 0:
                top, bottom = flat.amax(0), flat.amin(0)
                fmax = top if fmax is None else torch.maximum(fmax, top)
                fmin = bottom if fmin is None else torch.minimum(fmin, bottom)
            else:
                same += (flat.amax(0) == flat.amin(0)).sum()
        if channels:
            ch_sum += c.sum(dim=(0, 2, 3)).to(f64)
    nan = torch.full((), math.nan, device=device, dtype=f64)
    mean = total / n
    per_channel = n // x.shape[1] if channels else 1
    ch_mean = ch_sum / per_channel
    squares = torch.zeros((), device=device, dtype=f64)
    ch_squares = torch.zeros_like(ch_sum)
    for part in parts:
        c = clean(part)
        squares += (c - mean.float()).square_().sum().to(f64)
        if channels:
            ch_squares += (c - ch_mean.float()[None, :, None, None]).square_().sum(dim=(0, 2, 3)).to(f64)
    if batch:
        features = n // x.shape[0]
        const = ((fmax == fmin).sum() if axis == 0 else same).to(f64) / features  # type: ignore[operator]
    else:
        const = nan
    ch = [nan] * 8
    if channels:
        ch_std = (ch_squares / max(per_channel - 1, 1)).sqrt()
        for i in range(x.shape[1]):
            ch[i], ch[4 + i] = ch_mean[i], ch_std[i]
    out = [mean, (squares / (n - 1)).sqrt(), torch.stack(lows).amin().to(f64), torch.stack(highs).amax().to(f64),
           bad.to(f64) / n, const, *ch]
    return torch.stack(out).to(torch.float32)
