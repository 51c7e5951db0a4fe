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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInputError
from .config import ONNXConfig
from .feeds import input_specs, made_up_note, made_up_run_failure, match_feeds, random_feeds
from .findings import finding
from .graph import GraphIndex
from .groups import expected_params
from .load import LoadedModel, load_model
from .localize import boundary, extract, run_all, run_ort, run_reference, segment
from .nonfinite import nonfinite_report
from .parity_result import ComparisonResult, Divergence, ValueCheck, parity_findings, require_compared, save_repro
from .runtime import LEVELS, RunFailedError, SessionCreationError, make_session, run_session
from .tolerance import ErrorStats, Tolerance, compare_arrays, float_name, lowest_precision, tolerance_for
from .torchref import TorchFailedError, TorchReference, torch_reference

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


class _Tolerances:
    """The tolerance of each value: the lowest precision among it, its reference and every float it
    depends on (an fp16 region's rounding reaches the fp32 values after it)."""

    def __init__(self, g: GraphIndex, values: dict[str, np.ndarray], config: ONNXConfig) -> None:
        from onnx.helper import tensor_dtype_to_np_dtype

        self.config = config
        self.used: dict[str, Tolerance] = {}
        low: dict[str, str | None] = {k: float_name(v.dtype) for k, v in values.items() if k not in g.producer}
        for name, t in g.initializers.items():
            try:
                low[name] = float_name(tensor_dtype_to_np_dtype(t.data_type))
            except (KeyError, TypeError, ValueError):
                low[name] = None
        for i in g.order:
            names = [low.get(n) for n in g.inputs_of(i)]
            names += [float_name(values[o].dtype) for o in g.nodes[i].output if o in values]
            floats = [n for n in names if n]
            for o in g.nodes[i].output:
                low[o] = lowest_precision(floats) if floats else None
        self.low = low

    def __call__(self, value: str | None, *arrays: np.ndarray) -> Tolerance:
        dtypes = [d for d in [self.low.get(value) if value else None, *(a.dtype for a in arrays)] if d is not None]
        tol = tolerance_for(dtypes, atol=self.config.atol, rtol=self.config.rtol, table=self.config.dtype_tolerances)
        self.used.setdefault(tol.dtype, tol)
        return tol


def _stats(actual: np.ndarray, expected: np.ndarray, tol: Tolerance) -> ErrorStats:
    return compare_arrays(actual, expected, atol=tol.atol, rtol=tol.rtol)


def _param_diff(arr: np.ndarray, expected: np.ndarray, tol: Tolerance) -> ErrorStats | None:
    """The initializer against what PyTorch's parameters say it should hold (transposed if that is how it
    is stored); None when the shapes do not fit."""
    options = [expected] + ([expected.T] if expected.ndim == 2 and expected.shape[::-1] != expected.shape else [])
    fits = [compare_arrays(arr, e.astype(arr.dtype), atol=tol.atol, rtol=tol.rtol) for e in options
            if e.shape == arr.shape]
    return min(fits, key=lambda s: s.max_abs) if fits else None


def _init_diffs(g: GraphIndex, nodes: list[int], ref: TorchReference, tol: _Tolerances) -> list[dict[str, Any]]:
    """Initializers read by `nodes` that differ from PyTorch's parameters: by name, or, for a node that
    computes a fused group (a Conv with a BatchNorm folded in), from the group's folded parameters."""
    out = []
    for i in nodes:
        group = ref.grouping.group_of(i)
        expected = expected_params(group, ref.calls) if group is not None else []
        fused = group is not None and group.kind == "fusion"
        for name in g.inputs_of(i):
            if name not in g.initializers:
                continue
            arr = g.constant(name)
            if arr is None or arr.dtype.kind not in "fc":
                continue
            t = tol(name, arr)
            if name in ref.state and not fused and ref.state[name].shape == arr.shape:
                found = [(name, compare_arrays(arr, ref.state[name], atol=t.atol, rtol=t.rtol))]
            else:
                found = [(label, s) for label, e in expected if (s := _param_diff(arr, e, t)) is not None]
            if found and not any(s.passed for _, s in found):
                label, s = found[0]
                out.append({"name": name, "node": g.label(i), "max_abs": s.max_abs,
                            "expected_from": f"PyTorch's {label}"})
    return out


def _verdict(sub: Any, feeds: dict[str, np.ndarray], alone: np.ndarray, expected: np.ndarray,
             tol: Tolerance, config: ONNXConfig) -> tuple[str, ErrorStats | None]:
    if len(sub.graph.node) > config.reference_max_nodes:  # onnx.reference is numpy: slow on big groups
        return "undetermined", None
    got = run_reference(sub, feeds)
    if got is None:
        return "undetermined", None
    vs_torch = _stats(got[0], expected, tol)
    if vs_torch.passed:
        return "runtime_kernel", vs_torch
    if _stats(alone, got[0], tol).passed:
        return "translation", vs_torch
    return "undetermined", vs_torch


@dataclass
class _Localised:
    ref: TorchReference
    outputs: list[dict[str, Any]]
    checks: list[ValueCheck]
    first: Divergence | None
    nonfinite: dict[str, Any] | None
    by_design: dict[str, Any] | None
    tolerances: _Tolerances


def _first_introducer(loaded: LoadedModel, g: GraphIndex, values: dict[str, np.ndarray], feeds: dict[str, np.ndarray],
                      ref: TorchReference, checks: list[ValueCheck], tol: _Tolerances, config: ONNXConfig,
                      batch: int | None) -> Divergence | None:
    """Re-run each mismatching value's node group alone on PyTorch's values: the first that still
    disagrees introduces the error; the checks get their status."""
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
        t = tol(c.value, alone, ref.values[c.value])
        c.local = _stats(alone, ref.values[c.value], t)
        c.status = "inherits" if c.local.passed else "introduces"
        if c.status == "introduces" and first is None:
            verdict, third = _verdict(sub, sub_feeds, alone, ref.values[c.value], t, config)
            diffs = _init_diffs(g, nodes, ref, tol)
            node = diffs[0]["node"] if diffs else c.node
            index = next(i for i in nodes if g.label(i) == node)
            group = ref.grouping.group_of(index)
            first = Divergence(node, g.nodes[index].op_type, c.value, c.reference, c.stats, c.local, verdict, third,
                               c.segment, diffs, [], [], batch=batch, sub_model=sub, sub_feeds=sub_feeds,
                               expected=ref.values[c.value], actual=alone,
                               group=group.to_dict() if group is not None and group.anchor else None,
                               no_counterpart=[n for n in c.segment if n in set(ref.grouping.no_counterpart)])
    if first is not None:
        downstream = g.descendants([first.value])
        for c in checks:
            if c.value == first.value or c.stats.passed:
                continue
            if c.status == "introduces":
                first.other_introducers.append(c.node)
            elif g.producer.get(c.value) in downstream:
                first.inheritors.append(c.node)
    return first


def _localise(model: Any, loaded: LoadedModel, g: GraphIndex, feeds: dict[str, np.ndarray], config: ONNXConfig,
              batch: int | None) -> _Localised:
    """Reference, output stats, value checks, first introducer and first NaN/Inf on one input set."""
    values = run_all(loaded, g, feeds)
    dynamic = [{a: d for a, d in enumerate(s.shape) if isinstance(d, str)} for s in input_specs(loaded.proto)]
    shapes = {k: tuple(v.shape) for k, v in values.items()}
    tol = _Tolerances(g, values, config)

    def matched(ref: TorchReference) -> tuple[list[dict[str, Any]], list[ValueCheck]]:
        if len(ref.outputs) != len(g.output_names):
            raise BadInputError(f"the PyTorch model returns {len(ref.outputs)} tensor(s) but the ONNX model has "
                                f"{len(g.output_names)} output(s): is it the model this file was exported from?")
        outputs = [{"name": n, "stats": _stats(values[n], t, tol(n, values[n], t))}
                   for n, t in zip(g.output_names, ref.outputs)]
        checks = [ValueCheck(v, g.label(i), g.nodes[i].op_type, ref.sources[v],
                             _stats(values[v], ref.values[v], tol(v, values[v], ref.values[v])))
                  for i in g.order for v in g.nodes[i].output if v in ref.values]
        return outputs, checks

    # Modules first (one forward pass). The op-level re-export costs seconds (it loads the exporter): only
    # when something disagrees and the module-level answer is a group of several nodes.
    ref = torch_reference(model, feeds, g, shapes, dynamic=dynamic, op_level=False)
    outputs, checks = matched(ref)
    first = _first_introducer(loaded, g, values, feeds, ref, checks, tol, config, batch)
    disagree = any(not c.stats.passed for c in checks) or any(not o["stats"].passed for o in outputs)
    if config.op_level and disagree and (first is None or len(first.segment) > 1):
        finer = torch_reference(model, feeds, g, shapes, dynamic=dynamic, op_level=True)
        if finer.op_level:
            ref = finer
            outputs, checks = matched(ref)
            first = _first_introducer(loaded, g, values, feeds, ref, checks, tol, config, batch)
    nonfinite, by_design = nonfinite_report(g, values, ref, feeds)
    return _Localised(ref, outputs, checks, first, nonfinite, by_design, tol)


def _levels(loaded: LoadedModel, feeds: dict[str, np.ndarray], expected: list[np.ndarray],
            tols: list[Tolerance]) -> dict[str, dict[str, Any]]:
    out = {}
    for level in LEVELS:
        try:
            got = run_session(make_session(loaded, level=level, threads=1), feeds)
        except (SessionCreationError, RunFailedError) as exc:  # an optimiser that breaks the model
            out[level] = {"passed": False, "max_abs": float("inf"), "error": exc.message}
            continue
        stats = [_stats(a, e, t) for a, e, t in zip(got, expected, tols)]
        out[level] = {"passed": all(s.passed for s in stats), "max_abs": max((s.max_abs for s in stats), default=0.0)}
    return out


def _feed_sets(loaded: LoadedModel, inputs: Any, config: ONNXConfig,
               shapes: dict[str, list[int]] | None) -> list[tuple[int | None, dict[str, np.ndarray]]]:
    specs = input_specs(loaded.proto)
    if inputs is not None or shapes:  # the user's inputs, or made-up ones at the user's sizes: one set
        feeds = match_feeds(specs, inputs) if inputs is not None else random_feeds(
            specs, seed=config.seed, dim_default=config.dim_default, shapes=shapes, max_bytes=config.max_feed_bytes,
            shape_flag="--shape")
        first = next(iter(feeds.values()), None)
        return [(int(first.shape[0]) if first is not None and first.ndim else None, feeds)]
    if specs and all(s.dynamic_batch for s in specs):
        return [(b, random_feeds(specs, batch=b, seed=config.seed + k, dim_default=config.dim_default,
                                 max_bytes=config.max_feed_bytes, shape_flag="--shape"))
                for k, b in enumerate(config.batch_sizes)]
    return [(None, random_feeds(specs, seed=config.seed, dim_default=config.dim_default,
                                max_bytes=config.max_feed_bytes, shape_flag="--shape"))]


def _run_failure(batch: int | None, exc: RunFailedError) -> Any:
    return finding("ONX104", severity="high", confidence=0.9, title=f"onnxruntime fails to run the model at batch {batch}",
                   description=f"{exc.message}. The model declares a dynamic batch axis but does not run at this size "
                   "(a baked shape, see ONX010).", location=exc.node, evidence={"batch": batch, "error": exc.message})


def _made_up(exc: TorchFailedError, loaded: LoadedModel, feeds: dict[str, np.ndarray], inputs: Any,
             shapes: dict[str, list[int]] | None) -> TorchFailedError:
    """PyTorch failed: on made-up inputs, say which sizes were made up."""
    note = made_up_note(input_specs(loaded.proto), feeds, shapes) if inputs is None else ""
    return TorchFailedError(exc.message + note)


def compare(torch_model: Any, onnx_model: Any = None, inputs: Any = None, config: ONNXConfig | None = None, *,
            repro_dir: str | Path | None = None, save_golden: str | Path | None = None,
            shapes: dict[str, list[int]] | None = None) -> ComparisonResult:
    """Compare a PyTorch model with its ONNX export under onnxruntime, and localise any divergence.

    `onnx_model`: a path, bytes or ModelProto (None: export `torch_model` on `inputs` first).
    `inputs`: arrays or tensors (one, a sequence in input order, or a dict by input name), or an .npz
    path; None makes seeded random inputs, at two batch sizes when the batch axis is dynamic.
    `save_golden` writes the inputs and PyTorch's outputs (of the first input set) for later
    `compare_onnx(..., golden=...)` runs that need no PyTorch. `shapes` sets the shapes of made-up
    inputs by input name (their symbolic dimensions; one input set then).
    """
    config = config or ONNXConfig()
    if inputs is not None and shapes:
        raise BadInputError("--shape sets the shape of made-up inputs; it cannot be used with --inputs")
    if isinstance(inputs, (str, Path)):
        from .feeds import read_npz

        inputs = read_npz(inputs)
    with tempfile.TemporaryDirectory(prefix="modeldebug-export-") as tmp:
        loaded = _export(torch_model, inputs, tmp) if onnx_model is None else load_model(onnx_model)
    g = GraphIndex(loaded.proto.graph)
    sets = _feed_sets(loaded, inputs, config, shapes)
    extra, batches, failed, tried = [], [], None, []
    while sets:  # the first input set onnxruntime can run becomes the one localised
        batch, feeds = sets.pop(0)
        tried.append(feeds)
        try:
            loc = _localise(torch_model, loaded, g, feeds, config, batch)
            break
        except RunFailedError as exc:
            failed = exc
            batches.append({"batch": batch, "passed": False, "detail": "(onnxruntime failed to run)"})
            extra.append(_run_failure(batch, exc))
        except TorchFailedError as exc:
            raise _made_up(exc, loaded, feeds, inputs, shapes) from exc
    else:
        if failed is None:
            raise BadInputError("no inputs to compare with")
        if inputs is not None:
            raise BadInputError(failed.message)
        raise made_up_run_failure(loaded.source, input_specs(loaded.proto), tried, failed.node, failed.detail, shapes)
    require_compared(loc.outputs, feeds)
    out_tols = [loc.tolerances(n, a) for n, a in zip(g.output_names, loc.ref.outputs)]
    if save_golden is not None:
        from .golden import write_golden

        write_golden(save_golden, feeds, dict(zip(g.output_names, loc.ref.outputs)),
                     produced_by=f"PyTorch {type(torch_model).__name__}")
    levels = _levels(loaded, feeds, loc.ref.outputs, out_tols)
    batches.append({"batch": batch, "passed": all(o["stats"].passed for o in loc.outputs)})
    for b2, feeds2 in sets:
        try:
            ref2 = torch_reference(torch_model, feeds2, g, {}, op_level=False)
            got = run_session(make_session(loaded, level="disable", threads=1), feeds2)
        except TorchFailedError as exc:
            # a batch size modeldebug made up, at which the PyTorch model itself fails (a batch size fixed in
            # its forward): nothing to compare there, which is no fault of the export nor of the inputs
            batches.append({"batch": b2, "passed": True, "skipped": True,
                            "detail": "(not compared: the PyTorch model fails at this size too: "
                            f"{exc.message.removeprefix('the PyTorch model failed on the inputs: ')})"})
            continue
        except RunFailedError as exc:
            batches.append({"batch": b2, "passed": False, "detail": "(onnxruntime failed to run)"})
            extra.append(_run_failure(b2, exc))
            continue
        ok = all(_stats(a, e, t).passed for a, e, t in zip(got, ref2.outputs, out_tols))
        batches.append({"batch": b2, "passed": ok})
        if not ok and batches[-2]["passed"]:
            loc = _localise(torch_model, loaded, g, feeds2, config, b2)
            extra.append(finding("ONX104", severity="high", confidence=0.85, title=f"Outputs agree at batch {batch} "
                                 f"but not at batch {b2}", description="The export only matches PyTorch at some batch "
                                 "sizes; see the first divergent node.", evidence={"batches": [batch, b2]},
                                 location=loc.first.node if loc.first else None))
    main = out_tols[0] if out_tols else loc.tolerances(None)
    result = ComparisonResult(loaded.source, main.atol, main.rtol, "disable", loc.ref.op_level, loc.outputs,
                              loc.checks, loc.first, loc.nonfinite, levels, batches,
                              tolerances={k: {"atol": t.atol, "rtol": t.rtol, "given": t.given}
                                          for k, t in loc.tolerances.used.items()},
                              tolerance_note=main.describe(), nonfinite_by_design=loc.by_design,
                              grouping=loc.ref.grouping.to_dict())
    result.findings = parity_findings(result, extra) + extra
    if repro_dir is not None and loc.first is not None:
        result.repro = save_repro(loc.first, repro_dir)
    return result
