"""`inspect` (MACs, parameters) against direct counts, and `profile` against the wall clock."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_onnx_models import exported, proto, torch_model
from torch import nn

from modeldebug.onnx import ONNXConfig, ONNXDebugger, ProfileResult, inspect, profile
from modeldebug.onnx.feeds import InputMismatchError
from modeldebug.onnx.profiling import parse_trace
from modeldebug.onnx.runtime import RunFailedError


def direct_macs(model: nn.Module, hw: int) -> int:
    """MACs of the CNN's Conv and Linear layers at batch 1, from the PyTorch modules themselves."""
    total, size = 0, hw
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            total += size * size * m.out_channels * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.MaxPool2d):
            size //= 2
        elif isinstance(m, nn.Linear):
            total += m.in_features * m.out_features
    return total


def test_inspect_macs_match_direct_count() -> None:
    r = inspect(exported("cnn"))
    assert r.total_macs == direct_macs(torch_model("cnn"), 8)
    assert r.shapes_assumed == {"input": [1, 3, 8, 8]}
    assert inspect(exported("cnn"), input_shapes={"input": [8, 3, 8, 8]}).total_macs == 8 * r.total_macs
    assert r.inputs[0]["shape"] == ["batch", 3, 8, 8] and r.opsets == {"": r.opsets[""]}
    json.dumps(r.to_dict())
    assert "MACs" in r.to_text()


def test_inspect_parameters_match_pytorch() -> None:
    r = inspect(exported("mlp"))
    assert r.parameters == sum(p.numel() for p in torch_model("mlp").parameters())
    assert r.nodes[0].module == "0" and r.nodes[0].macs == 20 * 64


def test_shared_weights_count_once_and_unused_not_at_all() -> None:
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    unused = numpy_helper.from_array(np.ones((100,), np.float32), "unused")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="a"), helper.make_node("MatMul", ["h", "w"], ["y"], name="b")]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w, unused]), ir_version=10,
                          opset_imports=[helper.make_opsetid("", 17)])
    r = inspect(m)
    assert r.parameters == 16 and r.total_macs == 2 * (2 * 4 * 4)
    assert r.initializers_by_dtype["float32"]["count"] == 2


def test_profile_totals_agree_with_wall_time() -> None:
    x = np.random.default_rng(0).standard_normal((32, 3, 8, 8)).astype(np.float32)
    r = profile(exported("cnn"), [x], ONNXConfig(warmup=3, iterations=20, threads=1))
    wall, run = sum(r.wall_ms), sum(r.run_ms)
    assert len(r.run_ms) == len(r.wall_ms) == 20  # the warm-up runs are dropped
    assert all(n.calls == 20 for n in r.nodes)
    assert r.node_total_ms <= run * 1.01 and run <= wall * 1.02
    assert run >= 0.5 * wall, (run, wall)  # onnxruntime's own clock accounts for most of the wall time
    assert sum(n.share for n in r.nodes) <= 1.01
    assert sum(o.total_us for o in r.ops) == pytest.approx(sum(n.total_us for n in r.nodes))
    assert "Conv" in {o.op_type for o in r.ops} and r.hotspots
    gemm = next(n for n in r.nodes if n.op_type == "Gemm")
    assert gemm.flops == 2 * 32 * 16 * 2 and gemm.gflops_per_s and gemm.gflops_per_s > 0
    json.dumps(r.to_dict())


def test_nodes_that_fell_back_to_cpu() -> None:
    # The Azure provider in this build has no kernels for these ops: every node runs on the CPU.
    r = profile(exported("mlp"), config=ONNXConfig(warmup=1, iterations=2,
                                                   providers=["AzureExecutionProvider", "CPUExecutionProvider"]))
    (f,) = [f for f in r.findings if f.code == "ONX201"]
    assert sorted(f.evidence["nodes"]) == sorted(n.name for n in r.nodes) and r.fallbacks
    assert [f.code for f in profile(exported("mlp"), config=ONNXConfig(warmup=0, iterations=1)).findings] == []


def test_debugger_profile_execution_returns_typed_result() -> None:
    r = ONNXDebugger(ONNXConfig(warmup=1, iterations=2)).profile_execution(exported("cnn"))
    assert isinstance(r, ProfileResult) and r.iterations == 2 and r.nodes and "by node:" in r.to_text()


def test_unavailable_provider() -> None:
    r = profile(exported("mlp"), config=ONNXConfig(warmup=0, iterations=1, providers=["CUDAExecutionProvider"]))
    assert [f.code for f in r.findings] == ["ONX202"] and r.providers == ["CPUExecutionProvider"]


def test_profile_bad_inputs_and_failing_runs() -> None:
    with pytest.raises(InputMismatchError, match="expects"):
        profile(exported("mlp"), [np.zeros((2, 3), np.float32)])
    m = proto("cnn", dynamic=False)  # Reshape baked at batch 2, input declared dynamic
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    with pytest.raises(RunFailedError, match="node_view") as err:
        profile(m, [np.zeros((3, 3, 8, 8), np.float32)])
    assert err.value.node == "node_view"


def test_parse_trace_is_defensive() -> None:
    def node(name: str, ts: float, dur: float, **args: str) -> dict:
        return {"cat": "Node", "name": name, "ts": ts, "dur": dur, "args": args}

    events = [
        {"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 50},
        {"cat": "Session", "name": "model_run", "ts": 100, "dur": 30},  # warm-up
        node("a_kernel_time", 105, 10, op_name="Conv", provider="CPUExecutionProvider"),
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 40},
        node("a_kernel_time", 205, 12),  # an onnxruntime version without op_name/provider
        node("a_fence_before", 204, 1),
        {"cat": "Node", "name": "b_kernel_time", "ts": "bad", "dur": 3},
        "not an event", {"cat": "Node"},
        {"cat": "Node", "name": "c_kernel_time", "ts": 210, "dur": 5, "args": None},
        node("late_kernel_time", 500, 7),  # outside every run
    ]
    runs, per_node = parse_trace({"traceEvents": events}, warmup=1)
    assert runs == [40.0]
    assert {k: [e["dur"] for e in v] for k, v in per_node.items()} == {"a": [12.0], "c": [5.0]}
    assert parse_trace([], warmup=0) == ([], {}) and parse_trace({"x": 1}, warmup=0) == ([], {})
