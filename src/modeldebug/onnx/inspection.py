"""`modeldebug onnx inspect`: opsets, inputs and outputs, nodes, weights, and MACs/FLOPs.

MACs are counted for Conv, ConvTranspose, Gemm, MatMul, Einsum and the recurrent ops, with shapes
resolved from concrete input shapes (``macs``; FLOPs = 2 x MACs); symbolic dimensions are set to 1
unless shapes are given, and the result says so. A compute node that cannot be counted is listed
with the reason. The parameter count counts each floating-point initializer (or Constant) once,
however many nodes share it, and leaves out the ones no node reads.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from .feeds import check_shapes, given_symbols, input_specs
from .graph import GraphIndex, infer_types, module_scope
from .lint import tensor_nbytes
from .load import load_model
from .macs import count_macs, resolve_shapes

__all__ = ["Inspection", "NodeInfo", "inspect"]

_FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


@dataclass
class NodeInfo:
    """One node: name, op, inputs/outputs, the PyTorch module it came from, and its MACs if known."""

    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    module: str | None = None
    macs: int | None = None

    @property
    def flops(self) -> int | None:
        return None if self.macs is None else 2 * self.macs


@dataclass
class Inspection:
    """What a model contains; `to_text()` for people, `to_dict()` for JSON."""

    source: str
    ir_version: int
    producer: str
    opsets: dict[str, int]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    nodes: list[NodeInfo]
    op_counts: dict[str, int]
    initializers_by_dtype: dict[str, dict[str, int]]
    parameters: int
    parameter_bytes: int
    total_macs: int
    macs_by_op: dict[str, int]
    shapes_assumed: dict[str, list[int]]
    file_bytes: int
    findings: list[Any] = field(default_factory=list)
    uncounted: list[dict[str, str]] = field(default_factory=list)
    symbolic_set_to_one: list[str] = field(default_factory=list)

    @property
    def total_flops(self) -> int:
        return 2 * self.total_macs

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["nodes"] = [{**asdict(n), "flops": n.flops} for n in self.nodes]
        d["total_flops"] = self.total_flops
        d["findings"] = [f.to_dict() for f in self.findings]
        return d

    def to_text(self, *, max_nodes: int = 40, shape_advice: str = "--shape NAME=D0,D1,...") -> str:
        """`shape_advice`: how to give real sizes, from the command printing it (check has no --shape)."""
        def io(items: list[dict[str, Any]]) -> str:
            return "\n".join(f"  {i['name']}: {i['dtype']}{i['shape']}" for i in items) or "  (none)"

        lines = [f"{self.source}: IR {self.ir_version}, {self.producer or 'unknown producer'}, "
                 f"{_size(self.file_bytes)}",
                 "opsets: " + ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in self.opsets.items()),
                 "inputs:", io(self.inputs), "outputs:", io(self.outputs),
                 f"nodes: {len(self.nodes)} ({', '.join(f'{k} {v}' for k, v in list(self.op_counts.items())[:8])})",
                 f"parameters: {self.parameters:,} ({_size(self.parameter_bytes)})"]
        for dtype, s in self.initializers_by_dtype.items():
            lines.append(f"  {dtype}: {s['count']} initializers, {s['elements']:,} elements, {_size(s['bytes'])}")
        assumed = f" at {self.shapes_assumed}" if self.shapes_assumed else ""
        lines.append(f"compute{assumed}: {_count(self.total_macs)} MACs, {_count(self.total_flops)} FLOPs"
                     + (" (" + ", ".join(f"{k} {_count(v)}" for k, v in self.macs_by_op.items()) + ")"
                        if self.macs_by_op else ""))
        if self.symbolic_set_to_one:
            lines.append(f"  symbolic dimension(s) {', '.join(self.symbolic_set_to_one)} set to 1: give real sizes with "
                         + shape_advice)
        if self.uncounted:
            ops = Counter(u["op_type"] for u in self.uncounted)
            lines.append(f"  NOT counted: {len(self.uncounted)} compute node(s) ("
                         + ", ".join(f"{k} {v}" for k, v in ops.items()) + "), so the total is a lower bound:")
            for u in self.uncounted[:5]:
                lines.append(f"    {u['node']} ({u['op_type']}): {u['reason']}")
            if len(self.uncounted) > 5:
                lines.append(f"    ... {len(self.uncounted) - 5} more (use --json for all)")
        lines.append("nodes:")
        for n in self.nodes[:max_nodes]:
            macs = f"  {_count(n.macs)} MACs" if n.macs else ""
            mod = f"  [{n.module}]" if n.module else ""
            lines.append(f"  {n.name:<32} {n.op_type:<20}{macs}{mod}")
        if len(self.nodes) > max_nodes:
            lines.append(f"  ... {len(self.nodes) - max_nodes} more (use --json for all)")
        return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _count(n: int | None) -> str:
    if not n:
        return "0"
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def _known(shape: list[Any] | None) -> bool:
    return bool(shape) and all(isinstance(d, int) and d >= 0 for d in shape)


def inspect(model: Any, *, input_shapes: dict[str, list[int]] | None = None) -> Inspection:
    """Describe a model (path, bytes or ModelProto). `input_shapes` fixes input shapes for MACs."""
    loaded = load_model(model)
    proto = loaded.proto
    g = GraphIndex(proto.graph)
    from onnx.helper import tensor_dtype_to_np_dtype

    def dtype(elem: int) -> str:
        try:
            return str(tensor_dtype_to_np_dtype(elem))
        except (KeyError, TypeError, ValueError):
            return f"type{elem}"

    declared = infer_types(proto)
    io_in = [{"name": n, "dtype": dtype(declared[n][0]) if n in declared else "?",
              "shape": declared[n][1] if n in declared else None} for n in g.input_names]
    io_out = [{"name": n, "dtype": dtype(declared[n][0]) if n in declared else "?",
               "shape": declared[n][1] if n in declared else None} for n in g.output_names]
    symbols: dict[str, int] = {}
    if input_shapes:  # (input_specs refuses non-tensor inputs, which check and plain inspect describe)
        specs = input_specs(proto)
        check_shapes(specs, input_shapes)  # as profile and compare check them
        # a symbol that one input's --shape sets has that size in the other inputs too (`b` of x and of its mask)
        symbols = given_symbols(specs, input_shapes)
    assumed = dict(input_shapes or {})
    set_to_one: list[str] = []
    for item in io_in:
        if item["name"] not in assumed and item["shape"] and not _known(item["shape"]):
            assumed[item["name"]] = [d if isinstance(d, int) and d > 0 else symbols.get(d, 1) if isinstance(d, str)
                                     else 1 for d in item["shape"]]
            set_to_one += [f"{d}" if isinstance(d, str) else f"{item['name']}[{a}]"
                           for a, d in enumerate(item["shape"])
                           if not (isinstance(d, int) and d > 0) and not (isinstance(d, str) and d in symbols)]
    _, shapes = resolve_shapes(proto, g, assumed)
    counted, uncounted = count_macs(g, shapes)
    nodes, macs_by_op, total = [], Counter(), 0
    for i in g.order:
        node = g.nodes[i]
        macs = counted.get(i)
        if macs:
            macs_by_op[node.op_type] += macs
            total += macs
        nodes.append(NodeInfo(g.label(i), node.op_type, list(node.input), list(node.output), module_scope(node), macs))
    by_dtype: dict[str, dict[str, int]] = {}
    for t in g.initializers.values():
        s = by_dtype.setdefault(dtype(t.data_type), {"count": 0, "elements": 0, "bytes": 0})
        s["count"] += 1
        s["elements"] += math.prod(t.dims)
        s["bytes"] += tensor_nbytes(t)
    params = param_bytes = 0
    used = set(g.consumers)
    weights = [t for t in g.initializers.values() if t.name in used]
    weights += [a.t for i, n in enumerate(g.nodes) if n.op_type == "Constant" and n.output[0] in used
                for a in n.attribute if a.HasField("t")]
    for t in weights:
        if t.data_type in _FLOAT_TYPES:
            params += math.prod(t.dims)
            param_bytes += tensor_nbytes(t)
    return Inspection(
        source=loaded.source, ir_version=proto.ir_version,
        producer=f"{proto.producer_name} {proto.producer_version}".strip(),
        opsets={o.domain: o.version for o in proto.opset_import}, inputs=io_in, outputs=io_out, nodes=nodes,
        op_counts=dict(Counter(n.op_type for n in nodes).most_common()), initializers_by_dtype=by_dtype, parameters=params,
        parameter_bytes=param_bytes, total_macs=total, macs_by_op=dict(macs_by_op),
        shapes_assumed=assumed,
        file_bytes=loaded.size_bytes, uncounted=uncounted, symbolic_set_to_one=list(dict.fromkeys(set_to_one)))
