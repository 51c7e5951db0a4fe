"""MemoryTracker: what one training step holds in memory, module by module, and how to shrink it.

Parameters, gradients and optimizer state are counted from the tensors themselves; activations are
the tensors autograd saves for backward (`saved_tensors_hooks`), attributed to the module whose
forward was running and counted once per storage. On a GPU the allocator's own counters give the
timeline and peak; on a CPU the process's resident memory is shown next to the tensor estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ...capture.resources import rss_mb
from ...rules.base import Recommendation
from ..request import Workload, call_model
from .base import Tool, ToolResult, make_finding

__all__ = ["MemoryReport", "MemoryTracker"]

MB = 2**20


@dataclass
class MemoryReport(ToolResult):
    """MiB by kind, activations by module, and a timeline over one step."""

    device: str = "cpu"
    params_mb: float = 0.0
    grads_mb: float = 0.0
    optimizer_mb: float = 0.0
    activations_mb: float = 0.0
    activations_by_module: dict[str, float] = field(default_factory=dict)
    #: (phase, MiB): allocator memory on CUDA, process RSS on CPU
    timeline: list[tuple[str, float]] = field(default_factory=list)
    peak_mb: float = 0.0
    peak_source: str = "estimate"
    suggestions: list[Recommendation] = field(default_factory=list)

    def lines(self) -> list[str]:
        top = sorted(self.activations_by_module.items(), key=lambda kv: -kv[1])[:5]
        return [f"parameters {self.params_mb:.2f} MiB, gradients {self.grads_mb:.2f} MiB, optimizer state "
                f"{self.optimizer_mb:.2f} MiB, activations saved for backward {self.activations_mb:.2f} MiB",
                f"peak {self.peak_mb:.1f} MiB ({self.peak_source})",
                "largest activations: " + (", ".join(f"{k} {v:.2f} MiB" for k, v in top) or "none"),
                "timeline: " + ", ".join(f"{k} {v:.1f}" for k, v in self.timeline),
                *(f"suggestion: {s.description}" for s in self.suggestions)]


def _nbytes(tensors: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


class MemoryTracker(Tool):
    """Memory of one training step on a copy: parameters, gradients, optimizer state, activations."""

    name = "memory_tracker"
    description = ("Measures one training step's memory: parameters, gradients, optimizer state and the activations "
                   "each module keeps for backward; peak and timeline (CUDA allocator or process RSS); and what "
                   "would shrink it (activation checkpointing, mixed precision, a smaller batch, a leaner optimizer).")
    category = "memory"

    def analyze(self, work: Workload) -> MemoryReport:
        model = work.clone()
        model.train()
        opt = work.optimizer(model)
        p0 = next(model.parameters(), None)
        device = p0.device if p0 is not None else torch.device("cpu")
        cuda = device.type == "cuda"

        def now() -> float:
            return (torch.cuda.memory_allocated(device) if cuda else (rss_mb() or 0.0) * MB) / MB

        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
        stack: list[str] = []
        seen: set[tuple[int, int, tuple[int, ...]]] = set()
        by_module: dict[str, float] = {}
        names = {id(m): n for n, m in model.named_modules()}

        def pre(m: nn.Module, _a: Any) -> None:
            stack.append(names[id(m)] or type(m).__name__)

        def post(m: nn.Module, _a: Any, _o: Any) -> None:
            if stack:
                stack.pop()

        def pack(t: torch.Tensor) -> torch.Tensor:
            # The same tensor is often saved twice (a ReLU's output by the ReLU and the next Linear):
            # count each view once, by its own size (a slice of a big batch keeps only itself here).
            ptr = t.untyped_storage().data_ptr()
            key = (ptr, t.storage_offset(), tuple(t.shape))
            if key not in seen and ptr not in param_ptrs:
                seen.add(key)
                where = stack[-1] if stack else "(loss)"
                by_module[where] = by_module.get(where, 0.0) + t.numel() * t.element_size() / MB
            return t

        handles = [h for m in model.modules() for h in (m.register_forward_pre_hook(pre),
                                                       m.register_forward_hook(post, always_call=True))]
        timeline = [("start", now())]
        try:
            x, y = work.batch
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss = work.loss_of(call_model(model, x), y)
            timeline.append(("after forward", now()))
            loss.backward()
            timeline.append(("after backward", now()))
            opt.step()
            timeline.append(("after optimizer step", now()))
        finally:
            for h in handles:
                h.remove()
        params = _nbytes(model.parameters()) / MB
        grads = _nbytes(p.grad for p in model.parameters() if p.grad is not None) / MB
        state = sum(_nbytes(s.values()) for s in opt.state.values()) / MB
        acts = sum(by_module.values())
        estimate = params + grads + state + acts
        peak, source = ((torch.cuda.max_memory_allocated(device) / MB, "CUDA allocator peak") if cuda
                        else (estimate, "tensor estimate: parameters + gradients + optimizer state + activations"))
        r = MemoryReport(tool=self.name, summary="", device=str(device), params_mb=params, grads_mb=grads,
                         optimizer_mb=state, activations_mb=acts, activations_by_module=by_module,
                         timeline=timeline, peak_mb=peak, peak_source=source)
        r.suggestions = self._suggest(r, model)
        r.findings = self._findings(r)
        parts = {"activations": acts, "optimizer state": state, "parameters": params, "gradients": grads}
        big = max(parts, key=parts.get)  # type: ignore[arg-type]
        r.summary = f"{peak:.1f} MiB peak; the largest part is {big} ({parts[big]:.1f} MiB)"
        return r

    def _suggest(self, r: MemoryReport, model: nn.Module) -> list[Recommendation]:
        out = []
        total = r.params_mb + r.grads_mb + r.optimizer_mb + r.activations_mb or 1.0
        if r.activations_mb / total > 0.4:
            top = max(r.activations_by_module, key=r.activations_by_module.get) if r.activations_by_module else "the model"  # type: ignore[arg-type]
            out.append(Recommendation("optimization", f"Activations are {r.activations_mb / total:.0%} of the step's "
                                      f"memory (most in {top}): activation checkpointing trades ~30% more compute for "
                                      "most of that memory; a smaller batch cuts it proportionally; mixed precision halves it",
                                      "from torch.utils.checkpoint import checkpoint\nh = checkpoint(self.block, h, use_reentrant=False)"))
        if r.optimizer_mb / total > 0.3:
            out.append(Recommendation("optimization", f"Optimizer state is {r.optimizer_mb / total:.0%} of the memory "
                                      "(Adam keeps two values per weight): SGD with momentum keeps one, Adafactor or "
                                      "8-bit Adam much less", "torch.optim.SGD(params, lr=..., momentum=0.9)"))
        if r.device.startswith("cuda"):
            out.append(Recommendation("optimization", "bf16 autocast halves activation memory on GPUs that support it",
                                      "with torch.autocast('cuda', dtype=torch.bfloat16): ..."))
        return out

    def _findings(self, r: MemoryReport) -> list:  # type: ignore[type-arg]
        limit = self.options.memory_threshold_mb
        if limit is None or r.peak_mb <= limit:
            return []
        return [make_finding(
            "MEM002", "high_memory", "memory", severity="medium", confidence=0.8,
            title=f"One training step needs {r.peak_mb:.0f} MiB, above the {limit:.0f} MiB budget",
            description=(f"Parameters {r.params_mb:.1f} MiB, gradients {r.grads_mb:.1f} MiB, optimizer state "
                         f"{r.optimizer_mb:.1f} MiB, activations {r.activations_mb:.1f} MiB ({r.peak_source})."),
            evidence={"peak_mb": r.peak_mb, "limit_mb": limit, "activations_mb": r.activations_mb,
                      "optimizer_mb": r.optimizer_mb, "params_mb": r.params_mb},
            recommendations=r.suggestions)]
