"""`compare`: run PyTorch and onnxruntime on the same inputs and find the node that introduces error.

1. onnxruntime runs once with every intermediate exposed and optimisations off.
2. PyTorch runs once; its op and module values are matched to ONNX values (``torchref``).
3. Each mismatching value's node group is re-run alone on PyTorch's values of its inputs: still
   wrong means it INTRODUCES the error, right means it only INHERITS it.
4. The first introducer gets a verdict from onnx.reference (a third opinion); outputs are also
   compared at every onnxruntime optimisation level, and at a second batch size when the batch
   axis is dynamic.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInputError
from .config import ONNXConfig
from .feeds import input_specs, match_feeds, random_feeds
from .findings import finding
from .graph import GraphIndex
from .load import LoadedModel, load_model
from .localize import boundary, extract, run_all, run_ort, run_reference, segment
from .parity_result import ComparisonResult, Divergence, ValueCheck, parity_findings, save_repro
from .runtime import LEVELS, RunFailedError, SessionCreationError, make_session, run_session
from .tolerance import ErrorStats, compare_arrays
from .torchref import TorchReference, torch_reference

__all__ = ["compare"]

log = logging.getLogger("modeldebug.onnx")


def _export(model: Any, inputs: Any, tmp: str) -> LoadedModel:
    import torch

    if inputs is None:
        raise BadInputError("compare needs an ONNX model or example inputs to export the PyTorch model with")
    args = tuple(inputs.values()) if isinstance(inputs, dict) else (
        tuple(inputs) if isinstance(inputs, (list, tuple)) else (inputs,))
    args = tuple(torch.as_tensor(a) for a in args)
    path = Path(tmp) / "model.onnx"
    flags = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, args, str(path), verbose=False)
    finally:
        for m, training in flags.items():
            m.train(training)
    return load_model(path)


def _init_diffs(g: GraphIndex, nodes: list[int], ref: TorchReference, config: ONNXConfig) -> list[dict[str, Any]]:
    """Initializers read by `nodes` that differ from the PyTorch tensor of the same name and shape."""
    out = []
    for i in nodes:
        for name in g.inputs_of(i):
            if name in g.initializers and name in ref.state:
                arr = g.constant(name)
                if arr is not None and arr.shape == ref.state[name].shape:
                    s = compare_arrays(arr, ref.state[name], atol=config.atol, rtol=config.rtol)
                    if not s.passed:
                        out.append({"name": name, "node": g.label(i), "max_abs": s.max_abs})
    return out


def _verdict(sub: Any, feeds: dict[str, np.ndarray], alone: np.ndarray, expected: np.ndarray,
             config: ONNXConfig) -> tuple[str, ErrorStats | None]:
    if len(sub.graph.node) > config.reference_max_nodes:  # onnx.reference is numpy: slow on big groups
        return "undetermined", None
    got = run_reference(sub, feeds)
    if got is None:
        return "undetermined", None
    vs_torch = compare_arrays(got[0], expected, atol=config.atol, rtol=config.rtol)
    if vs_torch.passed:
        return "runtime_kernel", vs_torch
    if compare_arrays(alone, got[0], atol=config.atol, rtol=config.rtol).passed:
        return "translation", vs_torch
    return "undetermined", vs_torch


def _first_nonfinite(g: GraphIndex, values: dict[str, np.ndarray], ref: TorchReference) -> dict[str, Any] | None:
    for i in g.order:
        for v in g.nodes[i].output:
            arr = values.get(v)
            if arr is None or arr.dtype.kind not in "fc" or np.isfinite(arr).all():
                continue
            bad_inputs = [n for n in g.inputs_of(i) if (x := values.get(n, g.constant(n))) is not None
                          and np.asarray(x).dtype.kind in "fc" and not np.isfinite(x).all()]
            torch_arr = ref.values.get(v)
            in_torch = (torch_arr is not None and not np.isfinite(torch_arr).all()) or any(
                not np.isfinite(o).all() for o in ref.outputs if o.dtype.kind in "fc")
            return {"node": g.label(i), "op_type": g.nodes[i].op_type, "value": v,
                    "count": int((~np.isfinite(arr)).sum()), "nonfinite_inputs": bad_inputs,
                    "torch_nonfinite": bool(in_torch)}
    return None


_Localised = tuple[TorchReference, list[dict[str, Any]], list[ValueCheck], "Divergence | None", "dict[str, Any] | None"]


def _localise(model: Any, loaded: LoadedModel, g: GraphIndex, feeds: dict[str, np.ndarray], config: ONNXConfig,
              batch: int | None) -> _Localised:
    """(reference, output stats, value checks, first introducer, first NaN/Inf) on one input set."""
    values = run_all(loaded, g, feeds)
    dynamic = [{a: d for a, d in enumerate(s.shape) if isinstance(d, str)} for s in input_specs(loaded.proto)]
    ref = torch_reference(model, feeds, g, {k: tuple(v.shape) for k, v in values.items()}, dynamic=dynamic,
                          op_level=config.op_level)
    if len(ref.outputs) != len(g.output_names):
        raise BadInputError(f"the PyTorch model returns {len(ref.outputs)} tensor(s) but the ONNX model has "
                            f"{len(g.output_names)} output(s): is it the model this file was exported from?")
    outputs = [{"name": n, "stats": compare_arrays(values[n], t, atol=config.atol, rtol=config.rtol)}
               for n, t in zip(g.output_names, ref.outputs)]
    checks: list[ValueCheck] = []
    for i in g.order:
        for v in g.nodes[i].output:
            if v in ref.values:
                checks.append(ValueCheck(v, g.label(i), g.nodes[i].op_type, ref.sources[v],
                                         compare_arrays(values[v], ref.values[v], atol=config.atol, rtol=config.rtol)))
    stops = set(ref.values) | set(feeds)
    first: Divergence | None = None
    reruns = 0
    for c in checks:
        if c.stats.passed:
            continue
        if reruns >= config.max_reruns:
            c.status = "diverges"
            continue
        reruns += 1
        nodes = segment(g, c.value, stops - {c.value})
        sub_feeds = {b: (ref.values[b] if b in ref.values else values[b]).astype(values[b].dtype, copy=False)
                     for b in boundary(g, nodes) if b in values}
        sub = extract(loaded, g, nodes, [c.value], sub_feeds)
        c.segment = [g.label(i) for i in nodes]
        try:
            alone = run_ort(sub, sub_feeds)[0]
        except Exception as exc:  # a group that cannot run alone: leave it undecided
            log.info("modeldebug: re-running %s alone failed: %s", c.node, exc)
            c.status = "diverges"
            continue
        c.local = compare_arrays(alone, ref.values[c.value], atol=config.atol, rtol=config.rtol)
        c.status = "inherits" if c.local.passed else "introduces"
        if c.status == "introduces" and first is None:
            verdict, third = _verdict(sub, sub_feeds, alone, ref.values[c.value], config)
            diffs = _init_diffs(g, nodes, ref, config)
            node = diffs[0]["node"] if diffs else c.node
            op = g.nodes[next(i for i in nodes if g.label(i) == node)].op_type
            first = Divergence(node, op, c.value, c.reference, c.stats, c.local, verdict, third, c.segment, diffs,
                               [], [], batch, sub, sub_feeds, ref.values[c.value], alone)
    if first is not None:
        downstream = g.descendants([first.value])
        for c in checks:
            if c.value == first.value or c.stats.passed:
                continue
            if c.status == "introduces":
                first.other_introducers.append(c.node)
            elif g.producer.get(c.value) in downstream:
                first.inheritors.append(c.node)
    return ref, outputs, checks, first, _first_nonfinite(g, values, ref)


def _levels(loaded: LoadedModel, feeds: dict[str, np.ndarray], expected: list[np.ndarray],
            config: ONNXConfig) -> dict[str, dict[str, Any]]:
    out = {}
    for level in LEVELS:
        try:
            got = run_session(make_session(loaded, level=level, threads=1), feeds)
        except (SessionCreationError, RunFailedError) as exc:  # an optimiser that breaks the model
            out[level] = {"passed": False, "max_abs": float("inf"), "error": exc.message}
            continue
        stats = [compare_arrays(a, e, atol=config.atol, rtol=config.rtol) for a, e in zip(got, expected)]
        out[level] = {"passed": all(s.passed for s in stats), "max_abs": max((s.max_abs for s in stats), default=0.0)}
    return out


def _feed_sets(loaded: LoadedModel, inputs: Any, config: ONNXConfig) -> list[tuple[int | None, dict[str, np.ndarray]]]:
    specs = input_specs(loaded.proto)
    if inputs is not None:
        feeds = match_feeds(specs, inputs)
        first = next(iter(feeds.values()), None)
        return [(int(first.shape[0]) if first is not None and first.ndim else None, feeds)]
    if specs and all(s.dynamic_batch for s in specs):
        return [(b, random_feeds(specs, batch=b, seed=config.seed + k, dim_default=config.dim_default,
                                 max_bytes=config.max_feed_bytes))
                for k, b in enumerate(config.batch_sizes)]
    return [(None, random_feeds(specs, seed=config.seed, dim_default=config.dim_default,
                                max_bytes=config.max_feed_bytes))]


def _run_failure(batch: int | None, exc: RunFailedError) -> Any:
    return finding("ONX104", severity="high", confidence=0.9, title=f"onnxruntime fails to run the model at batch {batch}",
                   description=f"{exc.message}. The model declares a dynamic batch axis but does not run at this size "
                   "(a baked shape, see ONX010).", location=exc.node, evidence={"batch": batch, "error": exc.message})


def compare(torch_model: Any, onnx_model: Any = None, inputs: Any = None, config: ONNXConfig | None = None, *,
            repro_dir: str | Path | None = None) -> ComparisonResult:
    """Compare a PyTorch model with its ONNX export under onnxruntime, and localise any divergence.

    `onnx_model`: a path, bytes or ModelProto (None: export `torch_model` on `inputs` first).
    `inputs`: arrays or tensors (one, a sequence in input order, or a dict by input name), or an .npz
    path; None makes seeded random inputs, at two batch sizes when the batch axis is dynamic.
    """
    config = config or ONNXConfig()
    if isinstance(inputs, (str, Path)):
        from .feeds import read_npz

        inputs = read_npz(inputs)
    with tempfile.TemporaryDirectory(prefix="modeldebug-export-") as tmp:
        loaded = _export(torch_model, inputs, tmp) if onnx_model is None else load_model(onnx_model)
    g = GraphIndex(loaded.proto.graph)
    sets = _feed_sets(loaded, inputs, config)
    extra, batches, failed = [], [], None
    while sets:  # the first input set onnxruntime can run becomes the one localised
        batch, feeds = sets.pop(0)
        try:
            ref, outputs, checks, first, nonfinite = _localise(torch_model, loaded, g, feeds, config, batch)
            break
        except RunFailedError as exc:
            failed = exc
            batches.append({"batch": batch, "passed": False, "detail": "(onnxruntime failed to run)"})
            extra.append(_run_failure(batch, exc))
    else:
        raise BadInputError(failed.message if failed else "no inputs to compare with")
    levels = _levels(loaded, feeds, ref.outputs, config)
    batches.append({"batch": batch, "passed": all(o["stats"].passed for o in outputs)})
    for b2, feeds2 in sets:
        try:
            ref2 = torch_reference(torch_model, feeds2, g, {}, op_level=False)
            got = run_session(make_session(loaded, level="disable", threads=1), feeds2)
        except RunFailedError as exc:
            batches.append({"batch": b2, "passed": False, "detail": "(onnxruntime failed to run)"})
            extra.append(_run_failure(b2, exc))
            continue
        ok = all(compare_arrays(a, e, atol=config.atol, rtol=config.rtol).passed for a, e in zip(got, ref2.outputs))
        batches.append({"batch": b2, "passed": ok})
        if not ok and batches[-2]["passed"]:
            ref, outputs, checks, first, nonfinite = _localise(torch_model, loaded, g, feeds2, config, b2)
            extra.append(finding("ONX104", severity="high", confidence=0.85, title=f"Outputs agree at batch {batch} "
                                 f"but not at batch {b2}", description="The export only matches PyTorch at some batch "
                                 "sizes; see the first divergent node.", evidence={"batches": [batch, b2]},
                                 location=first.node if first else None))
    result = ComparisonResult(loaded.source, config.atol, config.rtol, "disable", ref.op_level, outputs, checks,
                              first, nonfinite, levels, batches)
    result.findings = parity_findings(result) + extra
    if repro_dir is not None and first is not None:
        result.repro = save_repro(first, repro_dir)
    return result
