"""`check`: clean exports pass; each planted problem is flagged with its code; unusable files get one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from test_onnx_models import exported, proto

from modeldebug.errors import BadInputError
from modeldebug.onnx import ONNXConfig, ONNXDebugger, check, load_model
from modeldebug.onnx.load import ModelLoadError


def codes(findings) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.code for f in findings]


def tiny(nodes, inputs, outputs, inits=(), *, opset: int = 17, ir: int = 10) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)


X = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])


@pytest.mark.parametrize("name", ["mlp", "cnn", "transformer"])
def test_clean_exports_pass(name: str) -> None:
    assert check(exported(name)) == []


def test_unused_initializer_is_flagged() -> None:
    m = proto("mlp")
    m.graph.initializer.append(numpy_helper.from_array(np.ones((5, 5), np.float32), "orphan"))
    (f,) = [f for f in check(m) if f.code == "ONX004"]
    assert f.location == "orphan" and f.category == "onnx" and f.evidence["bytes"] == 100


def test_dead_node_is_flagged() -> None:
    m = proto("mlp")
    m.graph.node.append(helper.make_node("Relu", ["linear"], ["nobody_reads_this"], name="dead_relu"))
    found = check(m)
    assert codes(found) == ["ONX003"]
    assert found[0].location == "dead_relu" and found[0].evidence["dead_nodes"] == ["dead_relu"]


def test_baked_dynamic_axis_is_flagged_and_confirmed() -> None:
    # Exported at batch 2 without dynamic shapes, then the input edited to a symbolic batch: a common hack.
    m = proto("cnn", dynamic=False)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    (f,) = [f for f in check(m) if f.code == "ONX010"]
    reshape = next(n for n in m.graph.node if n.op_type == "Reshape")
    assert f.location == reshape.name and f.severity == "high"
    assert f.confidence >= 0.9 and "failed" in f.evidence["run"]


def test_static_export_without_symbolic_axis_is_not_baked() -> None:
    assert check(exported("cnn", dynamic=False)) == []


def test_dropout_exported_in_training_mode_is_flagged() -> None:
    found = check(exported("dropout", train=True))
    (f,) = [f for f in found if f.code == "ONX011"]
    assert f.severity == "high" and "Dropout" in f.title
    assert "ONX011" not in codes(check(exported("dropout")))


def test_float64_export_computes_in_float64_and_has_no_conv_kernel() -> None:
    m = proto("cnn", double=True)  # model.double() before export
    found = {f.code: f for f in check(m)}
    first_conv = next(n.name for n in m.graph.node if n.op_type == "Conv")
    assert found["ONX014"].location == first_conv and "Gemm" in found["ONX014"].evidence["ops"]
    assert found["ONX016"].location == first_conv  # onnxruntime has no float64 Conv on the CPU


def test_checker_error_is_explained() -> None:
    m = tiny([helper.make_node("Relu", ["missing"], ["y"], name="r")], [X], [Y])
    (f,) = [f for f in check(m) if f.code == "ONX001"]
    assert "no earlier node produces" in f.title


def test_shape_contradiction_fails_strict_inference() -> None:
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    bad_y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])
    m = tiny([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [X], [bad_y], [w])
    assert "ONX002" in codes(check(m))


def test_graph_level_problems() -> None:
    w = numpy_helper.from_array(np.ones((4,), np.float32), "w")
    unused = helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["N", 4])
    as_input = helper.make_tensor_value_info("w", TensorProto.FLOAT, [4])
    big = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones(300, np.float32)))
    nodes = [big, helper.make_node("Add", ["x", "w"], ["a"]), helper.make_node("Add", ["a", "w"], ["y"]),
             helper.make_node("ReduceSum", ["c"], ["s"], keepdims=0, name="sum")]
    s_out = helper.make_tensor_value_info("s", TensorProto.FLOAT, [])
    m = tiny(nodes, [X, unused, as_input], [Y, s_out], [w])
    found = {f.code: f for f in check(m, ONNXConfig(large_constant_bytes=1000, max_inline_bytes=1100))}
    assert found["ONX005"].location == "mask"
    assert found["ONX006"].evidence["initializers"] == ["w"]
    assert found["ONX007"].evidence["unnamed"] == 3
    assert found["ONX008"].evidence["bytes"] == 1200
    assert found["ONX009"].evidence["inline_bytes"] == 1216
    assert not {"ONX008", "ONX009"} & set(codes(check(m)))  # the default thresholds: 1 MiB, 2 GB


def test_duplicate_names_that_onnxruntime_refuses_are_the_root_cause() -> None:
    """Unnamed nodes are a LOW nuisance; two nodes of one name make onnxruntime refuse the model, so ONX007 is
    HIGH and first, and the renaming code it gives makes a model onnxruntime loads and `check` passes."""
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="same"), helper.make_node("Neg", ["a"], ["b"], name="same"),
             helper.make_node("Abs", ["b"], ["y"])]
    m = tiny(nodes, [X], [Y])
    found = check(m)
    assert codes(found)[:2] == ["ONX007", "ONX017"] and found[0].severity == "high"
    assert "ONX007" in found[1].recommendations[0].description
    code = found[0].recommendations[0].implementation
    exec(code, {"model": m})  # noqa: S102 - the fix the finding prints, run as a user would
    assert check(m) == []
    unnamed_only = tiny([helper.make_node("Relu", ["x"], ["y"])], [X], [Y])
    assert [(f.code, f.severity) for f in check(unnamed_only)] == [("ONX007", "low")]


def test_training_batchnorm_and_random_ops() -> None:
    scale = [numpy_helper.from_array(np.ones(4, np.float32), n) for n in ("s", "b", "m", "v")]
    x4 = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 3])
    y4 = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 3])
    bn = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["bn", "rm", "rv"], name="bn",
                          training_mode=1)
    noise = helper.make_node("RandomNormalLike", ["bn"], ["noise"], name="noise")
    m = tiny([bn, noise, helper.make_node("Add", ["bn", "noise"], ["y"], name="add")], [x4], [y4], scale)
    found = {f.code: f for f in check(m)}
    assert found["ONX012"].location == "bn" and found["ONX013"].location == "noise"


@pytest.mark.parametrize("opset,ir", [(30, 10), (17, onnx.IR_VERSION + 1)])
def test_versions_onnxruntime_does_not_know(opset: int, ir: int) -> None:
    m = tiny([helper.make_node("Relu", ["x"], ["y"], name="r")], [X], [Y], opset=opset, ir=ir)
    (f,) = [f for f in check(m) if f.code == "ONX015"]
    assert f.severity == "high" and ("opset" in f.title or "IR version" in f.title)


def test_analyze_model_returns_typed_result() -> None:
    result = ONNXDebugger().analyze_model(exported("cnn"))
    assert result.passed and result.findings == [] and result.inspection.op_counts["Conv"] == 2
    json.dumps(result.to_dict())
    assert "no problems found" in result.to_text()


# -- files that cannot be used: one clear error each ----------------------------------------------
@pytest.mark.parametrize("content,expected", [
    (b"hello, this is not a model\n", "not an ONNX model"),
    (b"", "empty"),
    (b"\x00" * 64, "not an ONNX model"),
])
def test_not_onnx(tmp_path: Path, content: bytes, expected: str) -> None:
    p = tmp_path / "m.onnx"
    p.write_bytes(content)
    with pytest.raises(ModelLoadError, match=expected):
        check(p)


def test_truncated_file(tmp_path: Path) -> None:
    data = exported("mlp")
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated"):
        load_model(p)


def test_missing_and_short_external_data(tmp_path: Path) -> None:
    m = proto("cnn")
    onnx.save_model(m, str(tmp_path / "m.onnx"), save_as_external_data=True, location="m.data", size_threshold=0)
    assert load_model(tmp_path / "m.onnx").external_data
    # size_threshold=0 moved even the tiny shape tensors out: onnxruntime cannot load that file from disk
    (f,) = check(tmp_path / "m.onnx")
    assert f.code == "ONX017" and "as saved" in f.title
    onnx.save_model(proto("cnn"), str(tmp_path / "ok.onnx"), save_as_external_data=True, location="ok.data",
                    size_threshold=1024)  # (save_model moved m's tensors out in place: start from a fresh copy)
    assert check(tmp_path / "ok.onnx") == []
    data = (tmp_path / "m.data").read_bytes()
    (tmp_path / "m.data").write_bytes(data[:100])
    with pytest.raises(ModelLoadError, match="too short"):
        load_model(tmp_path / "m.onnx")
    (tmp_path / "m.data").unlink()
    with pytest.raises(ModelLoadError, match="'m.data'.*missing"):
        load_model(tmp_path / "m.onnx")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such file"):
        check(tmp_path / "nope.onnx")
    with pytest.raises(BadInputError, match="directory"):
        check(tmp_path)
