"""Running parts of a graph: every intermediate at once, and one node group alone on chosen inputs.

``run_all`` exposes every top-level value as an output in ONE onnxruntime run with graph
optimisations off (so the values survive fusion). ``segment`` is the smallest set of nodes that
computes a value from values that have a reference (or are inputs/initializers); ``extract``
makes it a standalone model, which ``run_ort`` / ``run_reference`` execute on given inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .graph import GraphIndex
from .load import LoadedModel
from .runtime import make_session, run_session

__all__ = ["boundary", "extract", "run_all", "run_ort", "run_reference", "segment"]


def run_all(model: LoadedModel, g: GraphIndex, feeds: dict[str, np.ndarray],
            providers: list[str] | None = None) -> dict[str, np.ndarray]:
    """Every top-level node output (and the graph inputs) from one onnxruntime run, optimisations off."""
    import onnx

    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    have = {o.name for o in proto.graph.output}
    for i in g.order:
        for name in g.nodes[i].output:
            if name and name not in have:
                proto.graph.output.append(onnx.ValueInfoProto(name=name))  # untyped: onnxruntime accepts it
                have.add(name)
    sess = make_session(proto.SerializeToString(), level="disable", threads=1, providers=providers,
                        source=model.source)
    names = [o.name for o in sess.get_outputs()]
    values = dict(zip(names, run_session(sess, feeds, names)))
    values.update(feeds)
    return values


def segment(g: GraphIndex, value: str, stops: set[str]) -> list[int]:
    """Nodes (topological order) that compute `value` from `stops`, graph inputs and initializers."""
    start = g.producer.get(value)
    if start is None:
        return []
    keep, todo = set(), [start]
    while todo:
        i = todo.pop()
        if i in keep:
            continue
        keep.add(i)
        for name in g.inputs_of(i):
            if name in stops or name in g.initializers or name not in g.producer:
                continue
            todo.append(g.producer[name])
    return [i for i in g.order if i in keep]


def boundary(g: GraphIndex, nodes: list[int]) -> list[str]:
    """Values the nodes read that none of them produce, initializers excluded."""
    made = {o for i in nodes for o in g.nodes[i].output}
    seen: list[str] = []
    for i in nodes:
        for name in g.inputs_of(i):
            if name not in made and name not in g.initializers and name not in seen:
                seen.append(name)
    return seen


def extract(model: LoadedModel, g: GraphIndex, nodes: list[int], outputs: list[str],
            feeds: dict[str, np.ndarray]) -> Any:
    """A standalone ModelProto of `nodes`: boundary values become typed inputs (from `feeds`)."""
    import onnx
    from onnx import helper

    src = model.proto
    inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(feeds[n].dtype), list(feeds[n].shape))
              for n in boundary(g, nodes)]
    used = {n for i in nodes for n in g.inputs_of(i)}
    inits = [g.initializers[n] for n in g.initializers if n in used]
    graph = helper.make_graph([g.nodes[i] for i in nodes], "modeldebug_repro", inputs,
                              [onnx.ValueInfoProto(name=o) for o in outputs], inits)
    sub = helper.make_model(graph, opset_imports=list(src.opset_import), ir_version=src.ir_version,
                            producer_name="modeldebug")
    sub.functions.extend(src.functions)
    return sub


def run_ort(sub: Any, feeds: dict[str, np.ndarray], providers: list[str] | None = None) -> list[np.ndarray]:
    """Run a standalone model with onnxruntime, optimisations off."""
    sess = make_session(sub.SerializeToString(), level="disable", threads=1, providers=providers)
    names = [i.name for i in sess.get_inputs()]
    return run_session(sess, {n: feeds[n] for n in names})


def run_reference(sub: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray] | None:
    """Run a standalone model with onnx.reference (the ONNX spec in numpy); None if it cannot."""
    import warnings

    from onnx.reference import ReferenceEvaluator

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy overflow warnings are the values under test
            ev = ReferenceEvaluator(sub)
            return [np.asarray(v) for v in ev.run(None, {i.name: feeds[i.name] for i in sub.graph.input})]
    except Exception:  # an operator onnx.reference does not implement: no third opinion
        return None
