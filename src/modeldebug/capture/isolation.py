"""A private twin of the user's model, for probes that must leave the run exactly as it was.

A probe that calls the user's own model changes the run: state kept on the module (a recurrent
model's ``self.h``) moves on, the user's forward hooks fire once more, ``model.eval()`` runs the
user's ``train()`` override (which may freeze layers), and dropout draws from the user's random
stream. So probes never touch the user's model. They run on ``twin(root, args)``, a deep copy with
every hook removed, its parameters frozen (the copy's, not the user's), and its ``training`` flags
set directly (``set_training``: no ``train()``/``eval()`` override runs), inside ``quiet()``,
which forks the random state (torch's, Python's ``random`` and NumPy's global streams: a
``forward`` may draw from any of them, as a teacher-forcing decoder's ``random.random()`` does)
and keeps every global module hook (the user's and our tracer's) and
``torch.compile`` out of the probe's forward pass.

What stays outside our reach: a ``forward`` with side effects beyond the module (a global
counter, a print) still runs once more, on the copy.
"""

from __future__ import annotations

import copy
import random
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules import module as nn_module

__all__ = ["TwinError", "quiet", "set_training", "twin", "unwrap"]

# Per-module hook tables (nn.Module.__init__) and the global ones (torch.nn.modules.module).
_MODULE_HOOKS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
                 "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
                 "_backward_pre_hooks", "_state_dict_hooks", "_state_dict_pre_hooks",
                 "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")
_GLOBAL_HOOKS = ("_global_forward_pre_hooks", "_global_forward_hooks", "_global_forward_hooks_always_called",
                 "_global_forward_hooks_with_kwargs", "_global_backward_pre_hooks", "_global_backward_hooks")


# Objects a model may point to that a forward pass does not need copied (and that may be large or
# refuse to be copied): the copy shares them.
_SHARED = (torch.optim.Optimizer, torch.utils.data.DataLoader, torch.utils.data.Dataset)


class TwinError(Exception):
    """The model (or the batch) could not be deep-copied; the probe is skipped, never run on the original."""


def unwrap(module: nn.Module) -> nn.Module:
    """The module a ``torch.compile`` wrapper (OptimizedModule) holds, else `module` itself."""
    if type(module).__name__ == "OptimizedModule":
        inner = module.__dict__.get("_modules", {}).get("_orig_mod")
        if isinstance(inner, nn.Module):
            return inner
    return module


_PARALLEL = ("DistributedDataParallel", "DataParallel", "FullyShardedDataParallel")


def _inner(module: nn.Module) -> nn.Module:
    """The model under its torch.compile and data-parallel wrappers. A copy of a DistributedDataParallel
    wrapper would still talk to the other ranks (its forward broadcasts buffers, on this rank alone):
    a probe's collective the others never join hangs the job."""
    while True:
        inner = unwrap(module)
        if type(inner).__name__ in _PARALLEL and isinstance(getattr(inner, "module", None), nn.Module):
            inner = inner.module
        if inner is module:
            return module
        module = inner


def twin(root: nn.Module, args: Any, replace: dict[int, torch.Tensor] | None = None
         ) -> tuple[nn.Module, Any, dict[nn.Module, nn.Module]]:
    """Deep copies of `root` and `args` (together, so shared tensors stay shared), hooks removed.

    Returns the copy, the copied arguments and a map from each of the user's modules to its copy.
    `replace` maps ``id(tensor)`` to what the copy gets in its place (the probe's own input).
    Tensors with autograd history (a module that keeps its last output) cannot be deep-copied:
    the copy gets a detached clone of them. Anything that would lead the copy back into the
    user's model (a compiled or wrapped ``forward`` set on the instance, a ``torch.compile``
    wrapper) is taken off the copy; where no plain ``forward`` is left, TwinError.
    """
    memo: dict[int, Any] = dict(replace or {})
    root = _inner(root)
    originals = list(root.modules())
    for m in originals:
        for name in _MODULE_HOOKS:  # the copy starts with empty tables; the user's keep their hooks
            hooks = m.__dict__.get(name)
            if isinstance(hooks, dict):
                memo[id(hooks)] = type(hooks)()
        for value in (*vars(m).values(), *m._buffers.values()):
            if isinstance(value, _SHARED):
                memo[id(value)] = value
            else:
                _detach_history(value, memo, 2)
    _detach_history(args, memo, 3)
    try:
        model_copy, args_copy = copy.deepcopy((root, args), memo)
    except Exception as exc:  # a lock, a file, a process group, a __deepcopy__ that refuses
        raise TwinError(f"{type(exc).__name__}: {exc}") from exc
    copies = {m: memo[id(m)] for m in originals}
    for m in list(model_copy.modules()):  # compiled submodules first: their wrappers leave the tree
        for name, child in list(m._modules.items()):
            if child is not None and unwrap(child) is not child:
                m._modules[name] = unwrap(child)  # its (copied) module, run eagerly
    for m in model_copy.modules():
        _cut_ties(m)
    for p in model_copy.parameters():
        p.requires_grad_(False)  # probes ask for gradients of the input only
    return model_copy, args_copy, copies


def _cut_ties(m: nn.Module) -> None:
    """Leave nothing on the copied module `m` that calls back into the user's model."""
    if m.__dict__.get("_compiled_call_impl") is not None:  # model.compile(): bound to the original
        m.__dict__["_compiled_call_impl"] = None
    own = m.__dict__.get("forward")
    if own is not None and getattr(own, "__self__", None) is not m:
        # `model.forward = torch.compile(model.forward)` (or another wrapper) holds the user's module
        if type(m).forward is nn.Module.forward:
            raise TwinError(f"{type(m).__name__}.forward is a wrapper set on the instance; "
                            "its copy would call the original model")
        del m.__dict__["forward"]


def _detach_history(value: Any, memo: dict[int, Any], depth: int) -> None:
    if isinstance(value, torch.Tensor):
        if value.grad_fn is not None and id(value) not in memo:
            memo[id(value)] = value.detach().clone()
    elif depth > 0 and isinstance(value, (list, tuple)):
        for v in value:
            _detach_history(v, memo, depth - 1)
    elif depth > 0 and isinstance(value, dict):
        for v in value.values():
            _detach_history(v, memo, depth - 1)


def set_training(model: nn.Module, mode: bool) -> None:
    """Set every module's ``training`` flag directly: a ``train()`` override never runs."""
    for m in model.modules():
        object.__setattr__(m, "training", mode)


@contextmanager
def quiet(model: nn.Module) -> Iterator[None]:
    """Fork the random state (torch's CPU and CUDA generators, Python's ``random`` and NumPy's global
    stream), suspend every global module hook, and run eagerly.

    Global hooks are process-wide: while a probe runs (a few milliseconds, once), a forward pass in
    another thread would not see them either.
    """
    saved = {name: dict(getattr(nn_module, name)) for name in _GLOBAL_HOOKS}
    for name in _GLOBAL_HOOKS:
        getattr(nn_module, name).clear()
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with ExitStack() as stack:
            kind, devices = _accelerator(model)
            stack.enter_context(torch.random.fork_rng(devices=devices, device_type=kind))
            set_stance = getattr(torch.compiler, "set_stance", None)
            if "torch._dynamo" in sys.modules and set_stance is not None:
                # a copy of a compiled submodule would otherwise compile (and count) afresh
                stack.enter_context(set_stance("force_eager"))
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        for name in _GLOBAL_HOOKS:
            table = getattr(nn_module, name)
            added = dict(table)
            table.clear()
            table.update(saved[name])
            table.update(added)


def _accelerator(model: nn.Module) -> tuple[str, list[int]]:
    """The accelerator type the model lives on (CUDA unless it names another) and its devices."""
    kind, devices = "cuda", set()
    for t in (*model.parameters(), *model.buffers()):
        if t.device.type not in ("cpu", "meta"):
            kind = t.device.type
            devices.add(t.device.index or 0)
    if kind == "cuda" and torch.cuda.is_available() and torch.cuda.is_initialized():
        devices.add(torch.cuda.current_device())  # the user's default stream of random numbers too
    return kind, sorted(devices)
