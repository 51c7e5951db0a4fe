"""Gradient rules: exploding and vanishing, relative to the run's own baseline and to other layers."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .. import measures as M
from .base import Finding, Recommendation, Rule
from .context import Context, fmt
from .measures import scale_lr_code

__all__ = ["ExplodingGradients", "VanishingGradients"]

_CLIP = ("loss.backward()\n"
         "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n"
         "optimizer.step()")


class ExplodingGradients(Rule):
    """Detects GRD001; its documentation and options are in the catalogue (`modeldebug explain GRD001`)."""

    code = "GRD001"
    requires = (M.GRAD_NORM, M.PARAM_GRAD_NORM)

    def check(self, ctx: Context) -> Iterator[Finding]:
        s = ctx.record.column("grad_norm")
        if len(s) < max(ctx.t.min_steps // 2, 6):
            return
        v = s.values
        k = int(min(5, max(3, len(v) // 10)))
        head = v[:k][np.isfinite(v[:k])]
        if len(head) < 2:
            return
        base = float(np.median(head))
        if base <= 0:
            return
        growth = v / base
        finite = np.isfinite(growth)
        peak = float(np.nanmax(growth[finite])) if finite.any() else float("inf")
        nonfinite_after_growth = (~finite[k:]).any() and peak >= 10
        if peak < ctx.t.grad_growth and not nonfinite_after_growth:
            return
        over = np.flatnonzero(~finite | (growth >= 10))
        since = int(s.steps[over[0]]) if len(over) else int(s.steps[int(np.nanargmax(growth))])
        location, per_param = self._worst_param(ctx, k)
        severity = "high" if peak >= 1e4 or nonfinite_after_growth else "medium"
        yield self.finding(
            severity=severity, confidence=min(0.95, 0.6 + 0.08 * np.log10(max(peak, 1))),
            title=f"Gradient norm grew {fmt(peak)}x over its early baseline"
                  + (" and then became non-finite" if nonfinite_after_growth else ""),
            description=(f"The total gradient norm was {fmt(base)} over the first {k} steps and reached "
                         f"{fmt(base * peak) if np.isfinite(peak) else 'Inf'} (first above 10x at step {since}). "
                         f"It grew most in {ctx.label(location)}."),
            location=location, step=since,
            evidence={"baseline_norm": base, "peak_growth": peak, "peak_norm": base * peak,
                      "nonfinite": bool(nonfinite_after_growth), "lr": ctx.lr, "per_param_growth": per_param,
                      "grad_norm": ctx.evidence_series(s)},
            recommendations=[
                Recommendation("fix", "Clip the total gradient norm.", _CLIP),
                Recommendation("fix", "Lower the learning rate.",
                               scale_lr_code(ctx, 0.1)),
            ],
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


class VanishingGradients(Rule):
    """Detects GRD002; its documentation and options are in the catalogue (`modeldebug explain GRD002`)."""

    code = "GRD002"
    requires = (M.PARAM_GRAD_NORM, M.PARAM_NORM)

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
                      "vanishing": {n: r for n, r in sorted(low.items(), key=lambda kv: kv[1])}},
            recommendations=[
                Recommendation("fix", "Use non-saturating activations and He initialisation.",
                               "nn.ReLU()  # or nn.GELU(), instead of nn.Sigmoid()/nn.Tanh() in hidden layers\n"
                               "for m in model.modules():\n    if isinstance(m, nn.Linear):\n"
                               "        nn.init.kaiming_normal_(m.weight, nonlinearity='relu')"),
                Recommendation("fix", "Add normalisation or residual connections in deep stacks.",
                               "h = h + block(norm(h))   # pre-norm residual block"),
            ],
        )
