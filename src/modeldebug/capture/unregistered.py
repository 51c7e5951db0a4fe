"""Layers a model uses but does not own: called in its forward pass, missing from ``model.parameters()``.

``self.hids = [nn.Linear(...) for _ in range(3)]`` (a plain list or dict, not ``nn.ModuleList`` /
``nn.ModuleDict``) or ``nn.Linear(a, b)(x)`` inside ``forward`` gives a layer that the forward pass
uses and PyTorch does not know: its weights are in no optimizer built from ``model.parameters()``
(never trained), not in ``state_dict()`` (never saved), not moved by ``.to(device)``, and their
gradients are never cleared by ``zero_grad()``.

The global module hooks see every module call on sampled steps only (roots.py); the tracer's
forward post-hook already looks each module up in the registry, and hands the ones it does not
know, called while a module of a watched model runs, to `UnregisteredWatch.called`. So an unsampled
step costs nothing, and a sampled step one identity lookup per call of an unknown module. A module
is judged at the end of the sampled step, once the step's optimizers are known and its backward
pass has run, and (when the model holds it in an attribute) again at a later sampled step: it is
recorded (event ``unregistered_module``) when its trainable parameters got a gradient, are in no
watched model and no optimizer, and nothing updated them in place between the two (their
``_version``: a layer trained by hand, an EMA copy). Not recorded: a module called under
``torch.no_grad()`` (a teacher, an EMA copy), one whose parameters all have ``requires_grad=False``
(frozen on purpose), one whose parameters another watched model or an optimizer holds (shared), one
whose output never reaches a gradient (a detached teacher), parameter-free modules (activations,
losses), and anything inside compiled code (the hooks return there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .. import measures as M
from .registry import IdMap

if TYPE_CHECKING:
    from .tracer import Tracer

__all__ = ["UnregisteredWatch", "locate"]

#: At most this many layers (distinct places) are recorded in a run.
_MAX_RECORDED = 32
#: A module whose parameters got no gradient on this many sampled steps is no longer looked at.
_MAX_MISSES = 3
#: What `locate` reads of a container attribute: its first items, two levels deep.
_MAX_ITEMS, _DEPTH = 4096, 2
_INTERNAL = frozenset(vars(nn.Module()))  # nn.Module's own bookkeeping (_modules, hook tables, ...)


def locate(model: nn.Module, target: nn.Module) -> str | None:
    """Where `model` holds `target` outside its registered submodules: ``hids[0]``,
    ``encoder.heads['a']`` (an attribute of one of its modules: a list, tuple or dict); or None."""
    for qual, m in model.named_modules():
        for attr, value in vars(m).items():
            if attr in _INTERNAL:
                continue
            path = _find_in(value, target, _DEPTH)
            if path is not None:
                return f"{qual}.{attr}{path}" if qual else f"{attr}{path}"
    return None


def _find_in(value: Any, target: nn.Module, depth: int) -> str | None:
    if isinstance(value, (list, tuple, nn.ModuleList, nn.Sequential)):
        items: Any = enumerate(value)  # (a ModuleList kept in a plain dict is not registered either)
    elif isinstance(value, (dict, nn.ModuleDict)):
        items = value.items()
    else:
        return None
    for n, (key, item) in enumerate(items):
        if n >= _MAX_ITEMS:
            break
        if item is target:
            return f"[{key!r}]"
        if depth > 1:
            sub = _find_in(item, target, depth - 1)
            if sub is not None:
                return f"[{key!r}]{sub}"
    return None


class UnregisteredWatch:
    """Finds the modules called inside a watched model's forward pass that the model does not register."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self.on = tracer.plan.any((M.UNREGISTERED_MODULE,))
        self._done = IdMap()  # modules judged for good (recorded, or not this problem)
        self._n_done, self._prune_at = 0, 1024
        self._misses: dict[int, int] = {}  # id(module) -> sampled steps without a gradient
        # id(module) -> (module, its trainable parameters, the module that called it, the model)
        self.pending: dict[int, tuple[nn.Module, list[torch.Tensor], nn.Module, nn.Module]] = {}
        # id(module) -> its parameters' versions at a sampled step's end: recorded only if a later sampled
        # step finds them unchanged (a layer trained by hand, or an EMA copy updated after step(), moved)
        self._suspects: dict[int, list[int]] = {}
        self._places: dict[tuple[Any, ...], int] = {}  # where a recorded layer lives -> objects seen there

    def called(self, module: nn.Module, caller: nn.Module) -> None:
        """A sampled step's call of `module`, which the registry does not know, from `caller` (the
        innermost module call still running). The rare path: no watched model calls unknown modules."""
        if not torch.is_grad_enabled() or id(module) in self.pending or module in self._done:
            return  # without autograd: a teacher or an EMA copy (judged again when called with it)
        reg = self.tracer.registry
        info = reg.modules.get(caller)
        if info is None or info.root is None:  # inside an unknown module (judged as a whole), a loss, another model
            self._judged(module)
            return
        params = [p for p in module.parameters() if p.requires_grad]
        if not params or any(p in reg.params for p in params):
            self._judged(module)  # frozen or parameter-free; or owned by a watched model or known optimizer
            return
        self.pending[id(module)] = (module, params, caller, info.root)

    def end_step(self, step: int) -> None:
        """At the end of a sampled step: record the pending modules whose parameters got a gradient
        and that no optimizer holds."""
        if not self.pending:
            return
        pending, self.pending = self.pending, {}
        t = self.tracer
        reg = t.registry
        held = {id(p) for o in (*reg.live_optimizers(), *(r() for r in t._known_optimizers)) if o is not None
                for g in o.param_groups for p in g["params"]}
        for key, (module, params, caller, model) in pending.items():
            if any(id(p) in held or p in reg.params for p in params):
                self._judged(module)  # trained by an optimizer after all (or shared with a later model)
            elif not any(p.grad is not None for p in params):
                if len(self._misses) > 1024:
                    self._misses.clear()
                misses = self._misses[key] = self._misses.get(key, 0) + 1
                if misses >= _MAX_MISSES:  # a detached output, an unused branch: not what this is about
                    self._judged(module)
                    self._misses.pop(key, None)
            else:
                self._misses.pop(key, None)
                versions = [p._version for p in params]
                before = self._suspects.pop(key, None)
                where = locate(model, module) if before is None else None
                if where is not None:
                    # held by the model: judged at a later sampled step, once it could have been updated
                    if len(self._suspects) > 1024:
                        self._suspects.clear()
                    self._suspects[key] = versions
                    continue
                self._judged(module)
                if before is None or before == versions:  # (built in forward(): a new one each time)
                    self._record(step, module, params, caller, model, located=before is None)

    def _judged(self, module: nn.Module) -> None:
        self._done[module] = True
        self._n_done += 1
        if self._n_done > self._prune_at:  # modules made in forward() die each step: forget the dead ones
            self._n_done = self._done.prune()
            self._prune_at = max(1024, 2 * self._n_done)

    def _record(self, step: int, module: nn.Module, params: list[torch.Tensor], caller: nn.Module,
                model: nn.Module, *, located: bool = False) -> None:
        """`located`: `locate` already found no attribute holding it (a layer built in forward())."""
        reg = self.tracer.registry
        model_name, caller_name = reg.models_name(model), reg.modules[caller].name
        loose = (model_name, caller_name, type(module).__name__, tuple(tuple(p.shape) for p in params))
        if self._places.get(loose, 0) >= 2:
            return  # built anew in forward() at each sampled step, and said so: no search of the model each time
        where = None if located else locate(model, module)
        place = (model_name, where) if where is not None else loose
        objects = self._places.get(place, 0) + 1
        if objects == 1 and len(self._places) >= _MAX_RECORDED:
            return
        self._places[place] = objects
        if objects > 2:
            return  # a new object at each sampled step: said once, when the second one came
        self.tracer.writer.add_event(step, M.UNREGISTERED_MODULE.name, {
            "model": model_name, "module": where, "caller": caller_name, "type": type(module).__name__,
            "params": sum(p.numel() for p in params), "tensors": len(params), "objects": objects,
            "leaf": next(iter(module.children()), None) is None,
        })
