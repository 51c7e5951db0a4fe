"""Export hazards (ONX010-ONX014) and what an onnxruntime session says (ONX015-ONX017).

Baked dynamic axes are found statically (a constant target shape that removes every symbolic
dimension its input had) and, when onnxruntime can load the model, confirmed by running it with
the symbolic dimensions at two sizes.
"""

from __future__ import annotations

import re
from typing import Any

from ..rules.base import Finding, Recommendation
from .config import ONNXConfig
from .feeds import FeedTooLargeError, input_specs, random_feeds
from .findings import finding
from .graph import GraphIndex, infer_types
from .load import LoadedModel
from .runtime import SessionCreationError, make_session

__all__ = ["hazard_findings"]

_SHAPE_OPS = {"Reshape": 1, "Expand": 1, "Tile": 1, "ConstantOfShape": 0}  # op -> index of its shape input
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Where", "Max", "Min", "Sum", "Mean", "Equal", "Less",
                "Greater", "And", "Or", "Xor", "Mod", "BitShift", "PRelu", "LessOrEqual", "GreaterOrEqual"}
_RANDOM = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli", "Multinomial"}
_DOUBLE = 11  # onnx.TensorProto.DOUBLE


def _symbolic(shape: list[Any]) -> bool:
    return any(isinstance(d, str) for d in shape)


def _static_suspects(g: GraphIndex, types: dict[str, Any]) -> list[tuple[int, str]]:
    """(node, reason) for shape ops whose constant target fixes a size that should follow the input."""
    dynamic = [n for n in g.input_names if n in types and _symbolic(types[n][1])]
    if not dynamic:
        return []
    downstream = g.descendants(dynamic)
    suspects = []
    for i in g.order:
        node = g.nodes[i]
        at = _SHAPE_OPS.get(node.op_type)
        if at is None or len(node.input) <= at or g.constant(node.input[at]) is None:
            continue
        out = types.get(node.output[0])
        if out is None or not out[1] or not all(isinstance(d, int) for d in out[1]):
            continue  # the output keeps a symbolic (or unknown) dimension: nothing baked
        target = g.constant(node.input[at]).tolist()
        if node.op_type != "ConstantOfShape" and i in downstream:
            data = types.get(node.input[0])
            if data is not None and _symbolic(data[1]):
                suspects.append((i, f"its input has shape {data[1]} but the constant target {target} fixes the "
                                    f"output to {out[1]}"))
                continue
        for j in g.consumers.get(node.output[0], []):  # a fixed tensor meeting a dynamic one
            if g.nodes[j].op_type not in _ELEMENTWISE:
                continue
            for other in g.nodes[j].input:
                shape = types.get(other, (0, []))[1]
                pairs = zip(reversed(out[1]), reversed(shape))
                if other != node.output[0] and any(isinstance(b, str) and a > 1 for a, b in pairs):
                    suspects.append((i, f"its constant target {target} gives a fixed {out[1]} that "
                                        f"{g.label(j)} combines with {other!r} of shape {shape}"))
                    break
            else:
                continue
            break
    return suspects


def _confirm(model: LoadedModel, session: Any, config: ONNXConfig) -> tuple[bool | None, str]:
    """Run with every symbolic dimension at two sizes: (True, error) if a run fails, (False, '') if both run."""
    specs = input_specs(model.proto)
    if not any(_symbolic(s.shape) for s in specs):
        return None, ""
    for size in config.batch_sizes:
        try:
            feeds = random_feeds(specs, batch=size, seed=config.seed, dim_default=size, max_bytes=config.max_feed_bytes)
        except FeedTooLargeError:
            return None, ""  # too large to run here: the static suspects still speak
        try:
            session.run(None, feeds)
        except Exception as exc:
            return True, f"a run with symbolic dimensions = {size} failed: {' '.join(str(exc).split())[:300]}"
    return False, f"runs with symbolic dimensions = {list(config.batch_sizes)} succeeded"


def _baked(model: LoadedModel, g: GraphIndex, types: dict[str, Any], session: Any,
           config: ONNXConfig) -> list[Finding]:
    suspects = _static_suspects(g, types)
    confirmed, how = _confirm(model, session, config) if session is not None else (None, "")
    failing = re.search(r"Name:'([^']*)'", how) if confirmed else None
    if not suspects and not confirmed:
        return []
    rec = [Recommendation("fix", "Keep the batch dimension symbolic: flatten with x.flatten(1) or "
                          "x.view(x.size(0), -1), and export with dynamic_shapes.",
                          "batch = torch.export.Dim('batch')\n"
                          "torch.onnx.export(model, (x,), 'model.onnx', dynamic_shapes=({0: batch},))")]
    if not suspects:
        where = failing[1] if failing else None
        return [finding("ONX010", severity="high", confidence=0.8, title="The model fails at another size of its "
                        "dynamic axes", description=f"The inputs declare symbolic dimensions but {how}.",
                        location=where, evidence={"run": how}, recommendations=rec)]
    out = []
    for n, (i, reason) in enumerate(suspects):
        conf = 0.95 if confirmed else (0.6 if confirmed is False else 0.75)
        desc = f"{g.nodes[i].op_type} {g.label(i)}: {reason}. The model declares a dynamic axis but only works at "
        desc += "the size it was exported with."
        if how:
            desc += f" Confirmed: {how}." if confirmed else f" ({how}; the reshape may be silently wrong instead.)"
        out.append(finding("ONX010", severity="high" if confirmed or n == 0 else "medium", confidence=conf,
                           title=f"Dynamic axis baked into a constant shape at {g.label(i)}", description=desc,
                           location=g.label(i), evidence={"op": g.nodes[i].op_type, "reason": reason, "run": how},
                           recommendations=rec))
    return out


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
    out += _baked(model, g, types, session, config)
    return out
