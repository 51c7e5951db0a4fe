"""Training-dynamics rules: initialisation, weight collapse, overfitting, saturated activations.

The step-size rules (learning rate too high or too low, an oscillating loss, excessive clipping)
and the measurements these rules share live in `schedule`, imported here so that importing this
module registers the whole family.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import measures as M
from .base import Finding, Recommendation, Rule
from .context import Context, fmt, module_ref, window
from .curve import players
from .fixcode import optimizer_ctor
from .measures import (
    expected_initial_loss,
    logits_scaled_after_the_model,
    summed_loss_calls,
    weight_shrink,
)

__all__ = ["Overfitting", "PoorInitialization", "SaturatedActivations", "WeightCollapse"]


_NORM_TYPES = ("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "RMSNorm", "LocalResponseNorm")


def _first(s: Any) -> float | None:
    f = s.finite() if s is not None else None
    return float(f.values[0]) if f is not None and len(f) else None


def _depth_chains(ctx: Context) -> list[list[tuple[str, float]]]:
    """Step-0 output std of the layers with parameters, in registration order, per model.

    A chain is cut at normalisation layers (they reset the scale) and at layers that are dead at
    step 0 (ACT001's business).
    """
    std, dead = ctx.module_stat("std"), ctx.module_stat("dead_frac")
    first_step = min((int(s.steps[0]) for s in std.values() if len(s)), default=None)
    chains: dict[str | None, list[list[tuple[str, float]]]] = {}
    for e in ctx.leaf_modules_in_order():
        model_chains = chains.setdefault(e.model, [[]])
        d = dead.get(e.name)
        if any(t in (e.type or "") for t in _NORM_TYPES) or (d is not None and len(d) and d.values[0] >= 0.9):
            model_chains.append([])
            continue
        s = std.get(e.name)
        if not e.info.get("params") or s is None or not len(s) or int(s.steps[0]) != first_step:
            continue
        v = float(s.values[0])
        if np.isfinite(v) and v > 0:
            model_chains[-1].append((e.name, v))
    return [c for cs in chains.values() for c in cs if len(c) >= 2]


class PoorInitialization(Rule):
    """Detects INI001; its documentation and options are in the catalogue (`modeldebug explain INI001`)."""

    code = "INI001"
    requires = (M.LOSS, M.MODULE_STD, M.MODULE_MEAN, M.DEAD_FRAC, M.INPUT_STD, M.LOSS_CALLS, M.LABEL_COUNTS, M.IN_MAX,
                M.IN_MIN)

    def check(self, ctx: Context) -> Iterator[Finding]:
        if ctx.n_steps == 0:
            return
        problems: list[str] = []
        evidence: dict[str, Any] = {}
        location: str | None = None
        severe = False
        chains = _depth_chains(ctx)
        gains = [(c[j][0], c[j][1] / c[j - 1][1]) for c in chains for j in range(1, len(c))]
        if gains:
            location = max(gains, key=lambda g: abs(math.log(g[1])))[0]
        ratio_thr = ctx.option("init_std_ratio")
        for chain in chains:
            stds = np.array([v for _, v in chain])
            up = stds / np.minimum.accumulate(stds)
            down = stds / np.maximum.accumulate(stds)
            if up.max() >= ratio_thr or down.min() <= 1 / ratio_thr:
                grow = up.max() >= ratio_thr
                j = int(np.argmax(up) if grow else np.argmin(down))
                factor = float(up.max() if grow else 1 / down.min())
                i = int(np.argmin(stds[:j + 1]) if grow else np.argmax(stds[:j + 1]))
                problems.append(f"the activation std {'grows' if grow else 'shrinks'} {fmt(factor)}x from "
                                f"{chain[i][0]} ({fmt(float(stds[i]))}) to {chain[j][0]} ({fmt(float(stds[j]))})")
                evidence["activation_std_step0"] = dict(chain)
                severe |= factor >= ratio_thr ** 2
                break
        expected = expected_initial_loss(ctx)
        loss0 = float(ctx.loss.values[0])
        inputs = [_first(s) for s in ctx.record.stat("std", kind="input").values()]
        unit_inputs = all(v is None or v < ctx.option("init_input_scale") for v in inputs)
        calls = summed_loss_calls(ctx, loss0, expected[0]) if expected is not None and np.isfinite(loss0) else None
        if calls is not None:  # the step's loss adds up several loss calls: not comparable with one call's chance
            evidence.update(initial_loss=loss0, expected_initial_loss=expected[0], summed_loss_calls=calls)
            expected = None
        elif expected is not None and players(ctx) and not _saturated_at_start(ctx):
            # optimizers taking turns (a GAN): a player's loss adds up its terms (real and fake, one per
            # discriminator), so one call's chance level says nothing about the initialisation, unless
            # the outputs it scores are already saturated at step 0 (then each term is far above chance)
            evidence.update(initial_loss=loss0, expected_initial_loss=expected[0], players=True)
            expected = None
        if expected is not None and np.isfinite(loss0) and unit_inputs:
            value, what = expected
            factor = loss0 / value
            evidence.update(initial_loss=loss0, expected_initial_loss=value, loss_ratio=factor)
            if factor >= ctx.option("init_loss_factor"):
                problems.insert(0, f"the loss at step 0 is {fmt(loss0)}, {fmt(factor)}x the {fmt(value)} of {what}")
                scaled = logits_scaled_after_the_model(ctx)
                if scaled is not None and len(problems) == 1:
                    yield self._scaled_logits(ctx, problems[0], scaled, evidence)
                    return
                severe |= factor >= 10
        if not problems:
            return
        evidence["layer_gains"] = {n: g for n, g in gains[:20]}
        target = location or "layer"
        yield self._weights(ctx, problems, evidence, location, target, severe)

    def _scaled_logits(self, ctx: Context, problem: str, scaled: dict[str, float], evidence: dict[str, Any]) -> Finding:
        peak, largest = scaled["loss_input_peak"], scaled["largest_module_output"]
        return self.finding(
            severity="low", confidence=0.4, title=f"A high loss at the start, from a scale after the model: {problem}",
            description=(f"Before any update, {problem}. But no layer's output is large: the loss's input reaches "
                         f"{fmt(peak)}, {fmt(peak / largest)}x the largest output of any module ({fmt(largest)} as "
                         "|mean| + 3 std). The logits are scaled after the model's layers: a cosine classifier's "
                         "scale s (ArcFace, CosFace) with its margin, or a temperature, which start the loss high by "
                         "design. Look at that scale only if it is not meant."),
            step=0, evidence={**evidence, **scaled},
            recommendations=[Recommendation(
                "best_practice", "Check that the scale applied to the logits is the one meant.",
                "logits = cosine * s          # s = 30-64 for ArcFace/CosFace; a temperature divides: sim / 0.07")])

    def _weights(self, ctx: Context, problems: list[str], evidence: dict[str, Any], location: str | None,
                 target: str, severe: bool) -> Finding:
        return self.finding(
            severity="high" if severe else "medium", confidence=0.8,
            title=f"Poor initialisation: {problems[0]}",
            description=("Before any update, " + "; and ".join(problems) + ". The initial weights are scaled wrongly"
                         + (f"; {ctx.label(location)} changes the scale the most." if location else ".")),
            location=location, step=0, evidence=evidence,
            recommendations=[
                Recommendation("fix", "Initialise every layer with a fan-in-scaled scheme and zero biases.",
                               "for m in model.modules():\n    if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):\n"
                               "        nn.init.kaiming_normal_(m.weight, nonlinearity='relu')  # xavier_uniform_ for tanh/sigmoid\n"
                               "        nn.init.zeros_(m.bias)"),
                Recommendation("fix", f"Start the layer that blows the scale up small{'' if location else ' (the output layer)'}.",
                               f"nn.init.normal_({module_ref(target)}.weight, std=0.01)\n"
                               f"nn.init.zeros_({module_ref(target)}.bias)"),
            ],
        )


def _saturated_at_start(ctx: Context) -> bool:
    """Did a training loss get saturated inputs at step 0: probabilities within 1e-3 of 0 or 1 for
    `binary_cross_entropy`, logits beyond +-7 for the others (what a badly scaled output layer gives)?"""
    for e in ctx.record.entities("loss"):
        if e.info.get("phase") != "train":
            continue
        lo = ctx.record.series(e.name, "in_min", kind="loss").finite()
        hi = ctx.record.series(e.name, "in_max", kind="loss").finite()
        if not len(lo) or not len(hi) or int(lo.steps[0]) != 0:
            continue
        a, b = float(lo.values[0]), float(hi.values[0])
        if (e.type == "binary_cross_entropy" and (a < 1e-3 or b > 1 - 1e-3)) or \
                (e.type != "binary_cross_entropy" and max(abs(a), abs(b)) > 7):
            return True
    return False


class WeightCollapse(Rule):
    """Detects WGT001; its documentation and options are in the catalogue (`modeldebug explain WGT001`)."""

    code = "WGT001"
    requires = (M.PARAM_NORM, M.OPTIMIZER)

    def check(self, ctx: Context) -> Iterator[Finding]:
        ws = weight_shrink(ctx)
        thr = ctx.option("weight_collapse_shrink")
        if ws is None:
            return
        decays = [(float(g.get("weight_decay") or 0.0), float(g.get("lr") or 0.0), e.data.get("type", "optimizer"))
                  for e in ctx.record.events("optimizer") for g in e.data.get("groups", [])]
        wd, lr, opt = max(decays, default=(0.0, 0.0, "optimizer"))
        shrink = ws["median"]
        worst = min(ws["per_tensor"], key=lambda n: ws["per_tensor"][n])
        least = ws["per_tensor"][worst]
        # The interaction: lr x weight_decay is the fraction of each weight decay removes per step.
        # Over 1% a step (100x the usual 1e-4), a weight tensor whose norm halved is held down by the
        # decay before the weights have collapsed all the way: the gradient no longer keeps it at
        # the size it needs, whether or not the loss still falls (it falls to a worse level).
        strong = wd > 0 and lr * wd >= ctx.option("decay_per_step")
        stalled = _stalled(ctx)
        pulled = strong and (least <= 0.5 or (shrink <= 0.5 and stalled))
        if shrink > thr and not pulled:
            return
        module = ctx.params[worst].info.get("module") or worst
        span = f"steps {ws['first_step']}-{ws['last_step']}"
        if wd > 0:
            cause = (f"{opt} has weight_decay={fmt(wd)} with lr={fmt(lr)}: every step multiplies the weights by about "
                     f"1 - lr*weight_decay = {fmt(1 - lr * wd)}.")
            if "AdamW" in opt:  # decoupled decay: |w| settles below about |update| / (lr*wd)
                cause += (f" With decoupled decay and Adam's updates of about lr per weight, each weight settles "
                          f"below about 1/weight_decay = {fmt(1 / wd)} in size.")
            typical = 1e-2 if opt == "AdamW" else 5e-4
            new = float(f"{min(wd / 10, typical):.1g}")
            fix = Recommendation("fix", f"Lower weight_decay from {fmt(wd)} to about {fmt(new)}.",
                                 optimizer_ctor(ctx, opt if opt != "optimizer" else None, lr=lr, weight_decay=new,
                                                note=f"was weight_decay={wd:g}"))
        else:
            cause = "No optimizer weight decay is set: something else pulls the weights to zero (an L2 penalty in the loss?)."
            fix = Recommendation("fix", "Lower the coefficient of the L2 penalty added to the loss.",
                                 "l2 = sum(p.pow(2).sum() for n, p in model.named_parameters() if p.dim() > 1)\n"
                                 "loss = loss_fn(model(x), y) + 1e-5 * l2   # a coefficient this small, or none")
        if shrink > thr:
            cause += (f" That removes {fmt(lr * wd * 100)}% of every weight per step, and "
                      + ("the loss stalled while the weights shrank" if stalled and shrink <= 0.5 else
                         f"{worst} shrank to {fmt(least)}x although training needs it to grow or hold")
                      + ": the decay outweighs what the gradient can rebuild.")
        yield self.finding(
            severity="high" if shrink <= thr / 10 or (pulled and stalled) else "medium", confidence=0.85 if wd > 0 else 0.7,
            title=(f"Weights collapse towards zero: the median weight norm shrank to {fmt(shrink)}x over {span}"
                   if shrink <= thr else
                   f"Weight decay is too strong: lr x weight_decay = {fmt(lr * wd)} per step shrank "
                   + (f"the weights to {fmt(shrink)}x while the loss stalled" if stalled and shrink <= 0.5 else
                      f"{worst} to {fmt(least)}x")),
            description=(f"Over {span}, the norms of {len(ws['per_tensor'])} weight tensors shrank to a median "
                         f"{fmt(shrink)}x of their first value ({worst} to {fmt(ws['per_tensor'][worst])}x). {cause}"),
            location=module, step=ws["first_step"],
            evidence={"median_shrink": shrink, "per_tensor_shrink": dict(sorted(ws["per_tensor"].items(), key=lambda kv: kv[1])[:10]),
                      "weight_decay": wd, "lr": lr, "decay_per_step": lr * wd, "loss_stalled": stalled,
                      "optimizer": opt, "first_step": ws["first_step"], "last_step": ws["last_step"]},
            recommendations=[fix, Recommendation(
                "best_practice", "Do not decay biases and normalisation weights.",
                "decay = [p for n, p in model.named_parameters() if p.dim() > 1]\n"
                "no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]\n"
                "optimizer = torch.optim.AdamW([{'params': decay, 'weight_decay': 1e-2},\n"
                "                               {'params': no_decay, 'weight_decay': 0.0}], lr=1e-3)")],
        )


def _decayed(ctx: Context) -> str:
    """The run's optimizer with weight decay (Adam's decoupled: AdamW), its other settings kept."""
    events = ctx.record.events("optimizer")
    if not events:
        return "optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)"
    name = str(events[0].data.get("type") or "SGD")
    adam = name in ("Adam", "AdamW")
    had = max((float(g.get("weight_decay") or 0.0) for g in events[0].data.get("groups") or []), default=0.0)
    wd = max(0.05 if adam else 5e-4, 2 * had)
    return optimizer_ctor(ctx, "AdamW" if adam else None, weight_decay=wd, note=f"was weight_decay={had:g}" if had else None)


def _stalled(ctx: Context) -> bool:
    """The loss's last quarter is still at 70% or more of its first quarter (medians)."""
    v = ctx.loss.finite().values
    if len(v) < ctx.t.min_steps:
        return False
    q = max(3, len(v) // 4)
    start, end = float(np.median(v[:q])), float(np.median(v[-q:]))
    return start > 0 and end >= 0.7 * start


def per_evaluation(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One value per validation pass: the mean of the calls made at the same step."""
    keep = np.isfinite(values)
    steps, values = steps[keep], values[keep]
    uniq = np.unique(steps)
    return uniq, np.array([float(values[steps == s].mean()) for s in uniq])


#: GEN002: the first validation pass within this share of the training loss of the first steps.
_START_BAND = 0.25


def _reduction(e: Any) -> str:
    return str((e.info.get("kwargs") or {}).get("reduction", "mean"))


def _smoothed_training_loss(ctx: Context) -> tuple[Any, np.ndarray] | None:
    """The finite training loss and its running median (a window of the run's length), or None when
    the run is too short to judge."""
    train = ctx.loss.finite()
    if len(train) < ctx.t.min_steps:
        return None
    return train, ctx.running_median(train.values, window(len(train)))


class ValidationNotImproving(Rule):
    """Detects GEN002; its documentation and options are in the catalogue (`modeldebug explain GEN002`)."""

    code = "GEN002"
    requires = (M.LOSS, M.VAL_LOSS, M.LOSS_CALLS, M.IN_MAX, M.LABEL_COUNTS)  # (the last two: the chance level)

    def check(self, ctx: Context) -> Iterator[Finding]:
        curve = _smoothed_training_loss(ctx)
        if curve is None:
            return
        train, smooth = curve
        start = float(np.median(train.values[:3]))  # the untrained model's level
        end = float(smooth[-1])
        margin = ctx.option("val_stuck_margin")
        chance = expected_initial_loss(ctx)
        if not start > 0 or end > ctx.option("val_stuck_drop") * start:
            return
        losses = ctx.record.entities("loss")
        # the same loss function with the same reduction, so that the two levels compare
        trained = {(e.type or e.name, _reduction(e)) for e in losses if e.info.get("phase") == "train"}
        for e in losses:
            if e.info.get("phase") != "val" or (e.type or e.name.removesuffix("[val]"), _reduction(e)) not in trained:
                continue
            series = ctx.record.series(e.name, "val_loss", kind="loss")
            steps, vals = per_evaluation(series.steps, series.values)
            if len(vals) < 3:
                continue
            first = float(vals[0])
            # the first pass at the untrained level (a loss scaled for accumulation, or one already trained,
            # is elsewhere), never more than `margin` below it, and not rising: a rise is GEN001's
            if abs(first / start - 1) > _START_BAND or float(vals.min()) < (1 - margin) * first \
                    or float(vals.max()) > (1 + margin) * first:
                continue
            # at a uniform prediction's loss throughout: nothing learned at all (else: a start already trained,
            # a fine-tuned model overfitting from its first epoch is among the readings)
            at_chance = chance is not None and bool(np.all(np.abs(vals / chance[0] - 1) <= margin))
            yield self.finding(
                severity="high" if at_chance else "medium", confidence=0.75,
                title=(f"The validation loss did not improve ({fmt(first)} -> {fmt(float(vals[-1]))} over {len(vals)} "
                       f"passes) while the training loss fell from {fmt(start)} to {fmt(end)}"),
                description=(f"The validation loss ({e.name}) started where the untrained model's training loss did "
                             f"({fmt(first)} against {fmt(start)}) and stayed within {margin:.0%} of it over "
                             f"{len(vals)} passes, while the smoothed training loss ended at {fmt(end)}. What is "
                             "evaluated shows nothing of what the training learned: usually it is not the trained model (an EMA or averaged copy "
                             "whose update rebinds a loop variable instead of writing into it, a copy made before "
                             "training, stale weights loaded for evaluation), or the validation data are prepared "
                             "differently (another normalisation, another label order); or the training labels carry "
                             "no signal that generalises."
                             + (f" It stayed at {chance[1]}, {fmt(chance[0])}: the model evaluated predicts nothing."
                                if at_chance else "")),
                location=None, step=int(steps[0]),
                evidence={"val_loss": {"steps": steps.tolist()[-12:], "values": vals.tolist()[-12:]},
                          "train_loss_start": start, "train_loss_end": end, "val_entity": e.name,
                          "at_chance": at_chance},
                recommendations=[
                    Recommendation("fix", "Update an EMA copy in place (or use AveragedModel), and evaluate the "
                                          "trained model once to compare.",
                                   "with torch.no_grad():\n    for ema_p, p in zip(ema.parameters(), model.parameters()):\n"
                                   "        ema_p.mul_(decay).add_(p.detach(), alpha=1 - decay)   # not ema_p = ...\n"
                                   "# or: ema = torch.optim.swa_utils.AveragedModel(model, "
                                   "multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.999))\n"
                                   "print(evaluate(model), evaluate(ema))   # the trained model should be better"),
                    Recommendation("fix", "Prepare validation data with the training data's exact transform and labels.",
                                   "val_set = Dataset(val_files, transform=train_transform_without_augmentation, "
                                   "classes=train_set.classes)"),
                ])


class Overfitting(Rule):
    """Detects GEN001; its documentation and options are in the catalogue (`modeldebug explain GEN001`)."""

    code = "GEN001"
    requires = (M.LOSS, M.VAL_LOSS, M.LOSS_CALLS, M.WEIGHTS_LOADED)

    def check(self, ctx: Context) -> Iterator[Finding]:
        curve = _smoothed_training_loss(ctx)
        if curve is None:
            return
        train, smooth = curve
        rise_thr = ctx.option("overfit_rise")
        for e in ctx.record.entities("loss"):
            if e.info.get("phase") != "val":
                continue
            s = ctx.record.series(e.name, "val_loss", kind="loss")
            steps, vals = per_evaluation(s.steps, s.values)
            if len(vals) < ctx.option("overfit_min_evals"):
                continue
            b = int(np.argmin(vals))
            best = float(vals[b])
            if b >= len(vals) - 2 or best <= 0 or min(vals[-2:]) < best * (1 + rise_thr):
                continue
            if _theil_sen(vals[b + 1:]) < 0:
                continue  # coming back down since a jump (a noisy pass, a recalibration): not memorising
            at_best = float(smooth[min(np.searchsorted(train.steps, steps[b], side="right"), len(smooth)) - 1])
            end = float(smooth[-1])
            if end > at_best * (1 - ctx.option("overfit_train_drop")):
                continue
            rise = float(vals[-1] / best - 1)
            # weights loaded into the model after its last step: the best pass's checkpoint restored
            restored = [ev.step for ev in ctx.record.events(M.WEIGHTS_LOADED.name)
                        if ev.step is not None and ev.step >= int(train.steps[-1])]
            yield self.finding(
                severity="low" if restored else "high" if rise >= 0.5 else "medium", confidence=0.8,
                title=(f"Overfitting: validation loss rose {rise:.0%} above its best while the training loss kept falling"
                       + (" (a checkpoint was restored after training)" if restored else "")),
                description=(f"The validation loss ({e.name}) was best at {fmt(best)} at step {int(steps[b])} and ended at "
                             f"{fmt(float(vals[-1]))} after {len(vals)} validation passes, while the smoothed training loss "
                             f"fell from {fmt(at_best)} to {fmt(end)}. The model is memorising the training set; the "
                             f"checkpoint of step {int(steps[b])} generalises better than the final one."
                             + (" After the last step the script loaded saved weights back into the model "
                                "(load_state_dict): if they are the best validation pass's, the model it keeps is "
                                "that one, and the rise only shows training could stop earlier." if restored else "")),
                location=None, step=int(steps[b]),
                evidence={"best_val_loss": best, "best_val_step": int(steps[b]), "final_val_loss": float(vals[-1]),
                          "val_rise": rise, "train_loss_at_best": at_best, "final_train_loss": end,
                          "checkpoint_restored_at": restored[0] if restored else None,
                          "val_loss": {"steps": steps.tolist()[-12:], "values": vals.tolist()[-12:]}},
                recommendations=[
                    Recommendation("fix", "Stop early: keep the weights of the best validation pass.",
                                   "best, bad = float('inf'), 0\nfor epoch in range(epochs):\n    train_one_epoch()\n"
                                   "    val = evaluate()\n    if val < best:\n        best, bad = val, 0\n"
                                   "        torch.save(model.state_dict(), 'best.pt')\n    else:\n        bad += 1\n"
                                   "        if bad >= 3:\n            break\nmodel.load_state_dict(torch.load('best.pt'))"),
                    Recommendation("fix", "Regularise: weight decay and dropout (and data augmentation where it applies).",
                                   _decayed(ctx) + "\n"
                                   "model = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Dropout(0.3), nn.Linear(h, c))"),
                ],
            )


def _theil_sen(v: np.ndarray) -> float:
    """The median of the slopes between every pair of points: one outlying evaluation does not turn it."""
    i, j = np.triu_indices(len(v), k=1)
    return float(np.median((v[j] - v[i]) / (j - i))) if len(i) else 0.0


class SaturatedActivations(Rule):
    """Detects ACT002; its documentation and options are in the catalogue (`modeldebug explain ACT002`)."""

    code = "ACT002"
    requires = (M.SATURATED_FRAC, M.MODULE_MEAN, M.MODULE_STD, M.SOFTMAX_SATURATION)

    def check(self, ctx: Context) -> Iterator[Finding]:
        softmax = self._softmax(ctx)
        if softmax is not None:
            yield softmax
        thr = ctx.option("saturated_fraction")
        last: dict[str | None, str] = {}
        for e in ctx.leaf_modules_in_order():
            last[e.model] = e.name
        for name, s in ctx.module_stat("saturated_frac").items():
            e = ctx.modules.get(name)
            if e is None or last.get(e.model) == name:
                continue
            f = s.finite()
            if not len(f):
                continue
            bad = f.values >= thr
            if bad.mean() < 0.5:
                continue
            frac = float(np.median(f.values))
            from_init = bool(bad[0])
            first_bad = int(f.steps[np.argmax(bad)])
            prev = ctx.previous_layer(name)
            evidence: dict[str, Any] = {"saturated_fraction": frac, "samples": len(f), "from_first_step": from_init,
                                        "saturated_fraction_series": ctx.evidence_series(f)}
            cause = ""
            if prev is not None:
                std = ctx.record.series(prev.name, "std", kind="module").finite()
                mean = ctx.record.series(prev.name, "mean", kind="module").finite()
                if len(std) and len(mean):
                    evidence.update(feeding_layer=prev.name, pre_activation_std=float(std.values[0]),
                                    pre_activation_mean=float(mean.values[0]))
                    cause = (f" The layer feeding it, {prev.name}, outputs std {fmt(float(std.values[0]))} "
                             f"(mean {fmt(float(mean.values[0]))}) at the first sample: pre-activations that large saturate.")
            when = ("from the first step, so the initialisation or the input scale" if from_init
                    else f"from step {first_bad} on, so weights that grew during training")
            layer = prev.name if prev is not None else None
            gain = "'tanh'" if e.type in ("Tanh", "Hardtanh") else "'sigmoid'"
            yield self.finding(
                severity="high" if frac >= 0.9 else "medium", confidence=0.85,
                title=f"{frac:.0%} of the outputs of {name} ({e.type}) are saturated at a bound",
                description=(f"{name} ({e.type}) outputs within 1% of a bound for {frac:.0%} of its values (median over "
                             f"{len(f)} sampled steps), {when} put them there.{cause} Saturated units pass almost no gradient."),
                location=name, step=first_bad, evidence=evidence,
                recommendations=[
                    Recommendation("fix", f"Xavier-initialise {layer or 'the layer feeding it'} and normalise its input "
                                   "(a LayerNorm before the activation).",
                                   (f"nn.init.xavier_uniform_({module_ref(layer)}.weight, gain=nn.init.calculate_gain({gain}))\n"
                                    f"nn.init.zeros_({module_ref(layer)}.bias)\n" if layer else "")
                                   + "# and in the model: nn.Linear(d, h), nn.LayerNorm(h), nn.Tanh()"),
                    Recommendation("best_practice", "Use a non-saturating activation in hidden layers.",
                                   "nn.GELU()  # or nn.ReLU(), instead of nn.Tanh()/nn.Sigmoid()"),
                ],
            )

    def _softmax(self, ctx: Context) -> Finding | None:
        """Attention weights one-hot at the first sampled step: logits scaled far too large (a scale
        multiplied where it divides), before any training could have sharpened them."""
        events = ctx.record.events(M.SOFTMAX_SATURATION.name)
        thr = ctx.option("saturated_fraction")
        hot = [e for e in events if e.data["saturated_frac"] >= thr]
        if not events or len(hot) < max(1, len(events) / 2):  # most of the attention layers, not one sharp head
            return None
        worst = max(hot, key=lambda e: e.data["saturated_frac"])
        d = worst.data
        shape, keys = d["shape"], d["shape"][-1]
        square = shape[-2] == keys
        return self.finding(
            severity="medium", confidence=0.75,
            title=f"Attention is one-hot from the first step: {len(hot)} of {len(events)} softmaxes over "
                  f"{keys} keys put more than 99% on one key in {fmt(d['saturated_frac'] * 100)}% of rows",
            description=(f"At the first sampled step, before training could sharpen anything, {len(hot)} of the "
                         f"{len(events)} softmaxes over the last axis of a {len(shape)}-axis tensor "
                         f"({'[..., queries, keys] ' if square else ''}{shape}) give more than 0.99 to a single "
                         f"key in at least {fmt(thr * 100)}% of their rows (the median row's largest "
                         f"weight is {fmt(d['median_max_prob'])}; uniform would be {fmt(d['uniform_prob'])}). Their "
                         "logits are far too large: a scaled dot product multiplied by sqrt(d) where it should be "
                         "divided, or not scaled at all with large heads. A saturated softmax passes almost no "
                         "gradient, so what it attends to hardly learns. (A model that starts from pretrained "
                         "weights can have heads this sharp by design.)"),
            location="softmax", step=int(worst.step) if worst.step is not None else None,
            evidence={"softmaxes": len(events), "saturated": len(hot), "shape": shape,
                      "saturated_frac": [e.data["saturated_frac"] for e in events],
                      "median_max_prob": d["median_max_prob"], "from_first_step": True},
            recommendations=[Recommendation(
                "fix", "Scale the attention logits by 1/sqrt(head_dim), or use the fused attention that does.",
                "scores = (q @ k.transpose(-2, -1)) * head_dim ** -0.5     # not * head_dim ** 0.5\n"
                "attn = scores.softmax(dim=-1)\n"
                "# or: out = F.scaled_dot_product_attention(q, k, v)")])
