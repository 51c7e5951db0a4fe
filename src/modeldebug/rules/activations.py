"""Activation rules: dead ReLU units, with the layer that feeds them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .base import Finding, Recommendation, Rule
from .context import RELU_LIKE, Context, fmt, module_ref

__all__ = ["DeadActivations"]


class DeadActivations(Rule):
    """Units of a ReLU layer output zero for every sample: they pass no signal and get no gradient.

    ## What it detects
    On sampled steps, the fraction of a ReLU-like layer's units (features, or channels of a
    convolution) that are zero for every sample and position of the batch. A layer is flagged when
    that fraction is at least `dead_fraction` (default 50%) on at least half of its samples. The
    pre-activation statistics of the layer feeding it are cited, and whether the units were dead
    from the first step (initialisation) or died later (an update knocked them out).

    ## Why is this bad?
    A dead unit's gradient is zero, so it can never recover; the network loses that capacity, and
    the layers before it stop receiving gradient through it.

    ## Example
    ```python
    nn.init.constant_(model.fc1.bias, -10.0)   # every pre-activation < 0 -> every ReLU unit dead
    ```

    ## Recommended fix
    He initialisation with zero bias; a lower learning rate if units died during training;
    LeakyReLU/GELU if units keep dying; BatchNorm before the activation.

    ## Known problems
    Only module activations are seen (`nn.ReLU`); `F.relu` inside `forward` is invisible here.
    With a very small batch, a unit can be zero on every sample by chance.
    """

    code = "ACT001"
    kind = "dead_activations"
    category = "activation"
    explains = ("vanishing_gradients", "loss_not_decreasing", "params_not_updating", "input_ignored")

    def check(self, ctx: Context) -> Iterator[Finding]:
        dead = ctx.module_stat("dead_frac")
        thr = ctx.t.dead_fraction
        for name, s in dead.items():
            e = ctx.modules.get(name)
            if e is None or e.type not in RELU_LIKE:
                continue
            v = s.finite().values
            if len(v) == 0:
                continue
            bad = v >= thr
            if bad.mean() < 0.5:
                continue
            frac = float(np.median(v))
            first_bad = int(s.finite().steps[np.argmax(bad)])
            from_init = bool(bad[0])
            prev = ctx.previous_layer(name)
            evidence: dict = {"dead_fraction": frac, "max_dead_fraction": float(v.max()),
                              "samples": len(v), "from_first_step": from_init,
                              "dead_fraction_series": ctx.evidence_series(s.finite())}
            cause = ""
            if prev is not None:
                mean = ctx.record.series(prev.name, "mean", kind="module").finite().values
                std = ctx.record.series(prev.name, "std", kind="module").finite().values
                if len(mean) and len(std):
                    evidence["feeding_layer"] = prev.name
                    evidence["pre_activation_mean"] = float(mean[0])
                    evidence["pre_activation_std"] = float(std[0])
                    if mean[0] < -2 * std[0]:
                        cause = (f" The layer feeding it, {prev.name}, outputs mean {fmt(float(mean[0]))} with std "
                                 f"{fmt(float(std[0]))}: nearly every pre-activation is negative.")
            when = "from the first step, so the initialisation" if from_init else f"from step {first_bad}, after training began, so an update"
            layer = prev.name if prev is not None else "layer"
            recs = [
                Recommendation("fix", f"Re-initialise {layer} with He initialisation and a zero bias.",
                               f"nn.init.kaiming_normal_({module_ref(layer)}.weight, nonlinearity='relu')\n"
                               f"nn.init.zeros_({module_ref(layer)}.bias)" if prev is not None else
                               "nn.init.kaiming_normal_(layer.weight, nonlinearity='relu')\nnn.init.zeros_(layer.bias)"),
            ]
            if not from_init:
                recs.append(Recommendation("fix", "Lower the learning rate: a large update pushed the units below zero for good.",
                                           "for g in optimizer.param_groups:\n    g['lr'] *= 0.1"))
            recs.append(Recommendation("best_practice", "Use an activation that cannot die.",
                                       "nn.LeakyReLU(0.01)  # or nn.GELU()"))
            yield self.finding(
                severity="high" if frac >= 0.9 else "medium", confidence=0.9 if frac >= 0.9 else 0.75,
                title=f"{frac:.0%} of the units of {name} ({e.type}) are dead: zero for every sample",
                description=(f"{name} ({e.type}) outputs zero for every sample on {frac:.0%} of its units (median over "
                             f"{len(v)} sampled steps), {when} killed them.{cause} Dead units pass no gradient back."),
                location=name, step=first_bad, evidence=evidence, recommendations=recs,
            )
