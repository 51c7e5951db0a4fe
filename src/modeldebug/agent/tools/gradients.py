"""GradientDebugger: how the gradient flows back through the network, and where it does not."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median


from ...config import DebuggingConfig
from ...rules.base import Recommendation
from ..request import Workload
from .base import Tool, ToolResult, backward_once, make_finding

__all__ = ["GradientDebugger", "GradientFlow", "ParamGrad"]

#: why a parameter got no gradient
REASONS = {
    "frozen": "requires_grad is False",
    "unused": "its module never ran in the forward pass",
    "detached": "its module ran, but its output does not reach the loss (.detach(), torch.no_grad(), "
                ".item()/.numpy(), or a non-differentiable op such as argmax)",
    "zero": "the gradient is exactly zero (every path to the loss is blocked, e.g. by dead ReLUs or a zero multiplier)",
}


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
    description = ("One backward pass: gradient norm of every parameter in forward order, where it vanishes or "
                   "explodes along the depth, and which parameters get no gradient and why (frozen, unused, detached).")
    category = "gradient"

    def analyze(self, work: Workload) -> GradientFlow:
        model = work.clone()
        model.train()
        called: list[str] = []
        names = {id(m): n for n, m in model.named_modules()}
        handles = [m.register_forward_pre_hook(lambda m, a: called.append(names[id(m)]) and None)
                   for m in model.modules()]
        backward_once(work, model, handles)
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
            params.append(ParamGrad(name, module, list(p.shape), p.requires_grad, w, g,
                                    None if g is None or w == 0 else g / w, problem))
        params.sort(key=lambda p: first_call.get(p.module, len(called)))
        total = math.sqrt(sum((p.grad_norm or 0.0) ** 2 for p in params))
        findings = self._findings(params)
        broken = [p for p in params if p.problem and p.problem != "frozen"]
        summary = (f"total norm {total:.3e}; " +
                   (f"{len(broken)} parameters get no usable gradient" if broken else "every trainable parameter gets a gradient"))
        return GradientFlow(tool=self.name, summary=summary, findings=findings, params=params, total_norm=total)

    def _findings(self, params: list[ParamGrad]) -> list:  # type: ignore[type-arg]
        out = []
        by_problem: dict[tuple[str, str], list[ParamGrad]] = {}
        for p in params:
            if p.problem in ("unused", "detached", "zero"):
                top = p.module.split(".")[0] if p.problem == "detached" else p.module
                by_problem.setdefault((p.problem, top), []).append(p)
        for (problem, where), ps in by_problem.items():
            n = sum(math.prod(p.shape) for p in ps)
            fix = {
                "detached": Recommendation("fix", f"Find where {where}'s output leaves the graph and keep it in: "
                                           "remove .detach() / torch.no_grad() / .item() on the training path",
                                           "h = self.encoder(x)  # not self.encoder(x).detach()"),
                "unused": Recommendation("fix", f"{where} is registered but never called: call it in forward, "
                                         "or delete it (and pass find_unused_parameters=False to DDP)", None),
                "zero": Recommendation("fix", "Check what blocks the gradient upstream (dead ReLUs, a multiply by zero, "
                                       "a clamp that is always active)", None),
            }[problem]
            out.append(make_finding(
                "GRD003", "params_not_updating", "gradient",
                severity="high" if problem != "unused" else "medium", confidence=0.95 if problem != "zero" else 0.8,
                title=f"{len(ps)} parameters of {where or 'the model'} get no gradient: {problem}",
                description=f"{', '.join(p.name for p in ps[:6])}{' ...' if len(ps) > 6 else ''} ({n:,} values): "
                            f"{REASONS[problem]}. They will never train.",
                location=where or None, evidence={"reason": problem, "params": [p.name for p in ps], "values": n},
                recommendations=[fix]))
        rel = [(p.module, p.relative) for p in params if p.relative is not None and p.relative > 0 and len(p.shape) > 1]
        if len(rel) >= 3:
            th = DebuggingConfig().thresholds
            mid = median(r for _, r in rel)
            first_module, first = rel[0]
            if mid > 0 and first / mid < th.vanishing_ratio:
                out.append(make_finding(
                    "GRD002", "vanishing_gradients", "gradient", severity="high", confidence=0.75,
                    title=f"The first layer's relative gradient is {first / mid:.1e}x the median layer's",
                    description=(f"{first_module} receives |g|/|w| = {first:.2e} against a median of {mid:.2e}: "
                                 "the gradient fades on its way back, so the early layers learn almost nothing."),
                    location=first_module, evidence={"relative_first": first, "relative_median": mid,
                                                     "ratio": first / mid},
                    recommendations=[
                        Recommendation("fix", "Use ReLU-family activations with Kaiming init, or add residual "
                                       "connections / normalisation layers", "nn.init.kaiming_normal_(w, nonlinearity='relu')")]))
            elif mid > 0 and first / mid > 1 / th.vanishing_ratio:
                out.append(make_finding(
                    "GRD001", "exploding_gradients", "gradient", severity="high", confidence=0.7,
                    title=f"The first layer's relative gradient is {first / mid:.1e}x the median layer's",
                    description=(f"{first_module} receives |g|/|w| = {first:.2e} against a median of {mid:.2e}: the "
                                 "gradient grows on its way back and the early layers take huge steps."),
                    location=first_module, evidence={"relative_first": first, "relative_median": mid},
                    recommendations=[Recommendation("fix", "Clip the gradient norm and check the initialisation scale",
                                                    "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)")]))
        return out
