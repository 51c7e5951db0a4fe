"""Step-size rules: learning rate too high or too low, an oscillating loss, clipping that eats the steps.

Also the measurements the training-dynamics rules share: the per-step median update-to-weight
ratio of the weight tensors, the weight-norm shrink over the run, and the oscillation detector.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Finding, Recommendation, Rule
from .context import Context, fmt, running_median, window

__all__ = ["ExcessiveGradClipping", "LossOscillating", "LrTooHigh", "LrTooLow",
           "expected_initial_loss", "oscillation", "update_ratios", "weight_names", "weight_shrink"]

# Defaults of the thresholds (override through DebuggingConfig.thresholds, same names).
LR_HIGH_UPDATE_RATIO = 0.05   # update/weight ratio per step that counts as large (healthy: ~1e-3)
LR_JUMP_FACTOR = 2.0          # loss above this multiple of its first value counts as a jump
LR_LOW_UPDATE_RATIO = 1e-4    # median update/weight ratio below this counts as tiny
LR_LOW_IMPROVEMENT = 0.05     # relative loss improvement below this counts as "barely moves"
LR_LOW_MIN_GRAD = 1e-2        # relative gradient |g|/|w| at or above this: signal, not the noise of a converged model
OSC_AMPLITUDE = 0.25          # smoothed swing (p90 - p10) as a fraction of the loss's scale
OSC_REVERSALS = 4             # reversals of direction: two full up-and-down cycles
CLIP_FRACTION = 0.5           # fraction of steps on which clipping acted
CLIP_FACTOR = 10.0            # median factor by which clipping shrank the gradient
WEIGHT_COLLAPSE_SHRINK = 0.1  # median weight norm at the end below this fraction of its start
SATURATED_FRACTION = 0.5      # fraction of a bounded layer's outputs within 1% of a bound

_HEALTHY_RATIO = 1e-3
_ADAPTIVE = {"Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta", "SparseAdam", "Adafactor"}
_NORM_TYPES = ("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "RMSNorm", "LocalResponseNorm")


def _lr_code(ctx: Context, new: float) -> str:
    was = f"   # was {ctx.lr:.3g}" if ctx.lr else ""
    return f"optimizer = torch.optim.{_opt_type(ctx)}(model.parameters(), lr={new:.1g}){was}\n" \
           f"# or, on an existing optimizer:\nfor g in optimizer.param_groups:\n    g['lr'] = {new:.1g}"


def _opt_type(ctx: Context) -> str:
    events = ctx.record.events("optimizer")
    return str(events[0].data.get("type", "SGD")) if events else "SGD"


def weight_names(ctx: Context) -> list[str]:
    """Weight matrices and kernels (2-d or more) that learn; embedding tables are left out."""
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
    """
    ratios = ctx.param_stat("update_ratio")
    floor = ctx.t.update_ratio_floor
    per_step: dict[int, list[float]] = {}
    for name in weight_names(ctx):
        s = ratios.get(name)
        if s is None:
            continue
        for st, v in zip(s.steps, s.values):
            if np.isfinite(v) and v > floor:
                per_step.setdefault(int(st), []).append(float(v))
    steps = np.array(sorted(per_step), dtype=int)
    return steps, np.array([float(np.median(per_step[int(s)])) for s in steps])


def _followed_by_norm(ctx: Context, module: str) -> bool:
    """Whether the next leaf module after `module` normalises its output (scale-invariant weight)."""
    leaves = ctx.leaf_modules_in_order()
    for i, e in enumerate(leaves):
        if e.name == module:
            return i + 1 < len(leaves) and any(t in (leaves[i + 1].type or "") for t in _NORM_TYPES)
    return False


def weight_shrink(ctx: Context) -> dict[str, Any] | None:
    """How much the weight norms shrank from their first to their last sample (median over tensors).

    Weights directly followed by a normalisation layer are skipped: their scale does not matter.
    None when fewer than two tensors or samples, or when the samples span less than `min_steps`.
    """
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


def _collapsing(ctx: Context) -> bool:
    ws = weight_shrink(ctx)
    return ws is not None and ws["median"] <= ctx.threshold("weight_collapse_shrink", WEIGHT_COLLAPSE_SHRINK)


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
    amplitude.
    """
    s = ctx.loss.finite()
    v = s.values
    n = len(v)
    if n < max(ctx.t.min_steps, 20):
        return None
    tail = v[n // 2:]
    w = max(3, window(n) // 2)  # 2.5% of the run: short enough to keep swings over a few dozen steps
    smooth = running_median(tail, w)[w - 1:]  # a median, so that isolated spikes do not count as swings
    if len(smooth) < 5:
        return None
    level = float(np.median(tail))
    scale = max(abs(level), abs(float(v[0])))
    if scale <= 0:
        return None
    frac = ctx.threshold("osc_amplitude", OSC_AMPLITUDE)
    k = max(2, len(tail) // 3)
    trend = abs(float(np.median(tail[:k]) - np.median(tail[-k:])))
    sigma = 1.4826 * float(np.median(np.abs(np.diff(tail)))) / np.sqrt(2)
    amp = float(np.percentile(smooth, 90) - np.percentile(smooth, 10))
    start = int(s.steps[n // 2])
    if amp >= frac * scale and amp >= 2 * 2.56 * sigma / np.sqrt(w) and trend < 0.5 * amp:
        turns = _turns(smooth, 0.5 * amp)
        if turns >= ctx.threshold("osc_reversals", OSC_REVERSALS):
            return Oscillation(amp, level, scale, turns, start, "swings")
    detrended = tail - running_median(tail, 5)
    raw_amp = float(np.percentile(tail, 90) - np.percentile(tail, 10))
    if np.std(detrended[:-1]) > 0 and np.std(detrended[1:]) > 0:
        ac1 = float(np.corrcoef(detrended[:-1], detrended[1:])[0, 1])
        if ac1 <= -0.5 and raw_amp >= frac * scale and trend < 0.5 * raw_amp:
            return Oscillation(raw_amp, level, scale, len(tail) // 2, start, "alternating")
    return None


@dataclass
class _Signal:
    what: str                # a phrase for the message
    onset: int               # first step of the trouble
    severe: bool             # the run was damaged (diverged, non-finite, exploded)
    sustained: bool = False  # a steady state (oscillation) rather than an event


def _instability(ctx: Context) -> list[_Signal]:
    """Signs that the updates overshoot, each with the step where it began."""
    out: list[_Signal] = []
    loss = ctx.loss
    v, steps = loss.values, loss.steps
    if len(v) < 3 or not np.isfinite(v[0]):
        return out
    start = float(v[0])
    finite = np.isfinite(v)
    went_nonfinite = bool((~finite[1:]).any())
    factor = ctx.threshold("lr_jump_factor", LR_JUMP_FACTOR)
    if start > 0:
        jumps = np.flatnonzero(finite[1:] & (v[1:] >= factor * start)) + 1
        if len(jumps):
            t = int(jumps[0])
            peak = float(np.nanmax(v[finite]))
            out.append(_Signal(f"the loss jumped from {fmt(start)} to {fmt(float(v[t]))} at step {int(steps[t])} "
                               f"(peak {fmt(peak)})" + (" and later became non-finite" if went_nonfinite else ""),
                               int(steps[t]), went_nonfinite or peak >= 10 * start))
    g = ctx.record.column("grad_norm").values
    k = int(min(5, max(3, len(g) // 10)))
    head = g[:k][np.isfinite(g[:k])]
    if len(head) >= 2 and np.median(head) > 0:
        base = float(np.median(head))
        growth = g / base
        over = np.flatnonzero(np.isfinite(growth) & (growth >= 10))
        gfinite = np.isfinite(growth)
        peak_g = float(np.max(growth[gfinite])) if gfinite.any() else 0.0
        if len(over) and (peak_g >= ctx.t.grad_growth or (~gfinite[over[0]:]).any()):
            out.append(_Signal(f"the gradient norm grew {fmt(peak_g)}x over its early baseline {fmt(base)}",
                               int(steps[over[0]]) if over[0] < len(steps) else int(over[0]), True))
    fv, fs = v[finite], steps[finite]
    if len(fv) >= ctx.t.min_steps:
        w = window(len(fv))
        smooth = running_median(fv, w)
        best_i = int(np.argmin(smooth))
        best, final = float(smooth[best_i]), float(smooth[-1])
        s0 = float(np.median(fv[:w]))
        if final > best + (ctx.t.loss_divergence - 1) * (abs(best) + 1e-12) and final > best + 0.5 * max(s0 - best, 0.0):
            out.append(_Signal(f"the smoothed loss rose from its best {fmt(best)} (step {int(fs[best_i])}) to {fmt(final)}",
                               int(fs[best_i]), True))
        for t in range(w, len(fv)):
            lvl = float(np.median(fv[t - w:t]))
            if 0 < lvl < start and fv[t] >= factor * lvl and fv[t] - lvl >= 0.5 * (start - lvl):
                out.append(_Signal(f"the loss spiked from {fmt(lvl)} to {fmt(float(fv[t]))} at step {int(fs[t])}, "
                                   "undoing more than half of the progress made", int(fs[t]), False))
                break
    osc = oscillation(ctx)
    if osc is not None:
        out.append(_Signal(f"the loss oscillates by {fmt(osc.amplitude)} around {fmt(osc.level)} from step "
                           f"{osc.start_step} on", osc.start_step, False, sustained=True))
    return out


def _ratio_before(steps: np.ndarray, ratios: np.ndarray, onset: int) -> float | None:
    """Largest update ratio on the (up to 3) sampled steps just before `onset`: the updates that caused it."""
    before = ratios[steps < onset]
    if len(before) == 0:
        before = ratios[steps <= onset]
    return float(np.max(before[-3:])) if len(before) else None


class LrTooHigh(Rule):
    """The learning rate is too high: updates move the weights by a large fraction and the run goes unstable.

    ## What it detects
    A sign of overshooting: the loss jumping above `lr_jump_factor` (default 2x) its first value,
    the gradient norm exploding (`grad_growth`), the smoothed loss diverging from its best, a spike
    that undoes more than half of the progress made, or the loss oscillating (see LOS003). It is
    blamed on the learning rate when the update-to-weight ratio ‖Δw‖/‖w‖ (median over weight
    tensors, on the sampled steps just before the trouble began; over the oscillating window for
    an oscillation) is at least `lr_high_update_ratio` (default 0.05; about 1e-3 is healthy). A run
    whose weights are collapsing (WGT001) is left out.

    ## Why is this bad?
    Steps that large overshoot the minimum: the loss jumps, oscillates or diverges, gradients
    explode and the run ends in NaN, or ReLU units are knocked dead. The gradients, the NaN and the
    divergence are symptoms; the learning rate is the knob.

    ## Example
    ```python
    optimizer = torch.optim.Adam(model.parameters(), lr=0.5)   # Adam moves each weight by ~lr per step
    ```

    ## Recommended fix
    Lower the learning rate (the finding suggests a value from the measured update ratio), add a
    warm-up, and clip the gradient norm as a safety net.

    ## Known problems
    A model whose gradients explode for another reason (an RNN with a recurrent gain above 1) has
    large update ratios only once the gradients have grown, so it is not blamed here. Update ratios
    need an optimizer object and sampled steps: runs without them are not judged. GANs and other
    adversarial losses go up and down by design.
    """

    code = "LRN001"
    kind = "lr_too_high"
    category = "optimizer"
    # Units knocked dead or into saturation by the updates too; the ranking only folds those that began
    # no earlier than the trouble (units dead from the first step are the initialisation's).
    explains = ("exploding_gradients", "loss_diverging", "nonfinite", "loss_oscillating", "loss_not_decreasing",
                "dead_activations", "saturated_activations")

    def check(self, ctx: Context) -> Iterator[Finding]:
        signals = _instability(ctx)
        steps, ratios = update_ratios(ctx)
        if not signals or not len(ratios) or _collapsing(ctx):
            return
        thr = ctx.threshold("lr_high_update_ratio", LR_HIGH_UPDATE_RATIO)
        blamed: list[tuple[_Signal, float]] = []
        for sig in signals:
            during = ratios[steps >= sig.onset]
            # an oscillation is a steady state: the updates made while it lasts are the ones to judge
            r = float(np.median(during)) if sig.sustained and len(during) else _ratio_before(steps, ratios, sig.onset)
            if r is not None and r >= thr:
                blamed.append((sig, r))
        if not blamed:
            return
        sig, ratio = min(blamed, key=lambda b: b[0].onset)
        # the rate was too high from before the first sign of trouble: the step the symptoms are ranked against
        onset = min(s.onset for s in signals)
        severe = any(s.severe for s, _ in blamed)
        finite = ctx.loss.finite().values
        stuck = len(finite) >= 5 and float(np.median(finite[-max(3, len(finite) // 10):])) >= 0.9 * float(finite[0])
        lr = ctx.lr
        suggested = float(f"{lr * float(np.clip(10 * _HEALTHY_RATIO / ratio, 0.01, 0.3)):.1g}") if lr else None
        casualties = _casualties(ctx)
        yield self.finding(
            severity="high" if severe or stuck else "medium", confidence=0.9 if severe else 0.75,
            title=f"Learning rate {fmt(lr)} is too high: {sig.what}" if lr else f"Learning rate too high: {sig.what}",
            description=(f"With learning rate {fmt(lr)}, each update moved the weights by {fmt(ratio)} of their norm "
                         f"(median over weight tensors; about {_HEALTHY_RATIO:g} is healthy). Then "
                         + "; ".join(s.what for s, _ in blamed) + ". The updates overshoot."
                         + (" The loss never got back below its starting value." if stuck else "")
                         + (f" After training began, {'; '.join(casualties)}." if casualties else "")),
            step=onset,
            evidence={"lr": lr, "suggested_lr": suggested, "update_ratio": ratio, "update_ratio_threshold": thr,
                      "onset_step": onset, "signals": [s.what for s, _ in blamed], "stuck": stuck,
                      "casualties": casualties,
                      "update_ratio_by_step": {int(s): float(r) for s, r in zip(steps[:12], ratios[:12])},
                      "loss": ctx.evidence_series(ctx.loss)},
            recommendations=[
                Recommendation("fix", f"Lower the learning rate to about {fmt(suggested)} (from {fmt(lr)})."
                               if suggested else "Lower the learning rate by 10x.",
                               _lr_code(ctx, suggested) if suggested else "for g in optimizer.param_groups:\n    g['lr'] *= 0.1"),
                Recommendation("best_practice", "Warm the learning rate up, and clip the gradient norm as a safety net.",
                               "sched = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=500)\n"
                               "loss.backward()\ntorch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n"
                               "optimizer.step()\nsched.step()"),
            ],
        )


def _casualties(ctx: Context) -> list[str]:
    """Units knocked out by the updates: ReLU layers that died, or bounded layers that saturated, after step 0."""
    out = []
    for stat, what, thr in (("dead_frac", "dead", ctx.t.dead_fraction),
                            ("saturated_frac", "saturated", ctx.threshold("saturated_fraction", SATURATED_FRACTION))):
        for name, s in ctx.module_stat(stat).items():
            f = s.finite().values
            if len(f) >= 2 and f[0] < thr and float(np.median(f[1:])) >= thr:
                out.append(f"{float(np.median(f[1:])):.0%} of the units of {ctx.label(name)} became {what}")
    return out[:5]


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


def _relative_gradient(ctx: Context) -> float | None:
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


class LrTooLow(Rule):
    """The learning rate is too low: gradients are healthy but each update barely moves the weights.

    ## What it detects
    The training loss stays within `lr_low_improvement` (default 5%) of its start: the medians of
    the first and last quarter of the run, and the best running median over a quarter, differ by
    less than that. Meanwhile the update-to-weight ratio ‖Δw‖/‖w‖ (median over weight tensors and
    over the sampled steps run at the full learning rate, i.e. at least half the run's largest) is
    below `lr_low_update_ratio` (default 1e-4; about 1e-3 is healthy), and the gradients are not the
    problem: the relative gradient |g|/|w| is at least `lr_low_min_grad` (default 1e-2), above the
    minibatch noise left in a converged model's gradient. For cross-entropy losses the loss must
    also still be above half the loss of a uniform prediction (ln C): a model that has fitted is
    not stuck. Frozen tensors (ratio 0) are left to OPT001.

    ## Why is this bad?
    With steps 10x-1000x smaller than needed, the model needs 10x-1000x more steps to learn the
    same thing; within the budget it looks as if it cannot learn at all.

    ## Example
    ```python
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)   # typical SGD rates are 1e-2..1e-1
    ```

    ## Recommended fix
    Raise the learning rate (the finding suggests a value that would bring the update ratio to
    about 1e-3), or run a learning-rate range test.

    ## Known problems
    Runs without an optimizer object (hand-written updates) record no update ratios and are not
    judged. A run that starts at its optimum (fine-tuning a converged model) has small gradients and
    is left alone by the gradient condition.
    """

    code = "LRN002"
    kind = "lr_too_low"
    category = "optimizer"
    explains = ("loss_not_decreasing",)

    def check(self, ctx: Context) -> Iterator[Finding]:
        s = ctx.loss.finite()
        if len(s) < ctx.t.min_steps or len(s) < 0.8 * len(ctx.loss):
            return
        v = s.values
        q = max(3, len(v) // 4)  # quarters: long enough that minibatch noise averages out
        start, end = float(np.median(v[:q])), float(np.median(v[-q:]))
        best = float(np.min(running_median(v, q)[q - 1:]))
        rel = (start - best) / (abs(start) + 1e-12)
        moved = max(abs(start - end), start - best) / (abs(start) + 1e-12)
        if moved >= ctx.threshold("lr_low_improvement", LR_LOW_IMPROVEMENT):
            return  # it learns, or it rises (another rule's business): either way the loss moves
        steps, ratios = update_ratios(ctx)
        if len(ratios) == 0:
            return
        lr_col = ctx.record.column("lr")
        lr_at = dict(zip(lr_col.steps.tolist(), lr_col.values.tolist()))
        lrs = np.array([lr_at.get(int(st), np.nan) for st in steps])
        if np.isfinite(lrs).any() and np.nanmax(lrs) > 0:
            keep = ~np.isfinite(lrs) | (lrs >= 0.5 * np.nanmax(lrs))
            steps, ratios = steps[keep], ratios[keep]
        ratio = float(np.median(ratios))
        thr = ctx.threshold("lr_low_update_ratio", LR_LOW_UPDATE_RATIO)
        relgrad = _relative_gradient(ctx)
        if ratio >= thr or relgrad is None or relgrad < ctx.threshold("lr_low_min_grad", LR_LOW_MIN_GRAD):
            return
        expected = expected_initial_loss(ctx)
        if expected is not None and end < 0.5 * expected[0]:
            return  # well below chance: it has learned, and sits at its optimum
        lr = ctx.lr
        factor = float(min(_HEALTHY_RATIO / ratio, 1e4))
        suggested = float(f"{lr * factor:.1g}") if lr else None
        yield self.finding(
            severity="high" if ratio < thr / 10 or rel <= 0.001 else "medium", confidence=0.85,
            title=(f"Learning rate {fmt(lr)} is too low: updates move the weights by {fmt(ratio)} of their norm per step"
                   if lr else f"Learning rate too low: updates move the weights by {fmt(ratio)} of their norm per step"),
            description=(f"Over {len(v)} steps the loss moved by less than {moved:.1%} ({fmt(start)} in the first quarter, "
                         f"{fmt(end)} in the last, best {fmt(best)}). Each "
                         f"update changed the weights by {fmt(ratio)} of their norm (median over weight tensors; about "
                         f"{_HEALTHY_RATIO:g} is healthy), although the gradients are healthy (|grad|/|weight| = "
                         f"{fmt(relgrad)}): the learning rate{f' {fmt(lr)}' if lr else ''} is about {fmt(factor)}x too small."),
            step=int(s.steps[0]),
            evidence={"lr": lr, "suggested_lr": suggested, "update_ratio": ratio, "update_ratio_threshold": thr,
                      "relative_gradient": relgrad, "relative_improvement": rel, "start_loss": start, "end_loss": end, "best_loss": best,
                      "update_ratio_by_step": {int(a): float(b) for a, b in zip(steps[:12], ratios[:12])}},
            recommendations=[
                Recommendation("fix", f"Raise the learning rate to about {fmt(suggested)} (from {fmt(lr)})."
                               if suggested else "Raise the learning rate by 100x.",
                               _lr_code(ctx, suggested) if suggested else
                               "for g in optimizer.param_groups:\n    g['lr'] *= 100"),
                Recommendation("best_practice", "Find the range with a learning-rate range test: raise the rate "
                               "geometrically each step and keep the largest one where the loss still falls fast.",
                               "lrs = torch.logspace(-6, 0, steps=100)\nfor lr, (x, y) in zip(lrs, loader):\n"
                               "    for g in optimizer.param_groups:\n        g['lr'] = lr.item()\n"
                               "    optimizer.zero_grad()\n    loss = loss_fn(model(x), y)\n    loss.backward()\n"
                               "    optimizer.step()\n    print(lr.item(), loss.item())"),
            ],
        )


class LossOscillating(Rule):
    """The training loss swings up and down without trend, by a large fraction of its level.

    ## What it detects
    Over the second half of the run, the running median of the loss (window 2.5% of the run) swings by
    at least `osc_amplitude` (default 25%) of the loss's scale (its first value or its level,
    whichever is larger) and reverses at least `osc_reversals` times (default 4: two full cycles)
    by half that swing, by more than twice what averaging independent minibatch noise would leave
    and with a trend smaller than half the swing. A loss that alternates up and down every step
    (lag-1 autocorrelation below -0.5) with that amplitude counts too. The minibatch noise and the
    occasional spike of a converging run are small next to its starting loss or average out, so
    they are not flagged.

    ## Why is this bad?
    An oscillating loss makes no progress: the optimizer bounces across a valley instead of going
    down it. It usually means steps that are too large for the curvature (learning rate, momentum),
    sometimes batches that are not shuffled.

    ## Example
    ```python
    optimizer = torch.optim.SGD(model.parameters(), lr=3.0)   # bounces across the valley
    ```

    ## Recommended fix
    Lower the learning rate (or momentum), decay it over the run, use larger batches, and shuffle
    the training data.

    ## Known problems
    Cyclic learning-rate schedules and adversarial training (GANs) make the loss go up and down by
    design. Runs shorter than `min_steps` (and 20 steps) are not judged.
    """

    code = "LOS003"
    kind = "loss_oscillating"
    category = "loss"

    def check(self, ctx: Context) -> Iterator[Finding]:
        osc = oscillation(ctx)
        if osc is None:
            return
        lr = ctx.lr
        rel = osc.amplitude / osc.scale
        steps, ratios = update_ratios(ctx)
        during = ratios[steps >= osc.start_step]
        ratio = float(np.median(during)) if len(during) else None
        small_steps = ratio is not None and ratio < ctx.threshold("lr_high_update_ratio", LR_HIGH_UPDATE_RATIO)
        what = ("alternates up and down every step" if osc.mode == "alternating"
                else f"swings up and down ({osc.turns} reversals)")
        shuffle = Recommendation("fix", "Shuffle the training data, so that every batch mixes sources and classes.",
                                 "loader = DataLoader(train_set, batch_size=64, shuffle=True)")
        lower = Recommendation(
            "fix", f"Lower the learning rate (or momentum) by 3x{f' (from {fmt(lr)} to {fmt(lr / 3)})' if lr else ''} "
            "and decay it over the run.",
            (f"for g in optimizer.param_groups:\n    g['lr'] = {lr / 3:.2g}   # was {lr:.3g}\n" if lr
             else "for g in optimizer.param_groups:\n    g['lr'] /= 3\n")
            + "sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)")
        cause = (f" The updates are moderate ({fmt(ratio)} of the weight norm per step), so look first at the order of "
                 "the data: batches that come in blocks (sorted by label, concatenated sources, no shuffle) pull the "
                 "model one way, then the other." if small_steps else
                 " The steps are too large for the loss surface, or the batches are not shuffled.")
        yield self.finding(
            severity="high" if rel >= 1.0 else "medium", confidence=0.7,
            title=f"Loss oscillates: it {what} by {fmt(osc.amplitude)} around {fmt(osc.level)}",
            description=(f"From step {osc.start_step} on, the smoothed training loss {what} by {fmt(osc.amplitude)} "
                         f"({rel:.0%} of its scale {fmt(osc.scale)}) without a downward trend: more than minibatch noise."
                         + cause),
            step=osc.start_step,
            evidence={"amplitude": osc.amplitude, "level": osc.level, "scale": osc.scale, "relative_amplitude": rel,
                      "reversals": osc.turns, "mode": osc.mode, "lr": lr, "update_ratio": ratio,
                      "loss": ctx.evidence_series(ctx.loss)},
            recommendations=[shuffle, lower] if small_steps else [lower, shuffle],
        )


class ExcessiveGradClipping(Rule):
    """Gradient clipping acts on most steps by a large factor: the effective learning rate is far smaller.

    ## What it detects
    From `clip_grad_norm_` calls: the fraction of steps where the total norm was above `max_norm`
    is at least `clip_fraction` (default 50%) and the median factor total norm / `max_norm` over
    those steps is at least `clip_factor` (default 10x).

    ## Why is this bad?
    Clipping is meant to catch rare spikes. When it acts on every step, every update is rescaled to
    `max_norm`: the step no longer scales with the gradient, and the learning rate you set is in
    effect divided by the clipping factor, so training crawls.

    ## Example
    ```python
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.01)   # typical norms here are ~1
    ```

    ## Recommended fix
    Raise `max_norm` above the typical gradient norm (the finding suggests the 90th percentile of
    the norms seen), so that only outliers are clipped; or normalise the loss scale.

    ## Known problems
    Large-model training sometimes clips most steps by a factor of 2-3 on purpose; that stays below
    the default factor. With adaptive optimizers (Adam, AdamW, RMSprop, Adagrad, ...) the step is
    divided by the gradient's running RMS, so a steady rescale cancels out: those runs are not
    judged.
    """

    code = "CLP001"
    kind = "excessive_grad_clipping"
    category = "optimizer"
    explains = ("lr_too_low", "loss_not_decreasing")

    def check(self, ctx: Context) -> Iterator[Finding]:
        if _opt_type(ctx) in _ADAPTIVE:
            return  # the step is divided by the gradient's running RMS: a constant rescale cancels out
        norm = ctx.record.column("clip_norm").values
        limit = ctx.record.column("clip_max").values
        ok = np.isfinite(norm) & np.isfinite(limit) & (limit > 0)
        n = int(ok.sum())
        if n < max(10, ctx.t.min_steps // 2):
            return
        factor = norm[ok] / limit[ok]
        clipped = factor > 1
        frac = float(clipped.mean())
        med = float(np.median(factor[clipped])) if clipped.any() else 1.0
        if frac < ctx.threshold("clip_fraction", CLIP_FRACTION) or med < ctx.threshold("clip_factor", CLIP_FACTOR):
            return
        max_norm = float(np.median(limit[ok]))
        suggested = float(f"{np.percentile(norm[ok], 90):.2g}")
        first = int(ctx.record.column("clip_norm").steps[np.flatnonzero(ok)[np.argmax(clipped)]])
        lr = ctx.lr
        yield self.finding(
            severity="high" if frac >= 0.9 and med >= 100 else "medium", confidence=0.85,
            title=f"Gradient clipping shrinks {frac:.0%} of the steps by a median {fmt(med)}x (max_norm={fmt(max_norm)})",
            description=(f"clip_grad_norm_ with max_norm={fmt(max_norm)} acted on {int(clipped.sum())} of {n} steps; the "
                         f"gradient norm before clipping had a median of {fmt(float(np.median(norm[ok])))}. Each update is "
                         f"rescaled by ~1/{fmt(med)}"
                         + (f", so the effective learning rate is about {fmt(lr / med)} instead of {fmt(lr)}." if lr else ".")),
            step=first,
            evidence={"clipped_fraction": frac, "median_factor": med, "max_norm": max_norm,
                      "median_norm": float(np.median(norm[ok])), "suggested_max_norm": suggested, "lr": lr,
                      "effective_lr": lr / med if lr else None},
            recommendations=[
                Recommendation("fix", f"Raise max_norm to about the 90th percentile of the gradient norms ({fmt(suggested)}), "
                               "so that only outliers are clipped.",
                               f"torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm={suggested:g})   "
                               f"# was {max_norm:g}"),
            ],
        )
