"""`modeldebug onnx check`: what onnx.checker and strict shape inference say, and what they miss.

Structure (ONX001-ONX009) is here; export hazards and the onnxruntime session checks (ONX010-ONX017)
are in ``hazards``. ``check`` runs both and returns findings, most severe first.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from ..rules.base import SEVERITY_ORDER, Finding, Recommendation
from .config import ONNXConfig
from .findings import finding
from .graph import GraphIndex
from .load import LoadedModel, load_model

__all__ = ["check", "structure_findings", "tensor_nbytes"]

_PLAIN = [  # (pattern in the checker's message, what it means)
    (r"is not output of any previous nodes|topologically sorted",
     "a node reads a value that no earlier node produces: the graph is not topologically sorted, or the "
     "producer of that value was removed"),
    (r"No Op registered|No opset import for domain|not a registered function",
     "an operator that is unknown at the opset (or domain) the model declares"),
    (r"Duplicate definition|single static assignment|SSA",
     "a value is defined twice; every value must have exactly one producer"),
    (r"Unrecognized attribute", "an attribute the operator does not have at this opset"),
    (r"Required attribute .* is missing|attribute .* is required", "a required attribute is missing"),
    (r"Field '(type|shape|elem_type)'.* is required", "a value declared without a type"),
    (r"ir_version|IR version", "the model's IR version is missing or invalid"),
]


# names every unnamed node and renames every repeat of a name already taken
_RENAME = ("taken = set()\n"
           "for i, n in enumerate(model.graph.node):\n"
           "    if not n.name or n.name in taken:\n"
           "        n.name = f'{n.name or n.op_type}_{i}'\n"
           "    taken.add(n.name)")


def tensor_nbytes(t: Any) -> int:
    """Bytes of a TensorProto's data, from its dims and type (without decoding it)."""
    from onnx.helper import tensor_dtype_to_np_dtype

    n = 1
    for d in t.dims:
        n *= int(d)
    try:
        return n * tensor_dtype_to_np_dtype(t.data_type).itemsize
    except (KeyError, TypeError, ValueError):
        return len(t.raw_data)


def _node_from_message(msg: str) -> str | None:
    m = re.search(r"Name: ?([^\s,)]*) OpType", msg) or re.search(r"node name: ?([^)\s,]+)", msg)
    return m[1] if m and m[1] else None


def _explain(msg: str) -> str:
    for pattern, plain in _PLAIN:
        if re.search(pattern, msg):
            return plain
    return "see the checker's message"


def _checker(model: LoadedModel, config: ONNXConfig) -> list[Finding]:
    import onnx

    first, code, plain = "", "ONX001", ""
    try:
        if model.path is not None and model.size_bytes > config.max_inline_bytes:
            onnx.checker.check_model(str(model.path), full_check=True)  # too large to check in memory
        else:
            onnx.checker.check_model(model.proto, full_check=True)
    except onnx.shape_inference.InferenceError as exc:
        first = str(exc)
        code, plain = "ONX002", "type or shape inference found a contradiction"
    except (onnx.checker.ValidationError, ValueError) as exc:
        first = str(exc)
        code, plain = "ONX001", _explain(first)
    if not first:
        try:
            onnx.shape_inference.infer_shapes(model.proto, check_type=True, strict_mode=True, data_prop=True)
            return []
        except onnx.shape_inference.InferenceError as exc:
            first, code, plain = str(exc), "ONX002", "type or shape inference found a contradiction"
        except ValueError:  # over 2 GB: the path-based checker above already covered it
            return []
    message = " ".join(first.split())
    where = _node_from_message(first)
    return [finding(code, severity="high", confidence=1.0,
                    title=f"{'onnx.checker rejects the model' if code == 'ONX001' else 'Strict shape inference fails'}: {plain}",
                    description=f"{message[:600]}", location=where, evidence={"message": message[:2000]},
                    recommendations=[Recommendation("fix", "Re-export from the framework rather than editing the graph; "
                                                    "then run `modeldebug onnx check` again (the checker stops at the first error).")])]


def _names(labels: list[str], limit: int = 20) -> str:
    more = f" and {len(labels) - limit} more" if len(labels) > limit else ""
    return ", ".join(labels[:limit]) + more


def structure_findings(model: LoadedModel, g: GraphIndex, config: ONNXConfig) -> list[Finding]:
    """Dead nodes, unused initializers and inputs, initializers as inputs, names, large constants, size."""
    out: list[Finding] = []
    live = g.ancestors(g.output_names)
    dead = [i for i in g.order if i not in live]
    if dead:
        labels = [g.label(i) for i in dead]
        out.append(finding("ONX003", severity="low", confidence=1.0,
                           title=f"{len(dead)} node(s) reach no graph output",
                           description=f"Dead nodes (no path to any output): {_names(labels)}. They cost load time and "
                           "memory and may mean an output is missing.", location=labels[0],
                           evidence={"dead_nodes": labels[:100], "count": len(dead),
                                     "ops": dict(Counter(g.nodes[i].op_type for i in dead))},
                           recommendations=[Recommendation("fix", "Remove them, or add the output that was meant to use them.",
                                                           "import onnx\nm = onnx.utils.extract_model(path, 'clean.onnx', "
                                                           "input_names, output_names)")]))
    used = set(g.consumers) | set(g.output_names)
    unused_inits = [n for n in g.initializers if n not in used]
    if unused_inits:
        nbytes = sum(tensor_nbytes(g.initializers[n]) for n in unused_inits)
        out.append(finding("ONX004", severity="low", confidence=1.0,
                           title=f"{len(unused_inits)} initializer(s) are never used ({nbytes:,} bytes)",
                           description=f"No node reads: {_names(unused_inits)}. They inflate the file; a weight that "
                           "should be used points to a layer missing from the graph.", location=unused_inits[0],
                           evidence={"initializers": unused_inits[:100], "bytes": nbytes},
                           recommendations=[Recommendation("fix", "Delete them from graph.initializer (or find the layer that "
                                                           "should read them).")]))
    unused_inputs = [n for n in g.input_names if n not in used]
    if unused_inputs:
        out.append(finding("ONX005", severity="medium", confidence=0.9,
                           title=f"Graph input(s) never used: {_names(unused_inputs, 5)}",
                           description="Callers must feed these inputs but the model ignores them; often an argument "
                           "the exported forward pass did not use.", location=unused_inputs[0],
                           evidence={"inputs": unused_inputs},
                           recommendations=[Recommendation("fix", "Remove the argument before exporting, or make sure the "
                                                           "model uses it.")]))
    both = [i.name for i in g.graph.input if i.name in g.initializers]
    if both and model.proto.ir_version >= 4:
        out.append(finding("ONX006", severity="low", confidence=1.0,
                           title=f"{len(both)} initializer(s) are also graph inputs",
                           description=f"{_names(both)} can be overridden by callers, which blocks constant folding "
                           "and fusions in runtimes.", location=both[0], evidence={"initializers": both[:100]},
                           recommendations=[Recommendation("fix", "Export without keep_initializers_as_inputs=True.")]))
    empty = [i for i, n in enumerate(g.nodes) if not n.name]
    dupes = {k: c for k, c in Counter(n.name for n in g.nodes if n.name).items() if c > 1}
    if empty or dupes:
        out.append(finding("ONX007", severity="low", confidence=1.0,
                           title=f"{len(empty)} unnamed node(s), {len(dupes)} duplicated name(s)",
                           description="Profiles, runtime errors and parity reports refer to nodes by name; these are "
                           f"ambiguous. Unnamed: {_names([g.label(i) for i in empty], 10) or 'none'}; duplicated: "
                           f"{_names(list(dupes), 10) or 'none'}.",
                           location=(g.label(empty[0]) if empty else next(iter(dupes))),
                           evidence={"unnamed": len(empty), "duplicates": dupes},
                           recommendations=[Recommendation("fix", "Give each node a unique name.", _RENAME)]))
    for i, node in enumerate(g.nodes):
        if node.op_type != "Constant":
            continue
        size = sum(tensor_nbytes(a.t) for a in node.attribute if a.HasField("t"))
        if size > config.large_constant_bytes:
            out.append(finding("ONX008", severity="low", confidence=1.0,
                               title=f"Constant node {g.label(i)} stores {size:,} bytes inline",
                               description="Large tensors in Constant nodes cannot go to external data and are copied "
                               "by graph transforms; they belong in initializers.", location=g.label(i),
                               evidence={"bytes": size, "threshold": config.large_constant_bytes},
                               recommendations=[Recommendation("optimization", "Move the tensor to an initializer "
                                                               "(onnxscript.optimizer does this).")]))
    inline = _inline_bytes(model)
    if inline > config.max_inline_bytes:
        out.append(finding("ONX009", severity="high", confidence=1.0,
                           title=f"{inline / 2**30:.2f} GiB of tensor data stored inside the protobuf",
                           description=f"Protobuf cannot serialise or parse more than 2 GB; this model keeps {inline:,} "
                           "bytes of tensors inline.", evidence={"inline_bytes": inline, "limit": config.max_inline_bytes},
                           recommendations=[Recommendation("fix", "Save with external data.",
                                                           "onnx.save_model(model, 'model.onnx', save_as_external_data=True, "
                                                           "location='model.onnx.data')")]))
    return out


def _inline_bytes(model: LoadedModel) -> int:
    """Tensor bytes the .onnx protobuf itself holds (external data, when the file used it, excluded)."""
    if model.external_data:
        return int(model.path.stat().st_size) if model.path is not None else 0
    from .load import iter_tensors

    return sum(tensor_nbytes(t) for t in iter_tensors(model.proto.graph))


def check(model: Any, config: ONNXConfig | None = None) -> list[Finding]:
    """Lint a model (path, bytes or ModelProto): checker, inference, structure and export hazards."""
    from .hazards import hazard_findings

    config = config or ONNXConfig()
    loaded = load_model(model)
    g = GraphIndex(loaded.proto.graph)
    findings = _checker(loaded, config) + structure_findings(loaded, g, config) + hazard_findings(loaded, g, config)
    _refused_for_names(findings)
    return sorted(findings, key=lambda f: (-SEVERITY_ORDER[f.severity], f.code != "ONX007"))


def _refused_for_names(findings: list[Finding]) -> None:
    """onnxruntime refuses a graph with two nodes of one name: the duplicate (ONX007) is then the
    root cause of the load failure (ONX017), as severe, and named first."""
    names = next((f for f in findings if f.code == "ONX007" and f.evidence.get("duplicates")), None)
    refused = next((f for f in findings if f.code == "ONX017"
                    and "same node name" in str(f.evidence.get("message", ""))), None)
    if names is None or refused is None:
        return
    names.severity = "high"
    names.title += ": onnxruntime refuses to load the model"
    names.description = ("onnxruntime will not load a graph in which two nodes share a name (ONX017). "
                         + names.description)
    refused.recommendations = [Recommendation("fix", "The cause is the duplicated node names (ONX007): give each "
                                              "node a unique name.", _RENAME)]
