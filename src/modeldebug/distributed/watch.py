"""DistWatch: what one rank records for the cross-rank rules.

A session of capture's patch manager (`capture.patches.PATCHES`: every hook and patch installed
once, reference-counted, the user's own patches kept), attached beside the tracer and given the
run's writer:
- the optimizer step pre-hook fingerprints the gradients, the post-hook the parameters, at sampled
  steps (`sampled`), and times every step;
- the module forward pre-hook fingerprints each step's first input batch (the outermost module's
  first tensor argument) and, at sampled steps, the running statistics of every BatchNorm layer
  as it is entered (after DDP has broadcast its buffers); global module hooks only until the
  first step's outermost model is known, then hooks on that model and its BatchNorm layers alone
  (a global module hook costs every module call);
- `torch.distributed` collectives are probed so the hang watchdog knows which one a rank is in;
- `DistributedSampler.__iter__` is probed to note the epoch each iteration was shuffled for;
- `torch.multiprocessing.spawn` gets, in place of the user's function, one that watches each
  spawned rank (spawn.py); `init_process_group` starts the watch in a process no launcher named.
Nothing is communicated between ranks: the records are compared after the job.
`detach()` removes it all, also after a partial `attach()`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import weakref
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..capture.patches import PATCHES, Probe, Target
from ..record import RunWriter
from .fingerprint import fingerprint, fingerprints, to_host
from .ranks import RankInfo, rank_from_group
from .watchdog import Collective, HangSettings, Progress, Watchdog

__all__ = ["COLLECTIVES", "DIST_TARGETS", "DistWatch", "sampled"]

log = logging.getLogger("modeldebug")

COLLECTIVES = ("all_reduce", "broadcast", "all_gather", "all_gather_into_tensor", "all_gather_object", "barrier",
               "reduce", "reduce_scatter", "reduce_scatter_tensor", "gather", "scatter", "all_to_all",
               "broadcast_object_list", "send", "recv")


def _sampler_class() -> Any:
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler


#: What DistWatch probes through the patch manager (besides its module and optimizer hooks).
DIST_TARGETS: tuple[Target, ...] = (
    *(Target(f"dist:{op}", op, lambda: torch.distributed) for op in COLLECTIVES if hasattr(torch.distributed, op)),
    Target("dist_init", "init_process_group", lambda: torch.distributed),
    Target("dist_sampler_iter", "__iter__", _sampler_class),
    Target("mp_spawn", "spawn", lambda: torch.multiprocessing),
)
PATCHES.add_targets(DIST_TARGETS)
_is_compiling = torch.compiler.is_compiling
_TORCH_DIR = os.path.dirname(torch.__file__)
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FLUSH_EVERY = 64  # steps of batch fingerprints and times kept before one copy to the host


def sampled(step: int, every: int = 20) -> bool:
    """Whether parameters, gradients and BatchNorm statistics are fingerprinted at `step` (1-based)."""
    return step <= 4 or step % every == 0


def _caller() -> str:
    f = sys._getframe(2)
    while f is not None and (f.f_code.co_filename.startswith(_TORCH_DIR) or f.f_code.co_filename.startswith(_OWN_DIR)):
        f = f.f_back  # type: ignore[assignment]
    return f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno}" if f is not None else "?"


def _first_tensor(args: tuple[Any, ...]) -> torch.Tensor | None:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a
        if isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, torch.Tensor):
                    return b
        if isinstance(a, dict):
            for b in a.values():
                if isinstance(b, torch.Tensor):
                    return b
    return None


class DistWatch:
    """Records this rank's fingerprints and timings into `writer`; see the module docstring."""

    def __init__(self, writer: RunWriter, rank: RankInfo | None, *, record_path: Path | None = None,
                 config: Any = None, every: int = 20, hang: HangSettings | None = None) -> None:
        self.writer = writer
        self.rank = rank
        self.record_path = record_path
        self.config = config
        self.every = every
        self.hang = hang or HangSettings.from_env()
        self.progress = Progress()
        self.watchdog: Watchdog | None = None
        self.spawned: list[str] = []
        self.ended = False  # detached at the end of its session (a watch() report may then merge ranks)
        self._stack: ExitStack | None = None
        self._hooks_on = False
        self._opt: weakref.ref[torch.optim.Optimizer] | None = None
        self._outer: nn.Module | None = None
        self._names: dict[int, str] = {}  # id(param or module) -> name in the outermost model
        self._pending: list[tuple[str, int, list[str], torch.Tensor]] = []  # kind, step, names, [k, 2]
        self._batches: list[tuple[int, list[int], torch.Tensor]] = []
        self._times: dict[str, list[float]] = {"steps": [], "data": [], "forward": [], "step": [], "lr": []}
        self._in_step = False  # a forward of this step was seen
        self._t_first = self._t_fwd_end = 0.0
        self._t_prev = time.perf_counter()  # the end of the previous step
        self._bn_armed = False
        self._bn_done: set[int] = set()
        self._samplers: dict[int, int] = {}
        self._model_noted = False
        self._local: list[Any] | None = None  # hook handles on the outermost model and its BatchNorm layers

    # -- lifecycle -------------------------------------------------------------------------------
    def attach(self) -> DistWatch:
        """Attach to the patch manager: everything at once when the rank is known, else spawn and init only."""
        self._stack = ExitStack()
        try:
            if self.rank is not None:
                self._start()
            else:
                PATCHES.attach(self, self._probes())
        except BaseException:
            self.detach()
            raise
        return self

    def detach(self) -> None:
        """Undo every hook and patch, stop the watchdog, write what is still in memory."""
        stack, self._stack = self._stack, None
        try:
            PATCHES.detach(self)
        finally:
            try:
                if stack is not None:
                    stack.close()
            finally:
                if self.watchdog is not None:
                    self.watchdog.stop()
                try:
                    self._flush(final=True)
                except Exception as exc:  # noqa: BLE001 - a failed fingerprint copy must not hide the run's end
                    log.warning("modeldebug: distributed fingerprints not written: %s", exc)
                self._pending.clear()
                self._batches.clear()
                self._outer = None
                self._hooks_on = False
                self._local = None

    def _probes(self) -> dict[str, Probe]:
        from .spawn import spawn_probe

        probes = {"mp_spawn": spawn_probe(self)}
        if self._hooks_on:
            probes.update({f"dist:{op}": self._collective_probe(op) for op in COLLECTIVES if hasattr(torch.distributed, op)})
            probes["dist_sampler_iter"] = Probe(before=self._sampler_iter)
        else:
            probes["dist_init"] = Probe(after=self._init_after)
        return probes

    def _start(self) -> None:
        if self._hooks_on or self.rank is None or self._stack is None:
            return
        self._hooks_on = True
        self.writer.set_meta(**self.rank.meta())
        self.progress = Progress()
        self._t_prev = time.perf_counter()
        self._bn_armed = sampled(1, self.every)  # the first step is a sampled one
        PATCHES.detach(self)  # attached for spawn and init only until now
        PATCHES.attach(self, self._probes())
        if any(isinstance(o, DistWatch) and o.watchdog is not None and o.watchdog.is_alive()
               for o in PATCHES.sessions if o is not self):
            return  # watch() inside `modeldebug run`: the outer watch's watchdog speaks for this rank, once
        self.watchdog = Watchdog(self.progress, self.hang, rank=self.rank.rank)
        self.watchdog.start()
        self._stack.callback(self._stop_watchdog)

    def _stop_watchdog(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()
            for stall in self.watchdog.stalls:
                self.writer.add_event(stall["step"], "dist_hang", stall)

    # -- probes ------------------------------------------------------------------------------------
    def _init_after(self, token: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
                    exc: BaseException | None) -> None:
        """init_process_group in a process no launcher told us the rank of: start watching it now."""
        if exc is None and self.rank is None:
            self.rank = rank_from_group()
            self._start()

    def _collective_probe(self, op: str) -> Probe:
        def before(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Collective:
            p = self.progress
            n = p.counts.get(op, 0) + 1
            p.counts[op] = n
            c = Collective(op, n, p.steps, _caller(), time.monotonic())
            p.current = c
            return c

        def after(c: Collective | None, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
                  exc: BaseException | None) -> None:
            self.progress.current, self.progress.last = None, c

        return Probe(before=before, after=after)

    def _sampler_iter(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not args:
            return
        sampler = args[0]
        idx = self._samplers.setdefault(id(sampler), len(self._samplers))
        self.writer.add_event(self.progress.steps, "dist_sampler", {
            "sampler": idx, "epoch": getattr(sampler, "epoch", None), "shuffle": bool(getattr(sampler, "shuffle", False)),
            "num_replicas": getattr(sampler, "num_replicas", None), "rank": getattr(sampler, "rank", None),
            "num_samples": getattr(sampler, "num_samples", None)})

    # -- hooks -------------------------------------------------------------------------------------
    def forward_pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        """Every module call, until the first step's outermost model is known (then `_hook_locally`)."""
        if not self._hooks_on:
            return
        if not self._in_step and torch.is_grad_enabled():
            self._step_begins(module, args)
            if self._local is None:
                self._hook_locally(module)
        if self._bn_armed and isinstance(module, nn.modules.batchnorm._BatchNorm):
            self._bn_entered(module)

    def forward_post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if module is self._outer and not self._t_fwd_end:
            self._t_fwd_end = time.perf_counter()

    def _hook_locally(self, outer: nn.Module) -> None:
        """Hook only `outer` and its BatchNorm layers from now on: a global module hook costs every module call."""
        self._local = []
        if self._stack is None or type(outer).__name__ == "OptimizedModule":
            return  # a compiled model: its hooks run inside the graph, keep the global ones
        local = self._local
        local += [outer.register_forward_pre_hook(self._local_pre), outer.register_forward_hook(self._local_post)]
        local += [m.register_forward_pre_hook(self._local_bn) for m in outer.modules()
                  if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self._stack.callback(lambda: [h.remove() for h in local])
        PATCHES.module_hooks(self, False)

    def _local_pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if self._hooks_on and not self._in_step and torch.is_grad_enabled() and not _is_compiling():
            self._step_begins(module, args)

    def _local_post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if self._hooks_on and not _is_compiling():
            self.forward_post(module, args, output)

    def _local_bn(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if self._hooks_on and self._bn_armed and not _is_compiling():
            self._bn_entered(module)

    def _step_begins(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        """The first forward of a step with gradients on: the step's outermost model and its input batch."""
        self._in_step = True
        self._t_first = time.perf_counter()
        self._outer, self._t_fwd_end = module, 0.0
        if not self._names or not self._model_noted:
            self._note_model(module)
        x = _first_tensor(args)
        if x is not None:
            self._batches.append((self.progress.steps + 1, list(x.shape), fingerprint(x)))

    def _bn_entered(self, module: nn.modules.batchnorm._BatchNorm) -> None:
        """A BatchNorm layer entered at a sampled step: its running statistics, once per step."""
        if id(module) in self._bn_done:
            return
        self._bn_done.add(id(module))
        if module.running_mean is not None and module.running_var is not None:
            name = self._names.get(id(module), type(module).__name__)
            self._pending.append(("dist_bn", self.progress.steps + 1, [f"{name}.running_mean", f"{name}.running_var"],
                                  fingerprints([module.running_mean, module.running_var])))

    def _note_model(self, outer: nn.Module) -> None:
        inner = getattr(outer, "module", None)
        wrapped = isinstance(inner, nn.Module) and type(outer).__name__ in (
            "DistributedDataParallel", "FullyShardedDataParallel", "DataParallel")
        model = inner if wrapped else outer
        for name, p in model.named_parameters():
            self._names.setdefault(id(p), name)
        for name, m in model.named_modules():
            self._names.setdefault(id(m), name or type(m).__name__)
        sharded = type(outer).__name__ == "FullyShardedDataParallel" or any(
            type(p).__name__ == "DTensor" for p in model.parameters())
        self._model_noted = True
        self.writer.add_event(self.progress.steps, "dist_model", {
            "type": type(outer).__name__, "model": type(model).__name__, "ddp": type(outer).__name__ == "DistributedDataParallel",
            "sharded": sharded, "broadcast_buffers": getattr(outer, "forward_sync_buffers", getattr(outer, "broadcast_buffers", None)),
            "batchnorm": sorted({type(m).__name__ for m in model.modules()
                                 if isinstance(m, nn.modules.batchnorm._BatchNorm)})})

    def _mine(self, opt: torch.optim.Optimizer) -> bool:
        if self._opt is None or self._opt() is None:
            self._opt = weakref.ref(opt)
        return self._opt() is opt

    def _params(self, opt: torch.optim.Optimizer) -> list[torch.Tensor]:
        return [p for g in opt.param_groups for p in g["params"]]

    def optimizer_pre(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not self._hooks_on or not self._mine(opt) or not sampled(self.progress.steps + 1, self.every):
            return
        params = [p for p in self._params(opt) if p.grad is not None]
        if params:
            names = [self._names.get(id(p), f"param{i}") for i, p in enumerate(params)]
            self._pending.append(("dist_grads", self.progress.steps + 1, names, fingerprints([p.grad for p in params])))
            sync = getattr(self._outer, "require_backward_grad_sync", None)
            if sync is not None:
                self.writer.add_event(self.progress.steps + 1, "dist_sync", {"require_backward_grad_sync": bool(sync)})

    def optimizer_post(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not self._hooks_on or not self._mine(opt):
            return
        now = time.perf_counter()
        p = self.progress
        step = p.steps + 1
        t0, self._t_prev = self._t_prev, now
        t = self._times
        t["steps"].append(step)
        t["data"].append(round(self._t_first - t0, 6) if self._in_step else None)
        t["forward"].append(round(self._t_fwd_end - self._t_first, 6) if self._in_step and self._t_fwd_end else None)
        t["step"].append(round(now - t0, 6))
        try:
            t["lr"].append(float(opt.param_groups[0]["lr"]))
        except (KeyError, IndexError, TypeError, ValueError):
            t["lr"].append(None)
        if sampled(step, self.every):
            params = self._params(opt)
            names = [self._names.get(id(q), f"param{i}") for i, q in enumerate(params)]
            self._pending.append(("dist_params", step, names, fingerprints(params)))
        self._in_step, self._bn_done = False, set()
        self._bn_armed = sampled(step + 1, self.every)
        p.step_done(time.monotonic())
        if self._pending and sampled(step, self.every) or len(t["steps"]) >= _FLUSH_EVERY:
            self._flush()

    def _flush(self, *, final: bool = False) -> None:
        """Copy what is buffered on the device to the host at once, and hand it to the writer."""
        blocks = [b for _, _, _, b in self._pending] + [b.reshape(1, 2) for _, _, b in self._batches]
        host = to_host(blocks)
        for (kind, step, names, _), rows in zip(self._pending, host):
            self.writer.add_event(step, kind, {"names": names, "fp": rows})
        if self._batches:
            rows = host[len(self._pending):]
            self.writer.add_event(self._batches[0][0], "dist_batches", {
                "steps": [s for s, _, _ in self._batches], "shapes": [sh for _, sh, _ in self._batches],
                "fp": [r[0] for r in rows]})
        self._pending.clear()
        self._batches.clear()
        t = self._times
        if t["steps"]:
            self.writer.add_event(t["steps"][0], "dist_times", dict(t))
            for v in t.values():
                v.clear()
        if final and self.progress.counts:
            self.writer.add_event(self.progress.steps, "dist_collectives", dict(self.progress.counts))
