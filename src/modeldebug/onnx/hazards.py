"""Export hazards (ONX010-ONX014) and what an onnxruntime session says (ONX015-ONX017).

Baked dynamic axes (ONX010) are in ``baked``: found statically and, when onnxruntime can load
the model, confirmed by running it, which names the axis.
"""

from __future__ import annotations

from typing import Any

from ..rules.base import Finding, Recommendation
from .baked import baked_axis_findings
from .config import ONNXConfig
from .findings import finding
from .graph import GraphIndex, infer_types
from .load import LoadedModel
from .runtime import SessionCreationError, make_session

__all__ = ["hazard_findings"]

_RANDOM = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial"}
_DOUBLE = 11  # onnx.TensorProto.DOUBLE


def _training_ops(g: GraphIndex) -> list[Finding]:
    out = []
    rec = [Recommendation("fix", "Call model.eval() before exporting.",
                          "model.eval()\ntorch.onnx.export(model, args, 'model.onnx')")]
    for i in g.order:
        node, label = g.nodes[i], g.label(i)
        if node.op_type == "Dropout" and len(node.input) >= 3 and node.input[2]:
            value = g.constant(node.input[2])
            if value is None or bool(value.reshape(-1)[0]):
                how = "set by an input at run time" if value is None else "a constant True"
                out.append(finding("ONX011", severity="high" if value is not None else "medium", confidence=0.95,
                                   title=f"Dropout {label} runs in training mode", location=label,
                                   description=f"Its training_mode is {how}: each inference zeroes a random part of "
                                   "the activations, so outputs change from run to run.",
                                   evidence={"training_mode": how}, recommendations=rec))
        elif node.op_type == "BatchNormalization":
            attrs = {a.name: a.i for a in node.attribute if a.name == "training_mode"}
            extra = [o for o in node.output[1:] if o]
            if attrs.get("training_mode") == 1 or extra:
                out.append(finding("ONX012", severity="high", confidence=0.95,
                                   title=f"BatchNormalization {label} is in training mode", location=label,
                                   description="Each batch is normalised with its own statistics instead of the "
                                   "running ones: results depend on the rest of the batch.",
                                   evidence={"training_mode": attrs.get("training_mode"), "extra_outputs": extra},
                                   recommendations=rec))
    randoms = [g.label(i) for i in g.order if g.nodes[i].op_type in _RANDOM]
    if randoms:
        out.append(finding("ONX013", severity="medium", confidence=0.9,
                           title=f"{len(randoms)} random-number operator(s) in the graph", location=randoms[0],
                           description=f"{', '.join(randoms[:10])} make outputs differ from run to run.",
                           evidence={"nodes": randoms[:100]}, recommendations=rec))
    return out


def _float64(g: GraphIndex, types: dict[str, Any]) -> list[Finding]:
    nodes = [i for i in g.order if g.nodes[i].op_type != "Constant"
             and any(types.get(o, (0, []))[0] == _DOUBLE for o in g.nodes[i].output if o)]
    if not nodes:
        return []
    labels = [g.label(i) for i in nodes]
    ops = sorted({g.nodes[i].op_type for i in nodes})
    return [finding("ONX014", severity="medium", confidence=0.9,
                    title=f"{len(nodes)} node(s) compute in float64 ({', '.join(ops[:6])})", location=labels[0],
                    description=f"float64 is slow or unsupported on most accelerators and many kernels; first: "
                    f"{', '.join(labels[:10])}.", evidence={"nodes": labels[:100], "ops": ops},
                    recommendations=[Recommendation("fix", "Keep the model and its constants in float32.",
                                                    "model = model.float()\nconst = torch.tensor(np.pi, dtype=torch.float32)")])]


def hazard_findings(model: LoadedModel, g: GraphIndex, config: ONNXConfig) -> list[Finding]:
    """Export hazards plus what creating (and, for dynamic axes, running) a session shows."""
    types = infer_types(model.proto)
    out = _training_ops(g) + _float64(g, types)
    session, problem, title = None, None, "onnxruntime cannot load the model"
    recs = {"ONX015": "Export with a lower opset_version (or set ir_version to one onnxruntime supports), "
                      "or upgrade onnxruntime.",
            "ONX016": "Export in float32, or cast around the operator.",
            "ONX017": "Read onnxruntime's message; register custom-op libraries or re-export."}
    try:  # as deployed: from the file when it has external data
        session = make_session(model, level="all", threads=1, from_path=model.external_data)
    except SessionCreationError as exc:
        problem = exc.problem
        if model.external_data:
            try:
                session = make_session(model, level="all", threads=1)
                title = "onnxruntime cannot load the file as saved (it can with the external data inlined)"
                recs[problem.code] = ("Keep small tensors (shapes, axes) inline when saving: "
                                      "onnx.save_model(m, path, save_as_external_data=True, size_threshold=1024)")
            except SessionCreationError:
                pass
    if problem is not None:
        msg = " ".join(problem.message.split())
        out.append(finding(problem.code, severity="high", confidence=1.0, title=f"{title}: {problem.title}",
                           description=msg[-600:], location=problem.node, evidence={"message": msg[-2000:]},
                           recommendations=[Recommendation("fix", recs[problem.code])]))
    out += baked_axis_findings(model, g, types, session, config)
    return out
