"""Loss curve rules: diverging and not decreasing, judged against the run's own start and noise."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import measures as M
from .base import Finding, Recommendation, Rule
from .context import Context, fmt, window
from .curve import loss_is_not_a_curve, players
from .measures import (
    fluctuated_back,
    heavy_tailed_batches,
    logits_scaled_after_the_model,
    scale_lr_code,
    summed_loss_calls,
    typical_batch_rose,
    update_ratios,
)

__all__ = ["LossDiverging", "LossNotDecreasing", "still_falling"]


def still_falling(v: np.ndarray, *, t_stat: float = 3.0) -> bool:
    """Whether the loss is still going down at the end of the run, by more than its noise explains.

    A least-squares line through the last half of the run (at least 8 steps) falls with a t
    statistic below -`t_stat` (its slope over its standard error, from the scatter around the line).
    A model early in its training (a word model with thousands of classes starts at ln V and needs
    many steps to reach the label entropy) is not stuck, whatever level it has reached so far.
    """
    tail = np.asarray(v, dtype=float)[-max(8, len(v) // 2):]
    if len(tail) < 8:
        return False
    t = np.arange(len(tail), dtype=float)
    slope, icpt = np.polyfit(t, tail, 1)
    resid = tail - (slope * t + icpt)
    scatter = float(np.sqrt((resid ** 2).sum() / (len(tail) - 2)))
    se = scatter / float(np.sqrt(((t - t.mean()) ** 2).sum()))
    return bool(slope < 0 and (se == 0 or slope / se < -t_stat))


def _lr_text(ctx: Context, factor: float) -> str:
    return scale_lr_code(ctx, factor)


class LossDiverging(Rule):
    """Detects LOS001; its documentation and options are in the catalogue (`modeldebug explain LOS001`)."""

    code = "LOS001"
    requires = (M.LOSS, M.LR, M.OPTIMIZER, M.N_BACKWARD, M.MODEL_INPUT, M.LOSS_CALLS)

    def check(self, ctx: Context) -> Iterator[Finding]:
        s = ctx.loss
        if len(s) < ctx.t.min_steps or players(ctx):
            return  # several optimizers taking turns: one series of opposing losses, not one curve
        vals = s.values
        finite = np.isfinite(vals)
        fv, fs = vals[finite], s.steps[finite]
        if len(fv) < ctx.t.min_steps // 2:
            return
        w = window(len(fv))
        smooth = ctx.running_median(fv, w)
        start = float(np.median(fv[:w]))
        not_a_curve = loss_is_not_a_curve(ctx)
        # (not for a level that follows the episode's length: a policy gradient)
        unbounded = self._unbounded(ctx, fv, fs, smooth, start) if not_a_curve != "per_sample" else None
        if unbounded is not None:
            yield unbounded
            return
        went_nonfinite = bool(finite[: max(1, len(vals) // 10)].all() and not finite[-1])
        if not went_nonfinite and not_a_curve:
            return  # a loss without a floor, or one summing a varying number of samples: no "N times its best"
        best_i = int(np.argmin(smooth))
        best = float(smooth[best_i])
        final = float(smooth[-1])
        factor = ctx.t.loss_divergence
        floor = abs(best) + 1e-12
        # Worse than `factor` x the best AND back above half-way to where it started: a run that
        # converged near zero and fluctuates there (0.001 -> 0.003) is not diverging.
        diverged = final > best + (factor - 1) * floor and final > best + 0.5 * max(start - best, 0.0)
        if diverged and heavy_tailed_batches(fv, w, float(fv[0])) and (
                not typical_batch_rose(fv, w, best_i, factor) or fluctuated_back(smooth, best_i, start, final)):
            diverged = False  # the median moved with the share of outlier batches, to a level it had been at
        if not (diverged or went_nonfinite):
            return
        ratio = final / floor if floor else float("inf")
        severity = "high" if went_nonfinite or ratio > 10 else "medium"
        title = (f"Loss diverged: rose from {fmt(best)} at step {int(fs[best_i])} to "
                 f"{'NaN/Inf' if went_nonfinite else fmt(final)}")
        yield self.finding(
            severity=severity, confidence=min(0.95, 0.6 + 0.1 * np.log10(max(ratio, 1.0)) + (0.2 if went_nonfinite else 0)),
            title=title,
            description=(f"The smoothed training loss reached its best value {fmt(best)} at step {int(fs[best_i])}, "
                         f"then climbed to {fmt(final)} ({fmt(ratio)}x the best, start was {fmt(start)})."
                         + (" It ended non-finite." if went_nonfinite else "")
                         + " The updates overshoot: the learning rate is too high for this model and data."),
            # found only through the non-finite loss: it begins where the loss went non-finite, not at its best
            step=int(s.steps[~finite][0]) if went_nonfinite and not diverged else int(fs[best_i]),
            evidence={"start_loss": start, "best_loss": best, "best_step": int(fs[best_i]), "final_loss": final,
                      "ratio_to_best": ratio, "went_nonfinite": went_nonfinite, "lr": ctx.lr,
                      "loss": ctx.evidence_series(s),
                      # found only because the loss turned non-finite (it never climbed while finite):
                      # the non-finite value is its cause (ranking.py)
                      **({"rests_on": ["nonfinite"]} if went_nonfinite and not diverged else {})},
            recommendations=[
                Recommendation("fix", "Lower the learning rate by 10x.", _lr_text(ctx, 0.1)),
                Recommendation("fix", "Clip the gradient norm between backward() and step().",
                               "loss.backward()\ntorch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\noptimizer.step()"),
                Recommendation("best_practice", "Warm the learning rate up over the first steps.",
                               "sched = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=500)"),
            ],
        )

    def _unbounded(self, ctx: Context, fv: np.ndarray, fs: np.ndarray, smooth: np.ndarray, start: float) -> Finding | None:
        """A loss that started positive and fell orders of magnitude below zero: it has no floor
        (`fv`, `fs`: its finite values and their steps; `smooth`: their running median)."""
        low_i = int(np.argmin(smooth))
        low = float(smooth[low_i])
        # 1,000x the start, and 1,000 at least: a loss with a floor below zero (a Gaussian NLL whose
        # variance is learned: -log(sigma) a value) settles within a few units of it, whatever a
        # warm start made its first value; one with no floor falls by orders of magnitude
        if not (start > 0 and low < -ctx.option("unbounded_factor") * max(start, 1.0)):
            return None
        below = np.flatnonzero(fv < 0)
        since = int(fs[below[0]]) if len(below) else int(fs[low_i])
        return self.finding(
            severity="high", confidence=0.9,
            title=f"The training loss fell without bound: from {fmt(start)} to {fmt(low)}",
            description=(f"The loss started at {fmt(start)} and went below zero at step {since}; its smoothed value "
                         f"reached {fmt(low)}, {fmt(-low / start)}x its start on the other side of zero. "
                         "Cross-entropy, squared error and KL divergences "
                         "are never negative, and a loss that may be (a Gaussian NLL, an ELBO) settles at a floor: this one "
                         "has a term with the wrong sign or no lower bound, and the optimizer drives it to -inf. "
                         "What follows (gradients that explode, a validation loss that rises) comes from it."),
            step=since,
            evidence={"start_loss": start, "lowest_loss": low, "lowest_step": int(fs[low_i]), "negative_since": since,
                      "ratio_to_start": -low / start, "unbounded": True, "loss": ctx.evidence_series(ctx.loss),
                      # the effects it causes (ranking.py reads this beside the catalogue's `explains`)
                      "explains": ["overfitting", "exploding_gradients", "nonfinite", "lr_too_high", "loss_oscillating"]},
            recommendations=[
                Recommendation("fix", "Check the sign of each term of the loss: the KL divergence of a VAE is added, "
                                      "and it is -0.5 * sum(1 + logvar - mu^2 - exp(logvar)).",
                               "kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())\n"
                               "loss = recon + kl          # not recon - kl"),
                Recommendation("fix", "Minimise a loss, not a score: negate what you want to maximise once.",
                               "loss = -log_likelihood     # a likelihood is maximised; the loss is its negative"),
            ],
        )


def chance_loss(ctx: Context) -> tuple[float, str] | None:
    """The loss a classifier gets by ignoring its input and predicting the label frequencies.

    Cross-entropy/NLL: the entropy of the class histogram seen in the training loss calls. Binary
    cross-entropy on 0/1 targets: the binary entropy of the positive rate. None when unknown (other
    losses, label smoothing, several training losses).
    """
    train = [e for e in ctx.record.entities("loss") if e.info.get("phase") == "train"]
    if len(train) != 1:
        return None
    e = train[0]
    kwargs = e.info.get("kwargs", {})
    if kwargs.get("reduction", "mean") != "mean" or kwargs.get("label_smoothing", 0.0):
        return None
    if e.type in ("cross_entropy", "nll_loss"):
        hists = ctx.record.histograms(e.name, kind="loss")
        if not hists:
            return None
        width = max(len(h[3]) for h in hists) - 1  # the class count can differ between calls
        counts = np.zeros(max(width, 0))
        for h in hists:
            c = np.asarray(h[3][:-1], dtype=float)
            counts[: len(c)] += c
        if counts.sum() <= 0:
            return None
        weight = e.info.get("class_weight")
        weighted = bool(weight) and len(weight) >= len(counts)
        if weighted:  # torch divides by the weights' sum: the best constant prediction is the weighted frequency
            counts = counts * np.asarray(weight[:len(counts)], dtype=float)
            if not (np.isfinite(counts).all() and (counts >= 0).all() and counts.sum() > 0):
                return None
        p = counts[counts > 0] / counts.sum()
        entropy = float(-(p * np.log(p)).sum())
        first = ctx.loss.finite()
        if len(first) and summed_loss_calls(ctx, float(first.values[0]), entropy) is not None:
            return None  # the step's loss sums several calls: one call's chance is not its scale
        return entropy, (f"the entropy of the {'class-weighted ' if weighted else ''}label frequencies over "
                         f"{len(counts)} classes")
    if e.type in ("binary_cross_entropy_with_logits", "binary_cross_entropy"):
        lo = ctx.record.series(e.name, "tgt_min", kind="loss").finite().values
        hi = ctx.record.series(e.name, "tgt_max", kind="loss").finite().values
        mean = ctx.record.series(e.name, "tgt_mean", kind="loss").finite().values
        if not len(mean) or lo.min() < 0 or hi.max() > 1:
            return None
        q = float(np.mean(mean))
        if not 0 < q < 1:
            return None
        pos_weight = e.info.get("pos_weight")
        if pos_weight and e.type == "binary_cross_entropy_with_logits":
            # -(w y log p + (1 - y) log(1 - p)), a mean over elements: the best constant p is
            # a / (a + b) with a = w q and b = 1 - q, and its loss (a + b) H(a / (a + b))
            a, b = q * float(np.mean(pos_weight)), 1 - q
            if not (np.isfinite(a) and a > 0):
                return None
            r = a / (a + b)
            return float(-(a + b) * (r * np.log(r) + (1 - r) * np.log(1 - r))), "the positive-weighted entropy of the positive rate"
        return float(-(q * np.log(q) + (1 - q) * np.log(1 - q))), "the entropy of the positive rate"
    return None


class LossNotDecreasing(Rule):
    """Detects LOS002; its documentation and options are in the catalogue (`modeldebug explain LOS002`)."""

    code = "LOS002"
    requires = (M.LOSS, M.LR, M.LOSS_CALLS, M.LABEL_COUNTS, M.TGT_MIN, M.TGT_MAX, M.TGT_MEAN, M.IN_MIN, M.IN_MAX, M.OPTIMIZER, M.N_BACKWARD,
                M.MODEL_INPUT, M.UPDATE_RATIO, M.MODULE_STD, M.MODULE_MEAN)

    def check(self, ctx: Context) -> Iterator[Finding]:
        s = ctx.loss.finite()
        if len(s) < ctx.t.min_steps or len(s) < 0.8 * len(ctx.loss) or players(ctx) or loss_is_not_a_curve(ctx):
            return  # short runs, runs that went non-finite (another rule's business), turn-taking
            # optimizers, losses that need not fall (a policy-gradient surrogate, episodes summed)
        v = s.values
        w = window(len(v))
        start = float(np.median(v[:w]))
        smooth = ctx.running_median(v, w)
        best_i = int(np.argmin(smooth[w:])) + w if len(v) > w else 0
        best = float(smooth[best_i])
        gain = start - best
        rel = gain / (abs(start) + 1e-12)
        noise = float(np.median(np.abs(np.diff(v)))) if len(v) > 1 else 0.0
        chance = chance_loss(ctx)
        # The level it ends at (median of the last fifth): the running minimum is biased low by
        # minibatch noise, which would hide a model that hovers at chance.
        final = float(np.median(v[-max(w, len(v) // 5):]))
        margin = ctx.option("chance_margin")
        # A loss still falling at the end is early in its training, not stuck: the label entropy
        # is a level to reach, and a large vocabulary takes many steps to get there.
        # Logits scaled after the model (a cosine classifier's s with a margin, as ArcFace): the margin
        # keeps the loss above the label entropy in a model that learns, so that level means nothing.
        at_chance = (chance is not None and final >= chance[0] * (1 - margin) and not still_falling(v)
                     and logits_scaled_after_the_model(ctx) is None)
        if rel >= ctx.t.min_improvement and gain > noise and not at_chance:
            return
        if at_chance and chance is not None:
            travelled = _travelled(ctx, len(v))
            if travelled is not None and travelled < ctx.option("min_movement"):
                yield self._too_little(ctx, s, final, chance, travelled)
                return
            yield self.finding(
                severity="high" if final >= chance[0] else "medium", confidence=0.85,
                title=(f"Loss is stuck at chance: {fmt(final)} at the end vs {fmt(chance[0])} for predicting the label frequencies"
                       if final <= chance[0] * (1 + margin) else
                       f"Loss ends worse than chance: {fmt(final)} vs {fmt(chance[0])} for predicting the label frequencies"),
                description=(f"After {len(v)} steps the training loss ends at {fmt(final)}, "
                             + (f"within {margin:.0%} of " if final <= chance[0] * (1 + margin) else "above ")
                             + f"{fmt(chance[0])}, "
                             f"{chance[1]}: the model does no better than predicting how often each class occurs. "
                             "The inputs carry no usable signal for the labels (misaligned or shuffled labels, "
                             "a broken input pipeline), or the model cannot use them."),
                step=int(s.steps[0]),
                evidence={"start_loss": start, "final_loss": final, "chance_loss": chance[0], "chance": chance[1],
                          "steps": len(v), "lr": ctx.lr, "loss": ctx.evidence_series(s)},
                recommendations=[
                    Recommendation("fix", "Check that inputs and labels are still paired: look at a few (x, y) pairs, and shuffle them together.",
                                   "perm = torch.randperm(len(x))\nx, y = x[perm], y[perm]          # one permutation for both\n"
                                   "print(y[:10], x[:10].mean(1))   # eyeball that labels follow inputs"),
                    Recommendation("fix", "Overfit one small batch: if even that stays at chance, the bug is in the model or loss wiring.",
                                   "x, y = next(iter(loader))\nfor i in range(300):\n    optimizer.zero_grad()\n    loss_fn(model(x), y).backward()\n    optimizer.step()"),
                ],
            )
            return
        severity = "high" if rel <= 0.001 else "medium"
        yield self.finding(
            severity=severity, confidence=0.85 if rel <= 0 else 0.7,
            title=f"Loss is not decreasing: {fmt(start)} at the start, best {fmt(best)} after {len(v)} steps",
            description=(f"Over {len(v)} steps the smoothed training loss improved by {rel:.2%} "
                         f"({fmt(gain)}; the step-to-step noise is {fmt(noise)}). The model is not learning."),
            step=int(s.steps[0]),
            evidence={"start_loss": start, "best_loss": best, "relative_improvement": rel, "noise": noise,
                      "steps": len(v), "lr": ctx.lr, "loss": ctx.evidence_series(s)},
            recommendations=[
                Recommendation("fix", "Overfit one small batch first: if the loss does not go near zero, the bug is in the model, loss or optimizer wiring, not the data.",
                               "x, y = next(iter(loader))\nfor i in range(300):\n    optimizer.zero_grad()\n    loss = loss_fn(model(x), y)\n    loss.backward()\n    optimizer.step()\nprint(loss.item())   # should approach 0"),
                Recommendation("best_practice", "Check the learning rate with a range test (from 1e-6 to 1, one step each, plot loss vs lr).",
                               _lr_text(ctx, 10.0)),
            ],
        )

    def _too_little(self, ctx: Context, s: Any, final: float, chance: tuple[float, str], travelled: float) -> Finding:
        """At chance after too little training to tell: the weights barely moved."""
        n = len(s.values)
        return self.finding(
            severity="medium", confidence=0.7,
            title=(f"Loss is at chance ({fmt(final)} vs {fmt(chance[0])}), but the weights moved only "
                   f"{travelled:.1%} of their size in {n} steps"),
            description=(f"After {n} steps the training loss ends at {fmt(final)}, near {fmt(chance[0])}, "
                         f"{chance[1]}. The weights moved at most {travelled:.1%} of their size over the whole run "
                         "(the median update-to-weight ratio times the steps), too little to learn anything: the "
                         f"learning rate{f' ({fmt(ctx.lr)})' if ctx.lr else ''} is too low for a run this short, "
                         "or the run is too short. Whether the inputs carry signal cannot be told yet."),
            step=int(s.steps[0]),
            evidence={"final_loss": final, "chance_loss": chance[0], "chance": chance[1], "steps": n,
                      "lr": ctx.lr, "travelled": travelled, "min_movement": ctx.option("min_movement"),
                      "loss": ctx.evidence_series(s)},
            recommendations=[
                Recommendation("fix", "Raise the learning rate (or train for more steps) until the weights move.",
                               _lr_text(ctx, 10.0)),
                Recommendation("fix", "Overfit one small batch: if even that stays at chance, the bug is in the model or loss wiring.",
                               "x, y = next(iter(loader))\nfor i in range(300):\n    optimizer.zero_grad()\n    loss_fn(model(x), y).backward()\n    optimizer.step()"),
            ],
        )


def _travelled(ctx: Context, n_steps: int) -> float | None:
    """An upper bound of how far the weights moved over the run, relative to their size: the median
    update-to-weight ratio of the sampled steps times the number of steps (None: no ratios)."""
    _, ratios = update_ratios(ctx)
    return float(np.median(ratios)) * n_steps if len(ratios) else None
