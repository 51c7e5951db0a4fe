"""GradientDebugger: how the gradient flows back through the network, and where it does not.

It trains a copy for a few steps (`AnalysisOptions.gradient_steps`) and writes what capture writes
for a watched run (each parameter's `grad_norm`, `param_norm` and `update_ratio`, the step's total
norm) into an in-memory record; the gradient and optimizer rules (GRD001, GRD002, OPT001) judge it
with the workload's config. Its own result is the first step's gradient of every parameter in
forward order, and why a parameter gets none: frozen, unused, detached, zero, or below
`AnalysisOptions.gradient_threshold`. A rule that needs a longer run than the tool's (exploding
gradients judge a trend over `min_steps`) stays silent here; the watched run judges it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import nn

from ..measure import Measurement
from ..request import Workload
from .base import Tool, ToolResult, backward_once

__all__ = ["GradientDebugger", "GradientFlow", "ParamGrad"]

#: why a parameter got no gradient
REASONS = {
    "frozen": "requires_grad is False",
    "unused": "its module never ran in the forward pass",
    "detached": "its module ran, but its output does not reach the loss (.detach(), torch.no_grad(), "
                ".item()/.numpy(), or a non-differentiable op such as argmax)",
    "zero": "the gradient is exactly zero (every path to the loss is blocked, e.g. by dead ReLUs or a zero multiplier)",
    "tiny": "the gradient norm is below AnalysisOptions.gradient_threshold: too little signal to learn from "
            "(it vanished on the way back, or the path is nearly blocked)",
}

#: the rules that judge what this tool measures
CODES = ("GRD001", "GRD002", "OPT001")


@dataclass
class ParamGrad:
    """One parameter after one backward pass."""

    name: str
    module: str
    shape: list[int]
    requires_grad: bool
    weight_norm: float
    grad_norm: float | None
    #: grad norm / weight norm: how far one SGD step at lr 1 would move it, relatively
    relative: float | None
    #: None when the gradient is fine, else a key of REASONS
    problem: str | None = None


@dataclass
class GradientFlow(ToolResult):
    """Per-parameter gradients in the order the forward pass used them."""

    params: list[ParamGrad] = field(default_factory=list)
    total_norm: float = 0.0

    def lines(self) -> list[str]:
        out = [f"total gradient norm {self.total_norm:.3e}"]
        for p in self.params:
            g = "none" if p.grad_norm is None else f"{p.grad_norm:.2e}"
            rel = "" if p.relative is None else f" |g|/|w|={p.relative:.2e}"
            out.append(f"{p.name} {tuple(p.shape)} grad={g}{rel}{f' <- {p.problem}' if p.problem else ''}")
        return out

    def layer_norms(self) -> dict[str, float]:
        """Gradient norm per module (for the gradient-flow plot)."""
        acc: dict[str, float] = {}
        for p in self.params:
            if p.grad_norm is not None:
                acc[p.module] = math.sqrt(acc.get(p.module, 0.0) ** 2 + p.grad_norm ** 2)
        return acc


class GradientDebugger(Tool):
    """Gradient flow: per-layer norms, vanishing or exploding depth trends, and parameters with no gradient."""

    name = "gradient_debugger"
    description = ("A few training steps on a copy: gradient norm of every parameter in forward order, where it "
                   "vanishes along the depth, and which parameters get no gradient and why (frozen, unused, "
                   "detached, zero, too small).")
    category = "gradient"

    def analyze(self, work: Workload) -> GradientFlow:
        model = work.clone()
        model.train()
        opt = work.optimizer(model) if any(p.requires_grad for p in model.parameters()) else None
        measured = Measurement(model, optimizer=opt)
        called: list[str] = []
        names = {id(m): n for n, m in model.named_modules()}
        handles = [m.register_forward_pre_hook(lambda m, a: called.append(names[id(m)]) and None)
                   for m in model.modules()]
        params: list[ParamGrad] = []
        for step in range(max(1, self.options.gradient_steps)):
            if opt is not None:
                opt.zero_grad(set_to_none=True)
            loss = backward_once(work, model, handles if step == 0 else [], work.batches[step % len(work.batches)])
            if step == 0:
                params = self._table(model, called)
            measured.gradients(step)
            columns = {"loss": loss, "n_backward": 1, "sampled": True}
            if opt is not None and math.isfinite(loss):
                before = measured.before_update()
                opt.step()
                measured.after_update(step, before)
                columns["lr"] = float(opt.param_groups[0]["lr"])
            measured.end_step(step, **columns)
            if opt is None or not math.isfinite(loss):
                break
        total = math.sqrt(sum((p.grad_norm or 0.0) ** 2 for p in params))
        findings = measured.judge(work.config, CODES)
        broken = [p for p in params if p.problem and p.problem != "frozen"]
        summary = (f"total norm {total:.3e}; " +
                   (f"{len(broken)} parameters get no usable gradient" if broken else "every trainable parameter gets a gradient"))
        return GradientFlow(tool=self.name, summary=summary, findings=findings, params=params, total_norm=total)

    def _table(self, model: nn.Module, called: list[str]) -> list[ParamGrad]:
        """Every parameter after the first backward pass, in the order the forward pass used its module."""
        first_call = {n: i for i, n in reversed(list(enumerate(called)))}
        params = []
        for name, p in model.named_parameters():
            module = name.rsplit(".", 1)[0] if "." in name else ""
            w = float(p.detach().float().norm())
            g = None if p.grad is None else float(p.grad.detach().float().norm())
            problem = None
            if not p.requires_grad:
                problem = "frozen"
            elif p.grad is None:
                problem = "unused" if module not in first_call and module != "" else "detached"
            elif g == 0.0:
                problem = "zero"
            elif g is not None and g < self.options.gradient_threshold:
                problem = "tiny"
            params.append(ParamGrad(name, module, list(p.shape), p.requires_grad, w, g,
                                    None if g is None or w == 0 else g / w, problem))
        params.sort(key=lambda p: first_call.get(p.module, len(called)))
        return params
