"""LayerAnalyzer: what every layer outputs and receives back, on one forward and backward pass.

It measures each layer's output with capture's own statistics (`capture.stats`) into an in-memory
record, and the activation rules judge that record with the workload's config: a dead ReLU here is
ACT001's finding (threshold `dead_fraction`), a saturated Tanh ACT002's, worded as `modeldebug run`
words them. Histograms and the gradient norm reaching each layer are the tool's own extras.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ...capture import stats as S
from ...rules.context import RELU_LIKE
from ..measure import Measurement
from ..request import Workload
from .base import Tool, ToolResult, backward_once

__all__ = ["LayerAnalyzer", "LayerReport", "LayerStats"]

#: the rules that judge what this tool measures
CODES = ("ACT001", "ACT002")


@dataclass
class LayerStats:
    """One layer's output on the batch, and the gradient that came back to it."""

    name: str
    type: str
    shape: list[int]
    mean: float
    std: float
    zero_fraction: float
    #: ReLU-like layers: units (features/channels) that are zero for every sample of the batch (else 0)
    dead_fraction: float
    #: bounded activations (Tanh, Sigmoid, Hardtanh, Hardsigmoid): outputs within 1% of a bound, else None
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


class LayerAnalyzer(Tool):
    """Activation and gradient statistics of every layer (or the `layer_types` asked for)."""

    name = "layer_analyzer"
    description = ("Runs one forward and backward pass with hooks on every layer: output mean/std, zeros, "
                   "dead units, saturation, histograms, and the gradient norm that reaches each layer.")
    category = "activation"

    def __init__(self, options: Any = None, *, layer: str | None = None, bins: int = 32,
                 config: Any = None) -> None:
        super().__init__(options, config=config)
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
        measured = Measurement(model)
        extras: dict[str, dict[str, Any]] = {}
        order: list[str] = []
        handles = []

        def hook(name: str):  # type: ignore[no-untyped-def]
            def fn(module: nn.Module, _args: Any, out: Any) -> None:
                if name in extras or not measured.activations(0, module, out):
                    return  # a module called twice is measured on its first call, as capture does
                y = S.first_tensor(out)
                assert y is not None
                d = y.detach().float()
                finite = d[torch.isfinite(d)]
                lo, hi = (float(finite.min()), float(finite.max())) if finite.numel() else (0.0, 0.0)
                hist = torch.histc(finite, bins=self.bins, min=lo, max=hi if hi > lo else lo + 1) if finite.numel() else None
                extras[name] = {"type": type(module).__name__, "shape": list(d.shape), "grad_norm": None,
                                "histogram": {"counts": hist.tolist() if hist is not None else [], "range": [lo, hi]}}
                order.append(name)
                if y.requires_grad:
                    def grad_hook(g: torch.Tensor) -> None:
                        extras[name]["grad_norm"] = float(g.detach().float().norm())
                    y.register_hook(grad_hook)
            return fn

        for name, module in model.named_modules():
            if self._wanted(name, module):
                handles.append(module.register_forward_hook(hook(measured.name(module) or name)))
        loss = backward_once(work, model, handles)
        measured.end_step(0, loss=loss, n_backward=1, sampled=True)
        layers = [self._layer(n, extras[n], measured.stats.get(n, {})) for n in order]
        if self.layer is not None and not layers:
            from ...errors import BadInputError

            raise BadInputError(f"no layer named {self.layer!r} produced a floating-point output; "
                                f"layers: {', '.join(n for n, _ in model.named_modules() if n)[:300]}")
        findings = measured.judge(work.config, CODES)
        dead = [s for s in layers if s.dead_fraction > 0]
        summary = (f"{len(layers)} layers; " + (f"dead units in {', '.join(s.name for s in dead)}" if dead
                                                  else "no dead units"))
        return LayerReport(tool=self.name, summary=summary, findings=findings, layers=layers)

    @staticmethod
    def _layer(name: str, extra: dict[str, Any], stats: dict[str, float]) -> LayerStats:
        """One layer's row from capture's statistics (the same numbers the rules judged)."""
        return LayerStats(name=name, type=extra["type"], shape=extra["shape"], mean=stats["mean"], std=stats["std"],
                          zero_fraction=stats["zero_frac"],
                          dead_fraction=stats["dead_frac"] if extra["type"] in RELU_LIKE else 0.0,
                          saturated_fraction=stats.get("saturated_frac"), grad_norm=extra["grad_norm"],
                          histogram=extra["histogram"])
