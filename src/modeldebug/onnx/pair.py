"""`compare` without PyTorch: a model against another ONNX model, another execution provider, or golden outputs.

- ONNX vs ONNX (an optimised, quantised, edited or re-exported file against the original) and
  provider vs provider (CUDA against CPU): both run once with every intermediate exposed. Values
  are matched by name and shape; each mismatching value's node group of the tested model is
  re-run alone on the reference's values of its inputs (on the tested provider): still wrong
  means it INTRODUCES the error. The first introducer gets a verdict from onnx.reference, and, for
  two models, the initializers that differ between them are named. The group re-run is the reduced
  model: the smallest subgraph (bounded by values the reference also has) that still diverges,
  saved with `repro_dir` like `polygraphy debug reduce`'s output, found in one pass.
- golden: saved inputs and outputs (`write_golden`); the tested model runs on the saved inputs and
  only its outputs can be compared.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInputError
from .config import ONNXConfig
from .feeds import InputMismatchError, input_specs, made_up_run_failure, match_feeds, random_feeds
from .golden import Golden, read_golden, write_golden
from .graph import GraphIndex
from .load import LoadedModel, load_model
from .localize import boundary, extract, run_all, run_ort, run_reference, segment
from .parity_result import ComparisonResult, Divergence, ValueCheck, parity_findings, require_compared, save_repro
from .runtime import RunFailedError, make_session, require_ort, run_session
from .tolerance import ErrorStats, Tolerance, compare_arrays, tolerance_for

__all__ = ["compare_onnx"]

log = logging.getLogger("modeldebug.onnx")
_CPU = "CPUExecutionProvider"


def _providers(flag: str, name: str | None) -> list[str]:
    if name is None:
        return [_CPU]
    available = require_ort().get_available_providers()
    if name not in available:
        raise BadInputError(f"{flag} {name}: this onnxruntime has no such execution provider (available: "
                            f"{', '.join(available)}); install the build that has it (e.g. onnxruntime-gpu)")
    return [name, _CPU] if name != _CPU else [_CPU]


def _tol(config: ONNXConfig, *arrays: np.ndarray) -> Tolerance:
    return tolerance_for([a.dtype for a in arrays], atol=config.atol, rtol=config.rtol, table=config.dtype_tolerances)


def _stats(a: np.ndarray, e: np.ndarray, config: ONNXConfig, used: dict[str, Tolerance]) -> ErrorStats:
    t = _tol(config, a, e)
    used.setdefault(t.dtype, t)
    return compare_arrays(a, e, atol=t.atol, rtol=t.rtol)


def _feeds(loaded: LoadedModel, inputs: Any, config: ONNXConfig,
           shapes: dict[str, list[int]] | None) -> dict[str, np.ndarray]:
    specs = input_specs(loaded.proto)
    if inputs is not None:
        if shapes:
            raise BadInputError("--shape sets the shape of made-up inputs; it cannot be used with --inputs")
        return match_feeds(specs, inputs)
    return random_feeds(specs, batch=config.batch_sizes[0] if specs and all(s.dynamic_batch for s in specs) else None,
                        seed=config.seed, dim_default=config.dim_default, max_bytes=config.max_feed_bytes,
                        shapes=shapes, shape_flag="--shape")


def _result(source: str, reference: str, target: str, outputs: list[dict[str, Any]], used: dict[str, Tolerance],
            checks: list[ValueCheck] | None = None, first: Divergence | None = None, batch: int | None = None,
            level: str = "disable") -> ComparisonResult:
    main = next(iter(used.values()), tolerance_for([]))
    passed = all(o["stats"].passed for o in outputs)
    r = ComparisonResult(source, main.atol, main.rtol, level, True, outputs, checks or [], first, None, {},
                         [{"batch": batch, "passed": passed}],
                         tolerances={k: {"atol": t.atol, "rtol": t.rtol, "given": t.given} for k, t in used.items()},
                         tolerance_note=main.describe(), reference_label=reference, target_label=target)
    r.findings = parity_findings(r)
    return r


def _against_golden(loaded: LoadedModel, golden: Golden, providers: list[str], config: ONNXConfig,
                    label: str) -> ComparisonResult:
    feeds = match_feeds(input_specs(loaded.proto), golden.inputs)
    sess = make_session(loaded, level="all", threads=1, providers=providers)
    names = [o.name for o in sess.get_outputs()]
    got = run_session(sess, feeds)
    expected = golden.outputs
    if set(expected) != set(names):
        if len(expected) != len(names):
            raise BadInputError(f"--golden holds {len(expected)} output(s) {list(expected)} but the model has "
                                f"{len(names)}: {names}")
        expected = dict(zip(names, expected.values()))  # other names (a re-export): in order
    used: dict[str, Tolerance] = {}
    outputs = [{"name": n, "stats": _stats(a, expected[n], config, used)} for n, a in zip(names, got)]
    require_compared(outputs, feeds)
    first = next((iter(feeds.values())), None)
    return _result(loaded.source, f"golden outputs ({golden.meta.get('produced_by', 'saved')})", label, outputs, used,
                   batch=int(first.shape[0]) if first is not None and first.ndim else None, level="all")


def _init_diffs(g: GraphIndex, ref_g: GraphIndex, nodes: list[int], config: ONNXConfig) -> list[dict[str, Any]]:
    out = []
    for i in nodes:
        for name in g.inputs_of(i):
            if name in g.initializers and name in ref_g.initializers:
                a, b = g.constant(name), ref_g.constant(name)
                if a is not None and b is not None and a.shape == b.shape and a.dtype.kind in "fc":
                    t = _tol(config, a, b)
                    s = compare_arrays(a, b, atol=t.atol, rtol=t.rtol)
                    if not s.passed:
                        out.append({"name": name, "node": g.label(i), "max_abs": s.max_abs,
                                    "expected_from": f"{name} of the reference model"})
    return out


def _verdict(sub: Any, feeds: dict[str, np.ndarray], alone: np.ndarray, expected: np.ndarray, two_models: bool,
             config: ONNXConfig) -> tuple[str, ErrorStats | None]:
    if two_models:
        return "graph_difference", None
    if len(sub.graph.node) > config.reference_max_nodes:
        return "undetermined", None
    got = run_reference(sub, feeds)
    if got is None:
        return "undetermined", None
    t = _tol(config, got[0], expected)
    if compare_arrays(got[0], expected, atol=t.atol, rtol=t.rtol).passed:
        return "provider_kernel", None
    if compare_arrays(alone, got[0], atol=t.atol, rtol=t.rtol).passed:
        return "reference_provider_kernel", None
    return "undetermined", None


def _run_all(loaded: LoadedModel, g: GraphIndex, feeds: dict[str, np.ndarray], prov: list[str], made_up: bool,
             shapes: dict[str, list[int]] | None) -> dict[str, np.ndarray]:
    try:
        return run_all(loaded, g, feeds, prov)
    except RunFailedError as exc:
        if not made_up:
            raise
        raise made_up_run_failure(loaded.source, input_specs(loaded.proto), [feeds], exc.node, exc.detail,
                                  shapes) from exc


def compare_onnx(model: Any, reference: Any = None, inputs: Any = None, config: ONNXConfig | None = None, *,
                 provider: str | None = None, reference_provider: str | None = None, golden: str | Path | None = None,
                 save_golden: str | Path | None = None, repro_dir: str | Path | None = None,
                 shapes: dict[str, list[int]] | None = None) -> ComparisonResult:
    """Compare `model` (on `provider`) with `reference` (another ONNX model, on `reference_provider`), with
    the same model on `reference_provider`, or with the outputs saved in `golden`.

    `inputs` as for `compare` (None: seeded random inputs, or the golden file's; `shapes` sets their
    shapes by input name). `save_golden` writes the inputs and the reference's outputs for later runs.
    """
    config = config or ONNXConfig()
    loaded = load_model(model)
    prov = _providers("--provider", provider)
    target = f"onnxruntime ({prov[0]})"
    if golden is not None:
        if reference is not None or reference_provider is not None or inputs is not None or shapes:
            raise BadInputError("--golden brings its own inputs and outputs: give no reference model, "
                                "--reference-provider, --inputs or --shape with it")
        return _against_golden(loaded, read_golden(golden), prov, config, target)
    ref_loaded = load_model(reference) if reference is not None else loaded
    ref_prov = _providers("--reference-provider", reference_provider)
    if reference is None and ref_prov[0] == prov[0]:
        raise BadInputError(f"nothing to compare {loaded.source} with: give a reference model, --torch, --golden, or "
                            f"a --provider other than the --reference-provider ({ref_prov[0]})")
    feeds = _feeds(loaded, inputs, config, shapes)
    g, ref_g = GraphIndex(loaded.proto.graph), GraphIndex(ref_loaded.proto.graph)
    missing = [n for n in ref_g.input_names if n not in feeds]
    if missing:
        raise BadInputError(f"the reference model's input(s) {missing} are not inputs of {loaded.source} "
                            f"(its inputs: {g.input_names}): the two models do not take the same inputs")
    ref_feeds = {n: feeds[n] for n in ref_g.input_names}
    if reference is not None:
        # the reference's own input types: an fp16 conversion (float16 inputs) against its float32 original
        try:
            ref_feeds = match_feeds(input_specs(ref_loaded.proto), ref_feeds)
        except InputMismatchError as exc:
            raise BadInputError(f"the reference {ref_loaded.source} does not take the inputs of {loaded.source}: "
                                f"{exc.message}") from exc
    values = _run_all(loaded, g, feeds, prov, inputs is None, shapes)
    ref_values = _run_all(ref_loaded, ref_g, ref_feeds, ref_prov, inputs is None, shapes)
    if len(ref_g.output_names) != len(g.output_names):
        raise BadInputError(f"{ref_loaded.source} has {len(ref_g.output_names)} output(s), {loaded.source} "
                            f"{len(g.output_names)}: they are not the same model")
    used: dict[str, Tolerance] = {}
    ref_out = {n: ref_values[r] for n, r in zip(g.output_names, ref_g.output_names)}
    outputs = [{"name": n, "stats": _stats(values[n], ref_out[n], config, used)} for n in g.output_names]
    require_compared(outputs, feeds)
    if save_golden is not None:
        write_golden(save_golden, feeds, {n: ref_out[n] for n in g.output_names},
                     produced_by=f"{ref_loaded.source} on {ref_prov[0]}")
    label = f"{ref_loaded.source} on {ref_prov[0]}" if reference is not None else f"onnxruntime ({ref_prov[0]})"
    checks: list[ValueCheck] = []
    for i in g.order:
        for v in g.nodes[i].output:
            r = ref_values.get(v)
            if v and r is not None and v in values and r.shape == values[v].shape:
                checks.append(ValueCheck(v, g.label(i), g.nodes[i].op_type, f"value {v}",
                                         _stats(values[v], r, config, used)))
    first = _localise(loaded, g, ref_g, values, ref_values, feeds, checks, prov, reference is not None, config)
    first_feed = next(iter(feeds.values()), None)
    result = _result(loaded.source, label, target, outputs, used, checks, first,
                     int(first_feed.shape[0]) if first_feed is not None and first_feed.ndim else None)
    if repro_dir is not None and first is not None:
        result.repro = save_repro(first, repro_dir, reference=label)
    return result


def _localise(loaded: LoadedModel, g: GraphIndex, ref_g: GraphIndex, values: dict[str, np.ndarray],
              ref_values: dict[str, np.ndarray], feeds: dict[str, np.ndarray], checks: list[ValueCheck],
              prov: list[str], two_models: bool, config: ONNXConfig) -> Divergence | None:
    stops = {c.value for c in checks} | set(feeds)
    first: Divergence | None = None
    for reruns, c in enumerate(x for x in checks if not x.stats.passed):
        if reruns >= config.max_reruns:
            c.status = "diverges"
            continue
        nodes = segment(g, c.value, stops - {c.value})
        sub_feeds = {b: (ref_values[b] if b in ref_values and ref_values[b].shape == values[b].shape else values[b])
                     .astype(values[b].dtype, copy=False) for b in boundary(g, nodes) if b in values}
        sub = extract(loaded, g, nodes, [c.value], sub_feeds)
        c.segment = [g.label(i) for i in nodes]
        try:
            alone = run_ort(sub, sub_feeds, prov)[0]
        except Exception as exc:  # a group that cannot run alone: leave it undecided
            log.info("modeldebug: re-running %s alone failed: %s", c.node, exc)
            c.status = "diverges"
            continue
        t = _tol(config, alone, ref_values[c.value])
        c.local = compare_arrays(alone, ref_values[c.value], atol=t.atol, rtol=t.rtol)
        c.status = "inherits" if c.local.passed else "introduces"
        if c.status == "introduces" and first is None:
            verdict, third = _verdict(sub, sub_feeds, alone, ref_values[c.value], two_models, config)
            diffs = _init_diffs(g, ref_g, nodes, config) if two_models else []
            node = diffs[0]["node"] if diffs else c.node
            index = next(i for i in nodes if g.label(i) == node)
            first = Divergence(node, g.nodes[index].op_type, c.value, c.reference, c.stats, c.local, verdict, third,
                               c.segment, diffs, [], [], sub_model=sub, sub_feeds=sub_feeds,
                               expected=ref_values[c.value], actual=alone)
    if first is not None:
        downstream = g.descendants([first.value])
        for c in checks:
            if c.value != first.value and not c.stats.passed:
                if c.status == "introduces":
                    first.other_introducers.append(c.node)
                elif g.producer.get(c.value) in downstream:
                    first.inheritors.append(c.node)
    return first
