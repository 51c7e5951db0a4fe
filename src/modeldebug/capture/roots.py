"""Root hooks: what the tracer sees of a step's forward pass without a hook on every module.

A global module hook makes PyTorch take its slow path on EVERY module call (about 2 µs each, 2 ms
a step on a 1,000-module model). The tracer needs per-module calls only on sampled steps (the
activation statistics); on the other steps it needs the start of each model's forward pass (the
step's timing, the batch kept for a non-finite replay, the train/eval counters, the input
fingerprints). So each model the global hooks found at its root gets one forward pre-hook of its
own, on the object the user calls (the ``torch.compile`` wrapper, not the model it compiles), and
the global hooks are switched on for sampled steps only.

The hook is a `RootHook`: a copy of the model (``copy.deepcopy``: an EMA model) gets an inert one
that removes itself at the copy's first call; ``torch.save(model)`` (or a dict or list holding it)
saves the model without it (a probe on ``torch.save`` takes it off and puts it back), and any other
pickle stores a built-in no-op in its place, so nothing of modeldebug is needed to load it. ``torch.jit.script``
compiles a module's Python hooks, so while a session watches, a narrow patch of it (`script_probe`)
takes every `RootHook` off the module tree being scripted and puts the live ones back after.
Removing the session removes every hook it put on a model.

Under ``torch.compile`` dynamo guards on the number of global module hooks: switching them per
step would recompile the model once more. So a model with compiled parts (`uses_compile`) keeps
them on for good, as before (inside the compiled code they cost nothing: they are traced away).

A crash is attributed from the traceback instead of a forward post-hook on every module:
`module_in_traceback` finds the innermost module call (``Module._call_impl``) still on the stack
when the exception was raised.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as nn_module

__all__ = ["RootHook", "RootHooks", "module_in_traceback", "save_probe", "script_probe", "uses_compile"]

_is_compiling = torch.compiler.is_compiling
_CALL_CODES = frozenset(f.__code__ for f in (nn_module.Module._call_impl, nn_module.Module._wrapped_call_impl)
                        if hasattr(f, "__code__"))


class RootHook:
    """A forward pre-hook that calls `fn(module, args)`; inert once `fn` is None."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[nn.Module, tuple[Any, ...]], None] | None) -> None:
        self.fn = fn

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        fn = self.fn
        if fn is None:  # a copy's (or a finished session's) hook: take it off the module
            if not _is_compiling():
                _strip(module, keep=False)
        elif not _is_compiling():
            fn(module, args)

    def __deepcopy__(self, memo: dict[int, Any]) -> RootHook:
        return RootHook(None)  # a copy of the model is not the watched model

    def __reduce__(self) -> tuple[Any, ...]:
        # ``{}.get(module, args)`` returns `args` unchanged: a pre-hook that does nothing, loadable
        # without modeldebug.
        return (getattr, ({}, "get"))


class RootHooks:
    """The root hooks one tracer has put on the models it watches."""

    def __init__(self, fn: Callable[[nn.Module, tuple[Any, ...]], None]) -> None:
        self.fn = fn
        self._hooked: dict[int, tuple[weakref.ref[nn.Module], Any, RootHook]] = {}

    def __contains__(self, module: nn.Module) -> bool:
        hit = self._hooked.get(id(module))
        return hit is not None and hit[0]() is module

    def add(self, module: nn.Module) -> None:
        """Hook `module` (the object the user calls), once."""
        if module in self:
            return
        hook = RootHook(self.fn)
        handle = module.register_forward_pre_hook(hook)
        self._hooked[id(module)] = (weakref.ref(module), handle, hook)

    def remove_all(self) -> None:
        for _, handle, hook in self._hooked.values():
            hook.fn = None
            handle.remove()  # the handle holds the module's hook table weakly: a dead model is fine
        self._hooked.clear()


def _strip(module: nn.Module, *, keep: bool) -> list[tuple[nn.Module, int, RootHook]]:
    """Take every RootHook off `module`'s own pre-hooks; return the live ones (to put back) if `keep`."""
    hooks = module.__dict__.get("_forward_pre_hooks")
    if not hooks:
        return []
    taken = []
    for key, hook in list(hooks.items()):
        if isinstance(hook, RootHook):
            del hooks[key]
            if keep and hook.fn is not None:
                taken.append((module, key, hook))
    return taken


def _script_before(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[nn.Module, int, RootHook]]:
    obj = args[0] if args else kwargs.get("obj")
    if not isinstance(obj, nn.Module):
        return []
    return [t for m in obj.modules() for t in _strip(m, keep=True)]


def _script_after(taken: list[tuple[nn.Module, int, RootHook]] | None, args: Any, kwargs: Any, result: Any,
                  exc: BaseException | None) -> None:
    for module, key, hook in taken or ():
        if hook.fn is not None:  # the session may have ended meanwhile
            module._forward_pre_hooks[key] = hook


class _FramesUp(int):
    """`_frames_up` already counting the wrapper's frame (another session's probe saw it first)."""


def _one_frame_up(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """``torch.jit.script`` resolves names in its caller's frame (`_frames_up`): the wrapper is one more."""
    up = kwargs.get("_frames_up", 0)
    if isinstance(up, _FramesUp):
        return None
    return args, {**kwargs, "_frames_up": _FramesUp(int(up) + 1)}


def script_probe() -> Any:
    """The probe on ``torch.jit.script`` every session installs: no RootHook on the module tree while
    it is scripted (torch would try to compile it), the live ones back afterwards."""
    from .patches import Probe  # patches imports nothing of ours

    return Probe(_script_before, _script_after, rewrite=_one_frame_up)


def _modules_in(obj: Any, depth: int = 3) -> list[nn.Module]:
    """The modules in what ``torch.save`` is given: the object, or inside dicts, lists and tuples."""
    if isinstance(obj, nn.Module):
        return [obj]
    if depth <= 0:
        return []
    if isinstance(obj, dict):
        return [m for v in obj.values() for m in _modules_in(v, depth - 1)]
    if isinstance(obj, (list, tuple)):
        return [m for v in obj for m in _modules_in(v, depth - 1)]
    return []


def _save_before(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[nn.Module, int, RootHook]]:
    obj = args[0] if args else kwargs.get("obj")
    return [t for root in _modules_in(obj) for m in root.modules() for t in _strip(m, keep=True)]


def save_probe() -> Any:
    """The probe on ``torch.save``: a whole model saved while watched is pickled without our hook
    (``torch.load(weights_only=True)`` would refuse the stand-in), the live ones back afterwards."""
    from .patches import Probe

    return Probe(_save_before, _script_after)


def module_in_traceback(tb: TracebackType | None, known: Callable[[nn.Module], bool]) -> nn.Module | None:
    """The innermost module whose call was on the stack where the exception was raised, among the
    modules `known` accepts (the registered ones); None when the exception came from outside any."""
    found = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code in _CALL_CODES:
            module = frame.f_locals.get("self")
            if isinstance(module, nn.Module) and known(module):
                found = module
        tb = tb.tb_next
    return found


def uses_compile(module: nn.Module) -> bool:
    """Does `module` (the object called) hold ``torch.compile``d code: a compiled wrapper, or a
    compiled ``forward`` of any of its modules?"""
    for m in module.modules():
        if type(m).__name__ == "OptimizedModule" or hasattr(m.__dict__.get("forward"), "_torchdynamo_orig_callable"):
            return True
    return False
