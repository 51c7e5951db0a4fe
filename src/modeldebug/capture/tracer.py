"""The Tracer: one watching session's hook bodies, wiring the collectors to PyTorch's events.

It listens (through `patches.PATCHES`, which installs every hook and patch once for all sessions)
to module forward passes, optimizer steps, ``torch.autograd.backward`` (what ``Tensor.backward``
calls), ``Optimizer.__init__``, and, through `LossWatch` and `LoopWatch`, the functional losses,
``zero_grad``, ``clip_grad_norm_`` and the data loader. What it measures follows the `Plan` (the
measures the selected rules require); when it takes per-layer detail follows the `Sampler`; the
`StepAssembler` turns each step into one record row.

Cost model (benchmarks/overhead.py, benchmarks/step_calls.py, docs/overhead.md): every step costs
one fused ``_foreach_norm`` over the gradients, a few ``perf_counter`` calls, about 40 Python frames
of ours (they run cold after the step's kernels: ~1 µs each, so the hooks inline what they can) and
ONE device-to-host copy of everything the step measured, taken in the optimizer pre-hook so that a
non-finite loss can still be traced to its producer with the weights that produced it. On CUDA an
unsampled step's copy is asynchronous and read a few steps later (assembler.py, deferred.py): a
non-finite value found then is recorded at its own step, and every later step is synchronous.
Module calls reach the tracer on sampled steps only (global hooks make PyTorch's every module call
slower); the other steps see each model's forward pass through one pre-hook on the model
(roots.py), and a crash is placed from its traceback. A hook that raises is switched off, logged
once and recorded as an event: it never raises into the user's training loop.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .. import measures as M
from ..config import DebuggingConfig
from ..errors import BadInputError
from ..record import RunWriter
from . import stats as S
from .activations import ForwardCollector
from .amp import AmpWatch
from .assembler import StepAssembler
from .buffer import StepBuffer
from .bundle import BundleWatch
from .crash import exception_event, is_library_frame
from .custom_backward import CustomBackwardProbe
from .distributions import DistributionWatch
from .dropouts import EvalDropoutProbe
from .gaps import GapProfiler
from .gradients import GradientCollector
from .graphs import adjacency_of, describe_adjacency
from .isolation import unwrap
from .layout import LayoutProbe, PaddingProbe
from .loop import LoopWatch
from .losses import LossWatch
from .nonfinite import NonfiniteWatch
from .patches import PATCHES, Probe
from .plan import Plan, plan_for
from .probes import MixingProbe
from .progress import StepInfo
from .registry import Registry, is_loss_module
from .roots import (
    RootHooks,
    module_in_traceback,
    save_probe,
    script_probe,
    uses_compile,
)
from .sampler import Sampler
from .unregistered import UnregisteredWatch
from .updates import UpdateCollector

__all__ = ["Tracer", "is_library_frame"]

log = logging.getLogger("modeldebug")

# Bumped in a forked child (DataLoader workers): a tracer records only in the process that made it,
# without a getpid() system call on every hook.
_PROCESS_GENERATION = [0]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _PROCESS_GENERATION.__setitem__(0, _PROCESS_GENERATION[0] + 1))

# After this many backward passes with no optimizer step, treat each backward pass as a step.
_BACKWARDS_WITHOUT_STEP = 64
#: The most steps a sample is extended by, so that every optimizer of the run steps in it (`_covered`).
_COVER_STEPS = 16


_NOGRAD_TRAIN_PASSES = 8  # no-grad passes in train mode described by an event (the rest are only counted)
_VAL_INPUTS = 3  # evaluation passes whose input is summarised (`_val_input`)
_VAL_TRIES = 50  # passes looked at for them (a policy's action choices, a sampler: never followed by a loss)
_is_tracing = torch._C._is_tracing  # torch.jit.trace running (torch.jit.is_tracing, less its scripting check)
_CONVS = (nn.Conv1d, nn.Conv2d)  # (exact types: a subclass with its own layout is not judged)
_CALL_IMPL = nn.Module._call_impl.__code__  # a module call's frame (its `self` is the module)


def _in_checkpoint() -> bool:
    """Is a `torch.utils.checkpoint` function on the stack? Its reentrant form runs the checkpointed block
    with autograd off (and again in backward, for the inputs that require grad)."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.replace("\\", "/").endswith("torch/utils/checkpoint.py"):
            return True
        frame = frame.f_back
    return False


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
        plan: Plan | None = None,
    ) -> None:
        self.writer = writer
        self.config = config or DebuggingConfig()
        self.plan = plan or plan_for(self.config)
        self.sampler = Sampler(self.config)
        self.registry = Registry(writer)
        self.registry.on_model_gone = self._model_gone
        self._known_optimizers: list[weakref.ref[torch.optim.Optimizer]] = [weakref.ref(o) for o in optimizers]
        self.discover_models = discover_models
        self.generation = _PROCESS_GENERATION[0]
        self.attached = False
        self.own_time = 0.0
        self.replay: tuple[nn.Module, tuple[Any, ...], dict[str, Any]] | None = None
        self.replaying = False
        self.skipped: dict[str, str] = {}  # module (or model input) -> why it is not measured
        self._stack: list[nn.Module] = []
        self._crash_phase = "other"
        self._disabled: set[str] = set()
        self._nograd_train_seen = 0  # no-grad passes in train mode described so far (`_nograd_train_pass`)
        self._root_grad = False  # was autograd on at the outermost module call under way (sampled steps)
        self._val_inputs = 0  # evaluation inputs summarised so far (`_val_input`)
        self.pending_val: tuple[str, torch.Tensor] | None = None  # an evaluation input waiting for its loss (losses.py)
        self._val_tries = 0  # passes that could have been evaluations (`_VAL_TRIES` at most: then it stops looking)
        self._val_input_on = M.VAL_INPUT in self.plan
        self._nograd_inside: set[str] = set()  # layers seen called under no_grad inside a training pass
        self._nograd_checked: set[str] = set()  # layers seen under no_grad after a training pass, outside a checkpoint
        self.custom = CustomBackwardProbe(self)
        self._backwards_since_step = 0
        # the optimizers that stepped in this run of consecutive sampled steps, and its length (`_covered`)
        self._sample_stepped: set[int] = set()
        self._sample_run = 0
        self._stepped_at: dict[int, int] = {}  # the last step each optimizer took, by id
        self._optimizers_of: dict[tuple[int, int], frozenset[int]] = {}  # (model id, registry version) -> optimizer ids
        self._graphs_seen: set[str] = set()  # models whose inputs were searched for a graph's adjacency
        self.assembler = StepAssembler(self)
        self.forward = ForwardCollector(self)
        self.gradients = GradientCollector(self)
        self.updates = UpdateCollector(self)
        self.gaps = GapProfiler(self)
        self.losses = LossWatch(self)
        self.loop = LoopWatch(self)
        self.nonfinite = NonfiniteWatch(self)
        self.mixing = MixingProbe(self)
        self.eval_dropout = EvalDropoutProbe(self)  # once, at the first evaluation pass
        self.amp = AmpWatch(self)  # a GradScaler's scaled loss and gradients, recorded unscaled
        self.distributions = DistributionWatch(self)  # Categorical(logits=probabilities)
        self.layout = LayoutProbe(self)  # the first convolution's input: channels-last data reshaped?
        self.padding = PaddingProbe(self)  # an embedding's padding_idx on real ids?
        self.unregistered = UnregisteredWatch(self)  # layers used in forward() that the model does not own
        self.bundle = BundleWatch.arm(self)  # repro bundle of the first failing step (bundle.py), or None
        # the hooks PATCHES calls on every module call: partials, one Python frame less than methods
        self.forward_pre = functools.partial(self.call, "forward", self._pre)
        self.forward_post = functools.partial(self.call, "forward", self._post)
        # Module calls reach us on sampled steps only (and while no model is known yet); the other
        # steps see each model's forward pass through one pre-hook on it (roots.py).
        self.roots = RootHooks(self._root_pre)
        self._module_hooks = True
        self._pinned = False  # a model with compiled parts: module hooks stay on (dynamo guards on them)
        self._module_outputs = self.plan.any((*M.ACTIVATION_STATS, M.SATURATED_FRAC, M.TRAINING_FLAG,
                                              M.ACTIVATION_HISTOGRAM, M.UNREGISTERED_MODULE))
        self._sampled_at, self._sample_now = -1, False
        # (the module called, the registry's version, the model, its info): weak, a deleted model is let go
        self._known_root: tuple[weakref.ref[nn.Module], int, weakref.ref[nn.Module], Any] | None = None
        for m in models:
            self.registry.add_model(m)
        self._resize()
        self.sampled()  # step 0's decision (the hooks read `_sample_now`)

    @property
    def step(self) -> int:
        return self.assembler.step

    @property
    def buffer(self) -> StepBuffer:
        return self.assembler.buffer

    @property
    def listeners(self) -> list[Callable[[StepInfo], None]]:
        return self.assembler.listeners

    # -- lifecycle ---------------------------------------------------------------------------------
    def attach(self) -> Tracer:
        if not self.attached:
            probes = {"backward": Probe(self._backward_before, self._backward_after),
                      "optimizer_init": Probe(None, self._optimizer_created), "jit_script": script_probe(),
                      "torch_save": save_probe(), "load_state_dict": Probe(None, self._weights_loaded),
                      **self.losses.probes(), **self.loop.probes(), **self.amp.probes(),
                      **self.distributions.probes()}
            if self.bundle is not None:
                probes = self.bundle.probes(probes)
            self._module_hooks = self._wants_module_hooks()
            PATCHES.attach(self, probes, module_hooks=self._module_hooks)  # all or nothing
            self.attached = True
        return self

    def detach(self) -> None:
        """Remove every hook and patch of this session; close the last step; flush the record."""
        PATCHES.detach(self)
        self.roots.remove_all()
        self.updates.release()  # the weight copies kept between sampled steps (CPU, at most 64 MiB)
        try:
            self.gaps.finish()  # the stack sampler's thread (if it runs): stopped, its profile recorded
        except Exception as exc:  # noqa: BLE001 - never take the user's process down at exit
            self._fail("gaps", exc)
        if not self.attached:
            return
        self.attached = False
        a = self.assembler
        try:
            if a.has_work():
                a.sync()
                self._end_step()
            a.sync()
            self.call("unregistered", self.unregistered.end_step, self.step)
            self.loop.describe_schedulers()
            self.amp.finish()
            overlap = self.loop.overlap()
            if overlap is not None:
                self.writer.add_event(None, M.DATA_OVERLAP.name, overlap)
        except Exception as exc:  # never take the user's process down at exit
            self._fail("finish", exc)
        self.writer.set_meta(
            steps=self.step, duration_s=time.perf_counter() - a.t_start, overhead_s=self.own_time,
            models=self.registry.model_types, optimizers=self.registry.optimizer_types,
        )
        self.writer.flush()

    def _nograd_train_pass(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        """A forward pass without gradients in train mode (validation without `model.eval()`, or a pass that
        recomputes BatchNorm statistics on purpose): its batch size, for the first few (LOP002 tells them apart)."""
        self._nograd_train_seen += 1
        x = S.first_tensor(args)
        info = self.registry.modules.get(module)
        self.writer.add_event(self.step, M.NOGRAD_TRAIN_PASS.name, {
            "model": info.name if info is not None else type(module).__name__,
            "batch": int(x.shape[0]) if x is not None and x.dim() else None})

    def _model_gone(self) -> None:
        """A watched model or optimizer was collected: what holds its parameters (and so their gradients)
        lets go now."""
        self.gradients.release()
        self.updates.release()

    def active(self, probe: str) -> bool:
        """Should a patched function record anything now? (attached, this process, probe on, not replaying)"""
        return self.attached and not self.replaying and probe not in self._disabled and _PROCESS_GENERATION[0] == self.generation

    def call(self, probe: str, fn: Callable[..., None], *args: Any) -> None:
        """Run one of our own probes: off when disabled or replaying, its errors contained."""
        if self.replaying or probe in self._disabled or _PROCESS_GENERATION[0] != self.generation:
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
        self.writer.add_event(self.step, M.INTERNAL_ERROR.name, {
            "probe": probe, "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:],
        })

    def skip(self, name: str, why: str) -> None:
        """Stop measuring one module (or one model's input) for the rest of the run; say so once."""
        if name in self.skipped:
            return
        self.skipped[name] = why
        log.info("modeldebug: not measuring %s: %s", name, why)
        self.writer.add_event(self.step, M.MODULE_SKIPPED.name, {"module": name, "reason": why})

    # -- sampling ------------------------------------------------------------------------------------
    def sampled(self) -> bool:
        """Is this a sampled step (per-layer detail)? Decided once per step, at the step boundary
        (`_end_step`), so the hot hooks read `_sample_now` directly."""
        step = self.assembler.step
        if step != self._sampled_at:
            self._sampled_at, self._sample_now = step, self.sampler.sampled(step)
        return self._sample_now

    def _wants_module_hooks(self) -> bool:
        """Every module call is needed on a sampled step (its outputs), and while no model is known."""
        return self._pinned or (self._module_outputs and self._sample_now) or (
            self.discover_models and not self.registry.models)

    def _switch_module_hooks(self) -> None:
        """At a step boundary: module calls on (a sampled step) or off (the root hooks suffice)."""
        on = self._wants_module_hooks()
        if on != self._module_hooks and self.attached:
            self._stack.clear()
            self._module_hooks = on
            PATCHES.module_hooks(self, on)

    def _resize(self) -> None:
        """Tell the sampler how large one sample of the watched models is (after a model or optimizer)."""
        reg = self.registry
        leaves = [(i.type, i.params > 0) for i in reg.modules.values() if i.leaf and i.root is not None]
        self.sampler.sized(self.plan.rows_per_sample(leaves, len(reg.tracked_params()), len(reg.models)))

    def _refresh(self) -> None:
        if self.registry.refresh():
            self._resize()

    def _optimizer_mode(self) -> bool:
        has_opt = bool(self.registry.optimizers) or any(r() is not None for r in self._known_optimizers)
        return has_opt and self._backwards_since_step < _BACKWARDS_WITHOUT_STEP

    # -- forward hooks (PATCHES calls `forward_pre` and `forward_post`, bound in __init__) ------------------
    def _pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        root = not self._stack
        self._stack.append(module)
        if root:
            self._root_grad = torch.is_grad_enabled()
            self._root(module, args)

    def _root_pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        """A watched model's own pre-hook: the root of a forward pass when module calls are off.

        Like every hook that runs on every step (this one, the backward and the optimizer hooks), it
        inlines `call`'s checks and error containment: one Python frame less each."""
        if self._module_hooks or self.replaying or "forward" in self._disabled \
                or _PROCESS_GENERATION[0] != self.generation:
            return
        t0 = time.perf_counter()
        try:
            self._root(module, args)
        except Exception as exc:
            self._fail("forward", exc)
        self.own_time += time.perf_counter() - t0

    @staticmethod
    def _inside_training_model(module: nn.Module) -> bool:
        """Is `module` (in eval mode, with autograd on) being called inside the forward pass of another
        module that is in train mode? A pretrained encoder frozen in eval mode inside the classifier
        being trained: its call is part of the classifier's training pass, not an evaluation. Read
        from the call stack (only eval-mode calls with autograd on ask: the rare path)."""
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code is _CALL_IMPL:
                outer = frame.f_locals.get("self")
                if outer is not module and isinstance(outer, nn.Module) and outer.training:
                    return True
            frame = frame.f_back
        return False

    def _trained_now(self, module: nn.Module) -> bool:
        """Is `module` a model being trained at this point of the run: does an optimizer that stepped
        in the last two steps hold one of its parameters? A pass without gradients of such a model
        evaluates it; one of any other model (a distillation teacher, a DQN target network, a frozen
        feature extractor, a model before its optimizer's first step) is inference the training
        uses, and its inputs are not validation samples. (Runs only for passes without gradients.)"""
        key = (id(module), self.registry.version)
        held = self._optimizers_of.get(key)
        if held is None:
            mine = {id(p) for p in module.parameters()}
            held = self._optimizers_of[key] = frozenset(
                o for o, params in self.registry.param_ids.items() if not mine.isdisjoint(params))
        step = self.assembler.step
        return any(self._stepped_at.get(o, -3) >= step - 2 for o in held)

    def _root(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        """The start of a forward pass of a model (the outermost module call)."""
        known = self._known_root  # the same model as last time, nothing added since: what was found then
        if known is not None and known[0]() is module and known[1] == self.registry.version:
            module, info = known[2](), known[3]  # alive: `called` holds it
        else:
            found = self._find_root(module)
            if found is None:
                if not torch.is_grad_enabled() and self.assembler.t_fwd is None and self._infers(module):
                    self.assembler.t_infer = self.assembler.t_infer or time.perf_counter()
                return
            module, info = found
        grad = torch.is_grad_enabled()
        sampled = self.sampled()
        if (sampled or not grad) and _is_tracing():
            # torch.jit.trace (a TorchScript or ONNX export): what we would compute on its inputs goes
            # into the user's trace (and its numbers are traced tensors); an unsampled training pass
            # takes nothing from them
            return
        a = self.assembler
        evaluating = False
        if not (grad and not module.training):
            self.forward.count_mode(module, grad)
        elif not self._inside_training_model(module):  # (the rare path: eval mode with autograd on)
            # (a frozen part in eval mode inside a model that trains is part of its pass: not counted)
            self.forward.count_mode(module, grad)
            # An evaluation written without torch.no_grad() (tutorials often do), not a training pass,
            # while the model was trained in train mode so far (`trains` 1) and the step's training
            # pass has not begun: timed as inference in the gap (with what runs beside it: a plot, a
            # log), its batch fingerprinted as validation. A backward pass before any other forward
            # pass makes it training after all (`model.eval()` never undone after a validation):
            # `_promote_eval`.
            # (a model frozen since, requires_grad off: a feature extractor for the next stage, not evaluated)
            evaluating = info is not None and info.trains == 1 and a.t_fwd is None \
                and any(p.requires_grad for p in module.parameters())
            if evaluating and a.t_eval is None:
                a.t_eval, a.eval_model = time.perf_counter(), info
        if (not grad or evaluating) and not self.eval_dropout.done and not module.training and args:
            self.eval_dropout.once(module, args)
        if not grad and module.training and self._nograd_train_seen < _NOGRAD_TRAIN_PASSES:
            self._nograd_train_pass(module, args)
        training = grad and not evaluating
        first = training and a.t_fwd is None
        x = None
        # training batches are fingerprinted on sampled steps (at every level: one projection a step
        # would cost ~2% of a small model's step), evaluation batches always
        if (first and sampled) or (self.loop.fingerprints_on and (not training or sampled)):
            x = S.first_tensor(args)  # the input is read only when something is taken from it
            why = S.unmeasurable(x) if x is not None else None
            if why is not None:  # a meta or nested batch: measure the rest of the run, not this input
                self.skip(f"{info.name if info else type(module).__name__} (input)", f"the input is {why}")
                x = None
            # (an eval-mode pass with autograd on before the model was seen training in train mode, an
            # evaluation before the first step or a model trained in eval mode, is neither for sure)
            unsure = training and not module.training and (info is None or info.trains != 2)
            if x is not None and self.loop.fingerprints_on and not unsure and (training or self._trained_now(module)):
                self.loop.fingerprint(x, "train" if training else "val")
        if not training:
            if self._val_inputs < _VAL_INPUTS and self._val_tries < _VAL_TRIES and info is not None \
                    and self._val_input_on and self.pending_val is None and (evaluating or self._trained_now(module)):
                self._val_input(info.name, x if x is not None else S.first_tensor(args))
            if a.t_fwd is None and a.t_infer is None:  # a pass in the gap: not the user's data loading
                a.t_infer = time.perf_counter()
            return
        if info is not None and not info.trains and module.training:
            info.trains = 1
        if first:
            self.pending_val = None  # an evaluation input no loss was computed on: not kept
            a.t_fwd = time.perf_counter()
            if self.gaps.running:
                self.gaps.close()
            if sampled:
                self.forward.model_input(module, info, x, sum(isinstance(v, torch.Tensor) and v is not x for v in args))
                if x is not None and len(args) > 1 and info is not None and info.name not in self._graphs_seen:
                    self.call("graph", self._graph, info.name, x, args)
        self.replay = (module, args, {})  # global pre-hooks do not see kwargs
        if self.bundle is not None:
            self.bundle.forward_started()

    def _promote_eval(self) -> None:
        """A backward pass with no training forward pass before it, after an eval-mode pass taken for an
        evaluation (`_root`): that pass was the step's forward pass, and the model's passes in eval
        mode count as training from then on."""
        a = self.assembler
        a.eval_model.trains = 2
        a.t_fwd = a.t_eval
        if a.t_infer is not None and a.t_infer >= a.t_eval:
            a.t_infer = None  # (an earlier pass without gradients, a teacher's, stays inference)
        if self.gaps.running:
            self.gaps.close()

    def _infers(self, called: nn.Module) -> bool:
        """A model this session does not watch (`watch(student)` does not discover others), called
        without gradients between steps: a distillation teacher, a target network. Its passes are
        timed as inference (`t_inference`), so it gets a root hook of its own: True if it is such a model."""
        module = unwrap(called)
        if self.discover_models or is_loss_module(module) or next(module.parameters(), None) is None:
            return False
        self.roots.add(called)  # (once: `add` keeps one hook per module)
        return True

    def _graph(self, model: str, x: torch.Tensor, args: tuple[Any, ...]) -> None:
        """Once per model: a graph's adjacency passed beside the node features (capture/graphs.py)."""
        self._graphs_seen.add(model)
        found = adjacency_of(x, args)
        if found is None:
            return
        described = describe_adjacency(found[1])
        if described is not None:
            self.writer.add_event(self.step, M.GRAPH_ADJACENCY.name, {"model": model, "argument": found[0], **described})

    def _find_root(self, called: nn.Module) -> tuple[nn.Module, Any] | None:
        """(the model a root call runs, its info), registered now if new; None for a loss module or a
        module without parameters. Remembered (`_known_root`) until the registry changes."""
        module = unwrap(called)  # torch.compile's wrapper: watch the model it compiles
        info = self.registry.modules.get(module)
        if info is None:
            if is_loss_module(module):
                self.registry.add_loss(module)
                return None
            if not self.discover_models or next(module.parameters(), None) is None:
                return None
            self.registry.add_model(module)
            self._resize()
            info = self.registry.modules.get(module)
        if is_loss_module(module):
            return None
        if called not in self.roots and info is not None and info.root is module:
            self.roots.add(called)
            self._pinned = self._pinned or uses_compile(called)
        if called is not module and info is not None and info.name not in self.skipped:
            self.skip(info.name, "it runs under torch.compile: the activations inside the compiled code "
                                 "are not measured (losses, gradients and updates are)")
        if info is not None and called in self.roots:
            self._known_root = (weakref.ref(called), self.registry.version, weakref.ref(module), info)
        return module, info

    def _post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        stack = self._stack
        if stack and stack[-1] is module:
            stack.pop()
        elif module in stack:
            del stack[len(stack) - 1 - stack[::-1].index(module):]
        if output is None or not self.sampled():
            return  # the common case: nothing to measure on this module call
        info = self.registry.modules.get(module)
        if info is None:  # not a watched model's: a layer it uses without owning it? (unregistered.py)
            if stack and self.unregistered.on:
                try:
                    self.unregistered.called(module, stack[-1])
                except Exception as exc:  # noqa: BLE001 - only this check is switched off, not the forward hooks
                    self.unregistered.on = False
                    self._fail("unregistered", exc)
            return
        if not info.leaf or is_loss_module(module):
            return  # a loss module's functional call is seen by the loss patch
        if not torch.is_grad_enabled():
            if info.params and info.name not in self._nograd_inside:
                if self._root_grad and stack:  # a no_grad block inside a training pass (or a checkpoint in it)
                    self._nograd_in_forward(info.name, _in_checkpoint())
                elif self.assembler.t_fwd is not None and info.name not in self._nograd_checked:
                    # the step's training pass began: a reentrant checkpoint called at the top of it?
                    if _in_checkpoint():
                        self._nograd_in_forward(info.name, True)
                    else:
                        self._nograd_checked.add(info.name)
            return
        if self.layout.on and module.__class__ in _CONVS:
            if id(module) not in self.layout.done:
                self.call("layout", self.layout.called, module, info, args)
        elif self.padding.on and module.__class__ is nn.Embedding and id(module) not in self.padding.done:
            self.call("padding", self.padding.called, module, info, args)
        self.forward.output(module, info, output)

    def _val_input(self, model: str, x: torch.Tensor | None) -> None:
        """The input of one of a trained model's first evaluation passes, summarised as its training input is
        (mean, std, min, max): DAT001 compares the two (validation data prepared unlike the training data).
        Kept only if a loss is computed on the pass before the next training pass (`val_loss_seen`): an
        evaluation scores its outputs; sampling from a generative model or choosing a policy's action
        (inputs of another scale by design) does not. Batches of at least 8 samples."""
        self._val_tries += 1
        if x is None or x.dim() == 0 or x.shape[0] < 8 or S.unmeasurable(x) is not None:
            return
        self.pending_val = (model, x)  # measured only if a loss follows

    def val_loss_seen(self) -> None:
        """A loss computed in an evaluation (losses.py): the evaluation input held by `_val_input` is kept."""
        pending, self.pending_val = self.pending_val, None
        if pending is None:
            return
        model, x = pending
        self._val_inputs += 1
        step, writer, shape = self.step, self.writer, list(x.shape)
        values = S.input_values(x)[:4]  # mean, std, min, max

        def sink(v: list[float]) -> None:
            writer.add_event(step, M.VAL_INPUT.name, {"model": model, "shape": shape, "mean": v[0], "std": v[1],
                                                      "min": v[2], "max": v[3]})

        if type(values) is list:
            self.buffer.add_host(values, sink)
        else:
            self.buffer.add(values, sink)

    def _nograd_in_forward(self, name: str, checkpoint: bool) -> None:
        """A layer with parameters called with autograd off inside a training pass (`with torch.no_grad():`
        around part of forward(), or a reentrant `torch.utils.checkpoint`): recorded once, for OPT001 to say
        why its parameters get no gradient."""
        self._nograd_inside.add(name)
        if M.NOGRAD_IN_FORWARD in self.plan:
            self.writer.add_event(self.step, M.NOGRAD_IN_FORWARD.name, {"module": name, "checkpoint": checkpoint})

    # -- backward (a probe on torch.autograd.backward) -----------------------------------------------------
    # (`call`'s checks and error containment inlined, and the bodies too: these run on every backward
    # pass, where each Python frame costs ~1 µs)
    def _backward_before(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> float | None:
        if self.replaying or "backward" in self._disabled or _PROCESS_GENERATION[0] != self.generation:
            return None
        t0 = time.perf_counter()
        try:
            tensors = args[0] if args else kwargs.get("tensors")
            a = self.assembler
            if a.n_backward and a.synced and not self._optimizer_mode():
                self._end_step()  # a loop without (known) optimizer: the previous backward closed a step
            loss = tensors if isinstance(tensors, torch.Tensor) else (
                tensors[0] if isinstance(tensors, (tuple, list)) and tensors and isinstance(tensors[0], torch.Tensor)
                else None)
            if a.t_bwd_first is None:
                if a.t_fwd is None and a.t_eval is not None:
                    self._promote_eval()
                a.t_bwd_first = time.perf_counter()
                if a.step and not self.loop.zero_grad_calls:  # only then can old gradients be left
                    self.loop.first_backward([p for p, _ in self.registry.tracked_params()])
            if self._sample_now and self.custom.pending and loss is not None and loss.grad_fn is not None:
                self.call("custom_backward", self.custom.look, loss)  # (first sampled steps: custom Functions)
            if loss is not None and loss.numel() == 1 and loss.is_floating_point():
                held = loss
                if self.amp._scaled is not None:  # a GradScaler scaled a loss: is this its output?
                    unscaled = self.amp.unscaled_loss(loss)  # then record the user's loss instead
                    if unscaled is not None:
                        loss, held = unscaled
                a.losses.append(loss.detach())
                self.loop.recent_losses.append(weakref.ref(held))  # for LoopWatch's live-loss count
        except Exception as exc:
            self._fail("backward", exc)
        t1 = time.perf_counter()
        self.own_time += t1 - t0
        return t1

    def _backward_after(self, t0: float | None, args: Any, kwargs: Any, result: Any, exc: BaseException | None) -> None:
        if t0 is None or "backward" in self._disabled:
            return
        t1 = time.perf_counter()
        self.assembler.t_bwd += t1 - t0
        if exc is not None:
            self._crash_phase = "backward"
        try:
            self.assembler.n_backward += 1
            self._backwards_since_step += 1
            loop = self.loop
            loop.cleared = None  # gradients refilled after any zero_grad
            if loop.pending_clip is not None:  # clipped after the last step: those gradients were never used
                loop.late_clip()
            if not self._optimizer_mode():
                # Measure now, while the weights are still those of the forward pass; the step closes at
                # the next backward pass, or at an optimizer step that turns up (an optimizer created
                # before watching began is only seen at its first step).
                self._measure()
        except Exception as err:
            self._fail("backward", err)
        self.own_time += time.perf_counter() - t1

    # -- optimizer ------------------------------------------------------------------------------------
    def _optimizer_created(self, token: Any, args: tuple[Any, ...], kwargs: Any, result: Any,
                           exc: BaseException | None) -> None:
        opt = args[0] if args else None
        if exc is None and opt is not None and _PROCESS_GENERATION[0] == self.generation \
                and not any(r() is opt for r in self._known_optimizers):
            self._known_optimizers.append(weakref.ref(opt))

    def _weights_loaded(self, token: Any, args: tuple[Any, ...], kwargs: Any, result: Any,
                        exc: BaseException | None) -> None:
        """A watched model's ``load_state_dict`` after training started: a checkpoint restored (the best
        validation pass's weights, kept by early stopping), recorded as `weights_loaded`."""
        module = args[0] if args else None
        if exc is not None or self.assembler.step == 0 or _PROCESS_GENERATION[0] != self.generation \
                or not isinstance(module, nn.Module):
            return
        info = self.registry.modules.get(module)
        if info is not None and info.root is module:
            self.writer.add_event(self.step, M.WEIGHTS_LOADED.name, {"model": info.name})

    def optimizer_pre(self, opt: torch.optim.Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The global optimizer pre-hook. A step given a closure (LBFGS, Lightning's automatic
        optimisation) runs forward and backward INSIDE ``step()``: measure after the closure's first
        call (the gradients of the weights being stepped), not before it, when there is nothing yet.
        ``args`` is ``(optimizer, *step_args)``; returning new (args, kwargs) passes the wrapped closure on."""
        closure = kwargs.get("closure")
        positional = closure is None and len(args) > 1 and callable(args[1])
        if positional:
            closure = args[1]
        if not callable(closure) or not self.active("optimizer"):
            if self.replaying or "optimizer" in self._disabled or _PROCESS_GENERATION[0] != self.generation:
                return None
            t0 = time.perf_counter()
            try:
                self._opt_pre(opt)
            except Exception as exc:
                self._fail("optimizer", exc)
            self.own_time += time.perf_counter() - t0
            return None
        tracer, pending = self, [True]

        def measured_closure(*a: Any, **k: Any) -> Any:
            result = closure(*a, **k)
            if pending[0]:
                pending[0] = False
                tracer.call("optimizer", tracer._opt_pre, opt)
            return result

        if positional:
            return (args[0], measured_closure, *args[2:]), kwargs
        return args, {**kwargs, "closure": measured_closure}

    def optimizer_post(self, opt: torch.optim.Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.replaying or "optimizer" in self._disabled or _PROCESS_GENERATION[0] != self.generation:
            return
        t0 = time.perf_counter()
        try:
            # Every optimizer step closes a step (a GAN's two optimizers make two steps an iteration).
            self._crash_phase = "other"
            a = self.assembler
            if a.t_opt_start is not None:
                a.t_opt = time.perf_counter() - a.t_opt_start
            if self._sample_now:  # the weights are copied before sampled steps only
                self.updates.after_step(a.step)
            self._end_step()
        except Exception as exc:
            self._fail("optimizer", exc)
        self.own_time += time.perf_counter() - t0

    def _opt_pre(self, opt: torch.optim.Optimizer) -> None:
        self._crash_phase = "optimizer"
        a = self.assembler
        if self.loop.cleared is not None:  # zero_grad() between backward() and step()
            self.loop.before_step(opt)
        if self.loop.pending_clip is not None:  # clipped since the last step: this step's clipping
            self.loop.clip_before_step()
        if self.amp.grad_scale is not None:  # stepping on gradients the GradScaler still scales
            self.amp.stepped_scaled(opt)
        a.t_opt_start = time.perf_counter()
        try:  # (lr_of, inlined)
            lr = opt.param_groups[0].get("lr")
            a.lr = float(lr) if lr is not None else None
        except (TypeError, ValueError, IndexError):
            a.lr = None
        last = self.registry._last_optimizer  # the common case: the same optimizer, step after step
        if (last is None or last() is not opt) and self.registry.add_optimizer(opt, a.step):
            self._resize()
            if not any(r() is opt for r in self._known_optimizers):
                self._known_optimizers.append(weakref.ref(opt))
        self._stepped_at[id(opt)] = a.step
        sampled = self._sample_now
        if sampled:
            self._sample_stepped.add(id(opt))
            self.updates.before_step(opt)
        if not a.synced:  # else measured at the backward pass already (optimizer unknown until this step)
            self._measure(sampled)

    # -- step boundaries --------------------------------------------------------------------------------
    def _measure(self, sampled: bool | None = None) -> None:
        """Everything measured at the step's sync point, then the one host copy.

        (Every step runs it: what has nothing to do is skipped by its flag, not called.)"""
        a = self.assembler
        if self._module_hooks:  # module outputs are kept only while module calls reach us
            self.forward.flush()
        self.gradients.collect(a.step, self._sample_now if sampled is None else sampled, self.amp.grad_scale)
        if self.loop.clip is not None:
            self.loop.before_sync()
        if not self.mixing.done:
            self.mixing.once()
        losses = a.losses
        a.sync()
        if self.bundle is not None:
            self.call("bundle", self.bundle.after_sync, losses)

    def _end_step(self) -> None:
        a = self.assembler
        if not a.n_backward and a.t_opt_start is None:  # (a.has_work(), inlined)
            return
        sampled = self._sample_now
        if a.t_opt_start is None and sampled:  # no optimizer stepped: the weights as updated by hand
            self.updates.weights_only(a.step)
        if self._module_hooks:  # outputs of a forward pass after the sync point (a hand-marked step)
            self.forward.flush()
        columns = self.loop.end_step()
        columns.update(self.forward.end_step())
        a.end(sampled, columns)
        if self.sampler.time_budget is not None:
            # (not while device steps are read late: a sampled step's time is then mostly the queue it waits for)
            self._time_sample(a.step - 1, a.t_busy if a.copier is None and a._cuda_copier is None else None, sampled)
        # the next step's sampling decision, now: the hooks read `_sample_now` (fresh: only `a.end` moves the step)
        now = self.sampler.sampled(a.step)
        if sampled:
            now = now or self._covered()
        elif self._sample_run:  # the sample before is over
            self._sample_stepped.clear()
            self._sample_run = 0
        self._sampled_at, self._sample_now = a.step, now
        if now:  # a sampled step comes: the models as they are now (a head replaced, a backbone unfrozen)
            self.call("refresh", self._refresh)
        self._backwards_since_step = 0
        gaps = self.gaps
        if sampled:  # what only a sampled step collects
            if torch.is_anomaly_enabled():  # set_detect_anomaly(True) left on in training (PRF002)
                self.writer.add_event(a.step - 1, M.ANOMALY_MODE.name, {
                    "check_nan": torch.is_anomaly_check_nan_enabled()})
            self.forward.new_step()
            if self.unregistered.pending:  # judged now that the step's backward pass and optimizers are known
                self.call("unregistered", self.unregistered.end_step, a.step - 1)
            self.updates.drop()
            if gaps.on:
                self.call("gaps", gaps.check, a)
        if gaps.running:
            gaps.open(a.step)
        if self.losses.sampled:
            self.losses.new_step()
        self.replay = None
        self._switch_module_hooks()
        # The next step's gap (`t_data`) starts when the user's code runs again: what the step's end cost
        # us (the row, a flush, waking the gap profiler's thread) is not time the user's loop spent
        # between steps. On a loaded machine waking that thread could hold this thread for milliseconds,
        # which read as a data-loading bottleneck on healthy runs of 2 ms steps.
        a.t_last_end = time.perf_counter()
        if a.t_first_end is None:
            a.t_first_end = a.t_last_end

    def _covered(self) -> bool:
        """After a sampled step: is the next one sampled to extend this sample (True), the sampler
        having said no?

        Several optimizers that step in turn (a GAN's two, four models compared in one loop) make one
        step each: a sampler's interval that is a multiple of their cycle would sample the same
        optimizer's step every time and never see the others' models or updates. So a sample goes on
        until every optimizer that stepped in the `_COVER_STEPS` steps before it has stepped in it, for
        at most `_COVER_STEPS` steps (an optimizer of an earlier phase, the head's before the whole
        model's, is not waited for)."""
        self._sample_run += 1
        if len(self._stepped_at) < 2 or self._sample_run >= _COVER_STEPS:
            return False
        since = self.assembler.step - self._sample_run - _COVER_STEPS
        done = self._sample_stepped
        return any(at >= since and o not in done for o, at in self._stepped_at.items())

    def _time_sample(self, step: int, seconds: float | None, sampled: bool) -> None:
        """Feed the level's time budget (`Sampler.timed`); a changed interval is recorded as an event."""
        s = self.sampler
        if s.timed(step, seconds, sampled):
            self.writer.add_event(step, M.SAMPLING.name, {
                "every": s.every, "sample_cost_steps": round(s.sample_cost or 0.0, 3),
                "time_budget": s.time_budget, "level_every": s.base_every})

    def drop_step(self) -> None:
        """Forget the step under way without a row (a step a GradScaler skipped): the next one starts afresh."""
        a = self.assembler
        a.buffer.entries.clear()
        a.reset()
        a.t_last_end, a.cpu_last_end = time.perf_counter(), time.process_time()
        self.loop.end_step()
        self.loop.clip = None
        self.forward.end_step()
        self.forward.new_step()
        self.losses.new_step()
        self.updates.drop()
        self.replay = None
        self._backwards_since_step = 0
        self._switch_module_hooks()

    def mark_step(self, loss: torch.Tensor | float | None = None) -> None:
        """A step boundary given by hand (`WatchSession.step`), with the step's loss when known.
        A wrong `loss` is the caller's error (BadInputError); anything failing after that is ours
        and, as in every hook, contained (logged, recorded, the step probe switched off)."""
        if loss is not None and not isinstance(loss, (torch.Tensor, int, float)):
            raise BadInputError(f"session.step(loss={loss!r}): the loss must be a number or a tensor")
        if isinstance(loss, torch.Tensor) and loss.numel() != 1:
            raise BadInputError(f"session.step(loss=<tensor of shape {tuple(loss.shape)}>): the loss must be "
                                "one number (reduce it first, e.g. loss.mean())")
        self.call("step", self._mark_step, loss)

    def _mark_step(self, loss: torch.Tensor | float | None) -> None:
        a = self.assembler
        if loss is not None and not a.losses:
            a.losses.append(torch.as_tensor(loss, dtype=torch.float64).detach().reshape(1))
        a.sync()
        self._end_step()

    # -- crashes -------------------------------------------------------------------------------------------
    def record_exception(self, exc: BaseException) -> None:
        """Store what a crash needs for its diagnosis: the exception, where, and in which phase."""
        failed = module_in_traceback(exc.__traceback__, lambda m: m in self.registry.modules)
        module = self.registry.modules[failed].name if failed is not None else None
        phase = "forward" if module else self._crash_phase
        self.writer.add_event(self.step, M.EXCEPTION.name, exception_event(exc, module, phase))
        if self.bundle is not None:
            self.call("bundle", self.bundle.crash, exc, module, phase)
        self.writer.flush()

