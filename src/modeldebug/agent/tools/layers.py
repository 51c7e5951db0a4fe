"""LayerAnalyzer: what every layer outputs and receives back, on one forward and backward pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ...config import DebuggingConfig
from ...rules.base import Recommendation
from ..request import Workload
from .base import Tool, ToolResult, backward_once, make_finding

__all__ = ["LayerAnalyzer", "LayerReport", "LayerStats"]

_RELU_LIKE = ("ReLU", "ReLU6", "Threshold", "Hardshrink")
_BOUNDED = {"Tanh": (-1.0, 1.0), "Sigmoid": (0.0, 1.0), "Hardtanh": (-1.0, 1.0), "Softsign": (-1.0, 1.0),
            "Hardsigmoid": (0.0, 1.0)}


@dataclass
class LayerStats:
    """One layer's output on the batch, and the gradient that came back to it."""

    name: str
    type: str
    shape: list[int]
    mean: float
    std: float
    zero_fraction: float
    #: units (features/channels) that are zero for every sample of the batch
    dead_fraction: float
    #: outputs within 1% of the activation's bounds (Tanh, Sigmoid, ...), else None
    saturated_fraction: float | None
    grad_norm: float | None
    histogram: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class LayerReport(ToolResult):
    """Per-layer statistics in forward order."""

    layers: list[LayerStats] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        for s in self.layers:
            sat = f" saturated={s.saturated_fraction:.0%}" if s.saturated_fraction is not None else ""
            grad = f" grad={s.grad_norm:.2e}" if s.grad_norm is not None else " grad=none"
            out.append(f"{s.name} ({s.type}) mean={s.mean:.3g} std={s.std:.3g} zero={s.zero_fraction:.0%} "
                       f"dead_units={s.dead_fraction:.0%}{sat}{grad}")
        return out


def _unit_dead_fraction(y: torch.Tensor) -> float:
    """Fraction of units (dim 1; the last dim for 2-D sequences) that are zero for every sample."""
    if y.dim() < 2 or y.shape[0] < 2:
        return 0.0
    active = (y != 0).flatten(2).any(2) if y.dim() > 2 else (y != 0)
    return float((~active.any(0)).float().mean())


class LayerAnalyzer(Tool):
    """Activation and gradient statistics of every layer (or the `layer_types` asked for)."""

    name = "layer_analyzer"
    description = ("Runs one forward and backward pass with hooks on every layer: output mean/std, zeros, "
                   "dead units, saturation, histograms, and the gradient norm that reaches each layer.")
    category = "activation"

    def __init__(self, options: Any = None, *, layer: str | None = None, bins: int = 32) -> None:
        super().__init__(options)
        self.layer = layer
        self.bins = bins

    def _wanted(self, name: str, module: nn.Module) -> bool:
        if self.layer is not None:
            return name == self.layer
        if self.options.layer_types:
            return type(module).__name__ in self.options.layer_types
        return next(module.children(), None) is None and name != ""

    def analyze(self, work: Workload) -> LayerReport:
        model = work.clone()
        model.train()
        stats: dict[str, dict[str, Any]] = {}
        order: list[str] = []
        handles = []

        def hook(name: str, module: nn.Module):  # type: ignore[no-untyped-def]
            def fn(_m: nn.Module, _args: Any, out: Any) -> None:
                y = out[0] if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor) else out
                if not isinstance(y, torch.Tensor) or not y.is_floating_point() or name in stats:
                    return
                d = y.detach().float()
                finite = d[torch.isfinite(d)]
                lo, hi = (float(finite.min()), float(finite.max())) if finite.numel() else (0.0, 0.0)
                bounds = _BOUNDED.get(type(module).__name__)
                sat = None
                if bounds is not None:
                    margin = 0.01 * (bounds[1] - bounds[0])
                    sat = float(((d <= bounds[0] + margin) | (d >= bounds[1] - margin)).float().mean())
                hist = torch.histc(finite, bins=self.bins, min=lo, max=hi if hi > lo else lo + 1) if finite.numel() else None
                stats[name] = {
                    "type": type(module).__name__, "shape": list(d.shape),
                    "mean": float(finite.mean()) if finite.numel() else float("nan"),
                    "std": float(finite.std()) if finite.numel() > 1 else 0.0,
                    "zero_fraction": float((d == 0).float().mean()),
                    "dead_fraction": _unit_dead_fraction(d) if type(module).__name__ in _RELU_LIKE else 0.0,
                    "saturated_fraction": sat, "grad_norm": None,
                    "histogram": {"counts": hist.tolist() if hist is not None else [],
                                  "range": [lo, hi]},
                }
                order.append(name)
                if y.requires_grad:
                    def grad_hook(g: torch.Tensor) -> None:
                        stats[name]["grad_norm"] = float(g.detach().float().norm())
                    y.register_hook(grad_hook)
            return fn

        for name, module in model.named_modules():
            if self._wanted(name, module):
                handles.append(module.register_forward_hook(hook(name, module)))
        backward_once(work, model, handles)
        layers = [LayerStats(name=n, **stats[n]) for n in order]
        if self.layer is not None and not layers:
            from ...errors import BadInputError

            raise BadInputError(f"no layer named {self.layer!r} produced a floating-point output; "
                                f"layers: {', '.join(n for n, _ in model.named_modules() if n)[:300]}")
        findings = self._findings(layers, batch=int(layers[0].shape[0]) if layers and layers[0].shape else 0)
        dead = [s for s in layers if s.dead_fraction > 0]
        summary = (f"{len(layers)} layers; " + (f"dead units in {', '.join(s.name for s in dead)}" if dead
                                                  else "no dead units"))
        return LayerReport(tool=self.name, summary=summary, findings=findings, layers=layers)

    def _findings(self, layers: list[LayerStats], *, batch: int) -> list:  # type: ignore[type-arg]
        th = DebuggingConfig().thresholds
        out = []
        # A unit silent for every sample of a small batch proves little: ask for a real batch.
        certainty = min(1.0, batch / 32)
        for s in layers:
            if s.dead_fraction >= th.dead_fraction and batch >= 8:
                out.append(make_finding(
                    "ACT001", "dead_activations", "activation", severity="high", confidence=0.6 + 0.35 * certainty,
                    title=f"{s.dead_fraction:.0%} of the units of {s.name} output zero for every sample",
                    description=(f"{s.name} ({s.type}) is zero for all {batch} samples in {s.dead_fraction:.0%} of its "
                                 "units, so no gradient flows through them and the layers before them stop learning. "
                                 "Usual causes: large negative biases, a too-high learning rate, or bad initialisation."),
                    location=s.name, evidence={"dead_fraction": s.dead_fraction, "batch": batch,
                                               "zero_fraction": s.zero_fraction, "mean": s.mean},
                    recommendations=[
                        Recommendation("fix", "Re-initialise the layer before it (Kaiming for ReLU) with zero biases",
                                       "nn.init.kaiming_normal_(layer.weight, nonlinearity='relu'); nn.init.zeros_(layer.bias)"),
                        Recommendation("best_practice", "Use LeakyReLU or GELU, which keep a gradient for negative inputs",
                                       "nn.LeakyReLU(0.01)")]))
            if s.saturated_fraction is not None and s.saturated_fraction >= th.saturated_fraction:
                out.append(make_finding(
                    "ACT002", "saturated_activations", "activation", severity="medium", confidence=0.7,
                    title=f"{s.saturated_fraction:.0%} of {s.name}'s outputs sit at the {s.type} bounds",
                    description=(f"{s.name} ({s.type}) is saturated: its derivative is near zero there, so gradients "
                                 "vanish. Its inputs are too large: normalise them or scale the layer before."),
                    location=s.name, evidence={"saturated_fraction": s.saturated_fraction, "std": s.std},
                    recommendations=[Recommendation("fix", "Put a normalisation layer before the activation",
                                                    "nn.LayerNorm(features)  # before the Tanh/Sigmoid")]))
        return out
