"""PyTorch reference values for ONNX values, matched by what the exporter recorded.

Three sources, most precise first:

- ops: the torch.export-based exporter names ONNX values after the FX nodes they come from and
  stores the FX node in ``pkg.torch.onnx.fx_node``. The model is exported again with
  ``torch.export`` and run node by node; a value is matched when the FX node has the same name AND
  the same target, and the same shape.
- modules: every module's output (forward hooks), matched to the value that leaves the module's
  scope (``pkg.torch.onnx.name_scopes`` or TorchScript-style ``/enc/layer.0/Conv`` node names).
  Modules the exporter fused (a BatchNorm folded into the Conv before it) are grouped
  (``groups``): the fused node's value is compared with the output of the group's last module.
- outputs: the model's outputs, in order, to the graph outputs.

The user's model is never changed: its train/eval flags are restored and every hook removed in
``finally``.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import BadInputError
from .graph import GraphIndex, module_scope
from .groups import Grouping, ModuleCall, group_modules

__all__ = ["TorchFailedError", "TorchReference", "flatten_outputs", "torch_reference"]

log = logging.getLogger("modeldebug.onnx")


class TorchFailedError(BadInputError):
    """The PyTorch model raised on the inputs."""


@dataclass
class TorchReference:
    """Reference arrays for ONNX values: `values[name]` and where each came from (`sources[name]`)."""

    outputs: list[np.ndarray]
    values: dict[str, np.ndarray] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    state: dict[str, np.ndarray] = field(default_factory=dict)
    op_level: bool = False
    grouping: Grouping = field(default_factory=Grouping)
    calls: dict[str, ModuleCall] = field(default_factory=dict, repr=False)


def flatten_outputs(out: Any) -> list[Any]:
    """Tensors of a forward's result in order: tensor, tuple/list, dict values, dataclass-like."""
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for v in out.values() for t in flatten_outputs(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in flatten_outputs(v)]
    return []


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence torch.export / exporter warnings and log chatter: they are not the user's concern here."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _exported_graph(model: Any, args: tuple[Any, ...], dynamic: list[dict[int, str]]) -> tuple[Any, bool]:
    """(program, replicated): the FX graph the exporter translated, decomposed the same way
    (replicated=True), or else torch.export's own undecomposed graph."""
    import torch

    shapes = tuple(dynamic) if any(dynamic) else None
    try:
        with _quiet():
            prog = torch.onnx.export(model, args, dynamo=True, dynamic_shapes=shapes, optimize=False, verbose=False)
        return prog.exported_program, True
    except Exception as exc:  # fall back to the undecomposed graph: fewer names will match
        log.info("modeldebug: re-export failed (%s: %s); matching against torch.export", type(exc).__name__, exc)
    auto = tuple({a: torch.export.Dim.AUTO for a in d} for d in dynamic) if shapes else None
    with _quiet():
        return torch.export.export(model, args, dynamic_shapes=auto, strict=False), False


def _fx_values(model: Any, args: tuple[Any, ...], dynamic: list[dict[int, str]],
               recorded: dict[str, str]) -> dict[str, Any]:
    """FX node name -> tensor, for the FX nodes that are provably the ones the ONNX file recorded.

    A node is trusted when its printed form (name, op, arguments) equals the exporter's record
    (``recorded``) and every node it reads is trusted too. In a graph decomposed the way the
    exporter does, a node the ONNX optimiser fused away has no record; it is trusted on its
    arguments alone (an ONNX value still named after it computes the same thing).
    """
    import torch

    try:
        ep, replicated = _exported_graph(model, args, dynamic)
        gm = ep.module()
    except Exception as exc:  # an untraceable model still gets module- and output-level references
        log.info("modeldebug: torch.export failed (%s: %s); comparing at module level", type(exc).__name__, exc)
        return {}
    matched: set[str] = set()
    for n in ep.graph.nodes:
        if n.op == "placeholder":
            matched.add(n.name)
            continue
        record = recorded.get(n.name)
        own = record == n.format_node() if record is not None else replicated
        if n.op == "call_function" and own and {a.name for a in n.all_input_nodes} <= matched:
            matched.add(n.name)
    values: dict[str, Any] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n: Any) -> Any:
            result = super().run_node(n)
            if n.name in matched and isinstance(result, torch.Tensor):
                values[n.name] = result
            return result

    try:
        with torch.no_grad(), _quiet():
            Recorder(gm).run(*args)
    except Exception as exc:
        log.info("modeldebug: running the exported graph failed (%s); comparing at module level", exc)
        return {}
    return values


def _recorded(node: Any) -> str | None:
    """The FX node the exporter recorded for an ONNX node (``pkg.torch.onnx.fx_node``)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.fx_node":
            return prop.value
    return None


def _scope_exits(g: GraphIndex) -> dict[str, list[str]]:
    """Module path -> values produced inside its scope and read outside it (or graph outputs)."""
    scopes = {i: module_scope(n) for i, n in enumerate(g.nodes)}
    inside: dict[str, set[int]] = {}
    for i, s in scopes.items():
        if not s:
            continue
        parts = s.split(".")
        for k in range(1, len(parts) + 1):
            inside.setdefault(".".join(parts[:k]), set()).add(i)
    outputs = set(g.output_names)
    position = {i: k for k, i in enumerate(g.order)}
    exits: dict[str, list[str]] = {}
    for mod, members in inside.items():
        for i in sorted(members, key=position.__getitem__):
            for v in g.nodes[i].output:
                readers = g.consumers.get(v, [])
                if v and (v in outputs or any(j not in members for j in readers)):
                    exits.setdefault(mod, []).append(v)
    return exits


def torch_reference(model: Any, feeds: dict[str, np.ndarray], g: GraphIndex, shapes: dict[str, tuple[int, ...]],
                    *, dynamic: list[dict[int, str]] | None = None, op_level: bool = True) -> TorchReference:
    """Run `model` (in eval mode, no grad) on `feeds` and match its values to ONNX values.

    `shapes` are the shapes onnxruntime produced; a match needs the same shape. `dynamic` gives,
    per input, the axes the ONNX model declares symbolic (re-exported the same way).
    """
    import torch

    args = tuple(torch.from_numpy(np.array(a, copy=True)) for a in feeds.values())  # the model may write to them
    flags = {m: m.training for m in model.modules()}
    calls: dict[str, list[ModuleCall]] = {}
    keep: list[Any] = []  # every tensor a hook saw stays alive, so that its id names it for the whole pass
    handles = []

    def hook(m: Any, i: Any, o: Any, name: str) -> None:
        ins, outs = flatten_outputs(i), flatten_outputs(o)
        keep.extend(ins + outs)
        calls.setdefault(name, []).append(ModuleCall(
            name, type(m).__name__, [id(t) for t in ins], [id(t) for t in outs],
            [_np(t) for t in outs], next(m.children(), None) is None, m))  # copied now: later in-place ops

    try:
        model.eval()
        for name, mod in model.named_modules():
            if name:
                handles.append(mod.register_forward_hook(lambda m, i, o, name=name: hook(m, i, o, name)))
        try:
            with torch.no_grad():
                out = model(*args)
        except Exception as exc:
            raise TorchFailedError(f"the PyTorch model failed on the inputs: {type(exc).__name__}: {exc}") from exc
        for h in handles:
            h.remove()
        handles.clear()
        keep.clear()
        recorded = {m[1]: r for n in g.nodes if (r := _recorded(n)) and (m := re.match(r"%(\w+)", r))}
        fx = _fx_values(model, args, dynamic or [{} for _ in args], recorded) if op_level and recorded else {}
        state = {k: _np(v) for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    finally:
        for h in handles:
            h.remove()
        for m, training in flags.items():
            m.train(training)
    outputs = [_np(t) for t in flatten_outputs(out)]
    recorded_nodes = {i for i, n in enumerate(g.nodes) if _recorded(n)}
    grouping = group_modules(g, calls, recorded_nodes)
    ref = TorchReference(outputs, state=state, op_level=bool(fx), grouping=grouping,
                         calls={k: v[0] for k, v in calls.items() if len(v) == 1})
    for node in g.nodes:  # op level: the value named after a proven FX node
        for v in node.output:
            if v in fx and tuple(fx[v].shape) == shapes.get(v):
                target = re.search(r"target=([\w.:]+)", recorded.get(v, ""))
                ref.values[v], ref.sources[v] = _np(fx[v]), f"op {v}" + (f" ({target[1]})" if target else "")
    for mod, exits in _scope_exits(g).items():  # module level: the one exit value whose shape matches
        last = grouping.chain_end.get(mod, mod)  # a fused group leaves the scope with its last module's output
        if len(calls.get(mod, [])) != 1 or len(calls.get(last, [])) != 1:
            continue  # not called, or called several times: its values are ambiguous
        for t in calls[last][0].arrays:
            hits = [v for v in exits if shapes.get(v) == tuple(t.shape)]
            if len(hits) == 1 and hits[0] not in ref.values:
                ref.values[hits[0]], ref.sources[hits[0]] = t, grouping.source(mod)
    for v, arr in zip(g.output_names, outputs):
        if shapes.get(v) == arr.shape:
            ref.values[v] = arr
            ref.sources.setdefault(v, "model output")
    return ref
