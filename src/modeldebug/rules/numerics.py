"""Numerics: non-finite values, traced to the module that produced them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from .. import measures as M
from .base import Finding, Recommendation, Rule
from .context import Context
from .measures import scale_lr_code

__all__ = ["NonFiniteValues"]


def _plain_detail(detail: str | None) -> str | None:
    """The capture counts NaN/Inf in a module's first output tensor; when that one was finite, another output was not."""
    m = re.search(r"(output holds )?0 NaN and 0 Inf of (\d+) values", detail or "")
    if m is None:
        return detail
    return (detail or "").replace(m.group(0), f"its first output tensor ({m.group(2)} values) was finite but another of its "
                                               "outputs (a tuple or dict element) was not")


#: Why each edge-of-domain operation (capture/custom_backward.py) gives an infinite derivative, and its fix;
#: in the order the finding names them (clamping a value that reaches +-1 exactly is the usual trap).
_EDGE_WHY = {
    "acos": "acos's derivative -1/sqrt(1 - x^2) is infinite at x = +-1, which a clamped cosine reaches exactly "
            "(a sample aligned with its class weight, as in ArcFace), so its gradient is -inf and then NaN.",
    "asin": "asin's derivative 1/sqrt(1 - x^2) is infinite at x = +-1, which a clamped value reaches exactly.",
    "atanh": "atanh's derivative 1/(1 - x^2) is infinite at x = +-1.",
    "sqrt": "sqrt's derivative 1/(2 sqrt(x)) is infinite at 0 (a distance or a variance of exactly 0).",
    "rsqrt": "rsqrt's derivative is infinite at 0.",
    "pow": "a fractional power's derivative is infinite at 0.",
    "log": "log's derivative 1/x is infinite at 0.",
}
_EDGE_FIXES = {
    "acos": "eps = 1e-7\ntheta = torch.acos(cosine.clamp(-1 + eps, 1 - eps))   # not clamp(-1, 1): the edge itself\n"
            "# or avoid acos: cos(theta + m) = cos*cos(m) - sin*sin(m), with sin = sqrt((1 - cos^2).clamp_min(eps))",
    "asin": "y = torch.asin(x.clamp(-1 + 1e-7, 1 - 1e-7))",
    "atanh": "y = torch.atanh(x.clamp(-1 + 1e-6, 1 - 1e-6))",
    "sqrt": "d = torch.sqrt(sq.clamp_min(1e-12))   # not torch.sqrt(sq) at 0",
    "rsqrt": "y = torch.rsqrt(v + 1e-12)",
    "pow": "y = torch.pow(x.clamp_min(1e-6), 0.5)",
    "log": "y = torch.log(x.clamp_min(1e-8))",
}


def _edge_ops(ctx: Context) -> dict[str, int]:
    """The edge-of-domain operations the first sampled step's loss graph held, by name, in `_EDGE_WHY`'s order."""
    events = ctx.record.events("edge_ops")
    held = dict(events[0].data.get("ops") or {}) if events else {}
    return {op: int(held[op]) for op in _EDGE_WHY if op in held}


def _edge_fix(ops: dict[str, int]) -> str:
    if not ops:
        return ("norm = torch.sqrt((x * x).sum(-1) + 1e-12)   # a square root kept off 0\n" + _EDGE_FIXES["pow"])
    return "\n".join(_EDGE_FIXES[op] for op in list(ops)[:2])


class NonFiniteValues(Rule):
    """Detects NUM001; its documentation and options are in the catalogue (`modeldebug explain NUM001`)."""

    code = "NUM001"
    requires = (M.NONFINITE, M.LOSS, M.EDGE_OPS)

    def check(self, ctx: Context) -> Iterator[Finding]:
        events = ctx.record.events("nonfinite")
        loss = ctx.loss.values
        if not events:
            if ctx.n_steps and not np.all(np.isfinite(loss[~np.isnan(loss)])):
                step = int(ctx.loss.steps[np.argmax(~np.isfinite(loss))])
                yield self._finding(step, {"what": "loss"}, ctx)
            return
        ev = events[0]
        yield self._finding(ev.step, ev.data, ctx)

    def _finding(self, step: int | None, data: dict, ctx: Context) -> Finding:
        origin = data.get("origin") or {}
        where = origin.get("where")
        module = origin.get("module")
        prev = origin.get("previous_module")
        what = data.get("what", "loss")
        label = ctx.label(module) if module else None
        evidence = {"first_step": step, "value": what, "origin": origin}
        if data.get("params"):
            evidence["params_with_nonfinite_grad"] = data["params"][:20]
        finite = ctx.loss.finite()
        if len(finite):
            evidence["last_finite_loss"] = float(finite.values[-1])
        recs: list[Recommendation] = []
        if where == "input":
            location = "input batch"
            title = f"The input batch holds NaN/Inf values (step {step})"
            desc = f"The values fed to the model were already non-finite: {origin.get('detail', '')}. Every layer only propagated them."
            recs.append(Recommendation("fix", "Find and clean the non-finite values in the data before training.",
                                       "assert torch.isfinite(x).all(), 'non-finite input'\n# or, once the cause is known:\nx = torch.nan_to_num(x, nan=0.0)"))
        elif where == "between_modules":
            location = module
            title = f"A functional operation before {label} produced NaN/Inf (step {step})"
            desc = (f"The output of {prev or 'the previous module'} was finite but the input of {module} was not: "
                    "an operation written in forward() between them (log, sqrt, division, exp) produced it.")
            recs.append(Recommendation("fix", "Guard the operation between the two modules against its invalid domain.",
                                       "h = torch.log(h.clamp_min(1e-8))      # log\nh = torch.sqrt(h.clamp_min(1e-12))    # sqrt\nh = a / (b + 1e-8)                    # division"))
        elif where == "loss":
            location = "loss"
            title = f"The loss computation produced NaN/Inf (step {step})"
            desc = "The model's outputs were finite; the loss function turned them into NaN/Inf (log of 0, division by 0)."
            recs.append(Recommendation("fix", "Use the fused, numerically stable loss on raw logits.",
                                       "loss = F.cross_entropy(logits, target)          # not nll(log(softmax))\nloss = F.binary_cross_entropy_with_logits(logits, target)"))
        elif where == "backward":
            location = module
            title = f"Gradients of {label or 'the model'} became NaN/Inf while the loss was finite (step {step})"
            ops = _edge_ops(ctx)
            desc = (f"{origin.get('detail', '')}. The forward pass was finite, so an operation whose derivative is infinite "
                    "(acos or asin at +-1, sqrt or pow at 0, norm of a zero vector, division by a tiny value) sits in or "
                    "after this module.")
            if ops:
                desc += (" Candidates in the loss's graph: " + ", ".join(f"{n} {op}" for op, n in ops.items())
                         + f". {_EDGE_WHY[next(iter(ops))]}")
                evidence["edge_ops"] = ops
            recs.append(Recommendation("fix", "Keep the operation away from the point where its derivative is infinite.",
                                       _edge_fix(ops)))
        else:
            location = module
            detail = _plain_detail(origin.get("detail")) or f"the {what} was not finite"
            if module and module in ctx.record.meta.get("models", []) and not prev:
                detail += (". No submodule was caught producing it: the operations run in its own forward(), or in "
                           "submodules it calls as `m.forward(x)` rather than `m(x)` (which skips the hooks that trace them)")
            title = f"{'Module ' + label if label else 'The ' + what} produced NaN/Inf (step {step})"
            desc = f"{detail}." + (f" It is the first module whose output went non-finite; {prev} before it was clean." if prev else "")
            recs.append(Recommendation("fix", f"Inspect {module or 'the model'}: guard log/sqrt/division inputs, and if weights blew up, lower the learning rate and clip gradients.",
                                       "torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n# and/or\n" + scale_lr_code(ctx, 0.1)))
        recs.append(Recommendation("best_practice", "Stop early on the first non-finite loss so a bad run costs seconds, not hours.",
                                   "if not torch.isfinite(loss):\n    raise FloatingPointError(f'loss is {loss.item()} at step {step}')"))
        return self.finding(severity="high", confidence=0.95 if origin else 0.8, title=title, description=desc,
                            location=location, step=step, evidence=evidence, recommendations=recs)
