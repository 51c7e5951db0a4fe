"""ONX010: a dynamic axis baked into the graph, named down to the input axis, with a fix that fits.

Found statically (a constant target shape that removes the symbolic dimensions its input had, or
a fixed tensor broadcast against a dynamic one) and, when onnxruntime can load the model,
confirmed by running it: first every symbolic dimension at each of two sizes, then, if one size
fails, each symbol alone at the failing size, which names the axis. onnxruntime's message is
kept whole. A failure at a node whose shape-like input (Split's `split`, Reshape's `shape`,
Slice's `starts`...) is computed from the VALUES of a graph input is our made-up data's fault,
not a baked axis, and is not reported.
"""

from __future__ import annotations

import re
from typing import Any

from ..rules.base import Finding, Recommendation
from .config import ONNXConfig
from .feeds import FeedTooLargeError, InputSpec, input_specs, random_feeds
from .findings import finding
from .graph import GraphIndex
from .load import LoadedModel

__all__ = ["baked_axis_findings"]

_SHAPE_OPS = {"Reshape": 1, "Expand": 1, "Tile": 1, "ConstantOfShape": 0}  # op -> index of its shape input
#: inputs that hold sizes, indices or counts: made-up values there break the run, not the axis
_SHAPE_LIKE = {"Split": (1,), "SplitToSequence": (1,), "Reshape": (1,), "Expand": (1,), "Tile": (1,),
               "Slice": (1, 2, 3, 4), "ConstantOfShape": (0,), "Range": (0, 1, 2), "Resize": (1, 2, 3), "Pad": (1, 2),
               "TopK": (1,), "OneHot": (1,), "Upsample": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "Gather": (1,),
               "GatherElements": (1,), "GatherND": (1,), "ScatterND": (1,), "ScatterElements": (1,), "NonZero": (0,),
               "Loop": (0, 1), "If": (0,), "SequenceAt": (1,), "ReduceSum": (1,), "ReduceMean": (1,)}
_SEARCH = 16  # sizes tried, all symbols alike, to find one that runs when the two usual sizes both fail
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Where", "Max", "Min", "Sum", "Mean", "Equal", "Less",
                "Greater", "And", "Or", "Xor", "Mod", "BitShift", "PRelu", "LessOrEqual", "GreaterOrEqual"}
_HOW = {
    "Reshape": "use -1 or x.size(i) for that axis in view/reshape (x.flatten(1), x.view(x.size(0), -1)) instead "
               "of a Python int",
    "Expand": "expand with -1 for the axes that keep their size (x.expand(-1, n)) or use expand_as",
    "Tile": "compute the repeat counts from tensor sizes (x.size(i)), not from Python ints",
    "ConstantOfShape": "make the tensor from the input (torch.zeros_like(x), x.new_zeros(x.size(0), n))",
}


def _symbolic(shape: list[Any]) -> bool:
    return any(isinstance(d, str) for d in shape)


def _axes(specs: list[InputSpec]) -> dict[str, list[tuple[str, int]]]:
    """Symbol -> the (input, axis) pairs that carry it."""
    out: dict[str, list[tuple[str, int]]] = {}
    for s in specs:
        for a, d in enumerate(s.shape):
            if isinstance(d, str):
                out.setdefault(d, []).append((s.name, a))
    return out


def _where(symbol: str, axes: dict[str, list[tuple[str, int]]]) -> str:
    places = ", ".join(f"input {n!r} axis {a}" for n, a in axes.get(symbol, []))
    return f"'{symbol}' ({places})" if places else f"'{symbol}'"


def _static_suspects(g: GraphIndex, types: dict[str, Any]) -> list[tuple[int, str, list[str]]]:
    """(node, reason, symbols baked) for shape ops whose constant target fixes a size that should follow the input."""
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
                symbols = [d for d in data[1] if isinstance(d, str)]
                suspects.append((i, f"its input has shape {data[1]} but the constant target {target} fixes the "
                                    f"output to {out[1]}", symbols))
                continue
        for j in g.consumers.get(node.output[0], []):  # a fixed tensor meeting a dynamic one
            if g.nodes[j].op_type not in _ELEMENTWISE:
                continue
            for other in g.nodes[j].input:
                shape = types.get(other, (0, []))[1]
                pairs = list(zip(reversed(out[1]), reversed(shape)))
                symbols = [b for a, b in pairs if isinstance(b, str) and a > 1]
                if other != node.output[0] and symbols:
                    suspects.append((i, f"its constant target {target} gives a fixed {out[1]} that "
                                        f"{g.label(j)} combines with {other!r} of shape {shape}", symbols))
                    break
            else:
                continue
            break
    return suspects


def _data_tainted(g: GraphIndex) -> set[str]:
    """Values computed from the VALUES of graph inputs (Shape and Size read only the shape)."""
    tainted = set(g.input_names)
    for i in g.order:
        node = g.nodes[i]
        if node.op_type in ("Shape", "Size"):
            continue
        if any(n in tainted for n in g.inputs_of(i)):
            tainted.update(o for o in node.output if o)
    return tainted


def _failing_nodes(g: GraphIndex, message: str) -> list[int]:
    name = re.search(r"Name:'([^']*)'", message)
    if name and name[1]:
        return [i for i in g.order if g.nodes[i].name == name[1]]
    op = re.search(r"running (\w+) node", message)
    return [i for i in g.order if op and g.nodes[i].op_type == op[1]]


def _made_up_data_fault(g: GraphIndex, message: str) -> str | None:
    """Why a failing run is the made-up inputs' fault (a size or index read from their values), or None."""
    tainted = _data_tainted(g)
    for i in _failing_nodes(g, message):
        node = g.nodes[i]
        for k in _SHAPE_LIKE.get(node.op_type, ()):
            if k < len(node.input) and node.input[k] in tainted:
                return (f"{node.op_type} {g.label(i)} takes its input {k} ({node.input[k]!r}) from the values of the "
                        "model's inputs, which were made up")
    return None


def _run(session: Any, specs: list[InputSpec], sizes: dict[str, int], base: int, config: ONNXConfig) -> str | None:
    """onnxruntime's whole message if a run with these symbol sizes fails, else None."""
    shapes = {s.name: [d if isinstance(d, int) and d > 0 else sizes.get(d, base) if isinstance(d, str) else base
                       for d in s.shape] for s in specs}
    feeds = random_feeds(specs, seed=config.seed, shapes=shapes, max_bytes=config.max_feed_bytes)
    try:
        session.run(None, feeds)
    except Exception as exc:  # onnxruntime raises its own pybind types
        return " ".join(str(exc).split())
    return None


def _confirm(model: LoadedModel, g: GraphIndex, session: Any, config: ONNXConfig) -> dict[str, Any]:
    """Run at two sizes, then each symbol alone at the failing size: {"confirmed", "how", "message", "symbols"}."""
    specs = input_specs(model.proto)
    symbols = list(_axes(specs))
    if not symbols:
        return {"confirmed": None, "how": ""}
    try:
        results = {size: _run(session, specs, dict.fromkeys(symbols, size), size, config)
                   for size in config.batch_sizes}
    except FeedTooLargeError:
        return {"confirmed": None, "how": ""}  # too large to run here: the static suspects still speak
    failed = [(size, msg) for size, msg in results.items() if msg]
    if not failed:
        return {"confirmed": False, "how": f"runs with symbolic dimensions = {list(config.batch_sizes)} succeeded"}
    size, message = failed[0]
    excuse = _made_up_data_fault(g, message)
    if excuse:
        return {"confirmed": None, "how": "", "inconclusive": f"{excuse}: {message}"}
    good = next((s for s, msg in results.items() if not msg), None)
    # every size tried fails: find one that runs (the export size), so that each symbol can be tried alone
    for trial in range(1, _SEARCH + 1) if good is None else ():
        if trial not in results and not _run(session, specs, dict.fromkeys(symbols, trial), trial, config):
            good = trial
            break
    baked = [sym for sym in symbols[:8] if good is not None and _run(session, specs, {sym: size}, good, config)]
    how = f"a run with symbolic dimensions = {size} failed"
    if baked:
        others = f" (the others at {good})" if len(symbols) > 1 else ""
        how += f"; changing only {', '.join(map(repr, baked))} to {size} fails too{others}"
    return {"confirmed": True, "how": how, "message": message, "symbols": baked, "size": size}


def _exporter(g: GraphIndex) -> str:
    if any(p.key.startswith("pkg.torch.onnx") for n in g.nodes[:50] for p in n.metadata_props):
        return "dynamo"
    return "torchscript" if any(n.name.startswith("/") for n in g.nodes[:50]) else "unknown"


def _recommendation(op: str | None, symbols: list[str], axes: dict[str, list[tuple[str, int]]],
                    exporter: str) -> Recommendation:
    # every dynamic axis of the inputs stays dynamic in the re-export; the baked ones are named in the text
    places = [(name, a, sym) for sym in axes for name, a in axes[sym]]
    named = [(name, a, sym) for name, a, sym in places if sym in symbols] or places
    what = _HOW.get(op or "", "compute the size from tensor sizes (x.size(i), -1) instead of a Python int")
    axis_names = ", ".join(f"{name!r} axis {a} ({sym})" for name, a, sym in named[:4]) or "the dynamic axes"
    per_input: dict[str, list[tuple[int, str]]] = {}
    for name, a, sym in places:
        per_input.setdefault(name, []).append((a, sym))
    if exporter == "torchscript":
        spec = ", ".join(f"{name!r}: {{" + ", ".join(f"{a}: {sym!r}" for a, sym in ax) + "}"
                         for name, ax in per_input.items())
        code = f"torch.onnx.export(model, args, 'model.onnx', dynamo=False, input_names=[...], dynamic_axes={{{spec}}})"
    else:
        dims = "; ".join(f"{sym} = torch.export.Dim({sym!r})" for sym in axes)
        spec = ", ".join(f"{name!r}: {{" + ", ".join(f"{a}: {sym}" for a, sym in ax) + "}"
                         for name, ax in per_input.items())
        code = f"{dims}\ntorch.onnx.export(model, args, 'model.onnx', dynamic_shapes={{{spec}}})"
    return Recommendation("fix", f"In forward, {what}; then re-export with {axis_names} dynamic.", code)


def baked_axis_findings(model: LoadedModel, g: GraphIndex, types: dict[str, Any], session: Any,
                        config: ONNXConfig) -> list[Finding]:
    """ONX010 findings: static suspects, confirmed (and the axis named) by running when possible."""
    suspects = _static_suspects(g, types)
    run = _confirm(model, g, session, config) if session is not None else {"confirmed": None, "how": ""}
    confirmed, how, message = run["confirmed"], run["how"], run.get("message", "")
    if not suspects and not confirmed:
        return []
    axes = _axes(input_specs(model.proto))
    exporter = _exporter(g)
    if not suspects:
        at = _failing_nodes(g, message)
        op = g.nodes[at[0]].op_type if at else None
        where = g.label(at[0]) if at else None
        named = ", ".join(_where(s, axes) for s in run["symbols"]) or "one of " + ", ".join(
            _where(s, axes) for s in axes)
        return [finding("ONX010", severity="high", confidence=0.85 if run["symbols"] else 0.75,
                        title=f"The model fails when dynamic axis {named} changes size"
                        + (f" (at {where})" if where else ""),
                        description=f"The inputs declare symbolic dimensions but {how}. onnxruntime said: {message}",
                        location=where, evidence={"run": how, "error": message, "axes": run["symbols"], "op": op},
                        recommendations=[_recommendation(op, run["symbols"], axes, exporter)])]
    out = []
    for n, (i, reason, symbols) in enumerate(suspects):
        if confirmed and run["symbols"]:
            symbols = [s for s in symbols if s in run["symbols"]] or run["symbols"]
        named = ", ".join(_where(s, axes) for s in dict.fromkeys(symbols))
        conf = 0.95 if confirmed else (0.6 if confirmed is False else 0.75)
        op = g.nodes[i].op_type
        desc = (f"{op} {g.label(i)}: {reason}. The dynamic axis {named} is baked in: the model only works at the "
                "size it was exported with.")
        if confirmed:
            desc += f" Confirmed: {how}. onnxruntime said: {message}"
        elif how:
            desc += f" ({how}; the {op} may be silently wrong instead.)"
        out.append(finding("ONX010", severity="high" if confirmed or n == 0 else "medium", confidence=conf,
                           title=f"Dynamic axis {named} baked into a constant shape at {g.label(i)}",
                           description=desc, location=g.label(i),
                           evidence={"op": op, "reason": reason, "axes": list(dict.fromkeys(symbols)), "run": how,
                                     "error": message},
                           recommendations=[_recommendation(op, symbols, axes, exporter)]))
    return out
