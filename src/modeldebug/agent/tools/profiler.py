"""PerformanceProfiler: where a training step's time goes, and what might make it faster.

Warm-up iterations first (allocator, caches, lazy init), then N measured ones: wall time per phase
(data, forward, backward, optimizer) with the device synchronised at phase edges (this is our copy,
so syncing costs the user nothing), inclusive time per module from forward hooks, and per operator
from `torch.profiler`. Suggestions are hypotheses with the effect people usually see, not promises.

The measured iterations are written as the steps of an in-memory record, with capture's step columns
(`t_loader` for the time a batch took to come out of the data loader, `t_forward`, `t_backward`,
`t_optimizer`, `t_step`, in seconds), and the dataloader rule (PRF001) judges them with the
workload's config. It judges only runs of at least `min_steps` timed steps, so with the default five
iterations it stays silent and the data share is in the result as a measurement; raise
`AnalysisOptions.profile_iterations` past `min_steps` for a verdict.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ...rules.base import Recommendation
from ..measure import Measurement
from ..request import Workload, call_model
from .base import Tool, ToolResult

#: the rules that judge what this tool measures
CODES = ("PRF001",)

__all__ = ["PerformanceProfiler", "ProfileResult"]

_SYNC_OPS = ("aten::_local_scalar_dense", "aten::item", "cudaStreamSynchronize", "cudaDeviceSynchronize",
             "aten::nonzero")


@dataclass
class ProfileResult(ToolResult):
    """Mean milliseconds per phase, per module and per operator over the measured iterations."""

    iterations: int = 0
    device: str = "cpu"
    phases_ms: dict[str, float] = field(default_factory=dict)
    modules_ms: dict[str, float] = field(default_factory=dict)
    operators: list[dict[str, Any]] = field(default_factory=list)
    syncs_per_step: float = 0.0
    tiny_op_share: float = 0.0
    suggestions: list[Recommendation] = field(default_factory=list)

    def lines(self) -> list[str]:
        step = sum(self.phases_ms.values()) or 1.0
        out = [f"step {step:.2f} ms on {self.device}: " +
               ", ".join(f"{k} {v:.2f} ms ({v / step:.0%})" for k, v in self.phases_ms.items())]
        top = sorted(self.modules_ms.items(), key=lambda kv: -kv[1])[:5]
        if top:
            out.append("slowest modules (forward, inclusive): " + ", ".join(f"{k} {v:.2f} ms" for k, v in top))
        if self.operators:
            out.append("top operators: " + ", ".join(f"{o['name']} {o['self_ms']:.2f} ms x{o['calls']}"
                                                     for o in self.operators[:5]))
        out += [f"hypothesis: {s.description}" for s in self.suggestions]
        return out


@contextlib.contextmanager
def _quiet_kineto() -> Iterator[None]:
    """The profiler's C++ side prints `USDT: ... profiler_start/stop` on fd 2; keep every other line."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode(errors="replace").splitlines(keepends=True) if not ln.startswith("USDT:")]
            if kept:
                sys.stderr.write("".join(kept))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PerformanceProfiler(Tool):
    """Profiles warm-up + N training iterations on a copy of the model."""

    name = "performance_profiler"
    description = ("Times warm-up then N training iterations: data/forward/backward/optimizer split, time per "
                   "module and per operator (torch.profiler), host-device syncs and tiny kernels, with concrete "
                   "optimizations stated as hypotheses.")
    category = "performance"

    def analyze(self, work: Workload) -> ProfileResult:
        from torch.profiler import ProfilerActivity, profile

        model = work.clone()
        model.train()
        opt = work.optimizer(model)
        p0 = next(model.parameters(), None)
        device = p0.device if p0 is not None else torch.device("cpu")
        warmup, iters = max(0, self.options.profile_warmup), max(1, self.options.profile_iterations)
        data_iter = self._loader_times(work, warmup + iters)
        names = {id(m): n for n, m in model.named_modules() if n}
        starts: dict[int, float] = {}
        module_ms: dict[str, float] = {}
        measuring = [False]

        def pre(m: nn.Module, _a: Any) -> None:
            if measuring[0]:
                _sync(device)
                starts[id(m)] = time.perf_counter()

        def post(m: nn.Module, _a: Any, _o: Any) -> None:
            if measuring[0] and id(m) in starts:
                _sync(device)
                module_ms[names[id(m)]] = module_ms.get(names[id(m)], 0.0) + (time.perf_counter() - starts.pop(id(m))) * 1e3

        handles = [h for m in model.modules() if id(m) in names
                   for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
        phases = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
        per_step: list[dict[str, float]] = []
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        batches = itertools.cycle(work.batches)
        try:
            for _ in range(warmup):
                self._step(work, model, opt, next(batches), None, device)
            measuring[0] = True
            with _quiet_kineto(), profile(activities=activities) as prof:
                for i in range(iters):
                    per_step.append(self._step(work, model, opt, next(batches), phases, device))
        finally:
            for h in handles:
                h.remove()
        phases_ms = {k: v / iters for k, v in phases.items()}
        phases_ms["data"] = sum(data_iter) / len(data_iter) if data_iter else 0.0
        ops, syncs, tiny = self._operators(prof, iters)
        result = ProfileResult(tool=self.name, summary="", iterations=iters, device=str(device), phases_ms=phases_ms,
                               modules_ms={k: v / iters for k, v in module_ms.items()}, operators=ops,
                               syncs_per_step=syncs, tiny_op_share=tiny)
        result.suggestions = self._suggest(result, model, work)
        result.findings = self._judge(work, model, opt, device, per_step, data_iter)
        step = sum(phases_ms.values())
        result.summary = f"{step:.2f} ms per step ({', '.join(f'{k} {v / step:.0%}' for k, v in phases_ms.items() if step)})"
        return result

    def _loader_times(self, work: Workload, n: int) -> list[float]:
        """Milliseconds per batch drawn from the request's data loader (none for a single batch)."""
        data = work.request.data
        if data is None:
            return []
        times, it = [], iter(data)
        for _ in range(n):
            t0 = time.perf_counter()
            try:
                next(it)
            except StopIteration:
                break
            times.append((time.perf_counter() - t0) * 1e3)
        return times[1:] or times  # the first includes worker start-up

    def _step(self, work: Workload, model: nn.Module, opt: torch.optim.Optimizer, batch: Any,
              phases: dict[str, float] | None, device: torch.device) -> dict[str, float]:
        """One training iteration; its phases in seconds (added to `phases` in milliseconds)."""
        x, y = batch
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = work.loss_of(call_model(model, x), y)
        _sync(device)
        t1 = time.perf_counter()
        loss.backward()
        _sync(device)
        t2 = time.perf_counter()
        opt.step()
        _sync(device)
        t3 = time.perf_counter()
        if phases is not None:
            phases["forward"] += (t1 - t0) * 1e3
            phases["backward"] += (t2 - t1) * 1e3
            phases["optimizer"] += (t3 - t2) * 1e3
        return {"t_forward": t1 - t0, "t_backward": t2 - t1, "t_optimizer": t3 - t2}

    def _operators(self, prof: Any, iters: int) -> tuple[list[dict[str, Any]], float, float]:
        rows = []
        syncs = 0
        total = tiny = 0.0
        for ev in prof.key_averages():
            self_us = float(getattr(ev, "self_cpu_time_total", 0.0)) + float(getattr(ev, "self_device_time_total", 0.0) or 0.0)
            calls = int(ev.count)
            if any(ev.key.startswith(s) for s in _SYNC_OPS):
                syncs += calls
            if ev.key.startswith("aten::"):
                total += self_us
                if calls and self_us / calls < 10.0:
                    tiny += self_us
            rows.append({"name": ev.key, "calls": calls // iters, "self_ms": self_us / 1e3 / iters})
        rows.sort(key=lambda r: -r["self_ms"])
        return rows[:20], syncs / iters, (tiny / total if total else 0.0)

    def _suggest(self, r: ProfileResult, model: nn.Module, work: Workload) -> list[Recommendation]:
        out = []
        step = sum(r.phases_ms.values()) or 1.0
        cuda = r.device.startswith("cuda")
        has_conv = any(isinstance(m, (nn.Conv2d, nn.Conv3d)) for m in model.modules())
        dtype = next((p.dtype for p in model.parameters()), torch.float32)
        if r.phases_ms.get("data", 0) / step > 0.3:
            out.append(Recommendation("optimization", "Data loading takes "
                                      f"{r.phases_ms['data'] / step:.0%} of the step: more DataLoader workers and "
                                      "pinned memory usually hide it behind compute",
                                      "DataLoader(ds, batch_size=..., num_workers=4, pin_memory=True, persistent_workers=True)"))
        if cuda and dtype == torch.float32:
            out.append(Recommendation("optimization", "Mixed precision (bf16/fp16 autocast) often gives 1.5-3x on "
                                      "tensor-core GPUs and halves activation memory",
                                      "with torch.autocast('cuda', dtype=torch.bfloat16):\n    loss = loss_fn(model(x), y)"))
        if cuda and has_conv:
            out.append(Recommendation("optimization", "channels_last memory format often speeds up convolutions "
                                      "by 10-30% on recent GPUs",
                                      "model = model.to(memory_format=torch.channels_last); x = x.to(memory_format=torch.channels_last)"))
        if r.tiny_op_share > 0.5 or (step < 5.0 and r.tiny_op_share > 0.3):
            out.append(Recommendation("optimization", f"{r.tiny_op_share:.0%} of operator time is in tiny ops (<10 us "
                                      "each): per-op overhead dominates. A larger batch or torch.compile (fusing the "
                                      "small ops) usually raises throughput", "model = torch.compile(model)"))
        if cuda and r.syncs_per_step >= 2:
            out.append(Recommendation("optimization", f"{r.syncs_per_step:.0f} host-device syncs per step "
                                      "(.item(), .cpu(), nonzero): each stalls the GPU queue; log every N steps instead",
                                      "if step % 50 == 0: print(loss.item())"))
        if r.phases_ms.get("optimizer", 0) / step > 0.4:
            out.append(Recommendation("optimization", "The optimizer step takes "
                                      f"{r.phases_ms['optimizer'] / step:.0%} of the step: a fused/foreach "
                                      "implementation usually cuts it", "torch.optim.AdamW(params, lr=..., fused=True)  # on CUDA"))
        return out

    def _judge(self, work: Workload, model: nn.Module, opt: torch.optim.Optimizer, device: torch.device,
               per_step: list[dict[str, float]], loader_ms: list[float]) -> list:  # type: ignore[type-arg]
        """The measured iterations as a record's steps, judged by the dataloader rule.

        Step i waited for the i-th timed batch of the loader (none without a loader); a step with no
        timed batch left has no step time, so the rule does not count it.
        """
        measured = Measurement(model, optimizer=opt, device=device)
        loader = work.request.data is not None
        lr = float(opt.param_groups[0]["lr"]) if opt.param_groups else None
        for i, phases in enumerate(per_step):
            wait = (loader_ms[i] / 1e3 if i < len(loader_ms) else None) if loader else 0.0
            compute = sum(phases.values())
            measured.end_step(i, lr=lr, n_backward=1, sampled=False, t_loader=wait, t_data=wait,
                              t_step=compute + wait if wait is not None else None, **phases)
        return measured.judge(work.config, CODES)
