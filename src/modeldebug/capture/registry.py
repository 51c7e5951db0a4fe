"""Names for what the tracer sees: models, their modules and parameters, losses, optimizers.

Modules and parameters are keyed weakly by identity, so watching never keeps a model alive, and
named by their qualified name from ``named_modules()`` / ``named_parameters()``. When a run
trains several models, the second and later ones are prefixed with their class name.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..record import RunWriter
from .isolation import unwrap

__all__ = ["IdMap", "ModuleInfo", "ParamInfo", "Registry", "is_loss_module"]


class IdMap:
    """A map keyed by object identity that does not keep its keys alive.

    A plain dict on ``id()`` with a weak reference per entry to tell a reused id from the original
    object: lookups cost one dict access, which matters in hooks that run on every module call
    (torch's WeakIdKeyDictionary builds a weak reference per lookup).
    """

    def __init__(self) -> None:
        self._d: dict[int, tuple[weakref.ref[Any], Any]] = {}

    def get(self, obj: Any, default: Any = None) -> Any:
        hit = self._d.get(id(obj))
        if hit is None or hit[0]() is not obj:
            return default
        return hit[1]

    def __contains__(self, obj: Any) -> bool:
        return self.get(obj, _MISSING) is not _MISSING

    def __getitem__(self, obj: Any) -> Any:
        value = self.get(obj, _MISSING)
        if value is _MISSING:
            raise KeyError(obj)
        return value

    def __setitem__(self, obj: Any, value: Any) -> None:
        self._d[id(obj)] = (weakref.ref(obj), value)

    def items(self) -> list[tuple[Any, Any]]:
        return [(o, v) for o, v in ((r(), v) for r, v in self._d.values()) if o is not None]

    def values(self) -> list[Any]:
        return [v for r, v in self._d.values() if r() is not None]

    def prune(self) -> int:
        """Forget the entries whose object is gone; how many are left."""
        self._d = {k: v for k, v in self._d.items() if v[0]() is not None}
        return len(self._d)


_MISSING = object()


def is_loss_module(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.loss._Loss)


@dataclass
class ModuleInfo:
    name: str
    eid: int
    type: str
    leaf: bool
    # the model it belongs to, held weakly: the registry's entries must not keep a model the user let go
    # (k-fold training in one script: every fold's model, weights and gradients alive to the end)
    root_ref: weakref.ref[nn.Module] | None = field(default=None, repr=False)
    params: int = 0  # elements of the module's own parameters (not its children's)
    #: a model's: 1 once seen in a training pass in train mode, 2 once seen training in eval mode after
    #: that (the tracer's `_evaluating`), else 0
    trains: int = 0

    @property
    def root(self) -> nn.Module | None:
        """The model this module belongs to; None for a loss module, or once that model is gone."""
        ref = self.root_ref
        return ref() if ref is not None else None


@dataclass
class ParamInfo:
    name: str
    eid: int
    module: str
    numel: int


class Registry:
    """Knows every watched module and parameter by a stable name and record entity id."""

    def __init__(self, writer: RunWriter) -> None:
        self.writer = writer
        # Keyed by identity: tensors compare elementwise, so a plain WeakKeyDictionary cannot hold them.
        self.modules = IdMap()
        self.params = IdMap()
        self.models: list[weakref.ref[nn.Module]] = []
        self.losses: list[weakref.ref[nn.Module]] = []
        self.optimizers: list[weakref.ref[torch.optim.Optimizer]] = []
        #: each optimizer's parameters (their ids), by the optimizer's id: kept after it is gone
        self.param_ids: dict[int, frozenset[int]] = {}
        self._prefixes: set[str] = set()
        self.model_types: list[str] = []  # kept by name: the objects may be gone at the end
        self.optimizer_types: list[str] = []
        self._tracked: list[tuple[torch.Tensor, ParamInfo]] | None = None
        self._held: dict[int, list[tuple[torch.Tensor, ParamInfo]]] = {}  # by id(optimizer): `held_params`
        self._groups: dict[int, str] | None = None
        self._names: dict[int, str] | None = None
        self.version = 0  # bumped whenever a model or optimizer is added
        self._last_optimizer: weakref.ref[torch.optim.Optimizer] | None = None
        self._naming: dict[int, tuple[str, str]] = {}  # by id(model): (prefix, root name) of its parts
        self._taken: set[tuple[str, str]] = set()  # (kind, name) of every module and parameter named
        self._signature: int | None = None  # `refresh`: the models' parameters and their requires_grad
        #: called (no arguments) when a watched model or optimizer is collected: what holds its parameters lets go
        self.on_model_gone: Callable[[], None] | None = None

    def refresh(self) -> bool:
        """Re-read the watched models (on sampled steps): parameters added since they were named (a head
        replaced) are named under their model, and a change of which parameters require grad (a backbone
        unfrozen or frozen) recomputes the tracked parameters. True if anything changed."""
        models = self.live_models()
        sig = hash(tuple((id(p), p.requires_grad) for m in models for p in m.parameters()))
        if sig == self._signature:
            return False
        first, self._signature = self._signature is None, sig
        if first:
            return False
        self._adopt_new_parts(models)
        self._changed()
        return True

    def _adopt_new_parts(self, models: list[nn.Module] | None = None) -> None:
        for model in models if models is not None else self.live_models():
            naming = self._naming.get(id(model))
            if naming is not None:
                self._name_parts(model, *naming)

    def _changed(self) -> None:
        self._tracked = self._groups = self._names = None
        self._held = {}
        self.version += 1

    # -- models ------------------------------------------------------------------------------------
    def add_model(self, model: nn.Module) -> None:
        model = unwrap(model)  # torch.compile(model): named as the model itself
        if model in self.modules:
            return
        self._changed()
        prefix = ""
        if self.models:  # the second and later models: their class name, made unique
            prefix = type(model).__name__
            n = 2
            while prefix in self._prefixes:
                prefix = f"{type(model).__name__}{n}"
                n += 1
        self._prefixes.add(prefix or type(model).__name__)
        self.models.append(weakref.ref(model, self._gone))
        self.model_types.append(type(model).__name__)
        root_name = prefix or type(model).__name__
        self._naming[id(model)] = (prefix, root_name)
        self._name_parts(model, prefix, root_name)

    def _gone(self, ref: weakref.ref[Any]) -> None:
        """A watched model or optimizer was collected: the cached parameter lists drop its parameters
        (and their gradients) now, not at the next step, while the user's next model is being built."""
        self._changed()
        if self.on_model_gone is not None:
            self.on_model_gone()

    def _name_parts(self, model: nn.Module, prefix: str, root_name: str) -> None:
        """Name every module and parameter of `model` not named yet (all of them for a new model; the
        parts added since for a known one: a head replaced, a layer appended). A new part under a name
        already taken (the replaced head's) is named `head#2`, so its numbers do not continue the old one's."""
        renamed: dict[str, str] = {}  # a module's name -> the one it got (`head` -> `head#2`)
        root = weakref.ref(model)
        for qual, mod in model.named_modules():
            if mod in self.modules or unwrap(mod) is not mod:
                continue  # a compiled submodule's wrapper: its module is named instead
            qual = qual.replace("._orig_mod", "")
            name = f"{prefix}.{qual}" if prefix and qual else (qual or root_name)
            renamed[name] = name = self._free("module", name)
            leaf = next(iter(mod.children()), None) is None
            own = sum(p.numel() for p in mod.parameters(recurse=False))
            info: dict[str, Any] = {"leaf": leaf, "params": own}
            if isinstance(mod, nn.modules.batchnorm._NormBase):  # what its running statistics follow
                info["momentum"] = float(mod.momentum) if mod.momentum is not None else None
                info["track_running_stats"] = bool(mod.track_running_stats)
                info["stats_at_init"] = _stats_at_init(mod)
            eid = self.writer.entity("module", name, type=type(mod).__name__, model=root_name, info=info)
            self.modules[mod] = ModuleInfo(name, eid, type(mod).__name__, leaf, root, own)
        for qual, p in model.named_parameters():
            if p in self.params:
                continue
            qual = qual.replace("._orig_mod", "")
            owner, _, attr = qual.rpartition(".")
            owner = f"{prefix}.{owner}" if prefix and owner else (owner or root_name)
            owner = renamed.get(owner, owner)
            name = self._free("param", f"{owner}.{attr}" if qual != attr or prefix else attr)
            eid = self.writer.entity(
                "param", name, type=str(p.dtype).replace("torch.", ""), model=root_name,
                info={"shape": list(p.shape), "module": owner, "requires_grad": p.requires_grad},
            )
            self.params[p] = ParamInfo(name, eid, owner, p.numel())

    def _free(self, kind: str, name: str) -> str:
        """`name`, or `name#2`, `name#3`... when a part named earlier holds it; taken from now on."""
        base, n = name, 2
        while (kind, name) in self._taken:
            name, n = f"{base}#{n}", n + 1
        self._taken.add((kind, name))
        return name

    def add_loss(self, module: nn.Module) -> ModuleInfo:
        info = self.modules.get(module)
        if info is None:
            name = type(module).__name__
            n = sum(1 for r in self.losses if r() is not None)
            if n:
                name = f"{name}_{n}"
            eid = self.writer.entity("loss", name, type=type(module).__name__,
                                     info={"reduction": getattr(module, "reduction", None)})
            info = ModuleInfo(name, eid, type(module).__name__, True)
            self.modules[module] = info
            self.losses.append(weakref.ref(module))
        return info

    # -- optimizers ----------------------------------------------------------------------------------
    def add_optimizer(self, opt: torch.optim.Optimizer, step: int | None = None) -> bool:
        """Register an optimizer and name any parameter no model owns. True if it was new. `step`: the
        step it first stepped at (its event's step; the rules tell optimizers that take turns from
        one built later by it)."""
        last = self._last_optimizer
        if last is not None and last() is opt:  # the common case: the same optimizer, step after step
            return False
        if any(r() is opt for r in self.optimizers):
            self._last_optimizer = weakref.ref(opt)
            return False
        self.optimizers.append(weakref.ref(opt, self._gone))
        self.param_ids[id(opt)] = frozenset(id(p) for g in opt.param_groups for p in g["params"])
        self._last_optimizer = self.optimizers[-1]
        self.optimizer_types.append(type(opt).__name__)
        self._changed()
        index = len(self.optimizers) - 1
        self._adopt_new_parts()  # a layer replaced before this optimizer was built: named by its model
        for gi, group in enumerate(opt.param_groups):
            for pi, p in enumerate(group["params"]):
                if p not in self.params:
                    name = f"optimizer{index}.group{gi}.param{pi}"
                    eid = self.writer.entity(
                        "param", name, type=str(p.dtype).replace("torch.", ""),
                        info={"shape": list(p.shape), "module": "", "requires_grad": p.requires_grad},
                    )
                    self.params[p] = ParamInfo(name, eid, "", p.numel())
        self.writer.add_event(step, "optimizer", {
            "type": type(opt).__name__,
            "groups": [
                {k: v for k, v in g.items() if k != "params" and isinstance(v, (int, float, bool, str, tuple))}
                | {"params": [self.params[p].name for p in g["params"]]}
                for g in opt.param_groups
            ],
        })
        return True

    def live_optimizers(self) -> list[torch.optim.Optimizer]:
        return [o for o in (r() for r in self.optimizers) if o is not None]

    def live_models(self) -> list[nn.Module]:
        return [m for m in (r() for r in self.models) if m is not None]

    def tracked_params(self) -> list[tuple[torch.Tensor, ParamInfo]]:
        """Parameters that can learn: every optimizer's, and every model's that requires grad (not meta).

        Cached until a model or optimizer is added (``add_param_group`` later is not seen).
        """
        if self._tracked is not None:
            return self._tracked
        seen: dict[int, tuple[torch.Tensor, ParamInfo]] = {}
        for opt in self.live_optimizers():
            for group in opt.param_groups:
                for p in group["params"]:
                    seen.setdefault(id(p), (p, self.params[p]))
        for model in self.live_models():
            for p in model.parameters():
                if p.requires_grad and p in self.params:
                    seen.setdefault(id(p), (p, self.params[p]))
        self._tracked = [(p, info) for p, info in seen.values() if not p.is_meta]  # meta: no data to learn
        return self._tracked

    def held_params(self, opt: torch.optim.Optimizer) -> list[tuple[torch.Tensor, ParamInfo]]:
        """The tracked parameters `opt` holds: what its step can change. A GAN's or several models'
        optimizers step in turn, and a weight that another optimizer's step left alone did not
        "never move" (OPT001). Cached like `tracked_params` (`opt` is registered: `add_optimizer`)."""
        held = self._held.get(id(opt))
        if held is None:
            ids = {id(p) for group in opt.param_groups for p in group["params"]}
            held = self._held[id(opt)] = [(p, info) for p, info in self.tracked_params() if id(p) in ids]
        return held

    def param_names(self) -> dict[int, str]:
        """Parameter names by entity id."""
        if self._names is None:
            self._names = {info.eid: info.name for info in self.params.values()}
        return self._names

    def groups(self) -> dict[int, str]:
        """The gradient-norm group of each tracked parameter, by entity id: the group's name.

        A group is an optimizer's parameter group (``optimizer0.group1``); parameters no optimizer
        holds are grouped by model (the model's name).
        """
        if self._groups is not None:
            return self._groups
        out: dict[int, str] = {}
        for i, opt in enumerate(self.live_optimizers()):
            for gi, group in enumerate(opt.param_groups):
                for p in group["params"]:
                    if p in self.params:
                        out.setdefault(self.params[p].eid, f"optimizer{i}.group{gi}")
        for model in self.live_models():
            for p in model.parameters():
                info = self.params.get(p)
                if info is not None and info.eid not in out:
                    out[info.eid] = self.models_name(model)
        self._groups = out
        return out

    def group_entity(self, name: str) -> int:
        """The record entity of a gradient-norm group (kind ``group``), created on first use."""
        names = self.param_names()
        members = [names[e] for e, g in self.groups().items() if g == name]
        return self.writer.entity("group", name, info={"params": members})

    def models_name(self, model: nn.Module) -> str:
        """The name a model's root module is registered under."""
        info = self.modules.get(model)
        return info.name if info is not None else type(model).__name__


def _stats_at_init(mod: nn.Module) -> bool | None:
    """Are a norm layer's running statistics still the initial mean 0 and variance 1 (not loaded from a
    checkpoint)? None when it keeps none."""
    mean, var = getattr(mod, "running_mean", None), getattr(mod, "running_var", None)
    if not isinstance(mean, torch.Tensor) or not isinstance(var, torch.Tensor) or mean.is_meta:
        return None
    with torch.no_grad():
        return bool((mean == 0).all()) and bool((var == 1).all())

