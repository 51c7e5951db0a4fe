"""Gradient rules: exploding and vanishing, relative to the run's own baseline and to other layers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import measures as M
from .base import Finding, Recommendation, Rule
from .context import Context, fmt
from .measures import nonfinite_after_growth as grew_into_nonfinite
from .measures import scale_lr_code

__all__ = ["ExplodingGradients", "IncorrectBackward", "VanishingGradients"]

_CLIP = ("loss.backward()\n"
         "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n"
         "optimizer.step()")


class ExplodingGradients(Rule):
    """Detects GRD001; its documentation and options are in the catalogue (`modeldebug explain GRD001`).

    Judged by effect, not by growth alone: a gradient norm that grows from a tiny start while the
    loss keeps falling (a zero-initialised head, sigmoid units leaving saturation) is not an explosion.
    Growth counts when the loss reacted (it jumped, or turned non-finite); gradients huge from the
    first step (larger than the weights themselves) count when the run turned non-finite at once.
    """

    code = "GRD001"
    requires = (M.GRAD_NORM, M.PARAM_GRAD_NORM, M.PARAM_NORM, M.LOSS, M.AMP_SCALED_STEP)

    def check(self, ctx: Context) -> Iterator[Finding]:
        scaled = ctx.record.events(M.AMP_SCALED_STEP.name)
        if scaled:
            yield self._scaled_step(scaled[0])
            return
        s = ctx.record.column("grad_norm")
        if len(s) < max(ctx.t.min_steps // 2, 6):
            return
        v = s.values
        k = int(min(5, max(3, len(v) // 10)))
        start = self._huge_from_start(ctx, s, k)
        if start is not None:
            yield start
            return
        head = v[:k][np.isfinite(v[:k])]
        if len(head) < 2:
            return
        base = float(np.median(head))
        if base <= 0:
            return
        growth = v / base
        finite = np.isfinite(growth)
        peak = float(np.nanmax(growth[finite])) if finite.any() else float("inf")
        nonfinite_after_growth = peak >= 10 and grew_into_nonfinite(growth, k)
        if peak < ctx.t.grad_growth and not nonfinite_after_growth:
            return
        over = np.flatnonzero(~finite | (growth >= 10))
        onset = int(over[0]) if len(over) else int(np.nanargmax(growth))
        since = int(s.steps[onset])
        effect = _loss_effect(ctx, s, onset, k)
        if effect is not None and not effect["reacted"] and not nonfinite_after_growth:
            return  # the gradient grew while the loss went on falling: no explosion in effect
        location, per_param = self._worst_param(ctx, k)
        if peak >= 1e4 or nonfinite_after_growth or (effect or {}).get("nonfinite"):
            severity = "high"
        elif effect is not None and effect["recovered"]:
            severity = "low"  # a spike the run came back from: its final loss is as good as before
        else:
            severity = "medium"
        after = ""
        if effect is not None:
            after = (f" The loss went from {fmt(effect['loss_before'])} to {fmt(effect['loss_peak'])} with it"
                     + (" and ended back at " + fmt(effect["loss_final"]) + ": the run recovered."
                        if effect["recovered"] else f" and ended at {fmt(effect['loss_final'])}."))
        yield self.finding(
            severity=severity, confidence=min(0.95, 0.6 + 0.08 * np.log10(max(peak, 1))),
            title=f"Gradient norm grew {fmt(peak)}x over its early baseline"
                  + (" and then became non-finite" if nonfinite_after_growth else "")
                  + (" (a spike the run recovered from)" if severity == "low" else ""),
            description=(f"The total gradient norm was {fmt(base)} over the first {k} steps and reached "
                         f"{fmt(base * peak) if np.isfinite(peak) else 'Inf'} (first above 10x at step {since}).{after} "
                         f"It grew most in {ctx.label(location)}."),
            location=location, step=since,
            evidence={"baseline_norm": base, "peak_growth": peak, "peak_norm": base * peak,
                      "nonfinite": bool(nonfinite_after_growth), "lr": ctx.lr, "per_param_growth": per_param,
                      "loss_effect": effect, "grad_norm": ctx.evidence_series(s)},
            recommendations=_RECS(ctx),
        )

    def _scaled_step(self, ev: Any) -> Finding:
        """The optimizer stepped on gradients a GradScaler still multiplied by its scale."""
        scale = ev.data.get("scale")
        times = (f"{int(scale):,} times" if scale and float(scale).is_integer() else f"{fmt(scale)} times") if scale \
            else "the scale times"
        return self.finding(
            severity="high", confidence=0.95,
            title=f"The optimizer steps on gradients the GradScaler still scales ({times} too large)",
            description=(f"From step {ev.step} the loss is scaled (`scaler.scale(loss).backward()`) but "
                         f"{ev.data.get('optimizer') or 'the optimizer'}.step() is called directly: neither "
                         "`scaler.step(optimizer)` nor `scaler.unscale_(optimizer)` divides the scale out first, so every "
                         f"update is {times} what the gradients ask for, and the scaler never skips the steps whose "
                         "gradients overflowed. The gradient norms recorded here are divided by the scale: the ones the "
                         "optimizer used were that much larger."),
            step=ev.step, evidence={"scale": scale, "optimizer": ev.data.get("optimizer"), "first_step": ev.step,
                                    # updates `scale` times too large: what a too-high rate would show (ranking.py)
                                    "explains": ["lr_too_high", "loss_diverging", "nonfinite", "loss_oscillating"]},
            recommendations=[Recommendation(
                "fix", "Step through the scaler: it unscales the gradients, skips steps with inf/NaN, and adapts the scale.",
                "scaler.scale(loss).backward()\n"
                "scaler.unscale_(optimizer)                     # only if you clip or read the gradients\n"
                "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"
                "scaler.step(optimizer)                         # not optimizer.step()\n"
                "scaler.update()")])

    def _huge_from_start(self, ctx: Context, s: Any, k: int) -> Finding | None:
        """Gradients larger than the weights at the first step, and the run non-finite within `k` steps.

        Nothing grows (an RNN whose recurrent weights amplify over time explodes on its first
        backward): the scale is judged against the weights instead, and the effect is the loss or
        the gradient turning non-finite right away.
        """
        v = s.values
        first = np.flatnonzero(np.isfinite(v))
        if not len(first) or first[0] >= k:
            return None
        i0 = int(first[0])
        g0 = float(v[i0])
        w0 = _weight_norm_at_first_sample(ctx)
        loss = _aligned_loss(ctx, s)
        broke = (~np.isfinite(v[i0 + 1:i0 + 1 + k])).any() or (loss is not None and (~np.isfinite(loss[i0:i0 + 1 + k])).any())
        if w0 is None or w0 <= 0 or g0 < w0 or not broke:
            return None
        location, per_param = self._worst_param(ctx, len(v))
        step = int(s.steps[i0])
        return self.finding(
            severity="high", confidence=min(0.9, 0.6 + 0.1 * np.log10(g0 / w0 + 1)),
            title=f"Gradients are exploding from the first step: norm {fmt(g0)}, {fmt(g0 / w0)}x the weights' norm",
            description=(f"At step {step} the total gradient norm is {fmt(g0)} while the weights' norm is {fmt(w0)}: "
                         "one step moves the weights by more than their own size times the learning rate, and the run turned "
                         f"non-finite within {k} steps. Nothing grew: the model amplifies its gradients from the start "
                         f"(recurrent or deep layers initialised too large); they are largest in {ctx.label(location)}."),
            location=location, step=step,
            evidence={"grad_norm_first": g0, "weight_norm_first": w0, "grad_to_weight": g0 / w0, "nonfinite": True,
                      "lr": ctx.lr, "per_param_growth": per_param, "grad_norm": ctx.evidence_series(s)},
            recommendations=_RECS(ctx) + [Recommendation(
                "fix", "Initialise recurrent weights orthogonally (or smaller), so that they do not amplify over time.",
                "for name, p in model.named_parameters():\n    if 'weight_hh' in name:\n"
                "        nn.init.orthogonal_(p)")],
        )

    @staticmethod
    def _worst_param(ctx: Context, k: int) -> tuple[str | None, dict[str, float]]:
        growths: dict[str, float] = {}
        for name, s in ctx.grad_norms.items():
            v = s.values
            head = v[:k][np.isfinite(v[:k])]
            if len(head) == 0 or np.median(head) <= 0:
                continue
            rest = v[np.isfinite(v)]
            growths[name] = float(np.max(rest) / np.median(head)) if len(rest) else float("inf")
        if not growths:
            return None, {}
        worst = max(growths, key=lambda n: growths[n])
        module = ctx.params[worst].info.get("module") if worst in ctx.params else None
        top = dict(sorted(growths.items(), key=lambda kv: -kv[1])[:5])
        return module or worst, top


def _RECS(ctx: Context) -> list[Recommendation]:  # noqa: N802 - the shared pair of fixes
    return [Recommendation("fix", "Clip the total gradient norm.", _CLIP),
            Recommendation("fix", "Lower the learning rate.", scale_lr_code(ctx, 0.1))]


def _aligned_loss(ctx: Context, s: Any) -> np.ndarray | None:
    """The training loss on the steps of `s` (None when no loss was recorded)."""
    loss = ctx.loss
    if not len(loss):
        return None
    # the steps table has one row per step, in order: look each step up in it (NaN where it has none)
    at = np.minimum(np.searchsorted(loss.steps, s.steps), len(loss.steps) - 1)
    return np.where(loss.steps[at] == s.steps, loss.values[at], np.nan)


def _loss_effect(ctx: Context, s: Any, onset: int, k: int) -> dict[str, Any] | None:
    """What the loss did when the gradient norm grew: did it jump, turn non-finite, recover?

    `before` is the median loss over the `k` steps before the growth began (or the first `k`
    steps); a reaction is a loss that at least doubled from it after the onset, or turned
    non-finite. Recovered: the last quarter's median is back within 1.5x of `before`.
    None when the loss was not recorded.
    """
    loss = _aligned_loss(ctx, s)
    if loss is None or not np.isfinite(loss).any():
        return None
    pre = loss[max(0, onset - k):onset] if onset >= 2 else loss[:k]
    pre = pre[np.isfinite(pre)]
    post = loss[onset:]
    if not len(pre) or not len(post):
        return None
    before = float(np.median(pre))
    nonfinite = bool((~np.isfinite(post)).any())
    fin = post[np.isfinite(post)]
    peak = float(fin.max()) if len(fin) else float("inf")
    tail = loss[-max(3, len(loss) // 4):]
    tail = tail[np.isfinite(tail)]
    final = float(np.median(tail)) if len(tail) else float("nan")
    reacted = nonfinite or (before > 0 and peak >= 2 * before) or (before <= 0 and peak > before)
    recovered = bool(not nonfinite and np.isfinite(final) and final <= 1.5 * abs(before))
    return {"loss_before": before, "loss_peak": peak, "loss_final": final, "reacted": bool(reacted),
            "nonfinite": nonfinite, "recovered": recovered}


def _weight_norm_at_first_sample(ctx: Context) -> float | None:
    """The norm of all weights at their first sample (after the first update), or None."""
    sq, seen = 0.0, False
    for series in ctx.param_stat("param_norm").values():
        if len(series) and np.isfinite(series.values[0]):
            sq += float(series.values[0]) ** 2
            seen = True
    return float(np.sqrt(sq)) if seen else None


def _moving(ctx: Context, rel: dict[str, float], low: dict[str, float]) -> dict[str, float]:
    """The low-gradient tensors whose weights still move at a normal pace: their update ratio (the
    step's change over the weight's norm) is not below the same `vanishing_ratio` times the median
    tensor's. Under SGD the update ratio is lr times the relative gradient, so this changes nothing;
    an adaptive optimizer (Adam, RMSprop) rescales each gradient, so a small one still makes a
    normal step (a layer with large weights in front of a BatchNorm, say) and the layer learns.
    Tensor name -> its update ratio over the median's; empty without update ratios."""
    if not low:
        return {}
    upd_med = ctx.record.frame("update_ratio", kind="param").medians()
    upd = {n: upd_med.get(ctx.params[n].id, float("nan")) for n in rel}
    known = [u for u in upd.values() if np.isfinite(u) and u > 0]
    if len(known) < 2:
        return {}
    typical = float(np.median(known))
    return {n: upd[n] / typical for n in low
            if np.isfinite(upd[n]) and upd[n] >= ctx.t.vanishing_ratio * typical}


class VanishingGradients(Rule):
    """Detects GRD002; its documentation and options are in the catalogue (`modeldebug explain GRD002`)."""

    code = "GRD002"
    requires = (M.PARAM_GRAD_NORM, M.PARAM_NORM, M.UPDATE_RATIO)

    def check(self, ctx: Context) -> Iterator[Finding]:
        if ctx.n_steps < 3:
            return
        # per-tensor medians in one vectorised pass each (a deep model has thousands of tensors)
        grad_med = ctx.record.frame("grad_norm", kind="param").medians()
        norm_med = ctx.record.frame("param_norm", kind="param").medians()
        rel: dict[str, float] = {}
        for name, e in ctx.params.items():
            g = grad_med.get(e.id, float("nan"))
            if len(e.info.get("shape", [])) < 2 or not np.isfinite(g) or g <= 0:
                continue
            module = ctx.modules.get(e.info.get("module", ""))
            if module is not None and module.type in ("Embedding", "EmbeddingBag"):
                continue
            scale = norm_med.get(e.id, float("nan"))
            if not np.isfinite(scale):
                scale = float(np.sqrt(int(np.prod(e.info.get("shape", [1])))))
            if scale <= 0:
                continue
            rel[name] = g / scale
        if len(rel) < 2:
            return
        med = float(np.median(list(rel.values())))
        low = {n: r / med for n, r in rel.items() if r < ctx.t.vanishing_ratio * med}
        moving = _moving(ctx, rel, low)
        for n in moving:
            del low[n]
        if not low:
            return
        worst = min(low, key=lambda n: low[n])
        module = ctx.params[worst].info.get("module") or worst
        ratio = low[worst]
        yield self.finding(
            severity="high" if ratio < 1e-5 else "medium", confidence=min(0.9, 0.55 + 0.07 * -np.log10(ratio)),
            title=f"Vanishing gradients: {ctx.label(module)} gets {fmt(ratio)}x the relative gradient of a typical layer",
            description=(f"{len(low)} of {len(rel)} weight tensors receive gradients below {ctx.t.vanishing_ratio:g}x the "
                         f"median layer's, relative to their own weight norm; the worst is {worst}. These layers barely "
                         "learn."),
            location=module, step=0,
            evidence={"relative_gradient": rel, "median_relative_gradient": med,
                      "vanishing": {n: r for n, r in sorted(low.items(), key=lambda kv: kv[1])},
                      **({"small_gradient_but_moving": moving} if moving else {})},
            recommendations=[
                Recommendation("fix", "Use non-saturating activations and He initialisation.",
                               "nn.ReLU()  # or nn.GELU(), instead of nn.Sigmoid()/nn.Tanh() in hidden layers\n"
                               "for m in model.modules():\n    if isinstance(m, nn.Linear):\n"
                               "        nn.init.kaiming_normal_(m.weight, nonlinearity='relu')"),
                Recommendation("fix", "Add normalisation or residual connections in deep stacks.",
                               "h = h + block(norm(h))   # pre-norm residual block"),
            ],
        )


#: a backward whose results for 2v and v + w miss 2 g(v) and g(v) + g(w) by more than this share of their size is
#: not linear in grad_output (rounding leaves ~1e-16 in float64)
_NONLINEAR = 1e-6
#: a linear backward this far from the forward's central differences differs from its derivative
_MISMATCH = 1e-2


class IncorrectBackward(Rule):
    """Detects GRD003; its documentation and options are in the catalogue (`modeldebug explain GRD003`)."""

    code = "GRD003"
    requires = (M.CUSTOM_BACKWARD_CHECK,)

    def check(self, ctx: Context) -> Iterator[Finding]:
        for ev in ctx.record.events(M.CUSTOM_BACKWARD_CHECK.name):
            d = ev.data
            if not d.get("checked"):
                continue
            name = str(d.get("function", "?")).rsplit(".", 1)[-1]
            nonlinear, err = float(d.get("nonlinear_in_grad_output", 0.0)), float(d.get("relative_error", 0.0))
            if nonlinear > _NONLINEAR:
                yield self.finding(
                    severity="high", confidence=0.95,
                    title=f"{name}.backward is not linear in grad_output: it breaks the chain rule",
                    description=(f"Checked on a float64 input of its own, {name}'s backward gives g(2v) and g(v + w) "
                                 f"that miss 2 g(v) and g(v) + g(w) by {nonlinear:.0%} of their size, and differs "
                                 f"from its forward's derivative by {err:.0%} along random directions. Every correct "
                                 "backward (and every deliberate one: a straight-through estimator, a gradient "
                                 "reversal) is linear in grad_output. This one most likely returns the local "
                                 "derivative without multiplying it by grad_output, so the layers below it get "
                                 "gradients unrelated to the loss."),
                    location=d.get("function"), step=ev.step, evidence=dict(d),
                    recommendations=[Recommendation(
                        "fix", "Multiply the local derivative by grad_output, then check with gradcheck.",
                        "@staticmethod\ndef backward(ctx, grad_output):\n    x, s = ctx.saved_tensors\n"
                        "    return grad_output * s * (1 + x * (1 - s))     # chain rule: times grad_output\n\n"
                        f"x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)\n"
                        f"torch.autograd.gradcheck({name}.apply, (x,))")])
            elif err > _MISMATCH:
                yield self.finding(
                    severity="low", confidence=0.5,
                    title=f"{name}.backward differs from its forward's derivative ({err:.0%} along random directions)",
                    description=(f"Checked on a float64 input of its own, {name}'s backward is linear in "
                                 f"grad_output but differs from central differences of its forward by {err:.0%}. "
                                 "That is deliberate in a straight-through estimator (round forward, identity "
                                 "backward) or a gradient reversal layer; if this Function is neither, its backward "
                                 "has a wrong factor or sign."),
                    location=d.get("function"), step=ev.step, evidence=dict(d),
                    recommendations=[Recommendation(
                        "best_practice", "Check the Function with gradcheck on float64 inputs.",
                        f"x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)\n"
                        f"torch.autograd.gradcheck({name}.apply, (x,))")])

