"""Multiply-accumulates of the compute nodes, with shapes resolved from concrete input shapes.

onnx's shape inference loses dimensions that go through computed shapes (attention's
Reshape(Concat(Shape(x), ...)) gives `unk__` dims), which once left every attention MatMul of a
BERT uncounted. Shapes are resolved in two passes: onnx's inference with data propagation on the
model with concrete input shapes, then onnxruntime's symbolic shape inference (it evaluates shape
arithmetic) for whatever is still unknown. A compute node that still cannot be counted is listed
with the reason, never silently left out.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from .graph import GraphIndex, Shape, infer_types

__all__ = ["COMPUTE_OPS", "count_macs", "node_macs", "resolve_shapes"]

log = logging.getLogger("modeldebug.onnx")

#: Ops that do most of a model's arithmetic; each is counted or listed as not counted.
COMPUTE_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum", "MatMulInteger", "QLinearMatMul", "QLinearConv",
               "ConvInteger", "LSTM", "GRU", "RNN", "Attention", "MultiHeadAttention", "FusedMatMul", "FusedConv",
               "FusedGemm"}
#: ops whose output shape depends on the values they read: no shape inference can know it
_DATA_SHAPED = {"NonZero", "Unique", "Compress", "NonMaxSuppression", "Loop", "StringSplit"}
_MATMUL = {"MatMul", "MatMulInteger", "FusedMatMul"}
_CONV = {"Conv", "ConvInteger", "FusedConv"}


def _known(shape: Shape | None) -> bool:
    return shape is not None and all(isinstance(d, int) and d >= 0 for d in shape)


def _unknown(node: Any, shapes: dict[str, Shape], names: list[str]) -> str | None:
    for name in names:
        shape = shapes.get(name)
        if shape is None:
            return f"the shape of {name!r} is unknown after shape inference"
        if not _known(shape):
            return f"{name!r} has shape {shape} after shape inference (symbolic or unknown dimensions)"
    return None


def node_macs(node: Any, shapes: dict[str, Shape]) -> tuple[int | None, str | None]:
    """(MACs, None) for a compute node whose shapes are known, else (None, why it was not counted)."""
    op = node.op_type
    ins = [shapes.get(n) for n in node.input]
    out_name = node.output[0] if node.output else ""
    out = shapes.get(out_name)
    if op in _CONV or op == "QLinearConv":
        x, w = (node.input[0], node.input[3]) if op == "QLinearConv" else (node.input[0], node.input[1])
        why = _unknown(node, shapes, [x, w, out_name])
        if why:
            return None, why
        wshape = shapes[w]
        return math.prod(shapes[out_name]) * wshape[1] * math.prod(wshape[2:]), None
    if op == "ConvTranspose":
        why = _unknown(node, shapes, node.input[:2])
        if why:
            return None, why
        return math.prod(ins[0]) * ins[1][1] * math.prod(ins[1][2:]), None  # each input element scatters
    if op in ("Gemm", "FusedGemm"):
        why = _unknown(node, shapes, [node.input[0], out_name])
        if why:
            return None, why
        trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
        return math.prod(out) * (ins[0][0] if trans_a else ins[0][1]), None
    if op in _MATMUL or op == "QLinearMatMul":
        a = node.input[0]
        why = _unknown(node, shapes, [a, out_name])
        if why:
            return None, why
        return math.prod(out) * (shapes[a][-1] if shapes[a] else 1), None
    if op == "Einsum":
        return _einsum(node, shapes)
    if op in ("LSTM", "GRU", "RNN"):
        why = _unknown(node, shapes, node.input[:3])
        if why:
            return None, why
        (seq, batch, _), (dirs, gates_h, inp) = ins[0], ins[1]
        hidden = ins[2][2]
        return seq * batch * dirs * gates_h * (inp + hidden), None  # gates_h = gates x hidden
    return None, f"{op} is not modelled (its MACs depend on attributes this count does not read)"


def _einsum(node: Any, shapes: dict[str, Shape]) -> tuple[int | None, str | None]:
    eq = next((a.s.decode() for a in node.attribute if a.name == "equation"), "").replace(" ", "")
    lhs = eq.split("->")[0].split(",")
    why = _unknown(node, shapes, list(node.input))
    if why:
        return None, why
    if "." in eq or len(lhs) != len(node.input):
        return None, f"Einsum {eq!r} with an ellipsis is not modelled"
    sizes: dict[str, int] = {}
    for term, name in zip(lhs, node.input):
        for letter, size in zip(term, shapes[name]):
            sizes[letter] = max(sizes.get(letter, 1), size)
    return math.prod(sizes.values()), None  # one multiply-add per point of the full index space


def _symbolic(proto: Any, concrete: dict[str, list[int]]) -> dict[str, Shape]:
    """Shapes from onnxruntime's symbolic shape inference on the model with concrete input shapes."""
    import onnx

    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    except ImportError:  # pragma: no cover - shipped with onnxruntime
        return {}
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    del model.graph.value_info[:]
    for inp in model.graph.input:
        if inp.name in concrete and inp.type.HasField("tensor_type"):
            shape = inp.type.tensor_type.shape
            del shape.dim[:]
            for size in concrete[inp.name]:
                shape.dim.add().dim_value = int(size)
    root = logging.getLogger()
    level = root.level
    try:
        root.setLevel(logging.CRITICAL)  # it logs every op it cannot handle, at warning level
        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=True)
    except Exception as exc:  # an op it does not know: keep what onnx's inference found
        log.info("modeldebug: symbolic shape inference failed: %s", exc)
        return {}
    finally:
        root.setLevel(level)
    out: dict[str, Shape] = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.output]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            out[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                            for d in vi.type.tensor_type.shape.dim]
    return out


def resolve_shapes(proto: Any, g: GraphIndex,
                   concrete: dict[str, list[int]]) -> tuple[dict[str, Any], dict[str, Shape]]:
    """(types, shapes) with input shapes fixed to `concrete`; onnxruntime's symbolic inference fills
    in what onnx's could not for the inputs of compute nodes."""
    types = infer_types(proto, concrete) if concrete else infer_types(proto)
    shapes: dict[str, Shape] = {k: v[1] for k, v in types.items()}
    needed = {n for i in g.order if g.nodes[i].op_type in COMPUTE_OPS for n in [*g.nodes[i].input, *g.nodes[i].output]}
    if any(n and not _known(shapes.get(n)) for n in needed):
        for name, shape in _symbolic(proto, concrete).items():
            if not _known(shapes.get(name)) and _known(shape):
                shapes[name] = shape
    return types, shapes


def count_macs(g: GraphIndex, shapes: dict[str, Shape]) -> tuple[dict[int, int], list[dict[str, str]]]:
    """(MACs per node index, the compute nodes that could not be counted and why)."""
    counted: dict[int, int] = {}
    missing: list[dict[str, str]] = []
    for i in g.order:
        node = g.nodes[i]
        if node.op_type not in COMPUTE_OPS:
            continue
        macs, why = node_macs(node, shapes)
        if macs is not None:
            counted[i] = macs
            continue
        data = [j for j in g.ancestors(list(node.input)) if g.nodes[j].op_type in _DATA_SHAPED]
        if data:
            why = f"{why}: its size depends on the data ({g.nodes[data[0]].op_type} {g.label(data[0])})"
        missing.append({"node": g.label(i), "op_type": node.op_type, "reason": re.sub(r"\s+", " ", why or "")})
    return counted, missing
