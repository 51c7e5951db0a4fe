"""Graph bookkeeping shared by the checks: producers, consumers, order, constants, shapes, scopes.

Node inputs include the outer-scope values that If/Loop/Scan bodies read ("implicit inputs"), so
reachability and subgraph extraction see every real dependency.
"""

from __future__ import annotations

from collections import deque
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx

__all__ = ["GraphIndex", "Shape", "infer_types", "module_scope", "node_label", "shape_of"]

#: A tensor shape: ints for known dims, strings for symbolic ones, None for unknown.
Shape = list[int | str | None]


def _subgraph_free_names(graph: Any) -> set[str]:
    """Names a subgraph reads from its enclosing scopes."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    free: set[str] = set()
    for node in graph.node:
        for name in node.input:
            if name and name not in defined:
                free.add(name)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                free |= {n for n in _subgraph_free_names(sub) if n not in defined}
        defined.update(node.output)
    return free


def node_label(node: Any, index: int) -> str:
    """A node's name, or `op_type#index` for an unnamed one."""
    return node.name or f"{node.op_type}#{index}"


def module_scope(node: Any) -> str | None:
    """The PyTorch module path a node came from, when the exporter recorded it.

    The torch.export-based exporter stores ``pkg.torch.onnx.name_scopes`` (a list whose last but one
    entry is the module's qualified name); the TorchScript exporter names nodes ``/enc/layer.0/Conv``.
    """
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                import ast

                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            return str(scopes[-2]) if isinstance(scopes, list) and len(scopes) >= 2 else ""
    if node.name.startswith("/"):
        # TorchScript scopes give a child of a container by its qualified name (`/features/features.0/conv/Conv`
        # is module `features.0.conv`): a part that extends the path so far replaces it.
        path = ""
        for part in [p for p in node.name.split("/") if p][:-1]:
            path = part if not path or part.startswith(path + ".") else f"{path}.{part}"
        return path
    return None


class GraphIndex:
    """Lookups over one (top-level) graph."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.nodes = list(graph.node)
        self.initializers = {t.name: t for t in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in self.initializers]
        self.output_names = [o.name for o in graph.output]
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        for i, node in enumerate(self.nodes):
            for name in node.output:
                if name:
                    self.producer[name] = i
            for name in self.inputs_of(i):
                self.consumers.setdefault(name, []).append(i)

    def inputs_of(self, i: int) -> list[str]:
        """Explicit inputs of node i, then the outer-scope names its subgraphs read."""
        node = self.nodes[i]
        names = [n for n in node.input if n]
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                names += sorted(_subgraph_free_names(sub) - set(names))
        return names

    def label(self, i: int) -> str:
        return node_label(self.nodes[i], i)

    @cached_property
    def order(self) -> list[int]:
        """Node indices in topological order (file order where it is already valid)."""
        known = set(self.initializers) | {i.name for i in self.graph.input}
        indeg = [sum(1 for n in set(self.inputs_of(i)) if n in self.producer and n not in known)
                 for i in range(len(self.nodes))]
        ready = deque(i for i, d in enumerate(indeg) if d == 0)
        out: list[int] = []
        while ready:
            i = ready.popleft()
            out.append(i)
            for name in self.nodes[i].output:
                for j in sorted(set(self.consumers.get(name, []))):
                    indeg[j] -= 1
                    if indeg[j] == 0:
                        ready.append(j)
        if len(out) < len(self.nodes):  # a cycle: keep file order for the rest
            seen = set(out)
            out += [i for i in range(len(self.nodes)) if i not in seen]
        return out

    def ancestors(self, names: list[str]) -> set[int]:
        """Indices of every node that some of `names` depends on (the producers included)."""
        todo = [self.producer[n] for n in names if n in self.producer]
        seen: set[int] = set()
        while todo:
            i = todo.pop()
            if i in seen:
                continue
            seen.add(i)
            todo += [self.producer[n] for n in self.inputs_of(i) if n in self.producer]
        return seen

    def descendants(self, names: list[str]) -> set[int]:
        """Indices of every node that depends on some of `names`."""
        todo = [j for n in names for j in self.consumers.get(n, [])]
        seen: set[int] = set()
        while todo:
            i = todo.pop()
            if i in seen:
                continue
            seen.add(i)
            todo += [j for n in self.nodes[i].output for j in self.consumers.get(n, [])]
        return seen

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or a Constant node's output, else None."""
        from onnx import numpy_helper

        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        i = self.producer.get(name)
        if i is None or self.nodes[i].op_type != "Constant":
            return None
        for attr in self.nodes[i].attribute:
            if attr.name == "value":
                return numpy_helper.to_array(attr.t)
            if attr.name in ("value_ints", "value_int"):
                return np.array(attr.ints if attr.name == "value_ints" else attr.i, dtype=np.int64)
            if attr.name in ("value_floats", "value_float"):
                return np.array(attr.floats if attr.name == "value_floats" else attr.f, dtype=np.float32)
        return None


def shape_of(type_proto: Any) -> tuple[int, Shape] | None:
    """(elem_type, shape) of a tensor TypeProto, or None when it is not a tensor with a known rank."""
    if not type_proto.HasField("tensor_type"):
        return None
    tt = type_proto.tensor_type
    if not tt.HasField("shape"):
        return (tt.elem_type, [])
    dims: Shape = []
    for d in tt.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
    return (tt.elem_type, dims)


def infer_types(proto: onnx.ModelProto, concrete: dict[str, list[int]] | None = None) -> dict[str, tuple[int, Shape]]:
    """Element type and shape of every value shape inference can reach (non-strict; never raises).

    `concrete` fixes graph input shapes first (e.g. symbolic batch -> 1) so that downstream shapes,
    and FLOPs, come out as numbers.
    """
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    del model.graph.value_info[:]  # recompute: exporters store shapes of the export example, stale once edited
    for inp in model.graph.input:
        if concrete and inp.name in concrete and inp.type.HasField("tensor_type"):
            shape = inp.type.tensor_type.shape
            del shape.dim[:]
            for size in concrete[inp.name]:
                shape.dim.add().dim_value = int(size)
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # inference problems are reported by `check`; here we take what we get
        pass
    out: dict[str, tuple[int, Shape]] = {}
    for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        got = shape_of(vi.type)
        if got is not None and got[0]:
            out[vi.name] = got
    for t in model.graph.initializer:
        out[t.name] = (t.data_type, list(t.dims))
    return out
