"""One process-wide owner of every hook and patch capture puts into PyTorch.

Two ``watch()`` sessions that each patched ``torch.autograd.backward`` themselves would restore the
wrong function when they close in the other order, and a user's own wrapper made while watching
would be thrown away. So nothing in capture patches torch directly: a session `attach`es to
`PATCHES` with the `Probe`s it wants, and the manager

- installs each patch ONCE, while at least one live session wants it (reference-counted), and
  registers the global optimizer hooks once, while any session is attached, and the global module
  hooks only while a session wants module calls (`module_hooks`: the tracer, on sampled steps);
- fans every call out to the live sessions' probes, in the order they attached;
- on the last detach, restores the function it replaced, unless something else was installed over
  it meanwhile (the user's own wrapper): that one stays, and our wrapper inside it becomes a plain
  pass-through for good, so the user's patch survives the session.

A probe never raises into the caller: its errors are logged once and it goes on as a pass-through.
While ``torch.compile`` traces, every wrapper and hook returns at once (nothing of ours enters a graph);
so do the module hooks while ``torch.jit.trace`` runs.

Patched (see `TARGETS`): ``torch.autograd.backward`` (what ``Tensor.backward`` calls),
``Optimizer.__init__``, ``Optimizer.zero_grad``, ``Module.zero_grad``, ``clip_grad_norm_`` (both
places torch exports it), the data loader iterator's ``__next__``, the ``torch.nn.functional``
losses (and ``ctc_loss``), ``torch.amp.GradScaler``'s ``scale``, ``unscale_`` and ``step``, and
``torch.nn.modules.module._has_any_global_hook`` (so that torch.compile's "global hooks
fire an extra time" warning counts only the user's own hooks, not ours).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as nn_module
from torch.optim import optimizer as optim_module

__all__ = ["LOSS_FUNCTIONS", "PATCHES", "SEQUENCE_LOSSES", "TARGETS", "PatchManager", "Probe", "Target"]

log = logging.getLogger("modeldebug")

_is_compiling = torch.compiler.is_compiling
_is_tracing = torch._C._is_tracing  # torch.jit.trace running: module calls are the trace's, not a step's

# Functions of torch.nn.functional whose first two parameters are (input, target).
LOSS_FUNCTIONS = (
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "poisson_nll_loss",
    "gaussian_nll_loss", "soft_margin_loss", "multilabel_soft_margin_loss", "multi_margin_loss",
)
# Functions of torch.nn.functional whose target is a sequence of symbols per sample, with its lengths
# (``ctc_loss(log_probs, targets, input_lengths, target_lengths, blank, ...)``): watched for the checks
# that read them (losses.py), kept out of what treats a target as one class or value per input row
# (the step bundle's loss replay, the class counts).
SEQUENCE_LOSSES = ("ctc_loss",)

# The tables torch.nn.modules.module._has_any_global_hook reads.
_GLOBAL_HOOK_TABLES = ("_global_backward_pre_hooks", "_global_backward_hooks", "_global_forward_pre_hooks",
                       "_global_forward_hooks", "_global_forward_hooks_always_called",
                       "_global_forward_hooks_with_kwargs")


@dataclass(frozen=True)
class Target:
    """One attribute capture replaces: `owner.name`, found by `locate` (imports stay lazy)."""

    key: str  # the probe key sessions use ("backward", "loss:cross_entropy", ...)
    name: str
    locate: Callable[[], Any]


def _dataloader_iter() -> Any:
    from torch.utils.data import dataloader

    return dataloader._BaseDataLoaderIter


TARGETS: tuple[Target, ...] = (
    Target("backward", "backward", lambda: torch.autograd),
    Target("optimizer_init", "__init__", lambda: torch.optim.Optimizer),
    Target("zero_grad", "zero_grad", lambda: torch.optim.Optimizer),
    Target("zero_grad", "zero_grad", lambda: nn.Module),
    Target("clip_grad_norm", "clip_grad_norm_", lambda: torch.nn.utils),
    Target("clip_grad_norm", "clip_grad_norm_", lambda: torch.nn.utils.clip_grad),
    Target("loader_next", "__next__", _dataloader_iter),
    Target("plateau_step", "step", lambda: torch.optim.lr_scheduler.ReduceLROnPlateau),
    Target("scheduler_init", "__init__", lambda: torch.optim.lr_scheduler.LRScheduler),  # once per scheduler
    Target("jit_script", "script", lambda: torch.jit),  # roots.script_probe: our root hooks off while scripting
    Target("torch_save", "save", lambda: torch),  # roots.save_probe: and while saving
    Target("load_state_dict", "load_state_dict", lambda: nn.Module),  # a checkpoint restored (early stopping)
    Target("amp_scale", "scale", lambda: torch.amp.GradScaler),  # amp.py: the loss the user computed
    Target("amp_unscale", "unscale_", lambda: torch.amp.GradScaler),
    Target("amp_step", "step", lambda: torch.amp.GradScaler),
    Target("categorical_init", "__init__", lambda: torch.distributions.Categorical),  # distributions.py
    *(Target(f"loss:{n}", n, lambda: torch.nn.functional) for n in LOSS_FUNCTIONS + SEQUENCE_LOSSES
      if hasattr(torch.nn.functional, n)),
)


@dataclass(frozen=True)
class Probe:
    """What one session does around one patched function.

    `before(args, kwargs)` runs before the original and returns a token; `after(token, args, kwargs,
    result, exc)` runs after it (`exc` is the exception the original raised, then re-raised).
    `rewrite(args, kwargs)`, first of all, may return new (args, kwargs) for the original (the
    function ``torch.multiprocessing.spawn`` starts, wrapped so each child watches itself).
    """

    before: Callable[[tuple[Any, ...], dict[str, Any]], Any] | None = None
    after: Callable[[Any, tuple[Any, ...], dict[str, Any], Any, BaseException | None], None] | None = None
    rewrite: Callable[[tuple[Any, ...], dict[str, Any]], tuple[tuple[Any, ...], dict[str, Any]] | None] | None = None


@dataclass(eq=False)
class _Install:
    """One installed patch: the function it replaced, its wrapper, and the live probes it calls."""

    owner: Any
    name: str
    original: Any
    wrapper: Any = None
    probes: tuple[Probe, ...] = ()
    failed: set[int] = field(default_factory=set)


class PatchManager:
    """Installs hooks and patches once for every live session; see the module docstring."""

    def __init__(self, targets: tuple[Target, ...] = TARGETS) -> None:
        self.targets = targets
        self._lock = threading.RLock()
        self._sessions: tuple[Any, ...] = ()
        self._wants: dict[int, dict[str, Probe]] = {}  # id(session) -> its probes by key
        self._installs: dict[tuple[int, str], _Install] = {}
        self._handles: list[Any] = []
        self._module_sessions: tuple[Any, ...] = ()  # the sessions module calls are fanned out to
        self._module_handles: list[Any] = []
        self._own_hook_ids: frozenset[int] = frozenset()
        self._hook_install: _Install | None = None

    # -- sessions ------------------------------------------------------------------------------------
    @property
    def sessions(self) -> tuple[Any, ...]:
        return self._sessions

    def attach(self, session: Any, probes: dict[str, Probe], *, module_hooks: bool = True) -> None:
        """Start fanning out to `session` (its forward/optimizer hook methods and `probes` by key).

        `module_hooks=False`: module calls reach the session only after `module_hooks(session, True)`
        (the tracer wants them on sampled steps alone: a global module hook slows every module call)."""
        unknown = set(probes) - {t.key for t in self.targets}
        if unknown:
            raise ValueError(f"no patch target for probe keys {sorted(unknown)}")
        with self._lock:
            if any(s is session for s in self._sessions):
                return
            self._sessions = (*self._sessions, session)
            self._wants[id(session)] = dict(probes)
            try:
                if len(self._sessions) == 1:
                    self._install_hooks()
                if module_hooks:
                    self.module_hooks(session, True)
                self._refresh()
            except BaseException:
                self.detach(session)
                raise

    def add_targets(self, targets: tuple[Target, ...]) -> None:
        """Let sessions probe more attributes (`modeldebug.distributed`'s collectives); a known key+name is kept."""
        with self._lock:
            known = {(t.key, t.name) for t in self.targets}
            self.targets = (*self.targets, *(t for t in targets if (t.key, t.name) not in known))

    def detach(self, session: Any) -> None:
        """Stop fanning out to `session`; remove whatever no live session wants any more."""
        with self._lock:
            self._sessions = tuple(s for s in self._sessions if s is not session)
            self._wants.pop(id(session), None)
            self.module_hooks(session, False)
            self._refresh()
            if not self._sessions:
                self._remove_hooks()

    def module_hooks(self, session: Any, on: bool) -> None:
        """Fan module calls out to `session` (on) or not; the global module hooks are registered
        while at least one session wants them, and removed (torch's fast path again) when none does."""
        with self._lock:
            if on and any(s is session for s in self._sessions):
                if not any(s is session for s in self._module_sessions):
                    self._module_sessions = (*self._module_sessions, session)
            else:
                self._module_sessions = tuple(s for s in self._module_sessions if s is not session)
            if self._module_sessions and not self._module_handles:
                self._module_handles = [
                    nn_module.register_module_forward_pre_hook(self._forward_pre),
                    nn_module.register_module_forward_hook(self._forward_post, always_call=True),
                ]
            elif not self._module_sessions and self._module_handles:
                for h in self._module_handles:
                    h.remove()
                self._module_handles = []
            self._own_hook_ids = frozenset(h.id for h in self._module_handles)

    def installed(self) -> list[tuple[Any, str]]:
        """(owner, name) of every patch in place now (for tests and leak checks)."""
        out = [(i.owner, i.name) for i in self._installs.values()]
        if self._hook_install is not None:
            out.append((self._hook_install.owner, self._hook_install.name))
        return out

    # -- patches -------------------------------------------------------------------------------------
    def _refresh(self) -> None:
        """Install the patches some live session wants, update their probes, remove the others."""
        for target in self.targets:
            probes = tuple(w[target.key] for s in self._sessions if target.key in (w := self._wants[id(s)]))
            owner = target.locate()
            key = (id(owner), target.name)
            inst = self._installs.get(key)
            if probes and inst is None:
                inst = self._installs[key] = self._install(owner, target.name)
            if inst is None:
                continue
            inst.probes = probes
            if not probes:
                self._uninstall(inst)
                del self._installs[key]

    def _install(self, owner: Any, name: str) -> _Install:
        inst = _Install(owner, name, getattr(owner, name))
        inst.wrapper = _wrap(inst)
        setattr(owner, name, inst.wrapper)
        return inst

    @staticmethod
    def _uninstall(inst: _Install) -> None:
        inst.probes = ()  # a pass-through from now on, wherever it still sits
        if getattr(inst.owner, inst.name) is inst.wrapper:
            setattr(inst.owner, inst.name, inst.original)
        else:
            log.debug("modeldebug: %s.%s was replaced while watching; leaving the new one in place",
                      getattr(inst.owner, "__name__", inst.owner), inst.name)

    # -- global hooks -----------------------------------------------------------------------------------
    def _install_hooks(self) -> None:
        self._handles = [
            optim_module.register_optimizer_step_pre_hook(self._optimizer_pre),
            optim_module.register_optimizer_step_post_hook(self._optimizer_post),
        ]
        if hasattr(nn_module, "_has_any_global_hook"):
            inst = _Install(nn_module, "_has_any_global_hook", nn_module._has_any_global_hook)
            inst.wrapper = self._foreign_global_hook
            nn_module._has_any_global_hook = inst.wrapper
            self._hook_install = inst

    def _remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        if self._hook_install is not None:
            self._uninstall(self._hook_install)
            self._hook_install = None

    def _foreign_global_hook(self) -> bool:
        """torch's ``_has_any_global_hook``, not counting our own module hooks."""
        ours = self._own_hook_ids
        if not ours:
            return any(getattr(nn_module, name, None) for name in _GLOBAL_HOOK_TABLES)
        return any(k not in ours for name in _GLOBAL_HOOK_TABLES for k in getattr(nn_module, name, ()))

    def _forward_pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if _is_compiling() or _is_tracing():
            return
        for s in self._module_sessions:
            s.forward_pre(module, args)

    def _forward_post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if _is_compiling() or _is_tracing():
            return
        for s in self._module_sessions:
            s.forward_post(module, args, output)

    def _optimizer_pre(self, opt: torch.optim.Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if _is_compiling():  # a compiled optimizer step
            return None
        changed = None
        for s in self._sessions:
            new = s.optimizer_pre(opt, args, kwargs)
            if new is not None:  # a wrapped closure: the next session wraps that one
                args, kwargs = changed = new
        return changed

    def _optimizer_post(self, opt: torch.optim.Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if _is_compiling():
            return
        for s in self._sessions:
            s.optimizer_post(opt, args, kwargs)


def _wrap(inst: _Install) -> Any:
    """The function installed in place of `inst.original`: the original, with the probes around it."""
    original = inst.original

    def patched(*args: Any, **kwargs: Any) -> Any:
        if _is_compiling():
            return original(*args, **kwargs)
        probes = inst.probes
        if not probes:
            return original(*args, **kwargs)
        if len(probes) == 1 and probes[0].rewrite is None:  # the common case: one session, no rewrite
            p = probes[0]  # (`_run`, inlined: this runs on every step)
            before, after, token = p.before, p.after, None
            if before is not None:
                try:
                    token = before(args, kwargs)
                except Exception as exc:
                    _failed(inst, p, exc)
            try:
                result = original(*args, **kwargs)
            except BaseException as exc:
                if after is not None:
                    _run(inst, p, after, token, args, kwargs, None, exc)
                raise
            if after is not None:
                try:
                    after(token, args, kwargs, result, None)
                except Exception as exc:
                    _failed(inst, p, exc)
            return result
        for p in probes:
            if p.rewrite is not None and (new := _run(inst, p, p.rewrite, args, kwargs)) is not None:
                args, kwargs = new
        tokens = [_run(inst, p, p.before, args, kwargs) if p.before is not None else None for p in probes]
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            for p, token in zip(probes, tokens):
                if p.after is not None:
                    _run(inst, p, p.after, token, args, kwargs, None, exc)
            raise
        for p, token in zip(probes, tokens):
            if p.after is not None:
                _run(inst, p, p.after, token, args, kwargs, result, None)
        return result

    functools.update_wrapper(patched, original)
    return patched


def _run(inst: _Install, probe: Probe, fn: Callable[..., Any], *args: Any) -> Any:
    """Call one probe function; an error is logged once and never reaches the caller."""
    try:
        return fn(*args)
    except Exception as exc:
        _failed(inst, probe, exc)
        return None


def _failed(inst: _Install, probe: Probe, exc: Exception) -> None:
    """A probe raised: log it once (the call it wraps goes on)."""
    if id(probe) not in inst.failed:
        inst.failed.add(id(probe))
        log.warning("modeldebug: a probe on %s failed (%s: %s)", inst.name, type(exc).__name__, exc)


#: The manager every session of this process attaches to.
PATCHES = PatchManager()
