"""The Tracer: PyTorch's global hooks plus two narrow patches, all undone by ``detach()``.

What it installs while attached:
- global module forward pre/post hooks (discover models and losses, time the forward pass, keep a
  module stack for crash reports, sample activation statistics on sampled steps);
- global optimizer step pre/post hooks (step boundaries, gradient norms, update ratios);
- ``torch.autograd.backward`` (what ``Tensor.backward`` calls): the loss, backward timing;
- ``torch.optim.Optimizer.__init__``: learn that the script has an optimizer before it first steps;
- the ``torch.nn.functional`` loss functions (which loss modules call too): the loss's input and
  target on sampled steps, validation losses (loss calls without grad).

Cost model (see benchmarks/overhead.py): every step costs one fused ``_foreach_norm`` over the
gradients, a few ``perf_counter`` calls and ONE device-to-host copy of everything the step measured,
taken in the optimizer pre-hook so that a non-finite loss can still be traced to its producer with
the weights that produced it. Activation statistics, histograms and update ratios are only computed
on sampled steps. A hook that raises is switched off, logged once and recorded as an event: it
never raises into the user's training loop.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as nn_module
from torch.optim import optimizer as optim_module

from ..config import DebuggingConfig
from ..record import RunWriter
from . import stats as S
from .losses import LOSS_FUNCTIONS, LOSS_IO_STATS, label_histogram, loss_io_stats, split_input_target
from .nonfinite import locate_nonfinite
from .registry import Registry, is_loss_module
from .resources import cuda_memory_mb, rss_mb

__all__ = ["Tracer"]

log = logging.getLogger("modeldebug")

# After this many backward passes with no optimizer step, treat each backward pass as a step.
_BACKWARDS_WITHOUT_STEP = 64


class Tracer:
    """Watches every model, loss and optimizer in this process while attached."""

    def __init__(
        self,
        writer: RunWriter,
        config: DebuggingConfig | None = None,
        *,
        models: tuple[nn.Module, ...] = (),
        optimizers: tuple[torch.optim.Optimizer, ...] = (),
        discover_models: bool = True,
    ) -> None:
        self.writer = writer
        self.config = config or DebuggingConfig()
        self.registry = Registry(writer)
        for m in models:
            self.registry.add_model(m)
        self._known_optimizers: list[weakref.ref[torch.optim.Optimizer]] = [weakref.ref(o) for o in optimizers]
        self.discover_models = discover_models
        self.step = 0
        self.pid = os.getpid()
        self.attached = False
        self._every = self.config.effective_sample_every()
        self._handles: list[Any] = []
        self._patches: list[tuple[Any, str, Any]] = []
        self._stack: list[nn.Module] = []
        self._failed_in: dict[int, str] = {}
        self._crash_phase = "other"
        self._replaying = False
        self._disabled: set[str] = set()
        self._nonfinite_seen = False
        self._backwards_since_step = 0
        self.own_time = 0.0
        self.t_start = time.perf_counter()
        self._t_last_end = self.t_start
        self._pending: list[tuple[str, int, Any, torch.Tensor]] = []
        self._in_loss = False
        self._loss_eids: dict[tuple[str, str], int] = {}
        self._input_eids: dict[str, int] = {}
        self._step_loss: float | None = None
        self._step_grad_norm: float | None = None
        self._reset_step()

    # -- lifecycle ---------------------------------------------------------------------------------
    def attach(self) -> Tracer:
        if self.attached:
            return self
        try:
            self._handles += [
                nn_module.register_module_forward_pre_hook(self._guard("forward", self._pre)),
                nn_module.register_module_forward_hook(self._guard("forward", self._post), always_call=True),
                optim_module.register_optimizer_step_pre_hook(self._guard("optimizer", self._opt_pre)),
                optim_module.register_optimizer_step_post_hook(self._guard("optimizer", self._opt_post)),
            ]
            self._patch(torch.autograd, "backward", self._make_backward(torch.autograd.backward))
            self._patch(torch.optim.Optimizer, "__init__", self._make_opt_init(torch.optim.Optimizer.__init__))
            functional = torch.nn.functional
            for name in LOSS_FUNCTIONS:
                if hasattr(functional, name):
                    self._patch(functional, name, self._make_loss(name, getattr(functional, name)))
        except BaseException:
            self.detach()
            raise
        self.attached = True
        return self

    def detach(self) -> None:
        """Remove every hook and patch; close the last step; flush the record."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)
        self._patches.clear()
        if self.attached:
            self.attached = False
            try:
                if self._step_has_work():
                    self._sync()
                    self._end_step()
                self._sync()
            except Exception as exc:  # never take the user's process down at exit
                self._fail("finish", exc)
            self.writer.set_meta(
                steps=self.step, duration_s=time.perf_counter() - self.t_start, overhead_s=self.own_time,
                models=self.registry.model_types, optimizers=self.registry.optimizer_types,
            )
            self.writer.flush()

    def _patch(self, owner: Any, name: str, replacement: Any) -> None:
        original = getattr(owner, name)
        setattr(owner, name, replacement)
        self._patches.append((owner, name, original))

    def _guard(self, probe: str, fn: Callable[..., None]) -> Callable[..., None]:
        def hook(*args: Any, **kwargs: Any) -> None:
            if self._replaying or probe in self._disabled or os.getpid() != self.pid:
                return
            t0 = time.perf_counter()
            try:
                fn(*args, **kwargs)
            except Exception as exc:
                self._fail(probe, exc)
            self.own_time += time.perf_counter() - t0

        return hook

    def _fail(self, probe: str, exc: BaseException) -> None:
        self._disabled.add(probe)
        log.warning("modeldebug: the %s probe failed and is switched off (%s: %s)", probe, type(exc).__name__, exc)
        self.writer.add_event(self.step, "internal_error", {
            "probe": probe, "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:],
        })

    # -- per-step state ------------------------------------------------------------------------------
    def _reset_step(self) -> None:
        self._losses: list[torch.Tensor] = []
        self._n_backward = 0
        self._t_fwd: float | None = None
        self._t_bwd_first: float | None = None
        self._t_bwd = 0.0
        self._t_opt_start: float | None = None
        self._t_opt = 0.0
        self._lr: float | None = None
        self._sampled_modules: set[int] = set()
        self._sampled_losses: set[tuple[str, str]] = set()
        self._replay: tuple[nn.Module, tuple[Any, ...], dict[str, Any]] | None = None
        self._before: list[tuple[torch.Tensor, int, torch.Tensor]] | None = None
        self._synced = False
        self._grad_eids: list[int] = []

    def _step_has_work(self) -> bool:
        return self._n_backward > 0 or self._t_opt_start is not None

    def _sampling(self) -> bool:
        return (self.config.monitoring.layer_outputs
                and (self.step < 3 or self.step in (5, 10, 20) or self.step % self._every == 0))

    def _optimizer_mode(self) -> bool:
        has_opt = bool(self.registry.optimizers) or any(r() is not None for r in self._known_optimizers)
        return has_opt and self._backwards_since_step < _BACKWARDS_WITHOUT_STEP

    # -- forward hooks ---------------------------------------------------------------------------------
    def _pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        root = not self._stack
        self._stack.append(module)
        if not root:
            return
        info = self.registry.modules.get(module)
        if info is None:
            if is_loss_module(module):
                self.registry.add_loss(module)
                return
            if not self.discover_models or next(module.parameters(), None) is None:
                return
            self.registry.add_model(module)
        if torch.is_grad_enabled() and module.training and not is_loss_module(module):
            if self._t_fwd is None:
                self._t_fwd = time.perf_counter()
                if self._sampling():
                    self._sample_input(module, args)
            self._replay = (module, args, {})  # global pre-hooks do not see kwargs

    def _post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if self._stack and self._stack[-1] is module:
            self._stack.pop()
        elif module in self._stack:
            del self._stack[len(self._stack) - 1 - self._stack[::-1].index(module):]
        exc = sys.exc_info()[1]
        info = self.registry.modules.get(module)
        if exc is not None and output is None:
            if info is not None:
                self._failed_in.setdefault(id(exc), info.name)
            return
        if info is None:
            return
        if is_loss_module(module):
            return  # its functional call is seen by the loss patch
        if not (info.leaf and torch.is_grad_enabled() and module.training and self._sampling()):
            return
        if id(module) in self._sampled_modules:
            return  # a module called several times per step is sampled on its first call
        t = S.first_tensor(output)
        if t is None or t.numel() == 0:
            return
        self._sampled_modules.add(id(module))
        self._pending.append(("act", self.step, info.eid, S.activation_stats(t)))
        if self.config.histograms:
            self._pending.append(("hist", self.step, info.eid, S.histogram(t, self.config.histogram_bins)))

    def _sample_input(self, root: nn.Module, args: tuple[Any, ...]) -> None:
        x = S.first_tensor(args)
        info = self.registry.modules.get(root)
        if x is None or x.numel() == 0 or info is None:
            return
        eid = self._input_eids.get(info.name)
        if eid is None:
            eid = self.writer.entity("input", info.name, type=str(x.dtype).replace("torch.", ""),
                                     info={"shape": list(x.shape)})
            self._input_eids[info.name] = eid
        self._pending.append(("input", self.step, eid, S.input_stats(x)))

    # -- loss functions --------------------------------------------------------------------------------
    def _make_loss(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        tracer = self

        def loss(*args: Any, **kwargs: Any) -> Any:
            if (not tracer.attached or tracer._in_loss or tracer._replaying or "loss" in tracer._disabled
                    or os.getpid() != tracer.pid):
                return original(*args, **kwargs)
            tracer._in_loss = True
            try:
                out = original(*args, **kwargs)
            finally:
                tracer._in_loss = False
            tracer._guard("loss", tracer._on_loss_call)(name, args, kwargs, out)
            return out

        loss.__wrapped__ = original  # type: ignore[attr-defined]
        loss.__doc__ = original.__doc__
        loss.__name__ = name
        return loss

    def _on_loss_call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        inp, tgt = split_input_target(args, kwargs)
        if not isinstance(inp, torch.Tensor) or not inp.is_floating_point():
            return
        phase = "train" if torch.is_grad_enabled() and inp.requires_grad else "val"
        key = (name, phase)
        eid = self._loss_eids.get(key)
        first = eid is None
        if eid is None:
            eid = self.writer.entity("loss", name if phase == "train" else f"{name}[val]", type=name, info={
                "phase": phase, "input_shape": list(inp.shape), "input_dtype": str(inp.dtype).replace("torch.", ""),
                "target_shape": list(tgt.shape) if isinstance(tgt, torch.Tensor) else None,
                "target_dtype": str(tgt.dtype).replace("torch.", "") if isinstance(tgt, torch.Tensor) else None,
                "kwargs": {k: v for k, v in kwargs.items() if isinstance(v, (int, float, str, bool))},
            })
            self._loss_eids[key] = eid
        if phase == "val" and isinstance(out, torch.Tensor) and out.numel() == 1:
            self._pending.append(("val_loss", self.step, eid, out.detach().reshape(1).to(torch.float64)))
        if not (first or (self._sampling() and key not in self._sampled_losses)):
            return
        self._sampled_losses.add(key)
        target = tgt if isinstance(tgt, torch.Tensor) else None
        self._pending.append(("loss_io", self.step, eid, loss_io_stats(inp, target)))
        if target is not None:
            hist = label_histogram(inp, target)
            if hist is not None:
                self._pending.append(("label_hist", self.step, eid, hist))

    # -- backward -------------------------------------------------------------------------------------
    def _make_backward(self, original: Callable[..., Any]) -> Callable[..., Any]:
        tracer = self

        def backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
            if tracer._replaying or "backward" in tracer._disabled or os.getpid() != tracer.pid:
                return original(tensors, *args, **kwargs)
            tracer._guard("backward", tracer._before_backward)(tensors)
            t0 = time.perf_counter()
            try:
                return original(tensors, *args, **kwargs)
            except BaseException:
                tracer._crash_phase = "backward"
                raise
            finally:
                tracer._t_bwd += time.perf_counter() - t0
                tracer._guard("backward", tracer._after_backward)()

        backward.__wrapped__ = original  # type: ignore[attr-defined]
        backward.__doc__ = original.__doc__
        return backward

    def _before_backward(self, tensors: Any) -> None:
        loss = tensors if isinstance(tensors, torch.Tensor) else (
            tensors[0] if isinstance(tensors, (tuple, list)) and tensors and isinstance(tensors[0], torch.Tensor)
            else None)
        now = time.perf_counter()
        if self._t_bwd_first is None:
            self._t_bwd_first = now
        if loss is not None and loss.numel() == 1 and loss.is_floating_point():
            self._losses.append(loss.detach().reshape(1).to(torch.float64))

    def _after_backward(self) -> None:
        self._n_backward += 1
        self._backwards_since_step += 1
        if not self._optimizer_mode():
            self._collect_grads()
            self._sync()
            self._end_step()

    # -- optimizer ------------------------------------------------------------------------------------
    def _make_opt_init(self, original: Callable[..., None]) -> Callable[..., None]:
        tracer = self

        def __init__(opt: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> None:
            original(opt, *args, **kwargs)
            if os.getpid() == tracer.pid and not any(r() is opt for r in tracer._known_optimizers):
                tracer._known_optimizers.append(weakref.ref(opt))

        __init__.__wrapped__ = original  # type: ignore[attr-defined]
        return __init__

    def _opt_pre(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._crash_phase = "optimizer"
        self._t_opt_start = time.perf_counter()
        self._lr = _lr_of(opt)
        if self.registry.add_optimizer(opt) and not any(r() is opt for r in self._known_optimizers):
            self._known_optimizers.append(weakref.ref(opt))
        self._collect_grads()
        if self._sampling():
            self._before = [(p, info.eid, p.detach().clone()) for p, info in self.registry.tracked_params()]
        self._sync()

    def _opt_post(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        # Every optimizer step closes a step (a GAN's two optimizers make two steps an iteration).
        self._crash_phase = "other"
        if self._t_opt_start is not None:
            self._t_opt = time.perf_counter() - self._t_opt_start
        if self._before is not None:
            self._update_ratios()
        self._end_step()

    def _update_ratios(self) -> None:
        assert self._before is not None
        ps = [p.detach() for p, _, _ in self._before]
        diffs = torch._foreach_sub(ps, [b for _, _, b in self._before])
        d = S.norms(diffs)
        w = S.norms(ps)
        eids = [eid for _, eid, _ in self._before]
        self._before = None
        if d:
            ratio = torch.stack(d).to(torch.float64) / torch.stack(w).to(torch.float64).clamp_min(1e-30)
            self._pending.append(("update_ratio", self.step, eids, ratio))
            self._pending.append(("param_norm", self.step, eids, torch.stack(w).to(torch.float64)))

    # -- measurements --------------------------------------------------------------------------------------
    def _collect_grads(self) -> None:
        if not self.config.monitoring.gradients:
            return
        grads, eids = [], []
        for p, info in self.registry.tracked_params():
            if p.grad is not None:
                grads.append(p.grad.detach())
                eids.append(info.eid)
        if grads:
            self._pending.append(("grad_norm", self.step, eids, torch.stack(S.norms(grads)).to(torch.float64)))

    def _sync(self) -> None:
        """Copy everything pending to the host at once and hand it to the record."""
        self._synced = True
        step_losses = self._losses
        self._losses = []
        entries = list(self._pending)
        self._pending.clear()
        if step_losses:  # first: a non-finite loss is traced before non-finite gradients are blamed
            entries.insert(0, ("loss", self.step, None, torch.cat(step_losses)))
        if not entries:
            return
        by_device: dict[torch.device, list[int]] = {}
        for i, e in enumerate(entries):
            by_device.setdefault(e[3].device, []).append(i)
        host: list[list[float]] = [[] for _ in entries]
        for idx in by_device.values():
            flat = torch.cat([entries[i][3].reshape(-1) for i in idx]).tolist()
            pos = 0
            for i in idx:
                n = entries[i][3].numel()
                host[i] = flat[pos:pos + n]
                pos += n
        for (kind, step, key, _), values in zip(entries, host):
            self._store(kind, step, key, values)

    def _store(self, kind: str, step: int, key: Any, values: list[float]) -> None:
        w = self.writer
        if kind == "loss":
            self._step_loss = sum(values) / len(values)
            if not self._nonfinite_seen and not all(math.isfinite(v) for v in values):
                self._on_nonfinite("loss", values)
        elif kind == "grad_norm":
            w.add_stats(step, [(eid, "grad_norm", v) for eid, v in zip(key, values)])
            self._step_grad_norm = math.sqrt(sum(v * v for v in values))
            if not self._nonfinite_seen and not math.isfinite(self._step_grad_norm):
                bad = [self._param_name(eid) for eid, v in zip(key, values) if not math.isfinite(v)]
                self._on_nonfinite("gradient", values, bad_params=bad)
        elif kind in ("update_ratio", "param_norm"):
            w.add_stats(step, [(eid, kind, v) for eid, v in zip(key, values)])
        elif kind == "act":
            w.add_stats(step, [(key, name, v) for name, v in zip(S.ACTIVATION_STATS, values)])
        elif kind == "hist":
            w.add_histogram(step, key, values[0], values[1], values[2:])
        elif kind == "val_loss":
            w.add_stats(step, [(key, "val_loss", values[0])])
        elif kind == "loss_io":
            w.add_stats(step, [(key, name, v) for name, v in zip(LOSS_IO_STATS, values)])
        elif kind == "label_hist":
            w.add_histogram(step, key, 0.0, float(len(values) - 1), values)
        elif kind == "input":
            w.add_stats(step, [(key, name, v) for name, v in zip(S.INPUT_STATS, values)])

    def _param_name(self, eid: int) -> str:
        for info in self.registry.params.values():
            if info.eid == eid:
                return info.name
        return str(eid)

    def _on_nonfinite(self, what: str, values: list[float], bad_params: list[str] | None = None) -> None:
        self._nonfinite_seen = True
        data: dict[str, Any] = {"what": what}
        if what == "loss":
            data["loss"] = [str(v) for v in values]
            if self._replay is not None:
                root, args, kwargs = self._replay
                names = {m: i.name for m, i in self.registry.modules.items()}
                self._replaying = True
                try:
                    data["origin"] = locate_nonfinite(root, args, kwargs, names).to_dict()
                except Exception as exc:  # e.g. a model called with keyword arguments
                    data["replay_error"] = f"{type(exc).__name__}: {exc}"
                finally:
                    self._replaying = False
        else:
            # Backward runs from the loss to the inputs: the producer is the LAST parameter, in
            # forward order, whose gradient is non-finite; the earlier ones only received it.
            data["params"] = bad_params or []
            if bad_params:
                last = bad_params[-1]
                module = next((i.module for i in self.registry.params.values() if i.name == last), None)
                data["origin"] = {"where": "backward", "module": module, "previous_module": None,
                                  "detail": f"gradient of {last} was the first to go non-finite"}
        self.writer.add_event(self.step, "nonfinite", data)
        self.writer.flush()

    def _end_step(self) -> None:
        if not self._step_has_work():
            return
        if not self._synced:
            self._sync()
        now = time.perf_counter()
        t_fwd = self._t_fwd if self._t_fwd is not None else self._t_last_end
        bwd_first = self._t_bwd_first if self._t_bwd_first is not None else now
        mem = self.config.monitoring.memory
        perf = self.config.monitoring.performance
        self.writer.add_step(
            self.step,
            loss=getattr(self, "_step_loss", None), lr=self._lr, n_backward=self._n_backward,
            grad_norm=getattr(self, "_step_grad_norm", None),
            t_data=max(t_fwd - self._t_last_end, 0.0) if perf else None,
            t_forward=max(bwd_first - t_fwd, 0.0) if perf else None,
            t_backward=self._t_bwd if perf else None, t_optimizer=self._t_opt if perf else None,
            t_step=now - self._t_last_end if perf else None,
            rss_mb=rss_mb() if mem else None, cuda_mb=cuda_memory_mb() if mem else None,
            sampled=self._sampling(),
        )
        self._step_loss = None
        self._step_grad_norm = None
        self._t_last_end = now
        self._backwards_since_step = 0
        self.step += 1
        self._reset_step()
        if self.step % self.config.flush_every == 0:
            self.writer.flush()

    # -- crashes -------------------------------------------------------------------------------------------
    def record_exception(self, exc: BaseException) -> None:
        """Store what a crash needs for its diagnosis: the exception, where, and in which phase."""
        module = self._failed_in.get(id(exc))
        phase = "forward" if module else self._crash_phase
        frames = traceback.extract_tb(exc.__traceback__)
        user = [f for f in frames if not _is_library_frame(f.filename)]
        where = user[-1] if user else (frames[-1] if frames else None)
        self.writer.add_event(self.step, "exception", {
            "type": type(exc).__name__, "message": str(exc)[:4000], "module": module, "phase": phase,
            "file": where.filename if where else None, "line": where.lineno if where else None,
            "code": where.line if where else None,
        })
        self.writer.flush()


def _lr_of(opt: torch.optim.Optimizer) -> float | None:
    try:
        lr = opt.param_groups[0].get("lr")
        return float(lr) if lr is not None else None
    except (TypeError, ValueError, IndexError):
        return None


def _is_library_frame(filename: str) -> bool:
    return any(part in filename for part in ("site-packages", "dist-packages", "/modeldebug/", "<frozen"))
