"""Review of `modeldebug onnx` (check, inspect, profile, compare) as a new user meets it: each test is a
bug found by using the commands on real models (onnx.helper graphs and torch.onnx exports), run with
real onnx and onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modeldebug.cli import main
from modeldebug.errors import BadInputError
from modeldebug.onnx import compare_arrays, compare_onnx, inspect, profile
from modeldebug.onnx.feeds import input_specs, match_feeds


def _model(nodes: list, inputs: list, outputs: list, inits: list | None = None) -> onnx.ModelProto:
    m = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, inits or []),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _vi(name: str, elem: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _masked(tmp_path: Path) -> Path:
    """x[b, s, 4] * mask[b, s] (unsqueezed), then a MatMul: two inputs sharing the symbols b and s."""
    axes = numpy_helper.from_array(np.array([-1], np.int64), "axes")
    w = numpy_helper.from_array(np.ones((4, 5), np.float32), "w")
    m = _model([helper.make_node("Unsqueeze", ["mask", "axes"], ["m3"], name="unsq"),
                helper.make_node("Mul", ["x", "m3"], ["xm"], name="mul"),
                helper.make_node("MatMul", ["xm", "w"], ["y"], name="mm")],
               [_vi("x", TensorProto.FLOAT, ["b", "s", 4]), _vi("mask", TensorProto.FLOAT, ["b", "s"])],
               [_vi("y", TensorProto.FLOAT, ["b", "s", 5])], [axes, w])
    p = tmp_path / "masked.onnx"
    onnx.save(m, str(p))
    return p


def _softmax(tmp_path: Path, elem: int, name: str) -> Path:
    m = _model([helper.make_node("Softmax", ["x"], ["y"], axis=-1, name="sm")],
               [_vi("x", elem, ["n", 8])], [_vi("y", elem, ["n", 8])])
    p = tmp_path / name
    onnx.save(m, str(p))
    return p


def _to_string(tmp_path: Path) -> Path:
    """A float input, a STRING output (Cast to STRING) and a float output."""
    m = _model([helper.make_node("Cast", ["x"], ["s"], to=TensorProto.STRING, name="tostr"),
                helper.make_node("Relu", ["x"], ["y"], name="relu")],
               [_vi("x", TensorProto.FLOAT, ["n", 3])],
               [_vi("s", TensorProto.STRING, ["n", 3]), _vi("y", TensorProto.FLOAT, ["n", 3])])
    p = tmp_path / "tostr.onnx"
    onnx.save(m, str(p))
    return p


# --- --shape for one input sets the symbols it shares with the others ---------------------------------------

def test_inspect_shape_of_one_input_sizes_the_symbols_it_shares(tmp_path: Path) -> None:
    """`inspect --shape x=3,7,4` left mask[b, s] at [1, 1] and said b, s were 'set to 1': wrong MACs on a
    model whose mask feeds the compute (a TransformerEncoder counted 41K MACs instead of 47.7K)."""
    result = inspect(_masked(tmp_path), input_shapes={"x": [3, 7, 4]})
    assert result.shapes_assumed["mask"] == [3, 7]
    assert result.symbolic_set_to_one == []
    assert result.total_macs == 3 * 7 * 4 * 5


def test_compare_shape_of_one_input_sizes_the_symbols_it_shares(tmp_path: Path) -> None:
    """`compare --shape x=3,7,4` made mask [4, 4] (the default size), so onnxruntime could not run the model
    and the user was told the graph bakes a shape in."""
    p = _masked(tmp_path)
    r = compare_onnx(p, p, shapes={"x": [3, 7, 4]})
    assert r.passed
    assert r.outputs[0]["stats"].elements == 3 * 7 * 5


# --- profile --inputs takes a data loader's (x, y) as compare does ------------------------------------------

def test_profile_cli_takes_the_inputs_of_a_loaders_x_y(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = _softmax(tmp_path, TensorProto.FLOAT, "sm.onnx")
    loader = tmp_path / "loader.py"
    loader.write_text("import numpy as np\n\ndef batches():\n"
                      "    yield np.ones((2, 8), np.float32), np.zeros(2, np.int64)\n", encoding="utf-8")
    rc = main(["onnx", "profile", str(p), "--inputs", f"{loader}:batches", "--iterations", "1", "--json", "-"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert json.loads(out.out)["profile"]["iterations"] == 1


# --- onnxruntime's failure is said in whole words, without its C++ location ---------------------------------

def test_run_failure_on_given_inputs_is_not_cut_mid_word(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The line was the last 300 characters of onnxruntime's message: 'at node mul: hile running Mul node.
    Name:'mul' Status Message: /onnxruntime_src/...element_wise_ops.h:583 ...'."""
    p = _masked(tmp_path)
    npz = tmp_path / "in.npz"
    np.savez(npz, x=np.ones((2, 7, 4), np.float32), mask=np.ones((3, 7), np.float32))
    assert main(["onnx", "compare", str(p), str(p), "--inputs", str(npz)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "at node mul: " in err and "Status Message" not in err and "onnxruntime_src" not in err, err
    assert "broadcast" in err, err


# --- ONNX vs ONNX: the reference's own input types and a clear line when it takes other inputs -------------

def test_compare_fp16_conversion_with_its_fp32_original(tmp_path: Path) -> None:
    """A float16 conversion against its float32 original failed with 'inputs do not fit the model:
    Unexpected input data type', though docs/onnx.md names exactly this use (a quantised or converted file)."""
    fp16, fp32 = _softmax(tmp_path, TensorProto.FLOAT16, "fp16.onnx"), _softmax(tmp_path, TensorProto.FLOAT, "fp32.onnx")
    r = compare_onnx(fp16, fp32)
    assert r.passed and r.tolerances.get("float16")
    assert compare_onnx(fp32, fp16).passed


def test_compare_with_a_reference_of_other_inputs_names_the_reference(tmp_path: Path) -> None:
    """The line said 'inputs do not fit the model: ... Invalid rank for input: x', as if the made-up inputs
    were wrong, without naming the reference model that does not take them."""
    p, other = _masked(tmp_path), tmp_path / "other.onnx"
    onnx.save(_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [_vi("x", TensorProto.FLOAT, ["n", 2])],
                     [_vi("y", TensorProto.FLOAT, ["n", 2])]), str(other))
    with pytest.raises(BadInputError, match=r"the reference .*other\.onnx does not take the inputs of .*masked\.onnx"):
        compare_onnx(p, other)


# --- string tensors -------------------------------------------------------------------------------------------

def test_string_outputs_are_compared_not_a_traceback(tmp_path: Path) -> None:
    """compare_arrays took float64 of every non-float array: a STRING output raised ValueError (a traceback
    from `modeldebug onnx compare`)."""
    a = np.array([["cat", "dog"]], dtype=object)
    assert compare_arrays(a, a.copy(), atol=1e-4, rtol=1e-3).passed
    b = a.copy()
    b[0, 1] = "cow"
    s = compare_arrays(a, b, atol=1e-4, rtol=1e-3)
    assert not s.passed and s.mismatch_fraction == 0.5
    p = _to_string(tmp_path)
    assert compare_onnx(p, p).passed


def test_golden_file_holds_string_outputs(tmp_path: Path) -> None:
    """--save-golden wrote onnxruntime's string output as an object array, which --golden then refused to read
    ('Object arrays cannot be loaded when allow_pickle=False')."""
    p, golden = _to_string(tmp_path), tmp_path / "golden.npz"
    compare_onnx(p, p, save_golden=golden)
    assert compare_onnx(p, golden=golden).passed


def test_string_inputs_from_an_npz(tmp_path: Path) -> None:
    """An .npz holds strings as str arrays; the model's STRING input was refused ('has dtype <U1 but the model
    expects object'), so no string model could be profiled or compared from the command line."""
    m = _model([helper.make_node("Identity", ["s"], ["y"], name="id")], [_vi("s", TensorProto.STRING, [2])],
               [_vi("y", TensorProto.STRING, [2])])
    feeds = match_feeds(input_specs(m), {"s": np.array(["a", "b"])})
    assert feeds["s"].dtype == object
    p = tmp_path / "str.onnx"
    onnx.save(m, str(p))
    npz = tmp_path / "s.npz"
    np.savez(npz, s=np.array(["a", "b"]))
    assert profile(p, str(npz)).iterations > 0


# --- the second batch size is one modeldebug made up ---------------------------------------------------------

class _FixedBatch:
    """A model whose forward fixes the batch at 2 (`x.reshape(2, 12)`), exported with a dynamic batch axis."""

    @staticmethod
    def build():  # type: ignore[no-untyped-def]
        import torch

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.fc = torch.nn.Linear(12, 3)

            def forward(self, x):  # type: ignore[no-untyped-def]
                return self.fc(x.reshape(2, 12))

        torch.manual_seed(0)
        return Net().eval()


def test_second_batch_size_where_pytorch_fails_too_is_skipped(tmp_path: Path) -> None:
    """At batch 2 the export matched PyTorch; at batch 3 (made up by modeldebug) PyTorch itself raised, and
    compare exited 2 ('the PyTorch model failed on the inputs'), throwing away the comparison it had made."""
    import warnings

    import torch

    from modeldebug.onnx import compare

    model, path = _FixedBatch.build(), tmp_path / "fixed.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 3, 4),), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "batch"}})
    r = compare(model, path)
    assert r.passed
    assert [b["batch"] for b in r.batches] == [2, 3]
    assert r.batches[1].get("skipped") and "PyTorch model fails at this size too" in r.batches[1]["detail"]
    assert "batch 3: skipped" in r.to_text()


def test_inputs_without_a_batch_axis_are_not_called_batch_none(tmp_path: Path) -> None:
    m = _model([helper.make_node("Constant", [], ["y"], value=numpy_helper.from_array(np.ones(3, np.float32)),
                                 name="c")], [], [_vi("y", TensorProto.FLOAT, [3])])
    p = tmp_path / "const.onnx"
    onnx.save(m, str(p))
    text = compare_onnx(p, p).to_text()
    assert "batch None" not in text and "  inputs: ok" in text


def test_profile_on_made_up_inputs_the_model_cannot_run_says_they_were_made_up(tmp_path: Path) -> None:
    """profile said only 'onnxruntime failed to run the model on inputs {...}' (no hint that modeldebug made the
    sizes up, nor how to give real ones), where compare names the made-up sizes and `--shape`."""
    target = numpy_helper.from_array(np.array([5, 4], np.int64), "target")
    m = _model([helper.make_node("Reshape", ["x", "target"], ["y"], name="baked")],
               [_vi("x", TensorProto.FLOAT, ["batch", 4])], [_vi("y", TensorProto.FLOAT, [5, 4])], [target])
    p = tmp_path / "baked.onnx"
    onnx.save(m, str(p))
    with pytest.raises(BadInputError, match=r"made-up inputs: .*batch=2.*--shape x=D0,4"):
        profile(p)


def _weight_edited(tmp_path: Path) -> tuple[Path, Path]:
    """The same MatMul twice: the second file's weight raised by 0.5 at one element."""
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    paths = []
    for name, delta in (("clean.onnx", 0.0), ("edited.onnx", 0.5)):
        arr = w.copy()
        arr[0, 0] += delta
        m = _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [_vi("x", TensorProto.FLOAT, ["n", 4])],
                   [_vi("y", TensorProto.FLOAT, ["n", 3])], [numpy_helper.from_array(arr, "w")])
        onnx.save(m, str(tmp_path / name))
        paths.append(tmp_path / name)
    return paths[0], paths[1]


def test_repro_given_a_file_is_one_line_before_the_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--repro afile` ran the whole comparison, then printed 'modeldebug: File exists: afile'."""
    clean, edited = _weight_edited(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("notes\n", encoding="utf-8")
    for value in (afile, afile / "sub"):
        assert main(["onnx", "compare", str(edited), str(clean), "--repro", str(value), "-q"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("modeldebug: --repro ") and "not a folder" in err, err


def test_repro_readme_names_the_reference_it_came_from(tmp_path: Path) -> None:
    """The README of an ONNX-vs-ONNX repro said its inputs and expected output were PyTorch's."""
    clean, edited = _weight_edited(tmp_path)
    r = compare_onnx(edited, clean, repro_dir=tmp_path / "repro")
    assert not r.passed and r.first_divergent is not None and r.first_divergent.node == "mm"
    readme = (tmp_path / "repro" / "README.md").read_text(encoding="utf-8")
    assert "PyTorch" not in readme and "clean.onnx" in readme


def test_shape_given_twice_for_one_input_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--shape x=3,7,4 --shape x=5,7,4` used the last one without a word."""
    p = _masked(tmp_path)
    for action in ("inspect", "profile"):
        assert main(["onnx", action, str(p), "--shape", "x=3,7,4", "--shape", "x=5,7,4"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "'x' was given a shape already (x=3,7,4)" in err, err


def test_a_nan_only_mismatch_does_not_read_max_abs_0_alone() -> None:
    """An output that is NaN/Inf where the reference is finite FAILed with 'max abs 0, max rel 0, p99 abs 0,
    66.7% of 3 elements out of tolerance': the figures cover finite pairs only, and the line did not say so."""
    a, e = np.array([np.nan, np.inf, 1.0], np.float32), np.array([0.0, 0.0, 1.0], np.float32)
    s = compare_arrays(a, e, atol=1e-4, rtol=1e-3)
    assert not s.passed and s.nonfinite_mismatch == 2
    assert "2 NaN/Inf" in s.brief()
    assert "NaN/Inf" not in compare_arrays(e, e, atol=1e-4, rtol=1e-3).brief()
