"""Layers a model uses in forward() but does not register: never trained, moved or saved (OPT002)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import measures as M
from .base import Finding, Recommendation, Rule
from .context import Context, fmt
from .fixcode import optimizer_ctor

__all__ = ["UnregisteredModule"]


@dataclass
class _Layer:
    """One place a model uses an unregistered layer: an attribute's item, or a forward() that builds it."""

    where: str | None  # `hids[0]`, or None when no attribute of the model holds it
    caller: str  # the module whose forward() called it
    type: str
    params: int
    step: int
    objects: int = 1  # distinct objects seen there on sampled steps: 2 or more, built anew each step
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def built_in_forward(self) -> bool:
        return self.objects >= 2

    @property
    def holder(self) -> str | None:
        """The attribute to change: `hids` for `hids[0]`, `encoder.heads` for `encoder.heads['a']`."""
        return self.where.split("[", 1)[0] if self.where else None


def _layers(ctx: Context) -> dict[str, list[_Layer]]:
    """The recorded layers by model, one per place (a second event for a place says a new object came)."""
    out: dict[str, dict[tuple[Any, ...], _Layer]] = {}
    for e in ctx.record.events(M.UNREGISTERED_MODULE.name):
        d = e.data
        where = d.get("module")
        place = (where,) if where else (d.get("caller"), d.get("type"), d.get("params"))
        layers = out.setdefault(str(d.get("model")), {})
        known = layers.get(place)
        if known is None:
            layers[place] = _Layer(where, str(d.get("caller")), str(d.get("type")), int(d.get("params") or 0),
                                   int(e.step or 0), int(d.get("objects") or 1), d)
        else:
            known.objects = max(known.objects, int(d.get("objects") or 1))
    return {m: list(v.values()) for m, v in out.items()}


def _trainable(ctx: Context, model: str) -> int:
    """Elements of the model's registered parameters that require grad."""
    return sum(int(np.prod(e.info.get("shape", [1]))) for e in ctx.params.values()
               if e.model == model and e.info.get("requires_grad", True))


def _container_fix(holder: str, layers: list[_Layer]) -> str:
    attr = holder.rsplit(".", 1)[-1]
    owner = holder.rsplit(".", 1)[0] if "." in holder else None
    keyed = any(la.where and la.where[len(holder):].startswith(("['", '["')) for la in layers)
    types = sorted({la.type for la in layers})
    kind = "nn.ModuleDict({...})" if keyed else "nn.ModuleList([...])"
    plain = "dict" if keyed else "list"
    return (f"self.{attr} = {kind}   # in {owner + '.' if owner else ''}__init__; not a plain {plain}: registers its "
            f"{len(layers)} {'/'.join(types)} layer{'s' if len(layers) > 1 else ''}")


class UnregisteredModule(Rule):
    """Detects OPT002; its documentation is in the catalogue (`modeldebug explain OPT002`)."""

    code = "OPT002"
    requires = (M.UNREGISTERED_MODULE, M.OPTIMIZER)

    def check(self, ctx: Context) -> Iterator[Finding]:
        for model, layers in _layers(ctx).items():
            yield self._finding(ctx, model, layers)

    def _finding(self, ctx: Context, model: str, layers: list[_Layer]) -> Finding:
        held = [la for la in layers if la.where and not la.built_in_forward]
        built = [la for la in layers if la.built_in_forward]
        loose = [la for la in layers if not la.where and not la.built_in_forward]
        holders: dict[str, list[_Layer]] = {}
        for la in held:
            holders.setdefault(la.holder or "", []).append(la)
        numel = sum(la.params for la in layers)
        fraction = numel / ((_trainable(ctx, model) + numel) or 1)
        # one whole model kept aside in a container (a teacher, a frozen copy in a list), not layers of this
        # one: maybe on purpose
        aside = len(layers) == 1 and layers[0].data.get("leaf") is False and bool(held)
        severity = "medium" if aside else "high" if fraction >= 0.05 or built else "medium"
        share = f"{numel:,} weights, {fmt(fraction * 100)}% of the model's"
        parts = []
        if holders:
            first, items = next(iter(holders.items()))
            kind = "dict" if any(la.where and la.where[len(first):].startswith(("['", '["')) for la in items) else "list"
            n_held = len(held)
            more = f" (and {len(holders) - 1} more attribute{'s' if len(holders) > 2 else ''})" if len(holders) > 1 else ""
            title = (f"{n_held} layer{'s' if n_held > 1 else ''} kept in the plain {kind} `{first}`{more} "
                     f"{'are' if n_held > 1 else 'is'} not registered in {model}: {share}, never trained or saved")
        elif built:
            title = (f"{model}'s forward pass builds a new {built[0].type} in `{built[0].caller}` at every step: "
                     f"{share}, random each time and never trained")
        else:
            title = (f"{len(loose)} layer{'s' if len(loose) > 1 else ''} used in {model}'s forward pass "
                     f"{'are' if len(loose) > 1 else 'is'} not registered in it: {share}, never trained or saved")
        for holder, items in holders.items():
            parts.append(f"`{holder}` holds {', '.join(f'{la.where} ({la.type}, {la.params:,} weights)' for la in items[:6])}"
                         f"{' ...' if len(items) > 6 else ''} in a plain Python container")
        for la in built:
            parts.append(f"`{la.caller}`'s forward() builds a new {la.type} ({la.params:,} weights) at each call"
                         + (f", stored in `{la.where}`" if la.where else ""))
        for la in loose:
            parts.append(f"{la.type} ({la.params:,} weights) called from `{la.caller}` is held by no attribute of "
                         "the model (a global, an argument, or built in forward())")
        description = (
            f"{'; '.join(parts)}. They run in the forward pass and get gradients, but they are not submodules of "
            f"{model}, so they are not in model.parameters(): the optimizer never updates them (they keep their "
            "random initial weights, and the model that trains is not the one you wrote), model.to(device) does "
            "not move them, state_dict() does not save them (a reloaded model gets new random weights there), "
            "train()/eval() do not reach them, and zero_grad() never clears their gradients, which pile up "
            "step after step."
            + (" It is a whole model, not a layer: if it is a teacher or a frozen copy kept out of the model "
               "on purpose, call it under torch.no_grad() (or give it requires_grad_(False)) so that no gradient is "
               "computed for it; if it should train, register it." if aside else "")
        )
        code = [_container_fix(h, items) for h, items in holders.items()]
        for la in built + loose:
            code.append(f"self.layer = nn.{la.type}(...)   # in {la.caller}.__init__, then self.layer(x) in forward(): "
                        "built once, registered")
        code.append(optimizer_ctor(ctx, note="built after: it now holds them") if ctx.record.events("optimizer") else
                    "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)   # built after: it now holds them")
        code.append("print(sum(p.numel() for p in model.parameters()))   # now counts those layers")
        fix = ("Hold the layers in nn.ModuleList / nn.ModuleDict (or assign each to an attribute) and build every "
               "layer in __init__, then build the optimizer from model.parameters(). Checkpoints saved so far lack them.")
        location = next(iter(holders), None) or (built or loose)[0].caller
        return self.finding(
            severity=severity, confidence=0.95, title=title, description=description, location=location,
            step=min(la.step for la in layers),
            evidence={"model": model, "modules": [la.where or la.caller for la in layers][:20],
                      "holders": list(holders)[:20], "built_in_forward": [la.caller for la in built][:20],
                      "types": sorted({la.type for la in layers}), "numel": numel, "fraction_of_weights": fraction,
                      "problem": "used in forward() but not registered"},
            recommendations=[Recommendation("fix", fix, "\n".join(code))],
        )
