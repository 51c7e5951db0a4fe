"""Activation rules: dead ReLU units, with the layer that feeds them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .. import measures as M
from .base import Finding, Recommendation, Rule
from .context import RELU_LIKE, Context, fmt, module_ref
from .measures import scale_lr_code

__all__ = ["DeadActivations"]

# Zeros in at least this share of a ReLU's outputs: most units are inactive on nearly every sample.
_PARTLY_DEAD_ZEROS = 0.9


class DeadActivations(Rule):
    """Detects ACT001; its documentation and options are in the catalogue (`modeldebug explain ACT001`)."""

    code = "ACT001"
    requires = (M.DEAD_FRAC, M.MODULE_MEAN, M.MODULE_STD, M.resolve("module.zero_frac"))

    def check(self, ctx: Context) -> Iterator[Finding]:
        dead = ctx.module_stat("dead_frac")
        zeros = ctx.module_stat("zero_frac")
        thr = ctx.t.dead_fraction
        for name, s in dead.items():
            e = ctx.modules.get(name)
            if e is None or e.type not in RELU_LIKE:
                continue
            v = s.finite().values
            if len(v) == 0:
                continue
            bad = v >= thr
            # Judged on the layer as training left it: the samples of the run's second half, by step (the
            # sampler takes the first steps densely, so a share of the samples is mostly the run's start: a
            # layer killed at step 40 of 200 was dead on 3 of 9 samples). Units whose inputs moved back above
            # zero were not dead: a layer that recovers is not flagged.
            steps = s.finite().steps
            later = steps >= steps[0] + (steps[-1] - steps[0]) / 2
            late = v[later] if later.sum() >= 2 else v[-2:]
            if float(np.median(late)) < thr:
                partial = self._partly_dead(ctx, name, e.type, zeros.get(name), float(np.median(v)))
                if partial is not None:
                    yield partial
                continue
            frac = float(np.median(late))
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
            # Most of the layer dead is high. Part of it dead from the first step is an initialisation that
            # wastes width (medium: the fix is known). Part of it going quiet while training goes on is low:
            # units that stop firing on a batch as the network specialises (a unit firing on 2% of samples is
            # zero on a whole batch of 64 a quarter of the time) are not why a run fails, and a healthy run
            # can end with half a wide layer quiet; what does stop a run, a learning rate that kills units,
            # has its own findings.
            severity = "high" if frac >= 0.9 else "medium" if from_init else "low"
            evidence["severity_basis"] = ("most units dead" if frac >= 0.9 else "part of the layer, dead from the first step"
                                          if from_init else "part of the layer, gone quiet after training began")
            yield self.finding(
                severity=severity, confidence=0.9 if frac >= 0.9 else 0.75 if from_init else 0.6,
                title=f"{frac:.0%} of the units of {name} ({e.type}) are dead: zero for every sample",
                description=(f"{name} ({e.type}) outputs zero for every sample on {frac:.0%} of its units (median over "
                             f"the {len(late)} sampled steps of the run's second half), {when} killed them.{cause} Dead units pass no gradient back."),
                location=name, step=first_bad, evidence=evidence, recommendations=recs,
            )

    def _partly_dead(self, ctx: Context, name: str, kind: str, zeros, dead: float) -> Finding | None:  # type: ignore[no-untyped-def]
        """Units that are not zero on EVERY sample but on nearly all: seen as the share of zero outputs.

        The exact measure, the fraction of units inactive on 99% of the samples, is not recorded;
        with `zero_frac` at 90% or more on most sampled steps, most units are inactive on nearly
        every sample whatever the split, so the layer is mostly dead although no unit is fully dead.
        """
        z = zeros.finite().values if zeros is not None else np.array([])
        if len(z) < 2 or np.mean(z >= max(_PARTLY_DEAD_ZEROS, ctx.t.dead_fraction)) < 0.5:
            return None
        frac = float(np.median(z))
        prev = ctx.previous_layer(name)
        layer = prev.name if prev is not None else "layer"
        return self.finding(
            severity="medium", confidence=0.7,
            title=f"{name} ({kind}) is mostly inactive: {frac:.0%} of its outputs are zero",
            description=(f"{frac:.0%} of the outputs of {name} are exactly zero (median over {len(z)} sampled steps), "
                         f"while only {dead:.0%} of its units are zero on every sample: most units fire on a few "
                         "samples only. They pass almost no gradient back, so the layer learns with a few units."),
            location=name, step=int(zeros.finite().steps[0]),
            evidence={"zero_fraction": frac, "dead_fraction": dead, "samples": len(z), "partly_dead": True},
            recommendations=[
                Recommendation("fix", f"Re-initialise {layer} with He initialisation and a zero bias.",
                               f"nn.init.kaiming_normal_({module_ref(layer)}.weight, nonlinearity='relu')\n"
                               f"nn.init.zeros_({module_ref(layer)}.bias)"),
                Recommendation("best_practice", "Use an activation that cannot die.", "nn.LeakyReLU(0.01)  # or nn.GELU()"),
            ],
        )
