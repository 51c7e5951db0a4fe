"""Training-loop rules: gradients not cleared between optimizer steps, train/eval modes misused."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import measures as M
from ..record import Entity, Series
from .base import Finding, Recommendation, Rule
from .context import Context, fmt

__all__ = ["MissingZeroGrad", "TrainModeMisuse", "is_mode_sensitive", "validation_steps"]


# Layers that behave differently in train and eval mode. InstanceNorm is left out: by default it
# keeps no running statistics, so its mode changes nothing.
_MODE_SENSITIVE_PREFIXES = ("Dropout", "AlphaDropout", "FeatureAlphaDropout", "BatchNorm", "LazyBatchNorm",
                            "SyncBatchNorm")


def is_mode_sensitive(module_type: str | None) -> bool:
    """Does a module of this type behave differently in `train()` and `eval()` mode?"""
    return bool(module_type) and module_type.startswith(_MODE_SENSITIVE_PREFIXES)  # type: ignore[union-attr]


def validation_steps(ctx: Context) -> list[int]:
    """Steps whose gap before the forward pass held a validation pass (validation losses were recorded).

    A validation pass runs between two optimizer steps and is recorded under the step that follows.
    """
    steps: set[int] = set()
    for e in ctx.record.entities("loss"):
        if e.info.get("phase") == "val":
            steps.update(int(s) for s in ctx.record.series(e.name, "val_loss", kind="loss").steps)
    return sorted(steps)


def _model_of(e: Entity) -> tuple[str | None, bool]:
    """Which model an entity belongs to. A second model of the same class has the same `model`
    name, but its entities' names are prefixed with it."""
    return e.model, bool(e.model) and e.name.startswith(f"{e.model}.")


def _is_batchnorm(module_type: str | None) -> bool:
    return bool(module_type) and "BatchNorm" in module_type  # type: ignore[operator]


_ZERO_GRAD_FIX = ("for x, y in loader:\n"
                  "    optimizer.zero_grad(set_to_none=True)   # once per optimizer step, before backward\n"
                  "    loss = loss_fn(model(x), y)\n"
                  "    loss.backward()\n"
                  "    optimizer.step()")
_ACCUMULATION = ("loss = loss_fn(model(x), y) / accum_steps\n"
                 "loss.backward()\n"
                 "if (i + 1) % accum_steps == 0:\n"
                 "    optimizer.step()\n"
                 "    optimizer.zero_grad(set_to_none=True)   # right after the step it fed")


class MissingZeroGrad(Rule):
    """Detects LOP001; its documentation and options are in the catalogue (`modeldebug explain LOP001`)."""

    code = "LOP001"
    requires = (M.ZERO_GRAD_CALLS, M.CARRIED_GRAD_NORM, M.GRAD_NORM, M.LR, M.OPTIMIZER)

    def check(self, ctx: Context) -> Iterator[Finding]:
        rec = ctx.record
        if ctx.n_steps < 3:
            return
        zero_grad = rec.column("zero_grad_calls").values
        carried = rec.column("carried_grad_norm").values
        grad_norm = rec.column("grad_norm").values
        stepped = np.isfinite(rec.column("lr").values)  # an optimizer stepped at this step
        steps = rec.column("zero_grad_calls").steps
        prev_norm = np.concatenate([[np.nan], grad_norm[:-1]])
        frac = ctx.option("carried_grad_fraction")
        with np.errstate(invalid="ignore"):
            big = np.where(np.isfinite(prev_norm) & (prev_norm > 0), carried >= frac * prev_norm, carried > 0)
            carried_over = (zero_grad == 0) & np.isfinite(carried) & (carried > 0) & big
        optimizer_run = bool(stepped.any())
        # No zero_grad call and no finite carried norm: the gradients were cleared by hand
        # (`p.grad = None`) or were not finite; either way nothing to judge on that step.
        unknown = (zero_grad == 0) & ~np.isfinite(carried)
        if optimizer_run:
            # Only gradients carried ACROSS an optimizer step are a bug; between the backward
            # passes of one step they are accumulation.
            judged = np.concatenate([[False], stepped[:-1]]) & ~unknown
            needed = ctx.option("missing_zero_grad_fraction")
        else:
            # Judged until the gradients stop being finite (a NaN gradient has no norm to carry).
            judged = (np.arange(len(steps)) >= 1) & np.isfinite(prev_norm)
            if (unknown & judged).any():
                return  # cleared by hand at least once: accumulation in a hand-written loop
            needed = 1.0  # no optimizer: flag only gradients that are never cleared at all
        bad = carried_over & judged
        n_judged, n_bad = int(judged.sum()), int(bad.sum())
        if n_bad < 2 or n_bad < needed * n_judged:
            return
        share = n_bad / n_judged
        ratio = float(np.median(carried[bad] / prev_norm[bad])) if np.isfinite(prev_norm[bad]).all() else None
        first = int(steps[np.argmax(bad)])
        gn = grad_norm[np.isfinite(grad_norm)]
        k = int(min(5, max(2, len(gn) // 10)))
        early, late = (float(np.median(gn[:k])), float(np.median(gn[-k:]))) if len(gn) >= 2 * k else (None, None)
        growth = late / early if early and late is not None and early > 0 else None
        opt_types = [e.data.get("type") for e in rec.events("optimizer") if e.data.get("type")]
        opt = opt_types[0] if opt_types else "the optimizer"
        where = (f"{n_bad} of {n_judged} optimizer steps ({share:.0%})" if optimizer_run
                 else f"every one of the {n_judged} steps after the first")
        description = (
            f"On {where}, the first backward pass found the previous step's gradients still in place: no "
            f"zero_grad() ran since the last update, so backward() added onto them and {opt} stepped on the "
            "sum of all gradients so far."
            + (f" The carried gradient was {ratio:.2f}x the previous step's gradient norm (median)." if ratio else "")
            + (f" The gradient norm went from {fmt(early)} (first steps) to {fmt(late)} (last steps), {fmt(growth)}x."
               if growth is not None else "")
            + ("" if share > 0.95 or not optimizer_run else
               " zero_grad() runs on some steps only: check that it is not inside an `if` or an inner loop that skips it.")
        )
        yield self.finding(
            severity="high" if share >= 0.5 else "medium",
            confidence=0.9 if share >= 0.5 else 0.75,
            title=f"Gradients are never cleared between optimizer steps ({share:.0%} of steps carry the previous gradients)"
                  if share > 0.95 else
                  f"Gradients are not cleared before {share:.0%} of optimizer steps",
            description=description,
            step=first,
            evidence={"steps_carrying_gradients": n_bad, "steps_judged": n_judged, "fraction": share,
                      "carried_to_previous_grad_norm": ratio, "first_step": first,
                      "grad_norm_early": early, "grad_norm_late": late, "grad_norm_growth": growth,
                      "optimizer": opt if opt_types else None,
                      "carried_grad_norm": ctx.evidence_series(rec.column("carried_grad_norm").finite())},
            recommendations=[
                Recommendation("fix", "Clear the gradients once per optimizer step, before the backward pass.",
                               _ZERO_GRAD_FIX),
                Recommendation("best_practice", "If you meant to accumulate gradients over micro-batches, scale the "
                               "loss and clear right after the step they feed.", _ACCUMULATION),
            ],
        )


_TRAIN_EVERY_EPOCH = ("for epoch in range(num_epochs):\n"
                      "    model.train()                     # every epoch: the validation below turns it off\n"
                      "    for x, y in train_loader:\n"
                      "        ...\n"
                      "    model.eval()\n"
                      "    with torch.no_grad():\n"
                      "        ...                           # validation")
_EVAL_FOR_VALIDATION = ("model.eval()                          # Dropout off, BatchNorm uses its running statistics\n"
                        "with torch.no_grad():\n"
                        "    val_loss = loss_fn(model(x_val), y_val).item()\n"
                        "model.train()                         # back to training mode before the next step")


def _moved(s: Series) -> np.ndarray:
    """The steps at which a parameter's update ratio shows it moved."""
    return s.steps[np.isfinite(s.values) & (s.values > 0)]


def _moves(ctx: Context) -> dict[str, Any]:
    """Once per analysis: each module's parameters, the last sampled step each parameter with a
    measured update moved, and the latest of those (a deep model has thousands of each)."""
    def compute() -> dict[str, Any]:
        by_module: dict[str | None, list[str]] = {}
        for n, e in ctx.params.items():
            by_module.setdefault(e.info.get("module"), []).append(n)
        last = {n: int(_moved(s).max(initial=-1)) for n, s in ctx.param_stat("update_ratio").items() if len(s)}
        return {"by_module": by_module, "last": last, "latest": max(last.values(), default=-1)}

    return ctx.shared("loop/moves", compute)


def _last_update_step(ctx: Context, module: str) -> int | None:
    """The last sampled step on which `module`'s parameters (or, for a layer without any, those of
    the nearest enclosing module with some) moved: -1 when they never did, None when no module up
    the chain has parameters. Their weights, not their gradients, tell: a frozen parameter keeps the
    last gradient it had until something clears it."""
    moves = _moves(ctx)
    name: str | None = module
    while name is not None:
        own = moves["by_module"].get(name)
        if own:
            measured = [moves["last"][n] for n in own if n in moves["last"]]
            # no update ever measured: no optimizer held them (an EMA teacher moves without one): unknown
            return max(measured) if measured else None
        name = name.rsplit(".", 1)[0] if "." in name else None
    return None


def _trained_after(ctx: Context, step: int) -> bool:
    """Did some parameter still move after `step`?"""
    return int(_moves(ctx)["latest"]) > step


def _frozen_since(ctx: Context, module: str, step: int) -> bool:
    """Had `module` stopped moving by `step`, while training went on after it? Then it is frozen,
    and keeping it in eval mode is deliberate."""
    last = _last_update_step(ctx, module)
    return last is not None and last < step and _trained_after(ctx, step)


def _zero_gradient(ctx: Context, module: str, step: int) -> bool:
    """Do `module`'s parameters still get a gradient after `step`, one of exactly zero on every sampled step,
    while they require one? Then they stand still because nothing flows back to them (the ReLU after a
    BatchNorm is dead, a branch detached downstream), not because they were frozen: a frozen parameter
    (`requires_grad = False`) has no gradient at all."""
    own = _moves(ctx)["by_module"].get(module) or []
    norms = ctx.param_stat("grad_norm")
    seen = False
    for name in own:
        e = ctx.params.get(name)
        if e is not None and e.info.get("requires_grad") is False:
            return False
        series = norms.get(name)
        if series is None:
            continue
        after = series.values[(series.steps > step) & np.isfinite(series.values)]
        if len(after) and bool((after != 0).any()):
            return False
        seen = seen or bool(len(after))
    return seen


def _whole_training_set(ctx: Context) -> int | None:
    """The batch size of the no-grad passes in train mode when every one recorded fed the whole training set at
    once (its DataLoader's dataset length, at least twice its batch): a statistics pass, not validation."""
    passes = ctx.record.events(M.NOGRAD_TRAIN_PASS.name)
    loaders = [e.data for e in ctx.record.events(M.DATALOADER.name)]
    training = [d for d in loaders if d.get("sampler") == "RandomSampler"] or loaders[:1]
    sizes = {int(d["length"]) for d in training if isinstance(d.get("length"), int)
             and int(d["length"]) >= 2 * int(d.get("batch_size") or 1)}
    batches = {e.data.get("batch") for e in passes}
    if not passes or len(batches) != 1:
        return None
    (batch,) = batches
    return batch if batch in sizes else None


class TrainModeMisuse(Rule):
    """Detects LOP002; its documentation and options are in the catalogue (`modeldebug explain LOP002`)."""

    code = "LOP002"
    requires = (M.FWD_EVAL_MODE, M.FWD_TRAIN_MODE_NOGRAD, M.TRAINING_FLAG, M.VAL_LOSS, M.LOSS_CALLS, M.OPTIMIZER,
                M.EVAL_DROPOUT, M.UPDATE_RATIO, M.DATALOADER, M.NOGRAD_TRAIN_PASS)

    def check(self, ctx: Context) -> Iterator[Finding]:
        yield from self._dropout_ignores_eval(ctx)
        frozen = self._running_stats_frozen(ctx)
        if frozen is not None:
            yield frozen
        sensitive = {n: e for n, e in ctx.modules.items() if is_mode_sensitive(e.type)}
        if not sensitive or ctx.n_steps == 0:
            return
        finding = self._trained_in_eval_mode(ctx, sensitive)
        if finding is not None:
            yield finding
        finding = self._validated_in_train_mode(ctx, sensitive)
        if finding is not None:
            yield finding
        finding = self._frozen_in_train_mode(ctx, sensitive)
        if finding is not None:
            yield finding

    # -- (0) a functional dropout that ignores model.eval() ----------------------------------------
    def _dropout_ignores_eval(self, ctx: Context) -> Iterator[Finding]:
        for ev in ctx.record.events("eval_dropout"):
            calls = ev.data.get("calls") or []
            defaulted = [c for c in calls if not c.get("explicit")]
            if not defaulted:
                continue  # `training=True` passed on purpose: Monte Carlo dropout
            c = defaulted[0]
            where = f"{os.path.basename(str(c['file']))}:{c['line']}"
            fn = c.get("function", "dropout")
            yield self.finding(
                severity="high", confidence=0.9,
                title=f"F.{fn} still drops in eval mode ({where}: {c.get('code') or fn})",
                description=(f"At the first evaluation pass (step {ev.step}), a private copy of the model in eval mode "
                             f"still dropped {fmt(float(c.get('p', 0.0)) * 100)}% of the values at {where}: the "
                             f"functional F.{fn} takes training=True unless told otherwise, so model.eval() does not "
                             "reach it. Validation predictions are random (two evaluations of the same model "
                             "disagree) and worse than the model is."
                             + (f" {len(defaulted) - 1} more such call{'s' if len(defaulted) > 2 else ''}." if len(defaulted) > 1 else "")),
                location=None, step=ev.step, evidence={"calls": defaulted},
                recommendations=[Recommendation(
                    "fix", "Pass the module's mode, or use an nn.Dropout layer (it follows model.train()/eval()).",
                    f"x = F.{fn}(x, p={c.get('p', 0.5)}, training=self.training)   # {where}\n"
                    f"# or, in __init__: self.drop = nn.Dropout(p={c.get('p', 0.5)}); in forward: x = self.drop(x)")],
            )

    # -- (0b) BatchNorm with momentum=0: running statistics that never move ----------------------
    def _running_stats_frozen(self, ctx: Context) -> Finding | None:
        """`nn.BatchNorm*d(momentum=0)` (a TensorFlow `momentum=0.99` carried over as PyTorch's 1 - 0.99
        the wrong way, or a momentum "switched off"): the running mean and variance keep their initial 0
        and 1, so training (batch statistics) goes well and every evaluation normalises with 0 and 1.
        (`momentum=None` is a cumulative average: fine.)"""
        frozen = [(n, e) for n, e in ctx.modules.items()  # (statistics loaded from a checkpoint and frozen on
                  if e.info.get("track_running_stats") and e.info.get("momentum") == 0  # purpose are not 0 and 1)
                  and e.info.get("stats_at_init") is not False]
        if not frozen or ctx.n_steps == 0:
            return None
        validated = any(e.info.get("phase") == "val" for e in ctx.record.entities("loss"))
        names = ", ".join(n for n, _ in frozen[:5]) + (f" and {len(frozen) - 5} more" if len(frozen) > 5 else "")
        return self.finding(
            severity="high" if validated else "medium", confidence=0.9,
            title=(f"BatchNorm with momentum=0: the running statistics of {len(frozen)} layer"
                   f"{'s' if len(frozen) > 1 else ''} never update ({names})"),
            description=("A BatchNorm layer updates its running mean and variance by `momentum` x (batch statistic - "
                         "running value) at each training step; with momentum=0 they stay at their initial 0 and 1. "
                         "Training normalises with each batch's own statistics and looks healthy, but in eval mode the "
                         "layer normalises with mean 0 and variance 1, not the data's, so evaluation and inference see "
                         "a different network." + (" This run evaluates its model (validation losses were recorded)."
                                                   if validated else "")),
            location=frozen[0][0], step=0,
            evidence={"layers": [n for n, _ in frozen][:50], "momentum": 0.0, "validated": validated},
            recommendations=[Recommendation(
                "fix", "Use PyTorch's momentum (the weight of the new batch: 0.1 by default; TensorFlow's 0.99 is 0.01 "
                "here), or None for a cumulative average.",
                "nn.BatchNorm2d(num_features)                 # momentum=0.1, the default\n"
                "# (TensorFlow's momentum=0.99 is PyTorch's momentum=0.01)")],
        )

    # -- (1) training in eval mode ---------------------------------------------------------------
    def _trained_in_eval_mode(self, ctx: Context, sensitive: dict) -> Finding | None:
        col = ctx.record.column("fwd_eval_mode")
        eval_steps = np.nan_to_num(col.values) > 0
        if not eval_steps.any():
            return None
        onset = int(np.argmax(eval_steps))
        since = eval_steps[onset:]
        persistence = float(since.mean())
        if persistence < ctx.option("train_mode_persistence") or since.sum() < 2:
            return None
        step_set = set(col.steps[eval_steps].tolist())
        flags = ctx.module_stat("training")
        trainable = self._trainable_models(ctx)
        in_eval: list[str] = []
        sampled = False
        for name, s in flags.items():
            at = np.isin(s.steps, list(step_set))
            if not at.any() or name not in sensitive:
                continue
            sampled = True
            if np.all(s.values[at] == 0) and (trainable is None or _model_of(sensitive[name]) in trainable):
                in_eval.append(name)
        if sampled and not in_eval:
            return None  # the eval-mode passes were another (frozen) model's, or not training passes
        # a frozen part kept in eval mode on purpose (a pretrained backbone's BatchNorm keeps its statistics)
        in_eval = [n for n in in_eval if not _frozen_since(ctx, n, int(col.steps[onset]))]
        if not in_eval:
            return None
        if not sampled:  # no sampled step since: name every mode-sensitive layer of the trained models
            in_eval = [n for n, e in sensitive.items() if trainable is None or _model_of(e) in trainable]
            if not in_eval:
                return None
        first = int(col.steps[onset])
        from_start = onset == 0
        val_steps = validation_steps(ctx)
        val_before = [s for s in val_steps if s <= first]
        has_bn = any(_is_batchnorm(sensitive[n].type) for n in in_eval)
        types = sorted({sensitive[n].type for n in in_eval})
        when = ("from the first step" if from_start else
                f"from step {first} on" + (f", right after the validation pass at step {val_before[-1]}"
                                           if val_before and first - val_before[-1] <= 1 else ""))
        before = "" if from_start else f" (steps 0-{first - 1} trained in train mode)"
        effects = []
        if any(t.startswith(("Dropout", "AlphaDropout", "FeatureAlphaDropout")) for t in types):
            effects.append("Dropout is off, so training has no dropout regularisation")
        if has_bn:
            effects.append("BatchNorm normalises with its frozen running statistics instead of the batch's and "
                           "stops updating them")
        return self.finding(
            severity="high" if has_bn and not from_start else "medium",
            confidence=0.65 if from_start else (0.9 if sampled else 0.8),
            title=f"The model trains in eval mode {when}: {len(in_eval)} "
                  f"{'/'.join(types)} layer{'s' if len(in_eval) > 1 else ''} behave as at inference",
            description=(f"{int(since.sum())} of {len(since)} training steps {when}{before} ran their forward pass with "
                         f"model.training == False. {'; '.join(effects)}. Affected layers: "
                         f"{', '.join(ctx.label(n) for n in in_eval[:8])}{' ...' if len(in_eval) > 8 else ''}."
                         + ("" if from_start else " model.eval() was called and model.train() never again.")),
            location=in_eval[0], step=first,
            evidence={"first_step": first, "eval_mode_steps": int(since.sum()), "steps_since": len(since),
                      "from_first_step": from_start, "layers": in_eval[:50], "layer_types": types,
                      "per_layer_flags_sampled": sampled, "validation_steps": val_before[-5:]},
            recommendations=[
                Recommendation("fix", "Switch back to training mode at the start of every epoch.", _TRAIN_EVERY_EPOCH),
            ],
        )

    # -- (2) validating in train mode --------------------------------------------------------------
    def _validated_in_train_mode(self, ctx: Context, sensitive: dict) -> Finding | None:
        col = ctx.record.column("fwd_train_mode_nograd")
        counts = np.nan_to_num(col.values)
        steps_with = col.steps[counts > 0]
        if len(steps_with) == 0:
            return None
        names = list(sensitive)
        has_bn = any(_is_batchnorm(e.type) for e in sensitive.values())
        has_dropout = any(not _is_batchnorm(e.type) for e in sensitive.values())
        effects = []
        if has_dropout:
            effects.append("Dropout drops units, so the validation loss is noisy and too high")
        if has_bn:
            effects.append("BatchNorm normalises with the validation batch and updates its running statistics "
                           "with validation data, changing the model it evaluates")
        val = validation_steps(ctx)
        passes = int(counts.sum())
        first = int(steps_with[0])
        whole = _whole_training_set(ctx)
        if whole is not None:
            return self.finding(
                severity="low", confidence=0.5,
                title=(f"{passes} forward pass{'es' if passes > 1 else ''} under torch.no_grad() in train mode over the "
                       f"whole training set at once ({whole:,} samples): recomputing BatchNorm statistics?"),
                description=(f"From step {first}, the model ran {passes} forward pass{'es' if passes > 1 else ''} without "
                             f"gradients while model.training was True, each on a batch of {whole:,} samples, the length "
                             "of the training DataLoader's dataset. That is how running statistics are recomputed on "
                             "purpose (BatchNorm with momentum 0, or a flow's BatchNorm) rather than a validation pass. "
                             "If it is meant as validation, it should run in eval mode. Layers concerned: "
                             f"{', '.join(ctx.label(n) for n in names[:8])}{' ...' if len(names) > 8 else ''}."),
                location=names[0], step=first,
                evidence={"passes": passes, "batch": whole, "steps": [int(s) for s in steps_with[:20]],
                          "layers": names[:50]},
                recommendations=[Recommendation("best_practice", "If this pass only recomputes the statistics, say so "
                                                "in the code; if it evaluates, run it in eval mode.", _EVAL_FOR_VALIDATION)])
        return self.finding(
            severity="medium", confidence=0.8 if val else 0.7,
            title=f"{passes} forward pass{'es' if passes > 1 else ''} under torch.no_grad() ran in train mode "
                  f"(validation without model.eval())",
            description=(f"From step {first}, on {len(steps_with)} step{'s' if len(steps_with) > 1 else ''}, the model "
                         f"ran {passes} forward passes without gradients while model.training was True. "
                         f"{'; '.join(effects)}. Layers concerned: {', '.join(ctx.label(n) for n in names[:8])}"
                         f"{' ...' if len(names) > 8 else ''}."),
            location=names[0], step=first,
            evidence={"passes": passes, "steps": [int(s) for s in steps_with[:20]], "layers": names[:50],
                      "validation_loss_recorded": bool(val)},
            recommendations=[
                Recommendation("fix", "Put the model in eval mode for validation, and back in train mode after it.",
                               _EVAL_FOR_VALIDATION),
            ],
        )

    # -- (3) a frozen part's BatchNorm left in train mode ---------------------------------------------
    def _frozen_in_train_mode(self, ctx: Context, sensitive: dict) -> Finding | None:
        """BatchNorm layers of a frozen part (their parameters no longer move while the rest trains)
        that still run in train mode: they normalise with each batch's statistics and overwrite
        the running statistics the frozen weights were trained with (a pretrained backbone frozen with
        `requires_grad = False` but left under `model.train()`)."""
        flags = ctx.module_stat("training")
        frozen: dict[str, tuple[int, int]] = {}  # layer -> (last step it moved, sampled train-mode steps since)
        for name, e in sensitive.items():
            s = flags.get(name)
            if not _is_batchnorm(e.type) or s is None or not len(s):
                continue
            last = _last_update_step(ctx, name)
            if last is None or not _trained_after(ctx, last) or _zero_gradient(ctx, name, last):
                continue
            on = (s.steps > last) & (np.nan_to_num(s.values) > 0)
            if int(on.sum()) >= 2 and float(on.sum()) >= 0.5 * float((s.steps > last).sum()):
                frozen[name] = (last, int(on.sum()))
        if not frozen:
            return None
        names = list(frozen)
        since = min(last for last, _ in frozen.values()) + 1
        # the training loader of the frozen period: the first one started after the part stopped moving, else the last before
        loaders = [e for e in ctx.record.events("dataloader") if e.data.get("grad_enabled", True)]
        loader = next((e for e in loaders if e.step >= since), loaders[-1] if loaders else None)
        batch = loader.data.get("batch_size") if loader else None
        owner = sensitive[names[0]].model or "model"
        return self.finding(
            severity="medium", confidence=0.7,
            title=(f"{len(names)} frozen BatchNorm layer{'s' if len(names) > 1 else ''} still run in train mode"
                   + (f" from step {since}" if since > 0 else "") + ": they normalise with each batch and overwrite "
                   "their running statistics"),
            description=(f"{', '.join(ctx.label(n) for n in names[:6])}{' ...' if len(names) > 6 else ''} stopped moving "
                         + (f"after step {since - 1}" if since > 0 else "from the start")
                         + " while the rest of the model trains, so they are frozen, yet the training forward passes "
                         "run them in train mode: each normalises with the statistics of the batch in hand"
                         + (f" ({batch} samples)" if batch else "") + " and moves its running mean and variance "
                         "towards them, away from the statistics its frozen weights were trained with. At evaluation "
                         "the frozen layers then use statistics they were never trained on. Keep a frozen part in eval "
                         "mode (unless adapting its statistics to new data is the point)."),
            location=names[0], step=since,
            evidence={"layers": names[:50], "last_moved_step": {n: v[0] for n, v in frozen.items()},
                      "train_mode_samples": {n: v[1] for n, v in frozen.items()}, "batch_size": batch},
            recommendations=[Recommendation(
                "fix", "Put the frozen part back in eval mode after every model.train().",
                f"model.train()\n{owner.lower()}.eval()   # the frozen {owner} (holds {names[0]}): keeps its BatchNorm statistics\n"
                "# or every frozen BatchNorm, wherever it is:\n"
                "for m in model.modules():\n    if isinstance(m, nn.modules.batchnorm._BatchNorm) "
                "and not any(p.requires_grad for p in m.parameters()):\n        m.eval()")],
        )

    @staticmethod
    def _trainable_models(ctx: Context) -> set[tuple[str | None, bool]] | None:
        """Models with parameters in an optimizer (None when the run used no optimizer)."""
        held = ctx.optimizer_params
        if held is None:
            return None
        return {_model_of(e) for n, e in ctx.params.items() if n in held and e.model}


class ClipAfterStep(Rule):
    """Detects LOP003; its documentation and options are in the catalogue (`modeldebug explain LOP003`)."""

    code = "LOP003"
    requires = (M.CLIP_AFTER_STEP, M.GRAD_NORM, M.CLIP_NORM, M.CLIP_MAX, M.CLIP_CALL)

    def check(self, ctx: Context) -> Iterator[Finding]:
        yield from self._after_step(ctx)
        yield from self._sees_nothing(ctx)

    def _sees_nothing(self, ctx: Context) -> Iterator[Finding]:
        """clip_grad_norm_ returned 0 on (nearly) every step while the optimizer's gradients were not zero:
        it was given no parameter with a gradient (an iterator used up, a frozen part, or before backward)."""
        clip, g = ctx.record.column(M.CLIP_NORM.name), ctx.record.column(M.GRAD_NORM.name).finite()
        if len(clip) < 3 or not len(g):
            return
        seen = dict(zip(g.steps.tolist(), g.values.tolist()))
        pairs = [(int(s), c, seen[s]) for s, c in zip(clip.steps.tolist(), clip.values.tolist()) if s in seen]
        if len(pairs) < 3:
            return
        blind = [(s, n) for s, c, n in pairs if c == 0 and n > 0]
        if len(blind) < 0.9 * len(pairs):
            return  # the clipping saw gradients: what it was given is the user's choice
        limits = ctx.record.column(M.CLIP_MAX.name).finite()
        max_norm = float(limits.values[0]) if len(limits) else 0.0
        norms = np.array([n for _, n in blind])
        over = norms > max_norm if max_norm > 0 else np.zeros(len(norms), bool)
        peak = float(norms.max()) / max_norm if max_norm > 0 else 0.0
        calls = ctx.record.events(M.CLIP_CALL.name)
        first = calls[0].data if calls else {}
        again = next((e.data for e in calls if e.data.get("same_iterator_again")), None)
        where = f"{os.path.basename(str(first['file']))}:{first['line']}" if first.get("file") else None
        code = first.get("code") or "clip_grad_norm_(...)"
        kind = str(first.get("parameters") or "")
        if again is not None:  # (a fresh generator each call, model.parameters(), is an iterator too, and fine)
            cause = (f"It was given the same `{kind}` object on every step, an iterator: it yields the parameters "
                     "once (to the optimizer's constructor, or to the first call) and nothing after that.")
            fix = ("params = [p for p in model.parameters() if p.requires_grad]   # a list, not filter(...): "
                   "it can be read every step\noptimizer = torch.optim.SGD(params, lr=lr)\n...\nloss.backward()\n"
                   f"torch.nn.utils.clip_grad_norm_(params, max_norm={fmt(max_norm)})\noptimizer.step()")
        else:
            cause = ("None of the parameters it was given had a gradient when it ran: it clips a frozen part of the "
                     "model, runs before backward() (after zero_grad(), which sets gradients to None), or is given an "
                     "iterator that an earlier reader used up.")
            fix = ("loss.backward()\n"
                   f"torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm={fmt(max_norm)})   # the parameters "
                   "the optimizer steps, after backward()\noptimizer.step()")
        acted = bool(over.any())
        share = float(over.mean()) if len(over) else 0.0
        yield self.finding(
            severity=("high" if peak >= 10 or share >= 0.2 else "medium") if acted else "low", confidence=0.9,
            title=("clip_grad_norm_ clips nothing" + (f" ({where}: {code})" if where else "")
                   + f": it returned 0 on {len(blind)} of {len(pairs)} steps while the gradients were not zero"),
            description=(f"clip_grad_norm_ returns the total norm of the gradients it was given: 0 here, while the "
                         f"optimizer's gradients had a norm of {fmt(float(np.median(norms)))} (median) up to "
                         f"{fmt(float(norms.max()))}. {cause} "
                         + (f"The gradient norm was above max_norm={fmt(max_norm)} on {share:.0%} of those steps (from "
                            f"step {blind[int(np.argmax(over))][0]}), up to {fmt(peak)}x it: those updates were not "
                            "bounded." if acted else
                            f"The gradient norm never exceeded max_norm={fmt(max_norm)} on this run, so nothing changed "
                            "yet; a spike would go through unbounded.")),
            location=None, step=blind[int(np.argmax(over))][0] if acted else blind[0][0],
            evidence={"steps_clip_saw_zero": len(blind), "steps": len(pairs), "max_norm": max_norm,
                      "share_over_max_norm": share, "peak_over_max_norm": peak, "clip_line": where, "code": code,
                      "parameters": kind, "same_iterator_again": again is not None},
            recommendations=[Recommendation("fix", "Give clip_grad_norm_ the parameters the optimizer steps, as a "
                                                   "list, between backward() and step().", fix)],
        )

    def _after_step(self, ctx: Context) -> Iterator[Finding]:
        events = ctx.record.events("clip_after_step")
        if not events:
            return
        max_norm = float(events[0].data.get("max_norm") or 0.0)
        g = ctx.record.column("grad_norm").finite()  # what each step used: the clipping came after it
        if max_norm <= 0 or not len(g):
            return
        over = g.values > max_norm
        if not over.any():
            return  # the clipping would not have acted on this run: nothing it changed
        peak = float(g.values.max()) / max_norm
        share = float(over.mean())
        first = events[0].data
        where = f"{os.path.basename(str(first['file']))}:{first['line']}" if first.get("file") else None
        code = first.get("code") or "clip_grad_norm_(...)"
        yield self.finding(
            severity="high" if peak >= 10 or share >= 0.2 else "medium", confidence=0.9,
            title=("clip_grad_norm_ runs after optimizer.step()" + (f" ({where}: {code})" if where else "")
                   + ": every step uses the unclipped gradients"),
            description=(f"The gradients are clipped after the step that used them, and the next zero_grad() throws "
                         f"the clipped ones away, so the clipping never bounds an update. The gradient norm the steps "
                         f"used was above max_norm={fmt(max_norm)} on {share:.0%} of the steps (from step "
                         f"{int(g.steps[np.argmax(over)])}), up to {fmt(peak)}x it"
                         + (f"; the call is at {where}." if where else ".")),
            location=None, step=int(g.steps[np.argmax(over)]),
            evidence={"max_norm": max_norm, "share_over_max_norm": share, "peak_over_max_norm": peak,
                      "clip_line": where, "code": code, "recorded_calls": len(events)},
            recommendations=[Recommendation(
                "fix", "Clip between backward() and step(), so the step uses the clipped gradients.",
                f"loss.backward()\ntorch.nn.utils.clip_grad_norm_(model.parameters(), max_norm={fmt(max_norm)})"
                "\noptimizer.step()" + (f"   # was after step() ({where})" if where else ""))],
        )

