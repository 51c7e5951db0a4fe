"""Activation rules: dead ReLU units, with the layer that feeds them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .. import measures as M
from .base import Finding, Recommendation, Rule
from .context import RELU_LIKE, Context, fmt, module_ref
from .measures import scale_lr_code

__all__ = ["DeadActivations"]


class DeadActivations(Rule):
    """Detects ACT001; its documentation and options are in the catalogue (`modeldebug explain ACT001`)."""

    code = "ACT001"
    requires = (M.DEAD_FRAC, M.MODULE_MEAN, M.MODULE_STD)

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
                                           scale_lr_code(ctx, 0.1)))
            recs.append(Recommendation("best_practice", "Use an activation that cannot die.",
                                       "nn.LeakyReLU(0.01)  # or nn.GELU()"))
            yield self.finding(
                severity="high" if frac >= 0.9 else "medium", confidence=0.9 if frac >= 0.9 else 0.75,
                title=f"{frac:.0%} of the units of {name} ({e.type}) are dead: zero for every sample",
                description=(f"{name} ({e.type}) outputs zero for every sample on {frac:.0%} of its units (median over "
                             f"{len(v)} sampled steps), {when} killed them.{cause} Dead units pass no gradient back."),
                location=name, step=first_bad, evidence=evidence, recommendations=recs,
            )
