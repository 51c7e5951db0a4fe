"""Step-size rules: learning rate too high or too low, an oscillating loss, clipping that eats the steps.

The measurements they share with the other training-dynamics rules live in measures.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import measures as M
from .base import Finding, Recommendation, Rule
from .context import Context, fmt, window
from .fixcode import optimizer_ctor
from .measures import (
    ADAPTIVE_OPTIMIZERS,
    HEALTHY_UPDATE_RATIO,
    Signal,
    bundle_step_said,
    casualties,
    collapsing,
    expected_initial_loss,
    instability,
    lr_code,
    manual_update,
    optimizer_type,
    oscillation,
    ratio_before,
    relative_gradient,
    scale_lr_code,
    update_ratios,
    weight_shrink,
)

__all__ = ["ExcessiveGradClipping", "LossOscillating", "LrTooHigh", "LrTooLow"]


def _rebuilt_every_step(rule: Rule, ctx: Context) -> Finding | None:
    """An adaptive optimizer built anew over the same parameters on most steps (`Adam(model.parameters())` inside
    the loop): each step is its first. Adam's first bias-corrected step is lr * g / |g| per weight (RMSprop's
    about 10x that), a sign step of the full learning rate whatever the gradient's size, and the moment
    estimates that would shrink it never build up."""
    built = ctx.record.events("optimizer")
    if len(built) < 20 or len(built) < 0.5 * ctx.n_steps:
        return None
    kinds: dict[tuple[str, tuple[str, ...]], int] = {}
    for e in built:
        params = tuple(p for g in e.data.get("groups") or [] for p in g.get("params") or [])
        key = (str(e.data.get("type")), params)
        kinds[key] = kinds.get(key, 0) + 1
    (kind, params), n = max(kinds.items(), key=lambda kv: kv[1])
    if kind not in ADAPTIVE_OPTIMIZERS or n < 0.5 * ctx.n_steps:
        return None
    lr = ctx.lr
    return rule.finding(
        severity="high", confidence=0.85,
        title=f"A new {kind} is built at {n} of {ctx.n_steps} steps: every step is its first, a sign step of the full learning rate",
        description=(f"{kind} was constructed {n} times over the same {len(params)} parameter tensors, about once per "
                     f"step, so its state (the running moments) starts empty at each step. {kind}'s first step, after "
                     "bias correction, moves every weight by about the learning rate"
                     + (f" ({fmt(lr)})" if lr else "")
                     + " in the gradient's sign whatever the gradient's size, so steps never shrink as the loss "
                     "settles, and the loss and the weights keep jumping around a level they would otherwise "
                     "settle into."),
        location=None, step=int(built[1].step) if built[1].step is not None else 0,
        evidence={"optimizer": kind, "constructions": n, "steps": ctx.n_steps, "params": list(params)[:20], "lr": lr},
        recommendations=[Recommendation(
            "fix", "Build the optimizer once, before the loop.",
            f"optimizer = torch.optim.{kind}(model.parameters(), lr={fmt(lr) if lr else '1e-3'})   # once\n"
            "for x, y in loader:\n    optimizer.zero_grad()\n    loss_fn(model(x), y).backward()\n    optimizer.step()")])


class LrTooHigh(Rule):
    """Detects LRN001; its documentation and options are in the catalogue (`modeldebug explain LRN001`)."""

    code = "LRN001"
    requires = (M.LOSS, M.LR, M.GRAD_NORM, M.UPDATE_RATIO, M.PARAM_NORM, M.DEAD_FRAC, M.SATURATED_FRAC, M.OPTIMIZER,
                M.N_BACKWARD, M.MODEL_INPUT, M.LOSS_CALLS)

    def _from_loss(self, ctx: Context, signals: list[Signal]) -> Finding | None:
        """Too high, judged from the loss alone: it blew up within the very first steps.

        Within the first tenth of the run (at least 3 steps) the loss rose to 10x its first value
        or became non-finite: one learning rate for every step of a run without an optimizer, or
        the closure evaluations of an LBFGS-style step. A loss that climbs gradually (gradient
        ascent, a flipped sign) is not an overshoot and is left to loss_diverging.
        """
        loss = ctx.loss
        v = loss.values
        finite = v[np.isfinite(v)]
        if len(finite) < 2 or not np.isfinite(v[0]) or v[0] <= 0:
            return None
        severe = [s for s in signals if s.severe and not s.sustained]
        early = max(3, ctx.n_steps // 10)
        head = v[loss.steps <= early]
        blew_up = bool((~np.isfinite(head)).any() or np.nanmax(head) >= 10 * v[0])
        first = min(s.onset for s in signals)
        stuck = len(finite) >= 5 and float(np.median(finite[-max(3, len(finite) // 10):])) >= 0.9 * float(v[0])
        if not severe or not blew_up or first > early:
            return None
        opt = optimizer_type(ctx) if ctx.record.events("optimizer") else None
        n_back = ctx.record.column("n_backward").finite().values
        closure = opt is not None and len(n_back) and float(np.median(n_back)) > 1
        lr = ctx.lr_at(first)
        what = "; ".join(s.what for s in severe)
        if opt is None:
            where = ("The script updates the weights itself (no optimizer object): one step size for every "
                     "update, so the loss shows what the updates do.")
            fix = Recommendation("fix", "Lower the learning rate where you apply p.grad, by 10x to start with.",
                                 "lr = lr / 10                           # the rate your update uses\n"
                                 "with torch.no_grad():\n    for p in model.parameters():\n"
                                 "        p.add_(p.grad, alpha=-lr)          # or p.data.add_(p.grad, alpha=-lr)")
        elif closure:
            where = (f"{opt} evaluates its closure {fmt(float(np.median(n_back)))} times per step; those evaluations "
                     "are what the loss above is made of.")
            fix = Recommendation("fix", f"Use {opt} at its default step with a line search, which picks a step that "
                                 "lowers the loss.",
                                 optimizer_ctor(ctx, lr=1, line_search_fn="strong_wolfe", note=f"was lr={lr:g}" if lr else None))
        else:
            where = "No update ratio was measured on this run, so the loss shows what the updates do."
            fix = Recommendation("fix", "Lower the learning rate by 10x.",
                                 lr_code(ctx, lr / 10) if lr else scale_lr_code(ctx, 0.1))
        return self.finding(
            severity="high", confidence=0.75,
            title=(f"Learning rate {fmt(lr)} is too high: " if lr else "Learning rate too high: ") + severe[0].what,
            description=(f"From step {first} on, {what}. {where} A loss that blows up within the first steps, from a "
                         "finite start, is the signature of updates that overshoot."
                         + (" The loss never got back below its starting value." if stuck else "")),
            step=first,
            evidence={"lr": lr, "optimizer": opt, "closure_evaluations_per_step": float(np.median(n_back)) if closure else None,
                      "inferred_from": "loss", "signals": [s.what for s in severe], "stuck": stuck,
                      "loss": ctx.evidence_series(loss)},
            recommendations=[fix],
        )
    # Units knocked dead or into saturation by the updates too; the ranking only folds those that began
    # no earlier than the trouble (units dead from the first step are the initialisation's).

    def _from_weight_growth(self, ctx: Context) -> Finding | None:
        """Too high for an adaptive optimizer, judged by what its steps did to the weights' size.

        Adam-like optimizers move every weight by about the learning rate per step, whatever the
        gradient's scale, so a rate far above the weights' own scale shows as weight norms that
        grow several-fold in a run without any loss blow-up (AdamW on a small GPT at 100x: 5-13x
        in 200 steps, against 1.1-2x for the same scripts at their working rate).
        """
        opt = optimizer_type(ctx) if ctx.record.events("optimizer") else None
        ws = weight_shrink(ctx)
        if opt not in ADAPTIVE_OPTIMIZERS or ws is None:
            return None
        growth = float(ws["median"])
        thr = ctx.option("lr_high_weight_growth")
        lr = ctx.lr
        lrs = ctx.record.column("lr").finite().values
        peak = float(lrs.max()) if len(lrs) else lr
        if growth < thr or not peak:
            return None
        # One full-rate step (about lr per element: lr * sqrt(numel)) against the weights' final norm:
        # weights that grew by following the data are many steps big; weights made of steps are a few.
        pnorms = ctx.param_stat("param_norm")
        shares = []
        for name in ws["per_tensor"]:
            final = pnorms[name].finite().values[-1]
            numel = int(np.prod(ctx.params[name].info.get("shape") or [0]))
            if final > 0 and numel:
                shares.append(peak * float(np.sqrt(numel)) / float(final))
        share = float(np.median(shares)) if shares else 0.0
        if share < ctx.option("lr_high_step_share"):
            return None
        top = sorted(ws["per_tensor"].items(), key=lambda kv: -kv[1])[:3]
        span = ws["last_step"] - ws["first_step"]
        return self.finding(
            severity="medium", confidence=0.6,
            title=(f"Learning rate {fmt(peak)} is too high for {opt}: the weights grew {fmt(growth)}x in {span} steps"
                   if peak else f"Learning rate too high for {opt}: the weights grew {fmt(growth)}x in {span} steps"),
            description=(f"{opt} moves every weight by about the learning rate per step, whatever the size of its gradient. "
                         f"From step {ws['first_step']} to {ws['last_step']} the weight tensors' norms grew by a median "
                         f"{fmt(growth)}x (largest: " + ", ".join(f"{n} {fmt(g)}x" for n, g in top) + "), and one step at "
                         f"the peak rate is still {share:.0%} of their final norm (median): their size is made of a few "
                         "steps, not of what the data asked for (training that follows the data grows them 1.1-2x over "
                         "such a run, many steps big). The loss can still fall, but it settles higher than a smaller "
                         "rate reaches."),
            step=ws["first_step"],
            evidence={"lr": lr, "peak_lr": peak, "optimizer": opt, "weight_growth": growth, "weight_growth_threshold": thr,
                      "peak_step_share": share,
                      "per_tensor_growth": dict(top), "first_step": ws["first_step"], "last_step": ws["last_step"],
                      "inferred_from": "weight_growth"},
            recommendations=[
                Recommendation("fix", f"Lower the peak learning rate by 10x (to {fmt(peak / 10)}), keeping the schedule's shape."
                               if peak else "Lower the learning rate by 10x.",
                               (optimizer_ctor(ctx, lr=float(f"{peak / 10:.1g}"), note=f"peak was {peak:g}") + "\n"
                                "# with a warm-up/decay schedule: lower the base rate it scales, not one step's value")
                               if peak else scale_lr_code(ctx, 0.1)),
            ],
        )

    def _nonfinite_after_update(self, ctx: Context, steps: np.ndarray, ratios: np.ndarray) -> Finding | None:
        """Too high, judged by the update that came right before the loss went non-finite.

        A loss that is finite and then NaN/Inf within the first three updates (or after it had risen),
        with finite gradients, after updates that moved the weights by a large share of their norm
        (Adam at 100x: about all of it in one step), went non-finite because of those updates (an
        exp or log1p(exp) overflowing on the moved weights). Nothing finite rose first, so the
        loss-jump and gradient-growth signs never see it. A NaN much later after a flat loss, or
        born in a gradient, is left to NUM001: Adam's first steps are large at any rate. Adaptive
        optimizers only: their step is about the rate per weight whatever the gradient, while a huge
        first SGD step can be a huge gradient's (GRD001).
        """
        v = ctx.loss.values
        opt = optimizer_type(ctx) if ctx.record.events("optimizer") else None
        if opt not in ADAPTIVE_OPTIMIZERS or not len(v) or not np.isfinite(v[0]):
            return None  # plain SGD's update is lr x gradient: a huge first one can be the gradient's (GRD001)
        events = ctx.record.events("nonfinite")
        bad = np.flatnonzero(np.isinf(v))
        t = events[0].step if events and events[0].step is not None else int(ctx.loss.steps[bad[0]]) if len(bad) else None
        if t is None or t < 1:
            return None
        before = ratios[steps < t]
        thr = ctx.option("lr_high_update_ratio")
        ratio = float(np.max(before[-3:])) if len(before) else None
        if ratio is None or ratio < thr:
            return None
        finite = ctx.loss.finite()
        rose = finite.values[finite.steps < t]
        risen = len(rose) >= 2 and rose.max() > 1.5 * rose[0] > 0
        grads = ctx.record.column("grad_norm")
        if not (t <= 3 or risen) or not np.isfinite(grads.values[grads.steps < t]).all():
            return None  # a NaN much later, after a flat loss, or a gradient already non-finite: not the step size
        lr = ctx.lr_at(t)
        suggested = float(f"{lr * float(np.clip(10 * HEALTHY_UPDATE_RATIO / ratio, 0.01, 0.3)):.1g}") if lr else None
        rise = f" The loss had already risen from {fmt(float(rose[0]))} to {fmt(float(rose.max()))}." if risen else ""
        return self.finding(
            severity="high", confidence=0.8,
            title=(f"Learning rate {fmt(lr)} is too high: " if lr else "Learning rate too high: ")
            + f"the updates before step {t} moved the weights by {fmt(ratio)} of their norm, then the loss became non-finite",
            description=(f"The loss was finite until step {t}. The update(s) just before moved the weights by {fmt(ratio)} of "
                         f"their norm (largest median over weight tensors; about {HEALTHY_UPDATE_RATIO:g} is healthy), and "
                         f"from step {t} the loss was NaN/Inf: values computed from weights moved that far overflow "
                         f"(exp, log1p(exp), a softmax's sum).{rise}"),
            step=int(steps[steps < t][-1]),
            evidence={"lr": lr, "suggested_lr": suggested, "update_ratio": ratio, "update_ratio_threshold": thr,
                      "nonfinite_step": t, "inferred_from": "update_before_nonfinite",
                      "loss": ctx.evidence_series(ctx.loss)},
            recommendations=self._fixes(ctx, lr, suggested),
        )

    @staticmethod
    def _settled(ctx: Context, steps: np.ndarray, ratios: np.ndarray, blamed: list[Signal], thr: float) -> bool:
        """A transient of the first steps that the run got over: every sign is an event (no oscillation)
        within the first tenth of the run; the updates of the run's second half are below `thr`
        (median); and the loss ends (median of the last tenth) under half of its level before the
        first sign. SGD with momentum at a high rate often jumps in its first updates, then trains."""
        loss = ctx.loss.finite()
        v, at = loss.values, loss.steps
        first = min(s.onset for s in blamed)
        if any(s.sustained for s in blamed) or first > max(10, ctx.n_steps // 10) or len(v) < 20:
            return False
        late = ratios[steps >= ctx.n_steps // 2]
        before = v[at < first]
        if not len(late) or not len(before) or float(np.median(late)) >= thr:
            return False
        return float(np.median(v[-max(3, len(v) // 10):])) < 0.5 * float(np.median(before))

    @staticmethod
    def _fixes(ctx: Context, lr: float | None, suggested: float | None) -> list[Recommendation]:
        return [
            Recommendation("fix", f"Lower the learning rate to about {fmt(suggested)} (from {fmt(lr)})."
                           if suggested else "Lower the learning rate by 10x.",
                           lr_code(ctx, suggested) if suggested else scale_lr_code(ctx, 0.1)),
            Recommendation("best_practice", "Warm the learning rate up, and clip the gradient norm as a safety net.",
                           "sched = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=500)\n"
                           "loss.backward()\ntorch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n"
                           "optimizer.step()\nsched.step()"),
        ]

    def check(self, ctx: Context) -> Iterator[Finding]:
        rebuilt = _rebuilt_every_step(self, ctx)
        if rebuilt is not None:
            yield rebuilt
            return
        for f in self._check(ctx):
            yield bundle_step_said(ctx, f)

    def _check(self, ctx: Context) -> Iterator[Finding]:
        signals = instability(ctx)
        steps, ratios = update_ratios(ctx)
        if collapsing(ctx):
            return
        if len(ratios) and not any(s.severe for s in signals):
            blown = self._nonfinite_after_update(ctx, steps, ratios)
            if blown is not None:
                yield blown
                return
        if not signals:
            grown = self._from_weight_growth(ctx) if len(ratios) else None
            if grown is not None:
                yield grown
            return
        if not len(ratios):
            # No update was measured: weights updated by hand (no optimizer object), or a run of a
            # few closure steps. The loss's own behaviour then stands for the update size.
            f = self._from_loss(ctx, signals)
            if f is not None:
                yield f
            return
        thr = ctx.option("lr_high_update_ratio")
        blamed: list[tuple[Signal, float]] = []
        for sig in signals:
            during = ratios[steps >= sig.onset]
            # an oscillation is a steady state: the updates made while it lasts are the ones to judge
            r = float(np.median(during)) if sig.sustained and len(during) else ratio_before(steps, ratios, sig.onset)
            if r is not None and r >= thr:
                blamed.append((sig, r))
        if not blamed:
            grown = self._from_weight_growth(ctx)
            if grown is not None:
                yield grown
            return
        sig, ratio = min(blamed, key=lambda b: b[0].onset)
        # the rate was too high from before the first sign of trouble: the step the symptoms are ranked against
        onset = min(s.onset for s in signals)
        # Updates that were already too large on the first sampled steps make the rate the cause of a
        # loss that never learned from the start (SGD at 5.0 hovering at chance), not only of the later jump.
        early = steps[(ratios >= thr) & (steps < onset)]
        if len(early) and early[0] <= max(3, ctx.n_steps // 20):
            onset = int(early[0])
        severe = any(s.severe for s, _ in blamed)
        finite = ctx.loss.finite().values
        stuck = len(finite) >= 5 and float(np.median(finite[-max(3, len(finite) // 10):])) >= 0.9 * float(finite[0])
        lr = ctx.lr_at(sig.onset)  # the rate when the trouble began (a schedule moves it after)
        suggested = float(f"{lr * float(np.clip(10 * HEALTHY_UPDATE_RATIO / ratio, 0.01, 0.3)):.1g}") if lr else None
        knocked_out = casualties(ctx)
        settled = not (severe or stuck or knocked_out) and self._settled(ctx, steps, ratios, [s for s, _ in blamed], thr)
        yield self.finding(
            severity="high" if severe or stuck else "low" if settled else "medium",
            confidence=0.9 if severe else 0.5 if settled else 0.75,
            title=f"Learning rate {fmt(lr)} is too high: {sig.what}" if lr else f"Learning rate too high: {sig.what}",
            description=(f"With learning rate {fmt(lr)}, each update moved the weights by {fmt(ratio)} of their norm "
                         f"(median over weight tensors; about {HEALTHY_UPDATE_RATIO:g} is healthy). Then "
                         + "; ".join(s.what for s, _ in blamed) + ". The updates overshoot."
                         + (" The loss never got back below its starting value." if stuck else "")
                         + (f" After training began, {'; '.join(knocked_out)}." if knocked_out else "")
                         + (" It was a transient of the first steps: the updates then settled below the threshold and the "
                            "loss ended well under its level before the jump, so this rate trains; a lower one may "
                            "still train more smoothly." if settled else "")),
            step=onset,
            evidence={"lr": lr, "suggested_lr": suggested, "update_ratio": ratio, "update_ratio_threshold": thr,
                      "onset_step": onset, "signals": [s.what for s, _ in blamed], "stuck": stuck, "settled": settled,
                      "casualties": knocked_out,
                      "update_ratio_by_step": {int(s): float(r) for s, r in zip(steps[:12], ratios[:12])},
                      "loss": ctx.evidence_series(ctx.loss)},
            recommendations=self._fixes(ctx, lr, suggested),
        )


def _movement(ctx: Context, v: np.ndarray) -> tuple[float, float, float, float]:
    """How far a loss curve moved: (first quarter's median, last quarter's, the best running median over a quarter,
    and the larger of |start - end| and start - best, relative to the start). Quarters: long enough that minibatch
    noise averages out."""
    q = max(3, len(v) // 4)
    start, end = float(np.median(v[:q])), float(np.median(v[-q:]))
    best = float(np.min(ctx.running_median(v, q)[q - 1:]))
    return start, end, best, max(abs(start - end), start - best) / (abs(start) + 1e-12)


class LrTooLow(Rule):
    """Detects LRN002; its documentation and options are in the catalogue (`modeldebug explain LRN002`)."""

    code = "LRN002"
    requires = (M.LOSS, M.LR, M.UPDATE_RATIO, M.PARAM_GRAD_NORM, M.PARAM_NORM, M.LOSS_CALLS, M.LABEL_COUNTS, M.IN_MAX, M.OPTIMIZER,
                M.PLATEAU_STEP, M.LR_SCHEDULER, M.N_BACKWARD)

    def check(self, ctx: Context) -> Iterator[Finding]:
        yield from plateau_backwards(self, ctx)
        yield from self._warmup_unfinished(ctx)
        per_micro = self._stepped_per_micro_batch(ctx)
        if per_micro is not None:
            yield per_micro
            return  # the schedule's course, run n times too fast, is the cause of what follows
        decayed = self._decayed_away(ctx)
        if decayed is not None:
            yield decayed
            return  # the same stall, its cause named: the tiny updates after it are its effect
        yield from self._tiny_updates(ctx)

    def _stepped_per_micro_batch(self, ctx: Context) -> Finding | None:
        """A schedule stepped once per backward pass under gradient accumulation: `scheduler.step()` next to
        `loss.backward()`, not next to `optimizer.step()`. Its course, sized in optimizer steps, runs as many
        times too fast as there are micro-batches per step (a warmup done in a fraction of its steps, a decay
        to 0 long before the run ends). Judged by counts alone: the scheduler's steps over the optimizer's
        within a quarter of the median backward passes per step, 2 or more, and the rate at 0 (1% of its
        peak or less) for the last 20% of the run or more: a schedule sized in micro-batches on purpose runs
        its course over the whole run and is not flagged."""
        sched = next((ev.data for ev in ctx.record.events(M.LR_SCHEDULER.name)), None)
        n_back = ctx.record.column("n_backward").finite().values
        if sched is None or sched.get("type") == "ReduceLROnPlateau" or not len(n_back):
            return None
        opt_steps, sched_steps = int(sched.get("optimizer_steps", 0)), int(sched.get("scheduler_steps", 0))
        micro = float(np.median(n_back))
        if opt_steps < ctx.t.min_steps or micro < 2:
            return None
        ratio = sched_steps / opt_steps
        if abs(ratio - micro) > 0.25 * micro:
            return None
        lr = ctx.record.column("lr").finite()
        v, steps = lr.values, lr.steps
        peak = float(v.max()) if len(v) else 0.0
        # where the rate last stood above 1% of its peak (a warmup may start near 0: look from the end)
        alive = np.flatnonzero(v > 0.01 * peak) if peak > 0 else np.array([], dtype=int)
        ran_out = len(alive) > 0 and int(alive[-1]) < len(v) - 1
        at = int(steps[int(alive[-1]) + 1]) if ran_out else None
        rest = (int(steps[-1]) - at) / max(int(steps[-1]) - int(steps[0]), 1) if at is not None else 0.0
        if not (ran_out and rest >= 0.2):
            return None  # a schedule sized in micro-batches on purpose runs its course over the whole run
        return self.finding(
            severity="high", confidence=0.85,
            title=(f"The {sched.get('type')} schedule is stepped once per micro-batch: {fmt(ratio)} scheduler steps per "
                   f"optimizer step under gradient accumulation of {fmt(micro)}"
                   + f"; the learning rate has been 0 since step {at} ({rest:.0%} of the run)"),
            description=(f"The run accumulates gradients over {fmt(micro)} backward passes per optimizer step, and the "
                         f"schedule was stepped {sched_steps} times against {opt_steps} optimizer steps: scheduler.step() "
                         "sits next to loss.backward(), not next to optimizer.step(). A schedule sized in optimizer "
                         f"steps (a warmup, a linear or cosine decay over the run) then runs {fmt(ratio)}x too fast"
                         + f": the rate reached 0 at step {at} and the last {rest:.0%} of the run trained nothing."),
            step=int(steps[0]) if len(steps) else 0,
            evidence={"scheduler": sched.get("type"), "scheduler_steps": sched_steps, "optimizer_steps": opt_steps,
                      "backward_per_step": micro, "steps_per_optimizer_step": ratio, "lr_zero_from_step": at,
                      "share_of_run_at_zero": rest, "lr": ctx.evidence_series(lr)},
            recommendations=[Recommendation(
                "fix", "Step the schedule with the optimizer, once per accumulated step.",
                "for i, (x, y) in enumerate(loader):\n    (loss_fn(model(x), y) / accum).backward()\n"
                "    if (i + 1) % accum == 0:\n        optimizer.step()\n        scheduler.step()      # here, not after "
                "every backward()\n        optimizer.zero_grad()")])

    def _decayed_away(self, ctx: Context) -> Finding | None:
        """A rate that falls to nothing in the first half of the run and stays there, while the loss stops
        moving: a decay sized in epochs but stepped after every batch (`StepLR(step_size=5)` with
        `sched.step()` in the batch loop divides the rate by 10 every 5 batches), or a per-step gamma far
        too small. The mirror of `_warmup_unfinished`. Not a `ReduceLROnPlateau` (its cuts answer a stalled
        metric: the stall came first), not a schedule that reaches zero at its end (cosine, one-cycle)."""
        lr = ctx.record.column("lr").finite()
        if len(lr) < ctx.t.min_steps or any(ev.data.get("type") == "ReduceLROnPlateau"
                                             for ev in ctx.record.events(M.LR_SCHEDULER.name)):
            return None
        v, steps = lr.values, lr.steps
        peak = np.maximum.accumulate(v)
        share = ctx.option("lr_decayed_share")
        gone = (peak > 0) & (v < peak * share)
        if not gone.any():
            return None
        i = int(np.argmax(gone))
        if not gone[i:].all():
            return None  # a cyclic schedule's trough: the rate comes back
        first, last, at = int(steps[0]), int(steps[-1]), int(steps[i])
        if at - first > 0.5 * (last - first):
            return None  # the end of a schedule, not the run's middle
        loss = ctx.loss.finite()
        after, before = loss.values[loss.steps >= at], loss.values[loss.steps < at]
        if len(after) < ctx.t.min_steps:
            return None
        # the cause began where the rate last stood at its peak: the decay's first cut
        began = int(steps[int(np.flatnonzero(v[:i + 1] >= peak[:i + 1])[-1]) + 1]) if i else at
        if int(np.sum(loss.steps < began)) >= ctx.t.min_steps and self._settled_before(ctx, loss, began):
            return None  # the loss had stopped falling at the full rate: the stall came first, not from the schedule
        start, end, best, moved = _movement(ctx, after)
        if moved >= ctx.option("lr_low_improvement"):
            return None  # the loss still moves at that rate (or rises: another rule's business)
        expected = expected_initial_loss(ctx)
        if expected is not None and end < 0.5 * expected[0]:
            return None  # it had learned before the rate went: a converged run, decayed early
        if expected is None and len(before) >= 3 and end < 0.5 * float(np.median(before[:window(len(before))])):
            return None
        base = float(peak[i])
        rest = (last - at) / max(last - first, 1)
        sched = next((ev.data for ev in ctx.record.events(M.LR_SCHEDULER.name)), None)
        stepped = ""
        if sched is not None and int(sched.get("optimizer_steps", 0)) > 0:
            ratio = int(sched.get("scheduler_steps", 0)) / int(sched["optimizer_steps"])
            if ratio >= 0.5:
                stepped = (f" The {sched.get('type')} schedule was stepped {sched.get('scheduler_steps')} times in "
                           f"{sched.get('optimizer_steps')} optimizer steps: after every batch. A schedule sized in "
                           "epochs (a step_size, milestones or T_max counted in epochs) then runs its whole course "
                           "in the first few batches.")
        return self.finding(
            severity="high", confidence=0.8,
            title=(f"The learning rate decayed to nothing by step {at}: {fmt(float(v[i]))}, under {fmt(share)} of its "
                   f"peak {fmt(base)}, for the last {rest:.0%} of the run"),
            description=(f"The rate fell from {fmt(base)} at step {began} to {fmt(float(v[i]))} by step {at} and kept "
                         "falling, to "
                         f"{fmt(float(v[-1]))} at the end. From then on the loss moved by {moved:.1%} ({fmt(start)} to "
                         f"{fmt(end)}, best {fmt(best)}): the run stopped learning when its rate ran out, not because "
                         "it had converged." + stepped),
            step=began,
            evidence={"lr": base, "peak_lr": base, "lr_at_step": float(v[i]), "final_lr": float(v[-1]),
                      "decay_began_at_step": began, "decayed_at_step": at, "share_of_run_left": rest, "loss_moved_after": moved,
                      "scheduler": sched, "lr_series": ctx.evidence_series(lr)},
            recommendations=[
                Recommendation("fix", "Step an epoch-sized schedule once per epoch, after the batch loop.",
                               "for epoch in range(epochs):\n    for x, y in loader:\n        ...\n"
                               "        optimizer.step()\n    scheduler.step()          # here: once an epoch"),
                Recommendation("fix", "Or size the schedule in optimizer steps if you step it every batch.",
                               "steps = epochs * len(loader)\nscheduler = torch.optim.lr_scheduler.StepLR(\n"
                               "    optimizer, step_size=steps // 2, gamma=0.1)")])

    def _warmup_unfinished(self, ctx: Context) -> Iterator[Finding]:
        """A schedule that was still raising the rate when the run ended, far below its base rate, and
        was stepped far less often than the optimizer: a warmup sized in optimizer steps, stepped once
        an epoch (`LambdaLR(lambda step: step / warmup_steps)` with `sched.step()` after each epoch)."""
        lr = ctx.record.column("lr").finite()
        if len(lr) < ctx.t.min_steps:
            return
        v = lr.values
        for ev in ctx.record.events(M.LR_SCHEDULER.name):
            d = ev.data
            # the `lr` column is the first parameter group's: compare it with that group's base rate (the
            # rate a cyclic schedule climbs to: OneCycleLR's base rate is a 25th of it)
            base = float((d.get("peak_lrs") or d.get("base_lrs") or [0.0])[0])
            sched_steps, opt_steps = int(d.get("scheduler_steps", -1)), int(d.get("optimizer_steps", 0))
            if base <= 0 or sched_steps < 1 or opt_steps < 4 * sched_steps or d.get("type") == "ReduceLROnPlateau":
                continue
            peak = float(v.max())
            # still rising at the end: never falling, and higher in the last quarter than before it (a
            # warmup that finished and then held its rate is not)
            late = v[int(0.75 * len(v))]
            rising = bool(v[-1] >= 0.99 * peak and v[-1] > late * (1 + 1e-6) and v[-1] > v[0] * (1 + 1e-6)
                          and np.all(np.diff(v) >= -1e-12 * peak))
            share = peak / base
            if not rising or share >= ctx.option("warmup_reached"):
                continue
            per = opt_steps / max(sched_steps, 1)
            yield self.finding(
                severity="medium", confidence=0.8,
                title=(f"The learning rate was still warming up when the run ended: it peaked at {fmt(peak)}, "
                       f"{share:.0%} of the {'max_lr' if d.get('peak_lrs') else 'base rate'} {fmt(base)}"),
                description=(f"The {d.get('type')} schedule raised the rate all run long, from {fmt(float(v[0]))} to "
                             f"{fmt(peak)}, and never reached the rate it is built for, {fmt(base)}. It was stepped {sched_steps} times "
                             f"against {opt_steps} optimizer steps, once every {fmt(per)}: a warmup sized in optimizer steps "
                             "but stepped once an epoch stretches over ~{:.0f}x as many steps as intended, so the whole run "
                             "trains at a fraction of its rate. (Or the run ended long before its warmup: then it never "
                             "trained at the rate it was set to.)".format(per)),
                step=int(lr.steps[0]),
                evidence={"scheduler": d.get("type"), "base_lr": base, "peak_lr": peak, "share_of_base": share,
                          "scheduler_steps": sched_steps, "optimizer_steps": opt_steps, "lr": ctx.evidence_series(lr)},
                recommendations=[
                    Recommendation("fix", "Step a schedule sized in optimizer steps after every optimizer step.",
                                   "for x, y in loader:\n    ...\n    optimizer.step()\n"
                                   "    scheduler.step()          # here, not once per epoch"),
                    Recommendation("fix", "Or size it in epochs if you step it per epoch.",
                                   "warmup = 2   # epochs\nscheduler = torch.optim.lr_scheduler.LambdaLR(\n"
                                   "    optimizer, lambda epoch: min(1.0, (epoch + 1) / warmup))")])

    @staticmethod
    def _settled_before(ctx: Context, loss: Any, began: int) -> bool:
        """Had the loss stopped falling at the full rate, before step `began`? Its quarters before the decay: the
        last quarter fell by less than a quarter of what the first three did (or nothing fell): flat at the full
        rate already (a model at its optimum, labels it cannot learn), so a decay that came after is not why it
        stopped. (A decay that began within `min_steps` left no time to tell, and is not asked.)"""
        full = loss.values[loss.steps < began]
        q = [float(np.median(part)) for part in np.array_split(full, 4)]
        fell, late = q[0] - q[2], q[2] - q[3]
        return fell <= 0 or late < 0.25 * fell

    def _tiny_updates(self, ctx: Context) -> Iterator[Finding]:
        s = ctx.loss.finite()
        if len(s) < ctx.t.min_steps or len(s) < 0.8 * len(ctx.loss):
            return
        v = s.values
        start, end, best, moved = _movement(ctx, v)
        rel = (start - best) / (abs(start) + 1e-12)
        if moved >= ctx.option("lr_low_improvement"):
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
        thr = ctx.option("lr_low_update_ratio")
        relgrad = relative_gradient(ctx)
        if ratio >= thr or relgrad is None or relgrad < ctx.option("lr_low_min_grad"):
            return
        expected = expected_initial_loss(ctx)
        if expected is not None and end < 0.5 * expected[0]:
            return  # well below chance: it has learned, and sits at its optimum
        lr = ctx.lr
        factor = float(min(HEALTHY_UPDATE_RATIO / ratio, 1e4))
        suggested = float(f"{lr * factor:.1g}") if lr else None
        yield self.finding(
            severity="high" if ratio < thr / 10 or rel <= 0.001 else "medium", confidence=0.85,
            title=(f"Learning rate {fmt(lr)} is too low: updates move the weights by {fmt(ratio)} of their norm per step"
                   if lr else f"Learning rate too low: updates move the weights by {fmt(ratio)} of their norm per step"),
            description=(f"Over {len(v)} steps the loss moved by less than {moved:.1%} ({fmt(start)} in the first quarter, "
                         f"{fmt(end)} in the last, best {fmt(best)}). Each "
                         f"update changed the weights by {fmt(ratio)} of their norm (median over weight tensors; about "
                         f"{HEALTHY_UPDATE_RATIO:g} is healthy), although the gradients are healthy (|grad|/|weight| = "
                         f"{fmt(relgrad)}): the learning rate{f' {fmt(lr)}' if lr else ''} is about {fmt(factor)}x too small."),
            step=int(s.steps[0]),
            evidence={"lr": lr, "suggested_lr": suggested, "update_ratio": ratio, "update_ratio_threshold": thr,
                      "relative_gradient": relgrad, "relative_improvement": rel, "start_loss": start, "end_loss": end, "best_loss": best,
                      "update_ratio_by_step": {int(a): float(b) for a, b in zip(steps[:12], ratios[:12])}},
            recommendations=[
                Recommendation("fix", f"Raise the learning rate to about {fmt(suggested)} (from {fmt(lr)})."
                               if suggested else "Raise the learning rate by 100x.",
                               lr_code(ctx, suggested) if suggested else
                               scale_lr_code(ctx, 100)),
                Recommendation("best_practice", "Find the range with a learning-rate range test: raise the rate "
                               "geometrically each step and keep the largest one where the loss still falls fast.",
                               "lrs = torch.logspace(-6, 0, steps=100)\nfor lr, (x, y) in zip(lrs, loader):\n"
                               "    for g in optimizer.param_groups:\n        g['lr'] = lr.item()\n"
                               "    optimizer.zero_grad()\n    loss = loss_fn(model(x), y)\n    loss.backward()\n"
                               "    optimizer.step()\n    print(lr.item(), loss.item())"),
            ],
        )


class LossOscillating(Rule):
    """Detects LOS003; its documentation and options are in the catalogue (`modeldebug explain LOS003`)."""

    code = "LOS003"
    requires = (M.LOSS, M.LR, M.UPDATE_RATIO, M.OPTIMIZER, M.N_BACKWARD, M.MODEL_INPUT, M.LOSS_CALLS)

    def check(self, ctx: Context) -> Iterator[Finding]:
        osc = oscillation(ctx)
        if osc is None:
            return
        lr = ctx.lr
        rel = osc.amplitude / osc.scale
        steps, ratios = update_ratios(ctx)
        during = ratios[steps >= osc.start_step]
        ratio = float(np.median(during)) if len(during) else None
        small_steps = ratio is not None and ratio < ctx.option("lr_high_update_ratio")
        what = ("alternates up and down every step" if osc.mode == "alternating"
                else f"swings up and down ({osc.turns} reversals)")
        shuffle = Recommendation("fix", "Shuffle the training data, so that every batch mixes sources and classes.",
                                 "loader = DataLoader(train_set, batch_size=64, shuffle=True)")
        lower = Recommendation(
            "fix", f"Lower the learning rate (or momentum) by 3x{f' (from {fmt(lr)} to {fmt(lr / 3)})' if lr else ''} "
            "and decay it over the run.",
            scale_lr_code(ctx, 1 / 3)
            + ("" if manual_update(ctx) else "\nsched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)"))
        cause = (f" The updates are moderate ({fmt(ratio)} of the weight norm per step), so look first at the order of "
                 "the data: batches that come in blocks (sorted by label, concatenated sources, no shuffle) pull the "
                 "model one way, then the other." if small_steps else
                 " The steps are too large for the loss surface, or the batches are not shuffled.")
        # A target that carries a gradient is computed by a network in the same step (a bootstrapped TD target,
        # a teacher's output): it moves as that network does, so the loss is not one objective going down.
        moving = any(e.info.get("target_requires_grad") for e in ctx.record.entities("loss"))
        if moving:
            cause = (" The loss's target is itself computed by a network in the step (it carries a gradient: a "
                     "bootstrapped TD target, a teacher's output), so it moves as that network changes, and swings "
                     "are expected of such a loss; judge the run by its own score (returns, validation).")
        yield self.finding(
            severity="low" if moving else "high" if rel >= 1.0 else "medium", confidence=0.4 if moving else 0.7,
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
    """Detects CLP001; its documentation and options are in the catalogue (`modeldebug explain CLP001`)."""

    code = "CLP001"
    requires = (M.CLIP_NORM, M.CLIP_MAX, M.LR, M.OPTIMIZER, M.LOSS)

    @staticmethod
    def _improvement(ctx: Context, steps: np.ndarray) -> float | None:
        """How far the loss fell over the clipped steps: (start - best smoothed) / start."""
        loss = ctx.loss
        v = loss.values[np.isin(loss.steps, steps)]
        v = v[np.isfinite(v)]
        if len(v) < 8:
            return None
        q = max(2, len(v) // 4)
        start = float(np.median(v[:window(len(v))]))
        best = float(np.min(ctx.running_median(v, q)[q - 1:]))
        return (start - best) / (abs(start) + 1e-12)

    def check(self, ctx: Context) -> Iterator[Finding]:
        if optimizer_type(ctx) in ADAPTIVE_OPTIMIZERS:
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
        if frac < ctx.option("clip_fraction") or med < ctx.option("clip_factor"):
            return
        learned = self._improvement(ctx, ctx.record.column("clip_norm").steps[ok][clipped])
        if learned is None or learned >= ctx.option("clip_min_improvement"):
            return  # clipping with a large learning rate is a policy while the loss falls under it
        max_norm = float(np.median(limit[ok]))
        suggested = float(f"{np.percentile(norm[ok], 90):.2g}")
        larger = suggested / max_norm
        first = int(ctx.record.column("clip_norm").steps[np.flatnonzero(ok)[np.argmax(clipped)]])
        lr = ctx.lr
        yield self.finding(
            severity="high" if frac >= 0.9 and med >= 100 else "medium", confidence=0.85,
            title=f"Gradient clipping shrinks {frac:.0%} of the steps by a median {fmt(med)}x (max_norm={fmt(max_norm)})",
            description=(f"clip_grad_norm_ with max_norm={fmt(max_norm)} acted on {int(clipped.sum())} of {n} steps; the "
                         f"gradient norm before clipping had a median of {fmt(float(np.median(norm[ok])))}. Each update is "
                         f"rescaled by ~1/{fmt(med)}"
                         + (f", so the effective learning rate is about {fmt(lr / med)} instead of {fmt(lr)}." if lr else ".")
                         + f" Meanwhile the loss fell by only {learned:.1%}: clipping this hard stops learning."),
            step=first,
            evidence={"clipped_fraction": frac, "median_factor": med, "max_norm": max_norm,
                      "median_norm": float(np.median(norm[ok])), "suggested_max_norm": suggested, "lr": lr,
                      "effective_lr": lr / med if lr else None, "loss_improvement_while_clipped": learned,
                      "update_growth_if_applied": larger},
            recommendations=[
                Recommendation("fix", f"Raise max_norm to about the 90th percentile of the gradient norms ({fmt(suggested)}), "
                               f"so that only outliers are clipped. This makes the updates up to {fmt(larger)}x larger: "
                               + (f"if that is too much, raise max_norm and lower the learning rate (now {fmt(lr)}) "
                                  "part of the way instead." if lr else
                                  "if that is too much, raise max_norm and lower the learning rate where you apply "
                                  "p.grad part of the way instead."),
                               f"torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm={suggested:g})   "
                               f"# was {max_norm:g}"),
            ],
        )


def plateau_backwards(rule: Rule, ctx: Context) -> Iterator[Finding]:
    """LRN002's second path: a ReduceLROnPlateau whose mode is the wrong way round for its metric
    (an accuracy with the default mode='min'), cutting the learning rate as the metric improves."""
    calls = sorted(ctx.record.events("plateau_step"), key=lambda e: e.step)
    schedulers: dict[tuple[object, object], list] = {}
    for e in calls:
        schedulers.setdefault((e.data.get("scheduler"), e.data.get("mode")), []).append(e)
    for (_, mode), mine in schedulers.items():
        if len(mine) < 3 or mode not in ("min", "max"):
            continue
        metric = np.array([float(e.data["metric"]) for e in mine])
        if not np.isfinite(metric).all():
            continue
        better = metric if mode == "min" else -metric  # lower is better, in the scheduler's eyes
        trend = _rank_correlation(np.arange(len(better)), better)
        # cuts made when the metric had just reached its best so far in the OTHER direction
        punished = [i for i, e in enumerate(mine) if _cut(e.data) and i > 0 and better[i] >= better[:i].max()]
        # an accuracy under mode='min': its first value is its best in the scheduler's eyes, and the
        # model meanwhile learns; a validation loss that turns up (overfitting) improved first, and a
        # loss that rises from the start while the training loss does too is a divergence
        if trend < 0.5 or not punished or int(np.argmin(better)) != 0 or not _training_loss_fell(ctx, mine):
            continue
        lr0, lr1 = _first_lr(mine[0].data, "lr_before"), _first_lr(mine[-1].data, "lr_after")
        other = "max" if mode == "min" else "min"
        looks = "an accuracy or a score" if mode == "min" else "a loss or an error"
        first = mine[punished[0]]
        yield rule.finding(
            severity="high" if len(punished) >= 2 else "medium", confidence=0.8,
            title=(f"ReduceLROnPlateau(mode='{mode}') cut the learning rate as the metric it watches "
                   f"{'rose' if mode == 'min' else 'fell'} to its {'highest' if mode == 'min' else 'lowest'} "
                   f"({fmt(float(metric[punished[0]]))}, step {first.step})"),
            description=(f"The scheduler was stepped {len(mine)} times with a metric that "
                         f"{'rose' if mode == 'min' else 'fell'} over the run ({fmt(float(metric[0]))} -> "
                         f"{fmt(float(metric[-1]))}), but mode='{mode}' counts only a "
                         f"{'lower' if mode == 'min' else 'higher'} value as an improvement: each step that made the "
                         f"metric better was 'no improvement' to it, and it cut the learning rate {len(punished)} "
                         f"time{'s' if len(punished) > 1 else ''} at such a step"
                         + (f" ({fmt(lr0)} -> {fmt(lr1)})" if lr0 is not None and lr1 is not None else "")
                         + f". The metric looks like {looks}: the mode should be '{other}'."),
            location=None, step=first.step,
            evidence={"mode": mode, "metric": metric.tolist(), "steps": [e.step for e in mine],
                      "cuts_at_a_new_best": [mine[i].step for i in punished], "rank_correlation": trend,
                      "lr_first": lr0, "lr_last": lr1},
            recommendations=[Recommendation(
                "fix", f"Tell the scheduler which way is better for this metric: mode='{other}'.",
                f"scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode='{other}', factor=0.5, patience=2)\n"
                "scheduler.step(val_metric)   # or step it with the validation loss and keep mode='min'")],
        )


def _training_loss_fell(ctx: Context, calls: list) -> bool:
    """Did the training loss fall between the scheduler's first and last calls (the medians of the
    steps up to the first call and after the last but one, by 5% or more)?"""
    loss = ctx.loss.finite()
    first, last = calls[0].step, calls[-2].step
    if first is None or last is None:
        return False
    before, after = loss.values[loss.steps <= first], loss.values[loss.steps > last]
    if not len(before) or not len(after):
        return False
    start, end = float(np.median(before)), float(np.median(after))
    return end < start - 0.05 * abs(start)


def _cut(data: dict) -> bool:
    before, after = data.get("lr_before") or [], data.get("lr_after") or []
    return any(a < b for a, b in zip(after, before, strict=False))


def _first_lr(data: dict, key: str) -> float | None:
    lrs = data.get(key) or []
    return float(lrs[0]) if lrs else None


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties by order), 0 where either side is constant."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])
