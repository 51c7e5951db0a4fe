"""The statistics of `stats` on the CPU: fewer passes, no temporaries where a reduction suffices.

On the CPU reading a number waits for nothing (there is no device to synchronise), so a statistic
may branch on what an earlier pass found. Each function here gives exactly what its counterpart in
`stats` gives (the same statistics, the same definitions; values equal to float rounding) and is
used for plain CPU tensors only; accelerators keep `stats`' branch-free kernels.

- **One sum says whether anything is non-finite.** A finite sum means no NaN and no Inf (either
  would make it NaN or Inf), so the usual all-finite batch skips the ``isfinite`` mask, the
  ``where`` copy and the NaN repair (each a full pass, the mask ~25x slower than a float pass on
  this CPU). A sum that is not finite (a NaN, an Inf, or finite values whose float32 sum
  overflows) takes the exact general path.
- **The zero pattern once, counted per unit.** ``|sign(x)|`` (1 where x != 0) is written into a
  reused scratch buffer (no fresh pages per call: an 8 MB temporary costs ~0.5 ms of page faults)
  and summed over the batch axes once: the per-unit non-zero counts. The zero fraction is their
  total, a dead unit has count 0 (zero on every sample), an inactive unit count/N <= 1%. Before,
  each of the three took its own passes (a max and a min over the batch for the dead units, a
  mean for the inactive ones). For (N, C, L) outputs the (C, L) counts give both candidate axes.
- Scalars are read as Python floats and returned as one tensor (no ``stack`` of 0-d tensors).
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Collection

import numpy as np
import torch

__all__ = ["activation_values", "fast_path", "input_values", "label_counts", "loss_io_values", "scratch"]

#: A unit is inactive when it is non-zero on at most this fraction of the batch (= stats.INACTIVE_BELOW).
INACTIVE_BELOW = 0.01
# Scratch buffers up to this many elements are kept between calls (16 MiB of float32), per thread.
_SCRATCH_MAX = 1 << 22
_local = threading.local()


def fast_path(x: torch.Tensor) -> bool:
    """Is `x` a plain, non-empty CPU tensor (no subclass) that the functions here may reduce?"""
    return type(x) is torch.Tensor and x.device.type == "cpu" and x.numel() > 0


def scratch(x: torch.Tensor) -> torch.Tensor:
    """A contiguous buffer of `x`'s shape and dtype, reused between calls (its contents are garbage)."""
    if x.numel() > _SCRATCH_MAX:
        return torch.empty(x.shape, dtype=x.dtype)
    views: dict[tuple[torch.dtype, torch.Size], torch.Tensor] | None = getattr(_local, "views", None)
    if views is None:
        views = _local.views = {}
        _local.bases = {}
    key = (x.dtype, x.shape)
    view = views.get(key)
    if view is None:
        n, base = x.numel(), _local.bases.get(x.dtype)
        if base is None or base.numel() < n:
            base = _local.bases[x.dtype] = torch.empty(n, dtype=x.dtype)
            views.clear()  # the old views keep the old base alive: let them go
        if len(views) >= 64:  # many shapes (variable sequence lengths): start over
            views.clear()
        view = views[key] = base[:n].view(x.shape)
    return view


def _std(x: torch.Tensor, mean: float, n: int) -> float:
    """The sample standard deviation (as `stats._std` on the CPU): from ||x|| when |mean| <= 10 std
    (float32 cancellation stays under ~1e-5), else from ||x - mean||."""
    sumsq = float(torch.linalg.vector_norm(x)) ** 2
    var = (sumsq - n * mean * mean) / (n - 1)
    if math.isfinite(var) and var > 0 and mean * mean <= 100.0 * var:
        return math.sqrt(var)
    return float(torch.linalg.vector_norm(x - mean)) / math.sqrt(n - 1)


def activation_values(x: torch.Tensor, names: Collection[str], order: tuple[str, ...]) -> list[float]:
    """`stats.activation_stats` of a float32/float64 CPU tensor `x`, as floats in `order` (those in `names`)."""
    n = x.numel()
    total = float(x.sum())
    finite = math.isfinite(total)
    out: dict[str, float] = {}
    if "mean" in names or "std" in names or "nonfinite" in names:
        mean = total / n
        out["mean"] = mean
        out["std"] = _std(x, mean, n) if n > 1 and "std" in names else 0.0
        out["nonfinite"] = 0.0 if finite else 1.0
    if "min" in names or "max" in names:
        lo, hi = torch.aminmax(x)
        out["min"], out["max"] = float(lo), float(hi)
    zeros, units = "zero_frac" in names, "inactive_frac" in names or "dead_frac" in names
    if zeros or units:
        if finite:
            nonzero = torch.sign(x, out=scratch(x))  # 1 where x > 0, -1 where x < 0
            if out.get("min", -1.0) < 0.0:  # not known to be >= 0 (a ReLU's output is)
                nonzero.abs_()
        else:  # NaN counts as non-zero, as in `x != 0` (sign(NaN) is 0 on the CPU)
            nonzero = x.ne(0).to(x.dtype)
        counts = _unit_counts(nonzero) if units else []
        if zeros:
            alive = counts[0][0].sum(dtype=np.float64) if counts else float(nonzero.sum())
            out["zero_frac"] = 1.0 - float(alive) / n
        # the units' fractions from their counts, in numpy (a small array: ~1 µs a call, not ~4)
        if "inactive_frac" in names:
            out["inactive_frac"] = max((int(np.count_nonzero(c <= _inactive_at_most(per))) / c.size
                                        for c, per in counts), default=0.0)
        if "dead_frac" in names:
            out["dead_frac"] = max(((c.size - int(np.count_nonzero(c))) / c.size for c, _ in counts), default=0.0)
    return [out[k] for k in order if k in names]


@functools.lru_cache(maxsize=256)
def _inactive_at_most(per: int) -> int:
    """The most non-zero values (of `per` per unit) an inactive unit has: the largest count c with
    float32(c / per) <= float32(INACTIVE_BELOW), the test the general path makes on the float32 mean
    (monotonic in c, so one integer threshold replaces a division and a comparison per unit)."""
    below, p = np.float32(INACTIVE_BELOW), np.float32(per)
    k = int(INACTIVE_BELOW * per)
    while k + 1 <= per and np.float32(k + 1) / p <= below:
        k += 1
    while k >= 0 and np.float32(k) / p > below:
        k -= 1
    return k


def _unit_counts(nonzero: torch.Tensor) -> list[tuple[np.ndarray, int]]:
    """Each candidate unit axis's non-zero count per unit (float, exact) and the values per unit;
    none for outputs without a batch of 2+ samples. The unit axis: 1 for 2-d, 4-d and 5-d outputs;
    for 3-d both 1 and 2 (see `stats.activation_stats`)."""
    if nonzero.dim() < 2 or nonzero.shape[0] < 2:
        return []
    n = nonzero.numel()
    if nonzero.dim() == 3:
        per_cl = nonzero.sum(0).numpy()  # (C, L): one pass over the batch, then two small reductions
        return [(per_cl.sum(1), n // nonzero.shape[1]), (per_cl.sum(0), n // nonzero.shape[2])]
    dims = [d for d in range(nonzero.dim()) if d != 1]
    return [(nonzero.sum(dim=dims).numpy(), n // nonzero.shape[1])]


def _finite_sum(x: torch.Tensor) -> float | None:
    """The sum of `x`, or None when it is not finite: then `x` holds a NaN or an Inf (or its float32
    sum overflows), and the caller takes the general path that masks them out."""
    total = float(x.sum())
    return total if math.isfinite(total) else None


def input_values(x: torch.Tensor) -> list[float] | None:
    """`stats.input_stats` of a float32 CPU tensor, or None when the batch holds a non-finite value
    (or its float32 sum overflows): the general path then masks them out."""
    n, total = x.numel(), _finite_sum(x)
    if total is None:
        return None
    nan = math.nan
    lo, hi = torch.aminmax(x)
    if x.dim() >= 2 and x.shape[0] > 1:
        flat = x.reshape(x.shape[0], -1)
        const = np.count_nonzero(flat.amax(0).numpy() == flat.amin(0).numpy()) / flat.shape[1]
    else:
        const = nan
    ch_mean, ch_std = [nan] * 4, [nan] * 4
    if x.dim() == 4 and x.shape[1] <= 4:
        ch_mean[:x.shape[1]] = x.mean(dim=(0, 2, 3)).tolist()
        ch_std[:x.shape[1]] = x.std(dim=(0, 2, 3)).tolist()
    mean = total / n
    std = _std(x, mean, n) if n > 1 else nan
    return [mean, std, float(lo), float(hi), 0.0, const, *ch_mean, *ch_std]


def loss_io_values(x: torch.Tensor, tgt: torch.Tensor | None) -> list[float] | None:
    """`losses.loss_io_stats` of a float32 CPU input `x` (and a CPU target), or None when `x`
    holds a non-finite value (the general path then masks them out). About ten kernels instead of
    ~20: no mask, the values in [0, 1] counted only when the range leaves it open, the largest
    |row sum - 1| from the row sums' range, the target's range and sum read without a float copy."""
    n, total = x.numel(), _finite_sum(x)
    if total is None:
        return None
    nan = math.nan
    lo_t, hi_t = torch.aminmax(x)
    lo, hi = float(lo_t), float(hi_t)
    if lo >= 0.0 and hi <= 1.0:  # the range decides it: no per-value test
        frac01 = 1.0
    elif hi < 0.0 or lo > 1.0:
        frac01 = 0.0
    else:  # (a one-bin `histc` is ~7x slower than these boolean passes on large inputs)
        frac01 = float(((x >= 0) & (x <= 1)).sum()) / n
    rowsum = nan
    if x.dim() >= 2:
        rs_lo, rs_hi = torch.aminmax(x.sum(1))  # max |s - 1| is at the smallest or the largest row sum
        rowsum = max(abs(float(rs_lo) - 1.0), abs(float(rs_hi) - 1.0))
    tlo = thi = tmean = nan
    if tgt is not None and tgt.numel():
        t = tgt.detach()
        if t.is_floating_point() and t.dtype != torch.float32 or t.dtype == torch.bool or t.is_complex():
            t = t.to(torch.float32)
        tl, th = torch.aminmax(t)
        tlo, thi, tmean = float(tl), float(th), float(t.sum()) / t.numel()
    return [lo, hi, total / n, rowsum, frac01, 0.0, tlo, thi, tmean]


def label_counts(classes: int, tgt: torch.Tensor) -> list[float] | None:
    """`losses.label_histogram` of an integer CPU target whose labels all lie in [0, classes):
    one range check and one ``bincount`` (no remapping of out-of-range labels); None otherwise."""
    t = tgt.detach().reshape(-1)
    if t.dtype != torch.int64:
        t = t.to(torch.int64)
    lo, hi = torch.aminmax(t)
    if int(lo) < 0 or int(hi) >= classes:
        return None
    return torch.bincount(t, minlength=classes + 1).tolist()
