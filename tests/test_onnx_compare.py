"""`compare`: PyTorch vs onnxruntime, down to the node that introduces the error.

The planted fault is real: one initializer of an exported model perturbed after export. compare
must name exactly the node that reads it and report the nodes downstream as inheriting.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from test_onnx_models import example, exported, proto, torch_model

from modeldebug.errors import BadInputError
from modeldebug.onnx import ONNXConfig, compare, compare_arrays
from modeldebug.onnx.feeds import InputMismatchError
from modeldebug.onnx.graph import GraphIndex
from modeldebug.onnx.parity_result import ComparisonResult, parity_findings


FAST = ONNXConfig(op_level=False)  # module-level matching only: no second export where ops are not the point


def perturb(m: onnx.ModelProto, name: str, delta: float = 0.5) -> onnx.ModelProto:
    init = next(t for t in m.graph.initializer if t.name == name)
    arr = numpy_helper.to_array(init).copy()
    arr[0] += delta  # the first row of a weight (one output unit), the first element of a bias
    init.CopyFrom(numpy_helper.from_array(arr, name))
    return m


@pytest.mark.parametrize("name", ["mlp", "cnn", "transformer"])
def test_clean_exports_agree(name: str) -> None:
    r = compare(torch_model(name), exported(name))
    assert r.passed and r.findings == [] and r.first_divergent is None
    assert [b["batch"] for b in r.batches] == [2, 3]  # dynamic batch axis: two sizes
    assert set(r.levels) == {"disable", "basic", "extended", "layout", "all"}
    assert all(c.status == "ok" for c in r.checks) and len(r.checks) >= 5


def test_perturbed_initializer_is_named_and_downstream_inherits(tmp_path: Path) -> None:
    m = perturb(proto("mlp"), "2.weight")  # read by the second Linear only
    g = GraphIndex(m.graph)
    reader = g.label(g.consumers["2.weight"][0])
    downstream = {g.label(i) for i in g.descendants(list(m.graph.node[g.consumers["2.weight"][0]].output))}
    model = torch_model("mlp").train()  # compare evaluates in eval mode and must hand the model back as it was
    r = compare(model, m, repro_dir=tmp_path / "repro")
    assert all(x.training for x in model.modules())
    d = r.first_divergent
    assert d is not None and d.node == reader and d.op_type == "Gemm"
    assert d.verdict == "translation"  # onnx.reference computes the same as onnxruntime: the graph is wrong
    assert [x["name"] for x in d.initializer_diffs] == ["2.weight"]
    assert set(d.inheritors) == downstream and d.other_introducers == []
    assert {c.node: c.status for c in r.checks if c.node in downstream} == dict.fromkeys(downstream, "inherits")
    (f,) = [f for f in r.findings if f.code == "ONX101"]
    assert f.location == reader and f.severity == "high" and not r.passed
    # the repro reproduces: the saved node alone on the saved inputs gives onnxruntime's wrong value
    s = ort.InferenceSession(str(tmp_path / "repro" / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = dict(np.load(tmp_path / "repro" / "inputs.npz"))
    got = s.run(None, {i.name: feeds[i.name] for i in s.get_inputs()})[0]
    want = np.load(tmp_path / "repro" / "expected.npz")[d.value]
    relu = feeds[s.get_inputs()[0].name]  # row 0 of 2.weight grew by 0.5: unit 0 by 0.5 * sum of its inputs
    assert np.abs(got - want).max() == pytest.approx(0.5 * relu.sum(axis=1).max(), rel=1e-4)
    json.dumps(r.to_dict())


def test_perturbed_transformer_weight_is_localised_at_module_level() -> None:
    m = proto("transformer")
    g = GraphIndex(m.graph)
    name = "embed.bias"
    assert len(g.consumers[name]) == 1
    reader = g.label(g.consumers[name][0])
    r = compare(torch_model("transformer"), perturb(m, name), config=FAST)  # module outputs as references
    assert not r.op_level and all(c.reference.startswith(("module", "model output")) for c in r.checks)
    assert r.first_divergent is not None and r.first_divergent.node == reader
    assert len(r.first_divergent.inheritors) > 10 and r.first_divergent.other_introducers == []
    assert sum(c.status == "introduces" for c in r.checks) == 1


def test_first_nonfinite_node() -> None:
    m = proto("log")
    r = compare(torch_model("log"), m, config=FAST)
    n = r.first_nonfinite
    log_node = next(x.name for x in m.graph.node if x.op_type == "Log")
    assert n is not None and n["node"] == log_node and n["torch_nonfinite"] and n["nonfinite_inputs"] == []
    assert [f.code for f in r.findings] == ["ONX102"]  # NaN in both: parity itself holds
    assert r.first_divergent is None


def test_batch_size_baked_into_export() -> None:
    m = proto("cnn", dynamic=False)  # exported at batch 2, then the batch axis declared dynamic
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    r = compare(torch_model("cnn"), m, config=FAST)
    assert [(b["batch"], b["passed"]) for b in r.batches] == [(2, True), (3, False)]
    (f,) = [f for f in r.findings if f.code == "ONX104"]
    assert f.location == next(x.name for x in m.graph.node if x.op_type == "Reshape")


def test_given_inputs_and_export_when_no_onnx_given() -> None:
    model = torch_model("dropout")
    x = example("dropout", batch=5)
    r = compare(model, None, x, FAST)
    assert r.passed and [b["batch"] for b in r.batches] == [5]
    assert not model.training  # eval before and after: flags restored


def test_inputs_that_do_not_fit() -> None:
    with pytest.raises(InputMismatchError, match="shape"):
        compare(torch_model("mlp"), exported("mlp"), np.zeros((2, 7), np.float32), FAST)
    with pytest.raises(InputMismatchError, match="missing"):
        compare(torch_model("mlp"), exported("mlp"), {"wrong": np.zeros((2, 20), np.float32)}, FAST)
    with pytest.raises(BadInputError, match="PyTorch model failed"):
        compare(torch_model("cnn"), exported("mlp"), config=FAST)



# -- tolerance: both absolute AND relative error must exceed ----------------------------------------
def test_tolerance_does_not_cry_wolf_near_zero() -> None:
    ref = np.array([1e-9, 0.0, 1e4, 1.0], np.float32)
    tiny_abs = ref + np.array([1e-6, 1e-6, 1e-1, 0.0], np.float32)  # tiny abs near zero, tiny rel on a big value
    assert compare_arrays(tiny_abs, ref, atol=1e-4, rtol=1e-3).passed
    wrong = ref + np.array([0, 0, 0, 0.01], np.float32)
    s = compare_arrays(wrong, ref, atol=1e-4, rtol=1e-3)
    assert not s.passed and s.mismatch_fraction == 0.25 and s.max_abs == pytest.approx(0.01, rel=1e-3)


def test_tolerance_nonfinite_and_shapes() -> None:
    a = np.array([np.nan, np.inf, 1.0])
    assert compare_arrays(a, a.copy(), atol=0, rtol=0).passed
    s = compare_arrays(np.array([np.nan, 1.0]), np.array([1.0, 1.0]), atol=1e-4, rtol=1e-3)
    assert not s.passed and s.nonfinite_mismatch == 1
    assert compare_arrays(np.zeros(3), np.zeros(4), atol=1, rtol=1).shape_mismatch


def test_optimisation_level_divergence_rule() -> None:
    # No onnxruntime optimisation is known to break these models, so the rule is checked on its input.
    levels = {"disable": {"passed": True, "max_abs": 0.0}, "basic": {"passed": True, "max_abs": 0.0},
              "extended": {"passed": False, "max_abs": 0.3}, "layout": {"passed": False, "max_abs": 0.3},
              "all": {"passed": False, "max_abs": 0.3}}
    r = ComparisonResult("m.onnx", 1e-4, 1e-3, "disable", True, [], [], None, None, levels, [])
    (f,) = parity_findings(r)
    assert f.code == "ONX103" and "'extended'" in f.title
    levels["disable"]["passed"] = False  # wrong even without optimisations: not the optimiser's fault
    (f,) = parity_findings(r)  # but a FAIL still carries a finding
    assert f.code == "ONX101" and "optimisation level disable" in f.title


def test_op_level_references_narrow_a_many_node_module_group() -> None:
    """A bias inside attention: the module's group is ~40 nodes; the op-level re-export (done only because the
    module-level answer is a group of several nodes) narrows it to the Linear's two nodes."""
    m = perturb(proto("transformer"), "encoder.layers.0.self_attn.in_proj_bias")
    coarse = compare(torch_model("transformer"), m, config=FAST)
    fine = compare(torch_model("transformer"), m)
    assert coarse.first_divergent is not None and fine.first_divergent is not None
    assert not coarse.op_level and len(coarse.first_divergent.segment) > 10
    assert fine.op_level and len(fine.first_divergent.segment) == 2
    assert fine.first_divergent.node == coarse.first_divergent.node
    assert [x["name"] for x in fine.first_divergent.initializer_diffs] == ["encoder.layers.0.self_attn.in_proj_bias"]
