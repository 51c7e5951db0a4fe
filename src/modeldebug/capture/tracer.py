"""The Tracer: PyTorch's global hooks plus two narrow patches, all undone by ``detach()``.

What it installs while attached:
- global module forward pre/post hooks (discover models and losses, time the forward pass, keep a
  module stack for crash reports, sample activation statistics on sampled steps);
- global optimizer step pre/post hooks (step boundaries, gradient norms, update ratios);
- ``torch.autograd.backward`` (what ``Tensor.backward`` calls): the loss, backward timing;
- ``torch.optim.Optimizer.__init__``: learn that the script has an optimizer before it first steps;
- the ``torch.nn.functional`` loss functions (which loss modules call too): the loss's input and
  target on sampled steps, validation losses (loss calls without grad) -- see losses.py;
- ``zero_grad``, ``clip_grad_norm_`` and the data loader's ``__next__`` -- see loop.py.

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
from .buffer import StepBuffer
from .isolation import unwrap
from .loop import LoopWatch
from .losses import LOSS_IO_STATS, LossWatch
from .nonfinite import locate_nonfinite
from .probes import batch_mixing
from .progress import StepInfo
from .registry import Registry, is_loss_module
from .resources import RssReader, cuda_memory_mb

__all__ = ["Tracer", "is_library_frame"]

log = logging.getLogger("modeldebug")

# Bumped in a forked child (DataLoader workers): a tracer records only in the process that made it,
# without a getpid() system call on every hook.
_PROCESS_GENERATION = [0]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _PROCESS_GENERATION.__setitem__(0, _PROCESS_GENERATION[0] + 1))

# Modules whose behaviour depends on `training`: their flag is recorded on sampled steps.
_MODE_SENSITIVE = {"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "BatchNorm1d",
                   "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "InstanceNorm1d", "InstanceNorm2d"}

# After this many backward passes with no optimizer step, treat each backward pass as a step.
_BACKWARDS_WITHOUT_STEP = 64

# True while torch.compile traces: every hook and patch returns at once then, so nothing of ours
# enters a compiled graph (no guards on our state, no graph breaks, no recompiles).
_is_compiling = torch.compiler.is_compiling

# The tables torch.nn.modules.module._has_any_global_hook reads.
_GLOBAL_HOOK_TABLES = ("_global_backward_pre_hooks", "_global_backward_hooks", "_global_forward_pre_hooks",
                       "_global_forward_hooks", "_global_forward_hooks_always_called",
                       "_global_forward_hooks_with_kwargs")


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
        self.generation = _PROCESS_GENERATION[0]
        self.attached = False
        self._every = self.config.effective_sample_every()
        self._handles: list[Any] = []
        self._patches: list[tuple[Any, str, Any]] = []
        self._stack: list[nn.Module] = []
        self._failed_in: dict[int, str] = {}
        self._crash_phase = "other"
        self._replaying = False
        self._disabled: set[str] = set()
        self._skipped: dict[str, str] = {}  # module (or model input) -> why it is not measured
        self._own_hook_ids: frozenset[int] = frozenset()
        self._nonfinite_seen = False
        self._backwards_since_step = 0
        self.own_time = 0.0
        self.t_start = time.perf_counter()
        self._t_last_end = self.t_start
        self.buffer = StepBuffer()
        self._rss = RssReader()
        self.losses = LossWatch(self)
        self.loop = LoopWatch(self)
        self._input_eids: dict[str, int] = {}
        self._probed = False
        self._mode_counts = {"fwd_eval_mode": 0, "fwd_train_mode_nograd": 0}
        self._step_loss: float | None = None
        self._step_grad_norm: float | None = None
        self._step_extra: dict[str, float] = {}
        # called with a StepInfo at each step boundary (the live progress line of `modeldebug run`)
        self.listeners: list[Callable[[StepInfo], None]] = []
        self._sampled_step = -1
        self._sample_now = False
        self._reset_step()

    # -- lifecycle ---------------------------------------------------------------------------------
    def attach(self) -> Tracer:
        if self.attached:
            return self
        try:
            self._handles += [
                nn_module.register_module_forward_pre_hook(self._guard("forward", self._pre)),
                nn_module.register_module_forward_hook(self._guard("forward", self._post), always_call=True),
                optim_module.register_optimizer_step_pre_hook(self._opt_pre_hook),
                optim_module.register_optimizer_step_post_hook(self._guard("optimizer", self._opt_post)),
            ]
            self._own_hook_ids = frozenset(h.id for h in self._handles[:2])
            if hasattr(nn_module, "_has_any_global_hook"):
                # torch.compile(model) warns that global hooks "fire an extra time" for its wrapper;
                # ours know the wrapper (see _pre), so only the user's own global hooks warn.
                self._patch(nn_module, "_has_any_global_hook", self._foreign_global_hook)
            self._patch(torch.autograd, "backward", self._make_backward(torch.autograd.backward))
            self._patch(torch.optim.Optimizer, "__init__", self._make_opt_init(torch.optim.Optimizer.__init__))
            for owner, name, replacement in [*self.losses.patches(), *self.loop.patches()]:
                self._patch(owner, name, replacement)
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
                overlap = self.loop.overlap()
                if overlap is not None:
                    self.writer.add_event(None, "data_overlap", overlap)
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

    def active(self, probe: str) -> bool:
        """Should a patched function record anything now? (attached, this process, probe on, not replaying)"""
        return self.attached and not self._replaying and probe not in self._disabled and _PROCESS_GENERATION[0] == self.generation

    def _foreign_global_hook(self) -> bool:
        """torch's ``_has_any_global_hook``, not counting the tracer's own module hooks."""
        ours = self._own_hook_ids
        return any(k not in ours for name in _GLOBAL_HOOK_TABLES for k in getattr(nn_module, name, ()))

    def _guard(self, probe: str, fn: Callable[..., None]) -> Callable[..., None]:
        """`fn` as a hook that is quiet while replaying, switched off or compiling, and never raises."""

        def hook(*args: Any) -> None:
            if _is_compiling():
                return
            self.call(probe, fn, *args)

        return hook

    def call(self, probe: str, fn: Callable[..., None], *args: Any) -> None:
        """Run one of our own probes: off when disabled or replaying, its errors contained."""
        if self._replaying or probe in self._disabled or _PROCESS_GENERATION[0] != self.generation:
            return
        t0 = time.perf_counter()
        try:
            fn(*args)
        except Exception as exc:
            self._fail(probe, exc)
        self.own_time += time.perf_counter() - t0

    def _fail(self, probe: str, exc: BaseException) -> None:
        self._disabled.add(probe)
        log.warning("modeldebug: the %s probe failed and is switched off (%s: %s)", probe, type(exc).__name__, exc)
        self.writer.add_event(self.step, "internal_error", {
            "probe": probe, "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:],
        })

    def _skip(self, name: str, why: str) -> None:
        """Stop measuring one module (or one model's input) for the rest of the run; say so once."""
        if name in self._skipped:
            return
        self._skipped[name] = why
        log.info("modeldebug: not measuring %s: %s", name, why)
        self.writer.add_event(self.step, "module_skipped", {"module": name, "reason": why})

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
        self.losses.new_step()
        self._replay: tuple[nn.Module, tuple[Any, ...], dict[str, Any]] | None = None
        self._before: list[tuple[torch.Tensor, int, torch.Tensor]] | None = None
        self._synced = False
        self._grad_eids: list[int] = []

    def _step_has_work(self) -> bool:
        return self._n_backward > 0 or self._t_opt_start is not None

    def _sampling(self) -> bool:
        """Is this a sampled step? Decided once per step (hooks ask it on every module call)."""
        if self._sampled_step != self.step:
            self._sampled_step = self.step
            self._sample_now = bool(self.config.monitoring.layer_outputs
                                    and (self.step < 3 or self.step in (5, 10, 20) or self.step % self._every == 0))
        return self._sample_now

    def _optimizer_mode(self) -> bool:
        has_opt = bool(self.registry.optimizers) or any(r() is not None for r in self._known_optimizers)
        return has_opt and self._backwards_since_step < _BACKWARDS_WITHOUT_STEP

    # -- forward hooks ---------------------------------------------------------------------------------
    def _pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        root = not self._stack
        self._stack.append(module)
        if not root:
            return
        compiled, module = module, unwrap(module)  # torch.compile's wrapper: watch the model it compiles
        info = self.registry.modules.get(module)
        if info is None:
            if is_loss_module(module):
                self.registry.add_loss(module)
                return
            if not self.discover_models or next(module.parameters(), None) is None:
                return
            self.registry.add_model(module)
            info = self.registry.modules.get(module)
        if is_loss_module(module):
            return
        if compiled is not module and info is not None and info.name not in self._skipped:
            self._skip(info.name, "it runs under torch.compile: the activations inside the compiled code "
                                  "are not measured (losses, gradients and updates are)")
        grad = torch.is_grad_enabled()
        if grad and not module.training:
            self._mode_counts["fwd_eval_mode"] += 1
        elif not grad and module.training:
            self._mode_counts["fwd_train_mode_nograd"] += 1
        x = S.first_tensor(args)
        why = S.unmeasurable(x) if x is not None else None
        if why is not None:  # a meta or nested batch: measure the rest of the run, not this input
            self._skip(f"{info.name if info else type(module).__name__} (input)", f"the input is {why}")
            x = None
        if x is not None and (not grad or self._sampling() or self.config.analysis_level != "basic"):
            self.loop.fingerprint(x, "train" if grad else "val")
        if grad:
            if self._t_fwd is None:
                self._t_fwd = time.perf_counter()
                if self._sampling():
                    self._sample_input(module, x)
            self._replay = (module, args, {})  # global pre-hooks do not see kwargs

    def _post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if self._stack and self._stack[-1] is module:
            self._stack.pop()
        elif module in self._stack:
            del self._stack[len(self._stack) - 1 - self._stack[::-1].index(module):]
        exc = sys.exc_info()[1]
        if exc is not None and output is None:
            info = self.registry.modules.get(module)
            if info is not None:
                self._failed_in.setdefault(id(exc), info.name)
            return
        if not self._sampling():
            return  # the common case: nothing to measure on this module call
        info = self.registry.modules.get(module)
        if info is None:
            return
        if is_loss_module(module):
            return  # its functional call is seen by the loss patch
        if not (info.leaf and torch.is_grad_enabled() and self._sampling()):
            return
        if info.type in _MODE_SENSITIVE:
            self.writer.add_stats(self.step, [(info.eid, "training", float(module.training))])
        if id(module) in self._sampled_modules or info.name in self._skipped:
            return  # a module called several times per step is sampled on its first call
        t = S.first_tensor(output)
        if t is None:
            t = S.any_tensor(output)  # no floating-point tensor: say why, if it holds any tensor
            if t is None:
                return
        why = S.unmeasurable(t)
        if why is not None:  # one odd module (sparse, meta, nested, complex, integer): skip it alone
            self._skip(info.name, f"the output is {why}")
            return
        if t.numel() == 0:
            return
        self._sampled_modules.add(id(module))
        try:
            values = [("act", S.activation_stats(t))]
            if info.type in S.SATURATING:
                values.append(("sat", S.saturation(t, info.type)))
            if self.config.histograms:
                values.append(("hist", S.histogram(t, self.config.histogram_bins)))
        except Exception as exc:  # a tensor subclass the statistics cannot reduce
            self._skip(info.name, f"the statistics failed on its output ({type(exc).__name__}: {exc})")
            return
        for kind, v in values:
            self.buffer.add(kind, self.step, info.eid, v)

    def _sample_input(self, root: nn.Module, x: torch.Tensor | None) -> None:
        info = self.registry.modules.get(root)
        if x is None or x.numel() == 0 or info is None:
            return
        eid = self._input_eids.get(info.name)
        if eid is None:
            eid = self.writer.entity("input", info.name, type=str(x.dtype).replace("torch.", ""),
                                     info={"shape": list(x.shape)})
            self._input_eids[info.name] = eid
        self.buffer.add("input", self.step, eid, S.input_stats(x))

    # -- backward -------------------------------------------------------------------------------------
    def _make_backward(self, original: Callable[..., Any]) -> Callable[..., Any]:
        tracer = self

        def backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
            if (_is_compiling() or tracer._replaying or "backward" in tracer._disabled
                    or _PROCESS_GENERATION[0] != tracer.generation):
                return original(tensors, *args, **kwargs)
            tracer.call("backward", tracer._before_backward, tensors)
            t0 = time.perf_counter()
            try:
                return original(tensors, *args, **kwargs)
            except BaseException:
                tracer._crash_phase = "backward"
                raise
            finally:
                tracer._t_bwd += time.perf_counter() - t0
                tracer.call("backward", tracer._after_backward)

        backward.__wrapped__ = original  # type: ignore[attr-defined]
        backward.__doc__ = original.__doc__
        return backward

    def _before_backward(self, tensors: Any) -> None:
        if self._n_backward and self._synced and not self._optimizer_mode():
            self._end_step()  # a loop without (known) optimizer: the previous backward closed a step
        loss = tensors if isinstance(tensors, torch.Tensor) else (
            tensors[0] if isinstance(tensors, (tuple, list)) and tensors and isinstance(tensors[0], torch.Tensor)
            else None)
        now = time.perf_counter()
        if self._t_bwd_first is None:
            self._t_bwd_first = now
            if self.step and not self.loop.zero_grad_calls:  # only then can old gradients be left
                self.loop.first_backward([p for p, _ in self.registry.tracked_params()])
        if loss is not None and loss.numel() == 1 and loss.is_floating_point():
            self._losses.append(loss.detach().reshape(1).to(torch.float64))
            self.loop.saw_loss(loss)

    def _after_backward(self) -> None:
        self._n_backward += 1
        self._backwards_since_step += 1
        if not self._optimizer_mode():
            # Measure now, while the weights are still those of the forward pass; the step closes at
            # the next backward pass, or at an optimizer step that turns up (an optimizer created
            # before watching began is only seen at its first step).
            self._collect_grads()
            self.loop.before_sync()
            self._probe_once()
            self._sync()

    # -- optimizer ------------------------------------------------------------------------------------
    def _make_opt_init(self, original: Callable[..., None]) -> Callable[..., None]:
        tracer = self

        def __init__(opt: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> None:
            original(opt, *args, **kwargs)
            if _PROCESS_GENERATION[0] == tracer.generation and not any(r() is opt for r in tracer._known_optimizers):
                tracer._known_optimizers.append(weakref.ref(opt))

        __init__.__wrapped__ = original  # type: ignore[attr-defined]
        return __init__

    def _opt_pre_hook(self, opt: torch.optim.Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The global optimizer pre-hook. A step given a closure (LBFGS, Lightning's automatic
        optimisation) runs forward and backward INSIDE ``step()``: measure after the closure's first
        call (the gradients of the weights being stepped), not before it, when there is nothing yet.
        ``args`` is ``(optimizer, *step_args)``; returning new (args, kwargs) passes the wrapped closure on."""
        if _is_compiling():  # a compiled optimizer step
            return None
        closure = kwargs.get("closure")
        positional = closure is None and len(args) > 1 and callable(args[1])
        if positional:
            closure = args[1]
        if not callable(closure) or not self.active("optimizer"):
            self.call("optimizer", self._opt_pre, opt, args, kwargs)
            return None
        tracer, pending = self, [True]

        def measured_closure(*a: Any, **k: Any) -> Any:
            result = closure(*a, **k)
            if pending[0]:
                pending[0] = False
                tracer.call("optimizer", tracer._opt_pre, opt, args, kwargs)
            return result

        if positional:
            return (args[0], measured_closure, *args[2:]), kwargs
        return args, {**kwargs, "closure": measured_closure}

    def _opt_pre(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._crash_phase = "optimizer"
        self._t_opt_start = time.perf_counter()
        self._lr = _lr_of(opt)
        if self.registry.add_optimizer(opt) and not any(r() is opt for r in self._known_optimizers):
            self._known_optimizers.append(weakref.ref(opt))
        if self._sampling():
            self._before = [(p, info.eid, p.detach().clone()) for p, info in self.registry.tracked_params()]
        if self._synced:
            return  # measured at the backward pass already (optimizer unknown until this step)
        self._collect_grads()
        self.loop.before_sync()
        self._probe_once()
        self._sync()

    def _opt_post(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        # Every optimizer step closes a step (a GAN's two optimizers make two steps an iteration).
        self._crash_phase = "other"
        if self._t_opt_start is not None:
            self._t_opt = time.perf_counter() - self._t_opt_start
        if self._before is not None:
            self._update_ratios()
        self._end_step()

    def _probe_once(self) -> None:
        """The batch-mixing probe, once per run, on the first step's own batch."""
        if self._probed or self._replay is None:
            return
        self._probed = True
        root, args, _ = self._replay
        self._replaying = True
        try:
            result = batch_mixing(root, args)
        except Exception as exc:  # a model the probe cannot call like this: skip it, say why
            result = {"skipped": f"{type(exc).__name__}: {exc}"}
        finally:
            self._replaying = False
        if result is not None:
            self.writer.add_event(self.step, "batch_mixing_probe", result)

    def _update_ratios(self) -> None:
        assert self._before is not None
        ps = [p.detach() for p, _, _ in self._before]
        d = S.norms(S.differences(ps, [b for _, _, b in self._before]))
        w = S.norms(ps)
        eids = [eid for _, eid, _ in self._before]
        self._before = None
        if d:
            ratio = torch.stack(d).to(torch.float64) / torch.stack(w).to(torch.float64).clamp_min(1e-30)
            self.buffer.add("update_ratio", self.step, eids, ratio)
            self.buffer.add("param_norm", self.step, eids, torch.stack(w))

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
            self.buffer.add("grad_norm", self.step, eids, S.stacked_norms(grads))

    def _sync(self) -> None:
        """Copy everything the step measured to the host at once and hand it to the record."""
        self._synced = True
        losses, self._losses = self._losses, []
        # The loss first: a non-finite loss is traced before non-finite gradients are blamed.
        first = ("loss", self.step, None, torch.cat(losses)) if losses else None
        for kind, step, key, values in self.buffer.drain(first):
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
        elif kind == "sat":
            w.add_stats(step, [(key, "saturated_frac", values[0])])
        elif kind == "carried_grad":
            self._step_extra["carried_grad_norm"] = values[0]
        elif kind == "clip":
            self._step_extra["clip_norm"], self._step_extra["clip_max"] = values
        elif kind in ("fp_train", "fp_val"):
            self.loop.add_fingerprints(kind[3:], key, values)

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
        # What the optimizer post-hook measured (update ratios) rides on the next step's copy.
        now = time.perf_counter()
        t_fwd = self._t_fwd if self._t_fwd is not None else self._t_last_end
        bwd_first = self._t_bwd_first if self._t_bwd_first is not None else now
        mem = self.config.monitoring.memory
        perf = self.config.monitoring.performance
        loss, grad_norm = self._step_loss, self._step_grad_norm
        t_step = now - self._t_last_end if perf else None
        rss_mb = self._rss.read() if mem else None
        self.writer.add_step(
            self.step,
            loss=loss, lr=self._lr, n_backward=self._n_backward, grad_norm=grad_norm,
            t_data=max(t_fwd - self._t_last_end, 0.0) if perf else None,
            t_forward=max(bwd_first - t_fwd, 0.0) if perf else None,
            t_backward=self._t_bwd if perf else None, t_optimizer=self._t_opt if perf else None,
            t_step=t_step, rss_mb=rss_mb, cuda_mb=cuda_memory_mb() if mem else None,
            sampled=self._sampling(), **self._step_extra, **self.loop.end_step(), **self._mode_counts,
        )
        if self.listeners:  # host numbers only: a listener never causes a device sync
            info = StepInfo(self.step, loss, grad_norm, t_step, rss_mb, self._lr)
            for listener in self.listeners:
                self.call("listener", listener, info)
        self._mode_counts = dict.fromkeys(self._mode_counts, 0)
        self._step_loss = None
        self._step_grad_norm = None
        self._step_extra = {}
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
        user = [f for f in frames if not is_library_frame(f.filename)]
        # No user frame (an nn.Sequential fails inside torch): name the module, not torch's own file.
        where = user[-1] if user else None
        self.writer.add_event(self.step, "exception", {
            "type": type(exc).__name__, "message": str(exc)[:4000], "module": module, "phase": phase,
            "file": where.filename if where else None, "line": where.lineno if where else None,
            "code": where.line if where else None, "torch_frame": _torch_in_traceback(exc),
        })
        self.writer.flush()


def _lr_of(opt: torch.optim.Optimizer) -> float | None:
    try:
        lr = opt.param_groups[0].get("lr")
        return float(lr) if lr is not None else None
    except (TypeError, ValueError, IndexError):
        return None


_TORCH_DIR = os.path.join(os.path.dirname(torch.__file__), "")


def _torch_in_traceback(exc: BaseException) -> bool:
    """Did PyTorch's own Python code take part (in this exception or the ones it was raised from)?"""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if any(f.filename.startswith(_TORCH_DIR) for f in traceback.extract_tb(e.__traceback__)):
            return True
        e = e.__cause__ or e.__context__
    return False


def is_library_frame(filename: str) -> bool:
    """Frames of installed packages and of modeldebug itself; our demo scripts count as user code."""
    if "/modeldebug/demos/" in filename:
        return False
    return any(part in filename for part in ("site-packages", "dist-packages", "/modeldebug/", "<frozen"))
