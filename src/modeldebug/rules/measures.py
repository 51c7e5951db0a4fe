"""Measurements the training-dynamics rules share, computed from a record.

The per-step median update-to-weight ratio of the weight tensors, the weight-norm shrink over the
run, the oscillation detector, the signs of instability with the step each began, and the loss a
uniform prediction gives at initialisation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..catalogue import Finding
from ..record.frames import frozen
from .context import Context, fmt, trailing_medians, window
from .curve import loss_is_not_a_curve, players
from .fixcode import optimizer_ctor


__all__ = ["ADAPTIVE_OPTIMIZERS", "HEALTHY_UPDATE_RATIO", "Oscillation", "Signal", "bundle_step_said", "casualties", "collapse_onset", "collapsing",
           "expected_initial_loss", "fluctuated_back", "heavy_tailed_batches", "instability", "logits_scaled_after_the_model",
           "lr_code", "manual_update", "optimizer_type",
           "oscillation", "ratio_before", "relative_gradient", "scale_lr_code", "summed_loss_calls", "typical_batch_rose",
           "update_ratios", "weight_names", "weight_shrink"]

HEALTHY_UPDATE_RATIO = 1e-3
ADAPTIVE_OPTIMIZERS = {"Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta", "SparseAdam", "Adafactor"}
_NORM_TYPES = ("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "RMSNorm", "LocalResponseNorm")


def manual_update(ctx: Context) -> bool:
    """The script updates the weights itself: no optimizer object was seen, nor its learning rate."""
    return not ctx.record.events("optimizer") and ctx.lr is None


_MANUAL_STEP = "with torch.no_grad():\n    for p in model.parameters():\n        p.add_(p.grad, alpha=-lr)   # your update, unchanged"


def scale_lr_code(ctx: Context, factor: float) -> str:
    """Code that scales the learning rate by `factor`, written for the script's own update code."""
    if manual_update(ctx):
        return f"lr = lr * {factor:.3g}   # the rate your update applies to p.grad\n{_MANUAL_STEP}"
    if ctx.lr:
        return f"for g in optimizer.param_groups:\n    g['lr'] = {ctx.lr * factor:.3g}   # was {ctx.lr:.3g}"
    return f"for g in optimizer.param_groups:\n    g['lr'] *= {factor:.3g}"


def lr_code(ctx: Context, new: float) -> str:
    if manual_update(ctx):
        return f"lr = {new:.1g}   # the rate your update applies to p.grad\n{_MANUAL_STEP}"
    was = f"   # was {ctx.lr:.3g}" if ctx.lr else ""
    n = len(ctx.record.events("optimizer"))
    if n > 1:  # one optimizer per layer or per player, kept wherever the script keeps them
        return (f"# this run has {n} optimizers: lower the rate in each one that is too high{was}\n"
                f"for opt in your_optimizers:   # e.g. [layer.opt for layer in model.layers]\n"
                f"    for g in opt.param_groups:\n        g['lr'] = {new:.1g}")
    ctor = optimizer_ctor(ctx, lr=float(f"{new:.1g}"), note=f"was {ctx.lr:.3g}" if ctx.lr else None)
    return f"{ctor}\n# or, on an existing optimizer:\nfor g in optimizer.param_groups:\n    g['lr'] = {new:.1g}"


def optimizer_type(ctx: Context) -> str:
    events = ctx.record.events("optimizer")
    return str(events[0].data.get("type", "SGD")) if events else "SGD"


def weight_names(ctx: Context) -> list[str]:
    """Weight matrices and kernels (2-d or more) that learn; embedding tables are left out."""
    return list(ctx.shared("weight_names", lambda: _weight_names(ctx)))


def _weight_names(ctx: Context) -> list[str]:
    out = []
    for name, e in ctx.params.items():
        if len(e.info.get("shape", [])) < 2 or not e.info.get("requires_grad", True):
            continue
        module = ctx.modules.get(e.info.get("module", ""))
        if module is not None and module.type in ("Embedding", "EmbeddingBag"):
            continue
        out.append(name)
    return out


def update_ratios(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """(steps, median over weight tensors of the update/weight ratio) on the sampled steps.

    Ratios at or below `update_ratio_floor` (a frozen tensor) are left out: they are OPT001's.
    Computed once per analysis; the arrays are read-only.
    """
    return ctx.shared("update_ratios", lambda: _update_ratios(ctx))


def _update_ratios(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    frame = ctx.record.frame("update_ratio", kind="param")
    ids = [ctx.params[n].id for n in weight_names(ctx)]
    keep = np.isin(frame.entity, ids) & np.isfinite(frame.values) & (frame.values > ctx.t.update_ratio_floor)
    steps, values = frame.steps[keep], frame.values[keep]
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    uniq, starts = np.unique(steps, return_index=True)
    ends = np.append(starts[1:], len(steps))
    medians = np.array([float(np.median(values[a:b])) for a, b in zip(starts, ends)])
    return frozen(uniq.astype(int)), frozen(medians)


def _followed_by_norm(ctx: Context, module: str) -> bool:
    """Whether the next leaf module after `module` normalises its output (scale-invariant weight)."""
    nxt = ctx.next_leaf(module)
    return nxt is not None and any(t in (nxt.type or "") for t in _NORM_TYPES)


def weight_shrink(ctx: Context) -> dict[str, Any] | None:
    """How much the weight norms shrank from their first to their last sample (median over tensors).

    Weights directly followed by a normalisation layer are skipped: their scale does not matter.
    None when fewer than two tensors or samples, or when the samples span less than `min_steps`.
    Computed once per analysis (several rules ask): the caller must not change it.
    """
    return ctx.shared("weight_shrink", lambda: _weight_shrink(ctx))


def _weight_shrink(ctx: Context) -> dict[str, Any] | None:
    pnorms = ctx.param_stat("param_norm")
    shrink: dict[str, float] = {}
    first_step = last_step = None
    for name in weight_names(ctx):
        s = pnorms.get(name)
        if s is None:
            continue
        f = s.finite()
        if len(f) < 3 or f.values[0] <= 0:
            continue
        e = ctx.params[name]
        if _followed_by_norm(ctx, e.info.get("module", "")):
            continue
        shrink[name] = float(f.values[-1] / f.values[0])
        first_step, last_step = int(f.steps[0]), int(f.steps[-1])
    if not shrink or first_step is None or last_step is None or last_step - first_step < ctx.t.min_steps:
        return None
    return {"median": float(np.median(list(shrink.values()))), "per_tensor": shrink,
            "first_step": first_step, "last_step": last_step}


def collapsing(ctx: Context) -> bool:
    ws = weight_shrink(ctx)
    return ws is not None and ws["median"] <= ctx.option("weight_collapse_shrink")


@dataclass
class Oscillation:
    """The loss swinging up and down over the second half of the run, without trend."""

    amplitude: float
    level: float
    scale: float
    turns: int
    start_step: int
    mode: str  # "swings" (over several steps) or "alternating" (up, down, up every step)


def _turns(s: np.ndarray, h: float) -> int:
    """Reversals of direction by at least `h` (a zigzag count that ignores small wiggles)."""
    turns, d, hi, lo = 0, 0, s[0], s[0]
    for x in s[1:]:
        if d >= 0:
            hi = max(hi, x)
            if hi - x >= h:
                turns += d == 1
                d, lo = -1, x
        if d <= 0:
            lo = min(lo, x)
            if x - lo >= h:
                turns += d == -1
                d, hi = 1, x
    return turns


def oscillation(ctx: Context) -> Oscillation | None:
    """The oscillation detector, on the finite training loss; None when the loss does not oscillate.

    Over the second half of the run: the running median (window 2.5% of the run) must swing by at
    least `osc_amplitude` times the loss's scale (its first value or its level, whichever is
    larger), reverse direction at least `osc_reversals` times by half that swing, move by twice
    what averaging independent minibatch noise would leave, and trend by less than half the swing;
    or the raw loss alternates up and down every step (lag-1 autocorrelation below -0.5) with that
    amplitude. Computed once per analysis.
    """
    return ctx.shared("oscillation", lambda: _oscillation(ctx))


def _oscillation(ctx: Context) -> Oscillation | None:
    s = ctx.loss.finite()
    v = s.values
    n = len(v)
    if n < max(ctx.t.min_steps, 20) or players(ctx) or loss_is_not_a_curve(ctx):
        return None  # several players' losses in turn, or a loss whose level follows the samples per step
    tail = v[n // 2:]
    w = max(3, window(n) // 2)  # 2.5% of the run: short enough to keep swings over a few dozen steps
    # A heavy-tailed loss (a quarter of the batches 100x the rest, each for one step) moves its
    # median with the outlier share of each window: its lower quartile follows the typical batch.
    heavy = heavy_tailed_batches(v, window(n), float(v[0]))
    if heavy:
        if len(tail) < w + 5:
            return None
        smooth = np.quantile(np.lib.stride_tricks.sliding_window_view(tail, w), 0.25, axis=1)
        tail = tail[tail <= np.quantile(tail, 0.75)]  # the level, trend and noise of the typical batches
    else:
        smooth = ctx.running_median(tail, w)[w - 1:]  # a median, so that isolated spikes do not count as swings
    if len(smooth) < 5:
        return None
    level = float(np.median(tail))
    scale = max(abs(level), abs(float(v[0])))
    if scale <= 0:
        return None
    frac = ctx.option("osc_amplitude")
    k = max(2, len(tail) // 3)
    trend = abs(float(np.median(tail[:k]) - np.median(tail[-k:])))
    sigma = 1.4826 * float(np.median(np.abs(np.diff(tail)))) / np.sqrt(2)
    amp = float(np.percentile(smooth, 90) - np.percentile(smooth, 10))
    start = int(s.steps[n // 2])
    if amp >= frac * scale and amp >= 2 * 2.56 * sigma / np.sqrt(w) and trend < 0.5 * amp:
        turns = _turns(smooth, 0.5 * amp)
        if turns >= ctx.option("osc_reversals"):
            return Oscillation(amp, level, scale, turns, start, "swings")
    detrended = tail - ctx.running_median(tail, 5)
    raw_amp = float(np.percentile(tail, 90) - np.percentile(tail, 10))
    if np.std(detrended[:-1]) > 0 and np.std(detrended[1:]) > 0:
        ac1 = float(np.corrcoef(detrended[:-1], detrended[1:])[0, 1])
        if ac1 <= -0.5 and raw_amp >= frac * scale and trend < 0.5 * raw_amp:
            return Oscillation(raw_amp, level, scale, len(tail) // 2, start, "alternating")
    return None


def bundle_step_said(ctx: Context, f: Finding) -> Finding:
    """`f`, saying why the run's loss-spike repro bundle is of another step than the spike it cites.

    The bundle is saved while the run goes, at the first spike the live check (capture/bundle.py
    `SpikeWatch`) sees: it judges only from `min_steps` losses on, against the median of the losses
    seen until then. The rule judges the whole run afterwards, against a window sized to it, so it
    can cite an earlier spike (one within the first `min_steps` steps) or another one.
    """
    info = ctx.record.meta.get("bundle")
    if not isinstance(info, dict) or info.get("trigger") != "loss_spike" or info.get("step") is None:
        return f
    b = int(info["step"])
    cited = {int(m) for m in re.findall(r"\bat step (\d+)", f"{f.title} {f.description}")}
    if not cited or b in cited:
        return f
    f.description += (f" The repro bundle holds step {b}, the first spike caught while the run went: that live check "
                      f"judges a spike only after {ctx.t.min_steps} losses, against the losses seen until then, while "
                      f"the step{'s' if len(cited) > 1 else ''} above {'are' if len(cited) > 1 else 'is'} judged on "
                      "the whole run afterwards.")
    f.evidence["bundle_step"] = b
    return f


@dataclass
class Signal:
    what: str                # a phrase for the message
    onset: int               # first step of the trouble
    severe: bool             # the run was damaged (diverged, non-finite, exploded)
    sustained: bool = False  # a steady state (oscillation) rather than an event


def heavy_tailed_batches(fv: np.ndarray, w: int, start: float) -> bool:
    """Do a recurring share of batches cost many times the rest, each time for one step, while the
    typical batch kept improving? Targets with rare huge errors (a sensor's glitch readings among
    the labels) make such a curve at any learning rate: the loss measures which batch came, not
    what the updates did. Judged on the finite losses `fv`: at least 5 points, and 5% of them, an
    order of magnitude above the trailing median of the `w` before (an update that made the loss
    10x worse is not undone in a step or two; a batch holding a sample with a huge error is gone at
    the next batch); 70% of those back under 1.5x that median within 3 steps; and the last window's
    lower quartile below half the start."""
    n = len(fv)
    if n < 4 * w or not start > 0:
        return False
    level = trailing_medians(fv, w)
    now = fv[w:]
    spikes = np.flatnonzero((level > 0) & (now >= 10 * level))
    if len(spikes) < max(5, 0.05 * n):
        return False
    back = [any(fv[t + w + k] <= 1.5 * level[t] for k in (1, 2, 3) if t + w + k < n) for t in spikes]
    return float(np.mean(back)) >= 0.7 and float(np.quantile(fv[-w:], 0.25)) < 0.5 * start


def typical_batch_rose(fv: np.ndarray, w: int, best_i: int, factor: float) -> bool:
    """Did the lower quartile of the loss diverge too: from the window ending at `best_i` to the last
    window, by `factor`, and back above half-way to its first window's? A median over batches of
    which a varying share are outliers moves with that share; the lower quartile follows the typical
    batch, and the same test as the median's is made on it."""
    first = float(np.quantile(fv[:w], 0.25))
    at_best = float(np.quantile(fv[max(0, best_i - w + 1):best_i + 1], 0.25))
    final = float(np.quantile(fv[-w:], 0.25))
    return final > at_best + (factor - 1) * (abs(at_best) + 1e-12) and final > at_best + 0.5 * max(first - at_best, 0.0)


def fluctuated_back(smooth: np.ndarray, best_i: int, start: float, final: float) -> bool:
    """Had the smoothed loss already been at `final` or above after its descent (from the first point
    half-way from `start` down to its best, until the best), and come back down? Then the end is the
    run's own spread, not a climb: a heavy-tailed loss's median swings by the batch's outlier share
    and drifts between levels it keeps revisiting (blind3's glitchy sensor targets, whose median
    swung 0.03-0.12 through the run, its best window a low extreme of that spread)."""
    best = float(smooth[best_i])
    down = np.flatnonzero(smooth[:best_i + 1] <= best + 0.5 * max(start - best, 0.0))
    if not len(down) or down[0] >= best_i:
        return False
    return bool(np.max(smooth[down[0]:best_i]) >= final)


def nonfinite_after_growth(growth: np.ndarray, k: int) -> bool:
    """Did the gradient norm (`growth`: each step's norm over its early baseline; NaN where it was
    missing or non-finite) go non-finite after the first `k` steps as the end of a growth: at least
    10x the baseline on some step of the window before it (`max(10, 5%)` of the run's steps), or
    so early in the run that no ordinary stretch came first? A NaN that appears after a stretch of
    ordinary norms (a spike at step 0 long forgotten) came from one step's own backward pass, an
    operation that turned finite values into NaN (acos or sqrt at the edge of its domain, a norm of
    zero), not from updates that overshoot."""
    finite = np.isfinite(growth)
    bad = np.flatnonzero(~finite[k:]) + k
    if not len(bad):
        return False
    first = int(bad[0])
    w = max(10, len(growth) // 20)
    if first - w <= k:
        return True
    before = growth[first - w:first]
    return bool((before[np.isfinite(before)] >= 10).any())


def instability(ctx: Context) -> list[Signal]:
    """Signs that the updates overshoot, each with the step where it began."""
    out: list[Signal] = []
    loss = ctx.loss
    v, steps = loss.values, loss.steps
    if len(v) < 2 or not np.isfinite(v[0]):  # two steps: an LBFGS run can blow up in as few
        return out
    start = float(v[0])
    finite = np.isfinite(v)
    went_nonfinite = bool((~finite[1:]).any())
    factor = ctx.option("lr_jump_factor")
    # A loss without a floor says nothing by its ratios; one that sums a varying number of samples
    # only by a jump early in the run that no sample count explains (10x within the first tenth).
    odd = loss_is_not_a_curve(ctx)
    if odd == "per_sample":
        factor = max(factor, 10.0)
        early = steps <= max(3, ctx.n_steps // 10)
    else:
        early = np.ones(len(v), dtype=bool)
    fv_all = v[finite]
    # several optimizers taking turns make one series of opposing losses: spiky by construction
    heavy = odd is None and len(fv_all) > 0 and not players(ctx) and heavy_tailed_batches(fv_all, window(len(fv_all)), start)
    if start > 0 and (odd != "signed" or went_nonfinite) and not heavy:  # (a heavy-tailed curve jumps by the batch)
        jumps = np.flatnonzero(finite[1:] & early[1:] & (v[1:] >= factor * start)) + 1
        if len(jumps):
            t = int(jumps[0])
            peak = float(np.nanmax(v[finite]))
            out.append(Signal(f"the loss jumped from {fmt(start)} to {fmt(float(v[t]))} at step {int(steps[t])} "
                               f"(peak {fmt(peak)})" + (" and later became non-finite" if went_nonfinite else ""),
                               int(steps[t]), went_nonfinite or peak >= 10 * start))
    gcol = ctx.record.column("grad_norm")
    g = gcol.values
    k = int(min(5, max(3, len(g) // 10)))
    head = g[:k][np.isfinite(g[:k])]
    if len(head) >= 2 and np.median(head) > 0:
        base = float(np.median(head))
        growth = g / base
        over = np.flatnonzero(np.isfinite(growth) & (growth >= 10))
        gfinite = np.isfinite(growth)
        peak_g = float(np.max(growth[gfinite])) if gfinite.any() else 0.0
        if len(over) and (peak_g >= ctx.t.grad_growth or nonfinite_after_growth(growth, int(over[0]))):
            out.append(Signal(f"the gradient norm grew {fmt(peak_g)}x over its early baseline {fmt(base)}",
                               int(gcol.steps[over[0]]), True))
    collapse = _gradient_collapse(ctx)
    if collapse is not None:
        out.append(collapse)
    fv, fs = v[finite], steps[finite]
    if len(fv) >= ctx.t.min_steps and odd is None:
        w = window(len(fv))
        smooth = ctx.running_median(fv, w)
        best_i = int(np.argmin(smooth))
        best, final = float(smooth[best_i]), float(smooth[-1])
        s0 = float(np.median(fv[:w]))
        if final > best + (ctx.t.loss_divergence - 1) * (abs(best) + 1e-12) and final > best + 0.5 * max(s0 - best, 0.0) \
                and (not heavy or (typical_batch_rose(fv, w, best_i, ctx.t.loss_divergence)
                                   and not fluctuated_back(smooth, best_i, s0, final))):
            out.append(Signal(f"the smoothed loss rose from its best {fmt(best)} (step {int(fs[best_i])}) to {fmt(final)}",
                               int(fs[best_i]), True))
        # the first point at least `factor` times the median of the w points before it, undoing half the progress
        lvl, now = trailing_medians(fv, w), fv[w:]
        spikes = np.flatnonzero((lvl > 0) & (lvl < start) & (now >= factor * lvl) & (now - lvl >= 0.5 * (start - lvl)))
        if len(spikes) and not heavy:
            t, level = int(spikes[0]) + w, float(lvl[spikes[0]])
            out.append(Signal(f"the loss spiked from {fmt(level)} to {fmt(float(fv[t]))} at step {int(fs[t])}, "
                               "undoing more than half of the progress made", int(fs[t]), False))
    osc = oscillation(ctx)
    if osc is not None:
        out.append(Signal(f"the loss oscillates by {fmt(osc.amplitude)} around {fmt(osc.level)} from step "
                           f"{osc.start_step} on", osc.start_step, False, sustained=True))
    return out


def _gradient_collapse(ctx: Context) -> Signal | None:
    """The gradient fell to about zero from one step to the next, after learning had begun, and stayed there.

    From a step whose total gradient norm was at its early level (at least a tenth of the median
    of the first steps) to below 1e-4 of that level, for at least 80% of the remaining steps (and
    at least 5), with no explosion before it (never above 10x the first step's norm: a gradient
    that vanishes after exploding, units saturated by weights that started too large, is the
    explosion's and the initialisation's story), and no layer saturated or dead from the first step. The updates threw the model where it no longer gets a gradient: a softmax
    saturated at one class (a policy that now always takes one action), every unit dead. A loss
    that fits its data slowly loses its gradient gradually, not in one step.
    """
    g = ctx.record.column("grad_norm").values
    steps = ctx.record.column("grad_norm").steps
    k = int(min(5, max(3, len(g) // 10)))
    head = g[:k][np.isfinite(g[:k])]
    if len(head) < 1 or len(g) < 6 or _flat_from_the_start(ctx):
        return None
    # the median of the first steps; the first step's own norm when the collapse is among them
    base = float(np.median(head)) if np.median(head) > 0 else float(head[0])
    if not base > 0:
        return None
    tiny = np.isfinite(g) & (g <= 1e-4 * base)
    t = collapse_onset(g, tiny, base, float(head[0]))
    if t is None:
        return None
    rest = tiny[t:]
    if rest.mean() >= 0.8:
        return Signal(f"the gradient norm fell from {fmt(float(g[t - 1]))} to {fmt(float(g[t]))} at step "
                      f"{int(steps[t])} and stayed near zero on {rest.mean():.0%} of the later steps "
                      "(saturated outputs or dead units get no gradient)", int(steps[t]), True)
    return None


def collapse_onset(g: np.ndarray, tiny: np.ndarray, base: float, first: float) -> int | None:
    """The first step t (1 <= t < len(g) - 4) where the gradient norm fell from at least 0.1 x `base`
    at t - 1 to `tiny` at t; None when there is none, or when a finite norm over 10x the `first`
    step's came before it (it exploded first: the collapse is the explosion's aftermath)."""
    t_all = np.arange(1, len(g) - 4)
    if not len(t_all):
        return None
    # the largest finite norm before each t
    top_before = np.maximum.accumulate(np.where(np.isfinite(g), g, -np.inf))[t_all - 1]
    exploded = (top_before > 10 * first) if first > 0 else np.zeros(len(t_all), dtype=bool)
    prev = g[t_all - 1]
    fell = tiny[t_all] & np.isfinite(prev) & (prev >= 0.1 * base)
    hits = np.flatnonzero(exploded | fell)
    if not len(hits) or exploded[hits[0]]:
        return None
    return int(t_all[hits[0]])


def _flat_from_the_start(ctx: Context) -> bool:
    """A layer was already saturated or dead on the first sampled step: the initialisation put the
    model where gradients vanish, so a later collapse of the gradient is not the updates' doing."""
    for stat, thr in (("dead_frac", ctx.t.dead_fraction), ("saturated_frac", ctx.option("saturated_fraction"))):
        for s in ctx.module_stat(stat).values():
            f = s.finite().values
            if len(f) and f[0] >= thr:
                return True
    return False


def ratio_before(steps: np.ndarray, ratios: np.ndarray, onset: int) -> float | None:
    """Largest update ratio on the (up to 3) sampled steps just before `onset`: the updates that caused it."""
    before = ratios[steps < onset]
    if len(before) == 0:
        before = ratios[steps <= onset]
    return float(np.max(before[-3:])) if len(before) else None


def casualties(ctx: Context) -> list[str]:
    """Units knocked out by the updates: ReLU layers that died, or bounded layers that saturated, after step 0."""
    out = []
    for stat, what, thr in (("dead_frac", "dead", ctx.t.dead_fraction),
                            ("saturated_frac", "saturated", ctx.option("saturated_fraction"))):
        for name, s in ctx.module_stat(stat).items():
            f = s.finite().values
            if len(f) >= 2 and f[0] < thr and float(np.median(f[1:])) >= thr:
                out.append(f"{float(np.median(f[1:])):.0%} of the units of {ctx.label(name)} became {what}")
    return out[:5]


def summed_loss_calls(ctx: Context, loss0: float, chance: float) -> float | None:
    """About how many loss calls the step's loss adds up, when more than one call can explain it.

    One mean-reduced cross-entropy call on logits spanning [lo, hi] is at most ln C + (hi - lo). A
    step loss above that bound (with room: 2x) is not one call: the script sums the loss over time
    steps or chunks (a character RNN stepped one character at a time). The capture does not count
    loss calls per step, so the count is estimated as the step loss over one call's chance value.
    """
    train = [e for e in ctx.record.entities("loss") if e.info.get("phase") == "train"]
    if len(train) != 1 or train[0].type not in ("cross_entropy", "nll_loss"):
        return None
    lo = ctx.record.series(train[0].name, "in_min", kind="loss").finite()
    hi = ctx.record.series(train[0].name, "in_max", kind="loss").finite()
    if not len(lo) or not len(hi) or int(lo.steps[0]) != 0 or int(hi.steps[0]) != 0:
        return None
    if train[0].type == "nll_loss":
        bound = -float(lo.values[0])  # log-probabilities: one call's loss is at most -min
    else:
        bound = chance + float(hi.values[0] - lo.values[0])
    if not loss0 > 2 * bound or not chance > 0:  # (one class seen: no chance level to count calls by)
        return None
    return loss0 / chance


def expected_initial_loss(ctx: Context) -> tuple[float, str] | None:
    """The loss of a uniform prediction for the run's one training loss: ln C, or ln 2 for binary."""
    train = [e for e in ctx.record.entities("loss") if e.info.get("phase") == "train"]
    if len(train) != 1:
        return None
    e = train[0]
    if e.info.get("kwargs", {}).get("reduction", "mean") != "mean":
        return None
    if e.type in ("binary_cross_entropy_with_logits", "binary_cross_entropy"):
        return math.log(2), "ln 2 (a 0.5 probability)"
    if e.type not in ("cross_entropy", "nll_loss"):
        return None
    in_max = ctx.record.series(e.name, "in_max", kind="loss").finite().values
    if e.type == "nll_loss" and len(in_max) and in_max[0] > 1e-6:
        return None  # not log-probabilities: nothing to expect
    shape = e.info.get("input_shape") or []
    classes = int(shape[1]) if len(shape) >= 2 else 0
    hist = ctx.record.histograms(e.name, kind="loss")
    if not classes and hist:
        classes = len(hist[0][3]) - 1
    if classes < 2:
        return None
    return math.log(classes), f"ln({classes}) (a uniform prediction over {classes} classes)"


def relative_gradient(ctx: Context) -> float | None:
    """Median over weight tensors of median |grad| / median |weight|."""
    pnorms = ctx.param_stat("param_norm")
    rel = []
    for name in weight_names(ctx):
        g, w = ctx.grad_norms.get(name), pnorms.get(name)
        if g is None or w is None or not len(g.finite()) or not len(w.finite()):
            continue
        wn = float(np.median(w.finite().values))
        if wn > 0:
            rel.append(float(np.median(g.finite().values)) / wn)
    return float(np.median(rel)) if rel else None


def logits_scaled_after_the_model(ctx: Context) -> dict[str, float] | None:
    """The training loss's input at step 0 is far larger than any watched module's output (5x the largest
    |mean| + 3 std): the logits were scaled after the model's layers, on purpose more often than not (a
    cosine classifier's s, ArcFace's margin, a contrastive temperature), not by the initial weights."""
    largest = 0.0
    for name, std in ctx.module_stat("std").items():
        st = std.finite()
        if not len(st) or int(st.steps[0]) != 0 or float(st.values[0]) <= 0:
            continue  # (a module whose output is one value, the loss of a head that computes it, has no spread)
        mean = ctx.record.series(name, "mean", kind="module").finite()
        m0 = abs(float(mean.values[0])) if len(mean) and int(mean.steps[0]) == 0 else 0.0
        largest = max(largest, m0 + 3 * float(st.values[0]))
    if largest <= 0:
        return None
    for e in ctx.record.entities("loss"):
        if e.info.get("phase") != "train" or e.type == "binary_cross_entropy":
            continue
        lo = ctx.record.series(e.name, "in_min", kind="loss").finite()
        hi = ctx.record.series(e.name, "in_max", kind="loss").finite()
        if not len(lo) or not len(hi) or int(lo.steps[0]) != 0:
            continue
        peak = max(abs(float(lo.values[0])), abs(float(hi.values[0])))
        if peak >= 5 * largest:
            return {"loss_input_peak": peak, "largest_module_output": largest}
    return None
