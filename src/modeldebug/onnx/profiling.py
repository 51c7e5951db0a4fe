"""`modeldebug onnx profile`: onnxruntime's own profiler, warm-up dropped, per node and per op type.

onnxruntime writes a Chrome-trace JSON: ``cat == "Node"`` events named ``<node>_kernel_time`` with
``args.op_name`` / ``args.provider`` and ``dur`` in microseconds, and one ``model_run`` event per
run. Fields have changed between versions (some ``args`` were dropped; fused nodes are named
``fused <node>``), so every field is optional here and node events are assigned to the run whose
time span contains them.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInputError
from ..rules.base import Finding, Recommendation
from .config import ONNXConfig
from .feeds import input_specs, made_up_run_failure, match_feeds, random_feeds, read_npz
from .findings import finding
from .graph import GraphIndex
from .load import load_model
from .macs import count_macs, resolve_shapes
from .runtime import RunFailedError, make_session, require_ort, run_session

__all__ = ["NodeStat", "OpStat", "ProfileResult", "parse_trace", "profile"]


@dataclass
class NodeStat:
    """Time of one node over the measured runs (microseconds)."""

    name: str
    op_type: str | None
    provider: str | None
    calls: int
    total_us: float
    mean_us: float
    p95_us: float
    share: float
    flops: int | None = None
    gflops_per_s: float | None = None


@dataclass
class OpStat:
    """Time of one op type over the measured runs (microseconds)."""

    op_type: str
    nodes: int
    calls: int
    total_us: float
    mean_us: float
    share: float


@dataclass
class ProfileResult:
    """Where the time goes; `nodes` and `ops` sorted slowest first."""

    source: str
    providers: list[str]
    iterations: int
    warmup: int
    wall_ms: list[float]
    run_ms: list[float]
    node_total_ms: float
    nodes: list[NodeStat]
    ops: list[OpStat]
    fallbacks: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def hotspots(self) -> list[NodeStat]:
        """The nodes that together take 80% of the node kernel time (at most 10)."""
        out, acc = [], 0.0
        total = sum(n.total_us for n in self.nodes) or 1.0
        for n in self.nodes:
            if acc >= 0.8 or len(out) == 10:
                break
            out.append(n)
            acc += n.total_us / total
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["findings"] = [f.to_dict() for f in self.findings]
        d["hotspots"] = [n.name for n in self.hotspots]
        d["wall_total_ms"], d["run_total_ms"] = sum(self.wall_ms), sum(self.run_ms)
        return d

    def to_text(self, *, top: int = 15) -> str:
        wall, run = sum(self.wall_ms), sum(self.run_ms)
        lines = [f"{self.source}: {self.iterations} runs after {self.warmup} warm-up, on {', '.join(self.providers)}",
                 f"wall {wall:.3f} ms total ({np.median(self.wall_ms):.3f} ms median per run); onnxruntime "
                 f"model_run {run:.3f} ms; node kernels {self.node_total_ms:.3f} ms",
                 "by op type:"]
        for o in self.ops[:top]:
            lines.append(f"  {o.op_type:<20} {o.nodes:>4} nodes {o.calls:>6} calls {o.total_us / 1e3:>10.3f} ms "
                         f"{o.share:>6.1%}")
        lines.append("by node:")
        for n in self.nodes[:top]:
            rate = f" {n.gflops_per_s:8.2f} GFLOP/s" if n.gflops_per_s else ""
            lines.append(f"  {n.name:<32} {n.op_type or '?':<14} mean {n.mean_us:>9.1f} us  p95 {n.p95_us:>9.1f} us "
                         f"{n.share:>6.1%}{rate}")
        if self.fallbacks:
            lines.append(f"fell back to CPU: {', '.join(self.fallbacks[:20])}")
        return "\n".join(lines)


def _events(data: Any) -> list[dict[str, Any]]:
    raw = data.get("traceEvents", []) if isinstance(data, dict) else data
    return [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []


def _num(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_trace(data: Any, *, warmup: int) -> tuple[list[float], dict[str, list[dict[str, Any]]]]:
    """(durations of the measured model_run events in us, node name -> its measured events).

    Node events before the first measured run (warm-up, session setup) are dropped; a node event
    is kept when its start lies inside a measured run.
    """
    events = _events(data)
    runs = sorted(((ts, dur) for e in events if e.get("name") == "model_run"
                   and (ts := _num(e.get("ts"))) is not None and (dur := _num(e.get("dur"))) is not None))
    measured = runs[warmup:]
    per_node: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        name, ts, dur = e.get("name"), _num(e.get("ts")), _num(e.get("dur"))
        if e.get("cat") != "Node" or not isinstance(name, str) or ts is None or dur is None:
            continue
        if not name.endswith("_kernel_time"):
            continue  # older versions also emit _fence_before/_fence_after events
        if not any(start <= ts <= start + length for start, length in measured):
            continue
        args = e.get("args") if isinstance(e.get("args"), dict) else {}
        per_node.setdefault(name[: -len("_kernel_time")], []).append(
            {"dur": dur, "op": args.get("op_name"), "provider": args.get("provider")})
    return [d for _, d in measured], per_node


def _flops_by_node(proto: Any, feeds: dict[str, np.ndarray]) -> dict[str, int]:
    g = GraphIndex(proto.graph)
    _, shapes = resolve_shapes(proto, g, {k: list(v.shape) for k, v in feeds.items()})
    counted, _ = count_macs(g, shapes)
    return {g.label(i): 2 * macs for i, macs in counted.items() if macs}


def profile(model: Any, inputs: Any = None, config: ONNXConfig | None = None, *,
            shapes: dict[str, list[int]] | None = None) -> ProfileResult:
    """Profile a model with onnxruntime: `config.warmup` runs dropped, `config.iterations` measured.

    Without `inputs`, seeded random ones are made (`shapes` fixes their shapes by input name), and
    refused before allocation when they would need more than `config.max_feed_bytes`.
    """
    config = config or ONNXConfig()
    loaded = load_model(model)
    specs = input_specs(loaded.proto)
    if isinstance(inputs, (str, Path)):
        inputs = read_npz(inputs)
    if inputs is not None and shapes:
        raise BadInputError("--shape sets the shape of made-up inputs; it cannot be used with --inputs")
    feeds = match_feeds(specs, inputs) if inputs is not None else random_feeds(
        specs, batch=config.batch_sizes[0], seed=config.seed, dim_default=config.dim_default, shapes=shapes,
        max_bytes=config.max_feed_bytes, shape_flag="--shape")
    ort = require_ort()
    requested = config.providers or ["CPUExecutionProvider"]
    findings: list[Finding] = []
    missing = [p for p in requested if p not in ort.get_available_providers()]
    if missing:
        findings.append(finding("ONX202", severity="medium", confidence=1.0,
                                title=f"Requested provider(s) not available: {', '.join(missing)}",
                                description=f"This onnxruntime build offers {ort.get_available_providers()}; the "
                                "session runs on what is left (usually the CPU).", evidence={"missing": missing},
                                recommendations=[Recommendation("fix", "Install the onnxruntime build for that "
                                                                "device (e.g. onnxruntime-gpu), or drop the provider.")]))
    available = [p for p in requested if p not in missing] or ["CPUExecutionProvider"]
    with tempfile.TemporaryDirectory(prefix="modeldebug-ort-") as tmp:
        sess = make_session(loaded, level="all", providers=available, threads=config.threads,
                            profile_prefix=str(Path(tmp) / "profile"))
        wall = []
        for i in range(config.warmup + config.iterations):
            t0 = time.perf_counter()
            try:
                run_session(sess, feeds)
            except RunFailedError as exc:
                if inputs is not None:
                    raise
                # as compare says it: which sizes were made up, the likely baked shape, and how to give real ones
                raise made_up_run_failure(loaded.source, specs, [feeds], exc.node, exc.detail, shapes) from exc
            if i >= config.warmup:
                wall.append((time.perf_counter() - t0) * 1e3)
        trace = Path(sess.end_profiling())
        try:
            data = json.loads(trace.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = []
    run_us, per_node = parse_trace(data, warmup=config.warmup)
    flops = _flops_by_node(loaded.proto, feeds)
    node_total = sum(e["dur"] for evs in per_node.values() for e in evs)
    run_total = sum(run_us) or node_total or 1.0  # shares are of the measured run time
    nodes = []
    for name, evs in per_node.items():
        durs = np.array([e["dur"] for e in evs])
        base = name[len("fused "):] if name.startswith("fused ") and name[len("fused "):] in flops else name
        fl = flops.get(base)
        mean = float(durs.mean())
        nodes.append(NodeStat(name, next((e["op"] for e in evs if e["op"]), None),
                              next((e["provider"] for e in evs if e["provider"]), None), len(evs),
                              float(durs.sum()), mean, float(np.percentile(durs, 95)), float(durs.sum()) / run_total,
                              fl, (fl / (mean * 1e3)) if fl and mean > 0 else None))
    nodes.sort(key=lambda n: -n.total_us)
    ops: dict[str, OpStat] = {}
    for n in nodes:
        o = ops.setdefault(n.op_type or "?", OpStat(n.op_type or "?", 0, 0, 0.0, 0.0, 0.0))
        o.nodes += 1
        o.calls += n.calls
        o.total_us += n.total_us
        o.share += n.share
    for o in ops.values():
        o.mean_us = o.total_us / max(o.calls, 1)
    preferred = available
    fallbacks = []
    if preferred and preferred[0] != "CPUExecutionProvider":
        fallbacks = [n.name for n in nodes if n.provider == "CPUExecutionProvider"]
    if fallbacks:
        findings.append(finding("ONX201", severity="medium", confidence=0.9,
                                title=f"{len(fallbacks)} of {len(nodes)} node(s) ran on the CPU instead of {preferred[0]}",
                                description=f"Fell back: {', '.join(fallbacks[:10])}. Each fallback runs on the slower "
                                "device and adds copies between devices.", location=fallbacks[0],
                                evidence={"nodes": fallbacks[:100], "requested": requested},
                                recommendations=[Recommendation("optimization", "Replace those operators (or dtypes) "
                                                                "with ones the provider supports.")]))
    return ProfileResult(loaded.source, list(sess.get_providers()), config.iterations, config.warmup, wall,
                         [d / 1e3 for d in run_us], node_total / 1e3, nodes,
                         sorted(ops.values(), key=lambda o: -o.total_us), fallbacks, findings)
