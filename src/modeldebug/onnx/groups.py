"""Module groups: which PyTorch modules the nodes of an ONNX graph compute.

Exporters do not keep one node group per module. Both of torch's exporters fold an eval-mode
BatchNorm into the Conv (or Linear) before it: the TorchScript-based one names the fused node after
the Conv (`/c1/Conv`), the torch.export-based one after the BatchNorm (`node_Conv_23` in scope
`b1`). One module can also become many nodes (attention, LayerNorm before opset 17).

A module that was called but has no node in its scope, and is not an identity at inference
(Dropout, Identity), was fused: it joins the group of the module whose output it read or, when no
module fed it, the group of the module that read its output. A group is compared at its boundary:
the value leaving the scope of its member that has nodes (its anchor) is compared with the output
of the group's LAST module, never with a module inside the fusion. Nodes outside every called
module's scope with no exporter record of their op have no PyTorch counterpart, and are listed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .graph import GraphIndex, module_scope

__all__ = ["Grouping", "ModuleCall", "ModuleGroup", "expected_params", "group_modules"]

_IDENTITY_TYPES = {"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout", "Identity"}
_BATCHNORM = {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm"}
#: the ONNX op a fused module type would have had as a node of its own
_OWN_OP = dict.fromkeys(_BATCHNORM, "BatchNormalization")


@dataclass
class ModuleCall:
    """One call of a module in the reference forward pass: which tensors it read and returned."""

    name: str
    type_name: str
    inputs: list[int]
    outputs: list[int]
    arrays: list[np.ndarray]
    leaf: bool
    module: Any = field(default=None, repr=False)


@dataclass
class ModuleGroup:
    """Modules computed together by the nodes in the scope of `anchor` (the member that has nodes)."""

    anchor: str
    modules: list[str]
    nodes: list[str] = field(default_factory=list)
    kind: str = "module"  # module | fusion | decomposition
    note: str = ""

    @property
    def name(self) -> str:
        return "+".join(self.modules)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "modules": self.modules, "anchor": self.anchor, "kind": self.kind,
                "nodes": self.nodes[:50], "note": self.note}


@dataclass
class Grouping:
    """How the graph's nodes map to the modules PyTorch called."""

    groups: dict[str, ModuleGroup] = field(default_factory=dict)
    chain_end: dict[str, str] = field(default_factory=dict)
    identities: list[str] = field(default_factory=list)
    unplaced: list[str] = field(default_factory=list)
    no_counterpart: list[str] = field(default_factory=list)
    node_anchor: dict[int, str] = field(default_factory=dict)
    scoped: bool = False

    def group_of(self, i: int) -> ModuleGroup | None:
        """The group whose anchor is the deepest called module holding node i."""
        anchor = self.node_anchor.get(i)
        return self.groups.get(anchor) if anchor is not None else None

    def source(self, module: str) -> str:
        """How a reference taken at `module`'s scope exit is labelled."""
        group = self.groups.get(module)
        if group is not None and group.kind == "fusion":
            return f"modules {group.name} (fused)"
        return f"module {module}"

    def to_dict(self) -> dict[str, Any]:
        listed = [gr for gr in self.groups.values() if gr.nodes]
        return {"scoped": self.scoped, "groups": [gr.to_dict() for gr in listed],
                "fusions": [gr.name for gr in listed if gr.kind == "fusion"],
                "decompositions": [gr.name for gr in listed if gr.kind == "decomposition"],
                "identities": self.identities, "unplaced": self.unplaced,
                "no_counterpart": self.no_counterpart[:100], "no_counterpart_count": len(self.no_counterpart)}


def _covering(scope: str | None, anchors: set[str]) -> str | None:
    """The deepest anchor that is `scope` or one of its parents."""
    if scope is None:
        return None
    parts = scope.split(".") if scope else []
    for k in range(len(parts), -1, -1):
        name = ".".join(parts[:k])
        if name in anchors:
            return name
    return None


def group_modules(g: GraphIndex, calls: dict[str, list[ModuleCall]], recorded: set[int]) -> Grouping:
    """Group the modules called once (in call order, as `calls` holds them) with the nodes they became.

    `recorded`: indices of nodes the exporter recorded an op for (they have an op-level counterpart).
    """
    scopes = {i: module_scope(n) for i, n in enumerate(g.nodes)}
    out = Grouping(scoped=any(s for s in scopes.values()))
    prefixes = {""} if any(s == "" for s in scopes.values()) else set()
    for s in scopes.values():
        parts = s.split(".") if s else []
        prefixes.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
    once = {name: c[0] for name, c in calls.items() if len(c) == 1}
    anchors = {name for name in once if name in prefixes} | ({""} if "" in prefixes else set())
    for i in g.order:
        anchor = _covering(scopes[i], anchors)
        if anchor is not None:
            out.node_anchor[i] = anchor
    by_anchor: dict[str, list[int]] = {}
    for i, a in out.node_anchor.items():
        by_anchor.setdefault(a, []).append(i)
    position = {name: k for k, name in enumerate(once)}
    for a in sorted(anchors, key=lambda n: position.get(n, -1)):
        out.groups[a] = ModuleGroup(a, [a] if a else ["(model)"], [g.label(i) for i in by_anchor.get(a, [])])
    called = set(calls)
    out.no_counterpart = [g.label(i) for i in g.order if g.nodes[i].op_type != "Constant" and i not in recorded
                          and (scopes[i] is None or scopes[i] == "" or _covering(scopes[i], called) is None)]
    if not out.scoped:
        return out
    _merge_vanished(g, once, prefixes, scopes, out)
    for gr in out.groups.values():
        if gr.kind == "fusion":
            continue
        ops = [g.nodes[i].op_type for i in by_anchor.get(gr.anchor, []) if g.nodes[i].op_type != "Constant"]
        inner = any(k.startswith(gr.anchor + ".") for k in calls)  # its children ran as modules of their own
        if gr.anchor and len(ops) > 1 and gr.anchor in once and not inner:
            gr.kind = "decomposition"
            top = ", ".join(f"{op} {n}" for op, n in Counter(ops).most_common(4))
            gr.note = f"{once[gr.anchor].type_name} {gr.anchor} became {len(ops)} nodes ({top})"
    return out


def _merge_vanished(g: GraphIndex, once: dict[str, ModuleCall], prefixes: set[str], scopes: dict[int, str | None],
                    out: Grouping) -> None:
    producer: dict[int, str] = {}  # tensor id -> the innermost module that returned it (it returns first)
    readers: dict[int, list[str]] = {}
    for c in once.values():
        for t in c.outputs:
            producer.setdefault(t, c.name)
        if c.leaf:
            for t in c.inputs:
                readers.setdefault(t, []).append(c.name)
    member_of = {a: a for a in out.groups}
    unscoped_ops = {g.nodes[i].op_type for i, s in scopes.items() if not s}
    for c in once.values():
        if not c.leaf or c.name in prefixes or not c.outputs:
            continue
        if c.type_name in _IDENTITY_TYPES or set(c.outputs) & set(c.inputs):
            out.identities.append(c.name)
            continue
        source = producer.get(c.inputs[0]) if len(c.inputs) == 1 else None
        back = member_of.get(source) if source is not None else None
        if back is not None and (out.chain_end.get(back, back) != source or _OWN_OP.get(c.type_name) in unscoped_ops):
            back = None  # it reads from inside a group, or the graph computes it with a node of its own
        reader = next((r for t in c.outputs for r in readers.get(t, []) if r in member_of), None)
        forward = member_of.get(reader) if reader is not None else None
        # a BatchNorm folds into what came before it; a Conv/Linear the exporter named after the BatchNorm
        # that follows it folds forward into it
        if forward is not None and (back is None or (c.type_name not in _BATCHNORM and once[reader].type_name
                                                     in _BATCHNORM)):
            anchor = forward
            mods = out.groups[anchor].modules
            mods.insert(mods.index(reader), c.name)
        elif back is not None:
            anchor = back
            out.groups[anchor].modules.append(c.name)
            out.chain_end[anchor] = c.name
        else:
            out.unplaced.append(c.name)
            continue
        member_of[c.name] = anchor
        gr = out.groups[anchor]
        gr.kind = "fusion"
        nodes = ", ".join(gr.nodes[:2]) or "no node"
        gr.note = (" + ".join(f"{once[m].type_name} {m}" if m in once else "the model's own code" for m in gr.modules)
                   + f" computed together by ONNX {nodes} (the exporter fused them)")


def expected_params(group: ModuleGroup, once: dict[str, ModuleCall]) -> list[tuple[str, np.ndarray]]:
    """(label, array) of the weight and bias the group's fused node should hold: a Conv's or Linear's
    parameters with every BatchNorm after it in the group folded in. Empty when the group has none."""
    mods = [once[m] for m in group.modules if m in once]
    base = next((c for c in mods if c.type_name in ("Conv1d", "Conv2d", "Conv3d", "Linear")), None)
    if base is None or base.module is None:
        return []
    w = base.module.weight.detach().double().cpu().numpy()
    b = base.module.bias.detach().double().cpu().numpy() if base.module.bias is not None else np.zeros(w.shape[0])
    label = base.name
    for c in mods[mods.index(base) + 1:]:
        if c.type_name not in _BATCHNORM or c.module is None or c.module.running_var is None:
            continue
        bn = c.module
        scale = 1.0 / np.sqrt(bn.running_var.detach().double().cpu().numpy() + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.detach().double().cpu().numpy()
        shift = bn.bias.detach().double().cpu().numpy() if bn.bias is not None else 0.0
        if scale.shape[0] != w.shape[0]:
            return []
        w = w * scale.reshape(-1, *([1] * (w.ndim - 1)))
        b = (b - bn.running_mean.detach().double().cpu().numpy()) * scale + shift
        label += f"+{c.name}"
    folded = label != base.name
    return [(f"{base.name}.weight" + (f" folded with {label.split('+', 1)[1]}" if folded else ""), w),
            (f"{base.name}.bias" + (f" folded with {label.split('+', 1)[1]}" if folded else ""), b)]
