"""On-device statistics of activations and parameters.

Every function returns tensors that stay on the tensor's device; the tracer stacks one step's
results and copies them to the host once. Nothing here keeps a reference to its input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection

import torch

from .. import measures as M
from . import stats_chunked, stats_cpu

__all__ = [
    "ACTIVATION_STATS",
    "INPUT_STATS",
    "SATURATING",
    "activation_stats",
    "activation_values",
    "any_tensor",
    "differences",
    "first_tensor",
    "histogram",
    "input_stats",
    "input_values",
    "norms",
    "odd_layout",
    "saturation",
    "stacked_norms",
    "unmeasurable",
]

#: A unit is inactive (`inactive_frac`) when it is non-zero on at most this fraction of the batch.
INACTIVE_BELOW = 0.01
# The order of the values activation_stats returns; the record stores them under these names.
ACTIVATION_STATS: tuple[str, ...] = tuple(m.name for m in M.ACTIVATION_STATS)


def first_tensor(value: object) -> torch.Tensor | None:
    """The first floating-point tensor in a module output (tensor, tuple, list or dict)."""
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else None
    if isinstance(value, (tuple, list)):
        for v in value:
            t = first_tensor(v)
            if t is not None:
                return t
    if isinstance(value, dict):
        for v in value.values():
            t = first_tensor(v)
            if t is not None:
                return t
    return None


def any_tensor(value: object) -> torch.Tensor | None:
    """The first tensor of any kind in a module output (to say why it cannot be measured)."""
    if isinstance(value, torch.Tensor):
        return value
    values = value if isinstance(value, (tuple, list)) else value.values() if isinstance(value, dict) else ()
    for v in values:
        t = any_tensor(v)
        if t is not None:
            return t
    return None


def odd_layout(t: torch.Tensor) -> str | None:
    """Why `t` holds no plain strided data to reduce (meta, nested, sparse, quantized), else None."""
    if t.is_meta:
        return "a meta tensor (shape only, no data)"
    if t.is_nested:
        return "a nested tensor"
    if t.layout != torch.strided:
        return f"a {str(t.layout).replace('torch.', '')} tensor"
    if t.is_quantized:
        return f"a quantized tensor ({str(t.dtype).replace('torch.', '')})"
    return None


def unmeasurable(t: torch.Tensor) -> str | None:
    """Why activation statistics cannot be taken of `t`, or None when they can."""
    odd = odd_layout(t)
    if odd is not None:
        return odd
    if t.is_complex():
        return f"a complex tensor ({str(t.dtype).replace('torch.', '')})"
    if not t.is_floating_point():
        return f"a {str(t.dtype).replace('torch.', '')} tensor (the statistics need floating point)"
    return None


@torch.no_grad()
def activation_stats(x: torch.Tensor, names: Collection[str] = ACTIVATION_STATS) -> torch.Tensor:
    """The activation statistics `names` of `x`, in `ACTIVATION_STATS` order, as one tensor.

    All of them: mean, std, min, max, zero fraction, non-finite flag, dead-unit fraction and
    inactive-unit fraction (units non-zero on at most `INACTIVE_BELOW` of the batch). Only
    the kernels the asked-for statistics need run, each a vectorised pass: a sum (the mean), a norm
    (the std, see `_std`: ``torch.var_mean`` is ~40x slower on the CPU), ``aminmax``, ``|sign(x)|``
    and its sum (the zero fraction), and a max and a min over the batch axes (the dead units).
    `nonfinite` is 1.0 when any value is NaN/Inf (the sum is then not finite), else 0.0. A unit is
    dead when it is zero for every sample (and position) of the batch. The unit axis is the
    channel axis (1) for 4-d and 5-d outputs, the feature axis (1) for 2-d outputs; for 3-d
    outputs, (N, C, L) and (N, L, F) cannot be told apart, so both axes are tried and the larger
    fraction is kept.

    On the CPU `stats_cpu.activation_values` computes the same values in fewer passes.
    """
    values = activation_values(x, names)
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    return torch.tensor(values, dtype=dtype) if type(values) is list else values


def activation_values(x: torch.Tensor, names: Collection[str] = ACTIVATION_STATS) -> list[float] | torch.Tensor:
    """`activation_stats`, as Python floats for a plain CPU tensor (`stats_cpu.activation_values`:
    fewer passes, no copy to make), as a tensor on the device otherwise (no synchronisation). An
    output of more than `stats_chunked.CHUNK_VALUES` values (4M; 64M on the CPU) is measured a slice
    at a time (as a tensor): its temporaries would otherwise be as large as it is."""
    xf = x.detach()
    if xf.numel() > stats_chunked.CHUNK_VALUES:
        chunked = stats_chunked.activation_stats_chunked(xf, names, ACTIVATION_STATS, INACTIVE_BELOW)
        if chunked is not None:
            return chunked
    if xf.dtype not in (torch.float32, torch.float64):
        xf = xf.float()
    if stats_cpu.fast_path(xf):
        return stats_cpu.activation_values(xf, names, ACTIVATION_STATS)
    return _activation_stats_device(xf, names)


def _activation_stats_device(xf: torch.Tensor, names: Collection[str]) -> torch.Tensor:
    n = xf.numel()
    out: dict[str, torch.Tensor] = {}
    if "mean" in names or "std" in names or "nonfinite" in names:
        total = xf.sum()
        mean = total / max(n, 1)
        out["mean"] = mean
        if n > 1 and "std" in names:
            out["std"] = _std(xf, mean, n)
        else:
            out["std"] = torch.zeros((), device=xf.device, dtype=xf.dtype)
        out["nonfinite"] = (~torch.isfinite(total)).to(xf.dtype)
    if "min" in names or "max" in names:
        out["min"], out["max"] = torch.aminmax(xf) if n else (xf.mean(), xf.mean())
    if "zero_frac" in names or "inactive_frac" in names:
        nonzero = xf.ne(0).to(xf.dtype)  # NaN counts as non-zero
        if "zero_frac" in names:
            out["zero_frac"] = (1.0 - nonzero.sum() / max(n, 1)).to(xf.dtype)
        if "inactive_frac" in names:
            out["inactive_frac"] = _unit_fraction(nonzero, lambda v, dims: v.mean(dim=dims) <= INACTIVE_BELOW)
    if "dead_frac" in names:
        # a max and a min over the batch: ~8x faster than reducing a boolean `x != 0`; NaN is alive
        out["dead_frac"] = _unit_fraction(xf, lambda v, dims: (v.amax(dim=dims) == 0) & (v.amin(dim=dims) == 0))
    return torch.stack([out[n] for n in ACTIVATION_STATS if n in names])


# Activations with a bounded output, and the fraction of outputs pinned at a bound.
SATURATING = M.SATURATING


@torch.no_grad()
def saturation(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Fraction of outputs within 1% of the bound: |tanh| > 0.99, sigmoid < 0.01 or > 0.99 (a large
    output a slice at a time: `stats_chunked`)."""
    chunked = stats_chunked.saturation_chunked(x, kind)
    if chunked is not None:
        return chunked
    xf = x.detach().float()
    if kind in ("Tanh", "Hardtanh"):
        sat = xf.abs() > 0.99
    else:
        sat = (xf < 0.01) | (xf > 0.99)
    return sat.float().mean().reshape(1)


# The order of the values input_stats returns: overall, then per channel for up to 4 channels.
INPUT_STATS: tuple[str, ...] = tuple(m.name for m in M.INPUT_STATS)


@torch.no_grad()
def input_stats(x: torch.Tensor) -> torch.Tensor:
    """Scale, range, non-finite and constant-feature fractions of a model's input batch.

    A feature is constant when it has the same value on every sample of the batch. For image-like
    inputs (N, C, H, W) with up to 4 channels, per-channel mean and std are added (NaN otherwise).
    On the CPU an all-finite batch takes `stats_cpu.input_values` (no mask, no masked copy).
    """
    values = input_values(x)
    return torch.tensor(values, dtype=torch.float32) if type(values) is list else values


def input_values(x: torch.Tensor) -> list[float] | torch.Tensor:
    """`input_stats`, as Python floats for an all-finite plain CPU tensor, as a tensor otherwise (a
    large batch a slice at a time: `stats_chunked.input_chunked`)."""
    if x.numel() > stats_chunked.CHUNK_VALUES:
        chunked = stats_chunked.input_chunked(x)
        if chunked is not None:
            return chunked
    xf = x.detach().float()
    if stats_cpu.fast_path(xf):
        values = stats_cpu.input_values(xf)
        if values is not None:
            return values
    finite = torch.isfinite(xf)
    clean = torch.where(finite, xf, torch.zeros((), device=xf.device))
    lo, hi = torch.aminmax(clean)
    nonfinite = 1.0 - finite.float().mean()
    nan = torch.full((), float("nan"), device=xf.device)
    if xf.dim() >= 2 and xf.shape[0] > 1:
        flat = clean.reshape(xf.shape[0], -1)
        const = (flat.amax(0) == flat.amin(0)).float().mean()
    else:
        const = nan
    ch_mean, ch_std = [nan] * 4, [nan] * 4
    if xf.dim() == 4 and xf.shape[1] <= 4:
        m = clean.mean(dim=(0, 2, 3))
        sd = clean.std(dim=(0, 2, 3))
        for i in range(xf.shape[1]):
            ch_mean[i], ch_std[i] = m[i], sd[i]
    mean = clean.mean()
    std = _std(clean, mean, clean.numel()) if xf.numel() > 1 else nan
    return torch.stack([mean, std, lo, hi, nonfinite, const, *ch_mean, *ch_std])


@torch.no_grad()
def activation_stats_batched(x: torch.Tensor, names: Collection[str] = ACTIVATION_STATS) -> torch.Tensor:
    """`activation_stats` of each of ``x[0], x[1], ...`` (outputs of the same shape, stacked), as an
    (M, len(names)) tensor: one kernel per statistic for all of them instead of one per module (the
    kernels' fixed cost dominates small outputs: a 500-layer MLP's sampled step).

    The dead and the inactive units come from one per-unit mean of the non-zero pattern (a unit is
    dead when that mean is 0: zero on every sample; NaN counts as non-zero, as in `x != 0`), not
    from a max and a min over the batch besides. On the CPU the range is an ``amax`` and an ``amin``
    (``aminmax`` along a dimension is ~8x slower there) and the temporaries go into reused scratch
    buffers (`stats_cpu.scratch`); the values are the same kernels' on the same numbers."""
    xf = x.detach()
    if xf.dtype not in (torch.float32, torch.float64):
        xf = xf.float()
    cpu = xf.device.type == "cpu"
    m = xf.shape[0]
    flat = xf.reshape(m, -1)
    n = flat.shape[1]
    out: dict[str, torch.Tensor] = {}
    total = None
    if "mean" in names or "std" in names or "nonfinite" in names:
        total = flat.sum(1)
        mean = total / max(n, 1)
        out["mean"] = mean
        if n > 1 and "std" in names:
            centred = torch.sub(flat, mean[:, None], out=stats_cpu.scratch(flat)) if cpu else flat - mean[:, None]
            out["std"] = torch.linalg.vector_norm(centred, dim=1) / math.sqrt(n - 1)
        else:
            out["std"] = torch.zeros(m, device=xf.device, dtype=xf.dtype)
        out["nonfinite"] = (~torch.isfinite(total)).to(xf.dtype)
    if "min" in names or "max" in names:
        out["min"], out["max"] = (flat.amin(1), flat.amax(1)) if cpu else torch.aminmax(flat, dim=1)
    units = "inactive_frac" in names or "dead_frac" in names
    if "zero_frac" in names or units:
        if cpu and math.isfinite(float(total.sum() if total is not None else flat.sum())):  # no NaN (nor Inf)
            # 1 where x != 0: a float pass, ~5x faster than `x != 0` here
            nonzero = torch.sign(xf, out=stats_cpu.scratch(xf)).abs_()
        else:  # NaN counts as non-zero, as in `x != 0` (sign(NaN) is 0 on the CPU)
            nonzero = xf.ne(0).to(xf.dtype)
        if "zero_frac" in names:
            out["zero_frac"] = (1.0 - nonzero.reshape(m, -1).sum(1) / max(n, 1)).to(xf.dtype)
        if units:
            means = _unit_means_batched(nonzero)  # per candidate axis: (M, units) fractions non-zero
            if "inactive_frac" in names:
                out["inactive_frac"] = _fraction_batched(means, lambda v: v <= INACTIVE_BELOW, m, xf)
            if "dead_frac" in names:
                out["dead_frac"] = _fraction_batched(means, lambda v: v == 0, m, xf)
    return torch.stack([out[k] for k in ACTIVATION_STATS if k in names], dim=1)


def _unit_means_batched(nonzero: torch.Tensor) -> list[torch.Tensor]:
    """The fraction of each unit's values that are non-zero, of each ``nonzero[i]``, for each
    candidate unit axis (see `activation_stats`); none for outputs without a batch of 2+ samples."""
    if nonzero.dim() < 3 or nonzero.shape[1] < 2:
        return []
    axes = [2] if nonzero.dim() != 4 else [2, 3]
    return [nonzero.mean(dim=[d for d in range(1, nonzero.dim()) if d != axis]) for axis in axes]


def _fraction_batched(means: list[torch.Tensor], unit_test: Callable[[torch.Tensor], torch.Tensor], m: int,
                      like: torch.Tensor) -> torch.Tensor:
    """The fraction of units for which `unit_test` holds, of each output: the larger over the axes."""
    if not means:
        return torch.zeros(m, device=like.device, dtype=like.dtype)
    fracs = [unit_test(v).to(like.dtype).mean(dim=1) for v in means]
    return torch.stack(fracs, dim=1).amax(dim=1)


def _std(x: torch.Tensor, mean: torch.Tensor, n: int) -> torch.Tensor:
    """The sample standard deviation of `x` (its mean given).

    On the CPU, from the norm of `x` itself (one pass, no copy) when the mean is small beside the
    spread (|mean| <= 10 std: float32 cancellation stays under ~1e-5); else, and on accelerators,
    from the norm of ``x - mean``."""
    if x.device.type == "cpu":
        m = float(mean)
        sumsq = float(torch.linalg.vector_norm(x)) ** 2
        var = (sumsq - n * m * m) / (n - 1)
        if math.isfinite(var) and var > 0 and m * m <= 100.0 * var:
            return torch.tensor(math.sqrt(var), dtype=x.dtype)
    return torch.linalg.vector_norm(x - mean) / math.sqrt(n - 1)


def _unit_fraction(x: torch.Tensor, unit_test: Callable[[torch.Tensor, list[int]], torch.Tensor]) -> torch.Tensor:
    """Fraction of the units (the unit axis: see `activation_stats`) for which `unit_test(x, batch
    axes)` holds; for 3-d outputs the larger of the two candidate axes."""
    axes = stats_chunked.unit_axes(x)
    if not axes:
        return torch.zeros((), device=x.device, dtype=x.dtype)
    fracs = []
    for axis in axes:
        reduce = [d for d in range(x.dim()) if d != axis]
        fracs.append(unit_test(x, reduce).to(x.dtype).mean())
    return torch.stack(fracs).amax()


_HIST_SAMPLE = 1 << 16


@torch.no_grad()
def histogram(x: torch.Tensor, bins: int) -> torch.Tensor:
    """[lo, hi, count_0, ..., count_{bins-1}] over the finite values of `x`, on the device.

    Tensors over 65,536 elements are histogrammed on a strided sample of about that many values.
    """
    flat = x.detach().flatten()
    if flat.numel() > _HIST_SAMPLE:  # a strided sample: the shape of the distribution, at a fixed cost
        flat = flat[:: flat.numel() // _HIST_SAMPLE]
    xf = torch.nan_to_num(flat.float(), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = torch.aminmax(xf)
    counts = torch.histc(xf, bins=bins)  # min=max=0: the data's own range
    return torch.cat([torch.stack([lo, hi]), counts])


@torch.no_grad()
def stacked_norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of each tensor as one 1-d tensor (one fused call when all share device and dtype)."""
    first = tensors[0]
    if all(t.layout == torch.strided for t in tensors) and all(t.device == first.device and t.dtype == first.dtype for t in tensors):
        return torch.stack(torch._foreach_norm(tensors))
    return torch.stack([v.to(device=first.device, dtype=torch.float64) for v in norms(tensors)])


@torch.no_grad()
def differences(a: list[torch.Tensor], b: list[torch.Tensor]) -> list[torch.Tensor]:
    """``a[i] - b[i]`` for each i, fused per device and dtype (a model split across devices works)."""
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, t in enumerate(a):
        groups.setdefault((t.device, t.dtype), []).append(i)
    out: list[torch.Tensor] = list(a)
    for idx in groups.values():
        for i, v in zip(idx, torch._foreach_sub([a[i] for i in idx], [b[i] for i in idx])):
            out[i] = v
    return out


@torch.no_grad()
def norms(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """L2 norm of each tensor, fused per device and dtype (torch._foreach_norm)."""
    if not tensors:
        return []
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    out: list[torch.Tensor | None] = [None] * len(tensors)
    for i, t in enumerate(tensors):
        if t.layout == torch.strided:
            groups.setdefault((t.device, t.dtype), []).append(i)
        else:  # a sparse gradient (nn.Embedding(sparse=True)): the norm of its stored values
            out[i] = torch.linalg.vector_norm(t.coalesce().values() if t.is_sparse else t.values())
    for idx in groups.values():
        for i, v in zip(idx, torch._foreach_norm([tensors[i] for i in idx])):
            out[i] = v
    return [v for v in out if v is not None]
