"""`modeldebug onnx ...` on what a reviewer found: every FAIL carries a finding, NaN given in the inputs
is the data's, `--shape` is checked the same way everywhere, made-up sizes are named when the graph
cannot run at them, loaders' odd returns, and an empty batch compares nothing.

The ONNX files are built by hand from seeded PyTorch modules (fast, and the same weights on both
sides); the PyTorch factories live in a `nets.py` written next to them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from modeldebug.cli import main
from modeldebug.onnx import compare
from modeldebug.onnx.parity_result import ComparisonResult, parity_findings
from modeldebug.onnx.tolerance import ErrorStats

NETS = """
import torch
from torch import nn

def build():
    torch.manual_seed(0)
    return nn.Linear(4, 3).eval()

def wide():
    torch.manual_seed(0)
    return nn.Linear(4, 5).eval()

class Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return self.fc(x).view(x.size(0), 6, 2, 4).sum(-1)

def seq():
    torch.manual_seed(0)
    return Seq().eval()

def bf16():
    return torch.randn(3, 4, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)

def text():
    return "inputs.npz"
"""


def _linear(out: int = 3, inp: int = 4) -> tuple[np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    fc = nn.Linear(inp, out)
    return fc.weight.detach().numpy(), fc.bias.detach().numpy()


def _save(nodes: list, inputs: list, outputs: list, inits: list, path: Path, opset: int = 17) -> Path:
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """net.onnx: y = Linear(4, 3)(x), x [batch, 4]; seq.onnx: a reshape to a sequence length baked at 6 while
    the input declares it dynamic; opset99.onnx: net.onnx at an opset onnxruntime does not know."""
    (tmp_path / "nets.py").write_text(NETS, encoding="utf-8")
    w, b = _linear()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    gemm = helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    paths = {"nets": tmp_path / "nets.py", "net": _save([gemm], [x], [y], inits, tmp_path / "net.onnx"),
             "opset99": tmp_path / "opset99.onnx"}
    m = onnx.load(str(paths["net"]))
    m.opset_import[0].version = 99
    onnx.save_model(m, str(paths["opset99"]))
    w8, b8 = _linear(8, 8)
    xs = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 8])
    ys = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    fc = [helper.make_node("MatMul", ["x", "wt"], ["mm"], name="fc/MatMul"),
          helper.make_node("Add", ["mm", "b8"], ["fc_out"], name="fc/Add")]
    tail = [helper.make_node("Reshape", ["fc_out", "shape"], ["r"], name="Reshape"),
            helper.make_node("ReduceSum", ["r", "axes"], ["y"], name="ReduceSum", keepdims=0)]
    batch = [helper.make_node("Shape", ["x"], ["s"], name="Shape"),  # view(x.size(0), 6, 2, 4), as TorchScript does
             helper.make_node("Gather", ["s", "zero"], ["b0"], name="Gather", axis=0),
             helper.make_node("Unsqueeze", ["b0", "zeros"], ["b1"], name="Unsqueeze"),
             helper.make_node("Concat", ["b1", "six24"], ["shape"], name="Concat", axis=0)]
    inits = [numpy_helper.from_array(np.ascontiguousarray(w8.T), "wt"), numpy_helper.from_array(b8, "b8"),
             numpy_helper.from_array(np.array([-1], np.int64), "axes"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "zeros"),
             numpy_helper.from_array(np.array([6, 2, 4], np.int64), "six24")]
    paths["seq"] = _save(fc + batch + tail, [xs], [ys], inits, tmp_path / "seq.onnx")
    minus1 = [*inits[:3], numpy_helper.from_array(np.array([-1, 6, 2, 4], np.int64), "shape")]  # view(-1, 6, 2, 4)
    paths["seq_any_batch"] = _save(fc + tail, [xs], [ys], minus1, tmp_path / "seq_any_batch.onnx")
    return paths


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("modeldebug: ") and "Traceback" not in err, err
    return err


def test_output_shape_mismatch_with_torch_is_a_high_finding(files: dict[str, Path],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Before: '(FAIL) / output y: shapes differ' then 'No problems found.', exit 0 under --fail-on."""
    rc = main(["onnx", "compare", str(files["net"]), "--torch", f"{files['nets']}:wide", "--fail-on", "low",
               "--json", "-", "-q"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1 and data["comparison"]["passed"] is False
    (f,) = data["findings"]
    assert f["code"] == "ONX101" and f["severity"] == "high" and f["location"] == "y"
    assert "[2, 3]" in f["title"] and "[2, 5]" in f["title"]


def test_a_fail_no_other_finding_explains_still_gets_one() -> None:
    """Outputs agree in the all-intermediates run but a plain run at some level does not, and no node is named."""
    ok = ErrorStats(True, 0.0, 0.0, 0.0, 0.0, 0.0, 6)
    r = ComparisonResult("m.onnx", 1e-4, 1e-3, "disable", False, [{"name": "y", "stats": ok}], [], None, None,
                         {"disable": {"passed": False, "max_abs": 1.0}}, [{"batch": 2, "passed": True}])
    assert not r.passed
    (f,) = parity_findings(r)
    assert f.code == "ONX101" and f.severity == "high" and "optimisation level disable" in f.title


def test_nan_in_the_inputs_is_the_datas_not_the_models(files: dict[str, Path]) -> None:
    """Before: '/fc is the first node to produce NaN ... its inputs hold only by-design infinities'."""
    model = torch.nn.Linear(4, 3)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in zip(("weight", "bias"), _linear())})
    nan = np.full((5, 4), np.nan, np.float32)
    r = compare(model.eval(), str(files["net"]), {"x": nan})
    (f,) = [f for f in r.findings if f.code == "ONX102"]
    assert f.severity == "low" and f.location == "x" and "inputs already contain NaN" in f.title
    assert "20 of 20" in f.title and "by-design" not in f.description
    assert r.first_nonfinite["from_inputs"] == {"x": 20} and "NaN in the inputs given: x" in r.to_text()
    inf = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    inf[0] = np.inf  # weights of both signs make inf - inf in the Gemm: NaN from the model's arithmetic
    (f,) = [f for f in compare(model, str(files["net"]), {"x": inf}).findings if f.code == "ONX102"]
    assert f.location == "fc" and "given in the inputs" in f.description


def test_inspect_checks_shape_like_profile_and_compare(files: dict[str, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Before: inspect --shape x=3,5 (x is [batch, 4]) gave rc 0 and '0 MACs ... NOT counted'."""
    errors = []
    for cmd in (["inspect"], ["profile"], ["compare", "--torch", f"{files['nets']}:build"]):
        assert main(["onnx", cmd[0], str(files["net"]), *cmd[1:], "--shape", "x=3,5"]) == 2
        errors.append(one_line_error(capsys))
    assert len(set(errors)) == 1 and "axis 1 is fixed at 4" in errors[0], errors
    assert main(["onnx", "inspect", str(files["net"]), "--shape", "x=3,4,1"]) == 2
    assert "has 3 dimensions" in one_line_error(capsys)
    assert main(["onnx", "inspect", str(files["net"]), "--shape", "x=3,4", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["inspection"]["total_macs"] == 3 * 4 * 3


def test_compare_names_the_made_up_sizes_and_takes_shape(files: dict[str, Path],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Before: "onnxruntime failed to run the model on inputs {'x': [3, 4, 8]} at node Reshape", inputs the
    user never gave; and '<model>' for a file onnxruntime cannot load."""
    assert main(["onnx", "compare", str(files["seq"]), "--torch", f"{files['nets']}:seq"]) == 2
    err = one_line_error(capsys)
    assert "made up (batch=2, seq=4; then batch=3, seq=4)" in err and "ONX010" in err
    assert "--shape x=D0,D1,8" in err and "at node Reshape" in err
    # onnxruntime fails at batch 2 (64 elements are no [-1, 6, 2, 4]) but runs at 3, where PyTorch fails
    assert main(["onnx", "compare", str(files["seq_any_batch"]), "--torch", f"{files['nets']}:seq"]) == 2
    err = one_line_error(capsys)
    assert "the PyTorch model failed on the inputs" in err and "were made up (batch=3, seq=4)" in err
    assert main(["onnx", "compare", str(files["seq"]), "--torch", f"{files['nets']}:seq", "--shape", "x=2,6,8"]) == 0
    assert "(PASS)" in capsys.readouterr().out
    assert main(["onnx", "compare", str(files["seq"]), "--torch", f"{files['nets']}:seq", "--shape", "x=2,6,8",
                 "--inputs", "in.npz"]) == 2
    assert "cannot be used with --inputs" in one_line_error(capsys)
    assert main(["onnx", "compare", str(files["opset99"]), "--torch", f"{files['nets']}:build"]) == 2
    err = one_line_error(capsys)
    assert "opset99.onnx: onnxruntime cannot load it: opset 99" in err and "<model>" not in err


def test_loader_bfloat16_is_cast_and_said_and_a_str_is_refused(files: dict[str, Path], caplog: pytest.LogCaptureFixture,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Before: TypeError: Got unsupported ScalarType BFloat16 (compare and profile); a loader returning a str
    gave 'h: no such inputs file'."""
    with caplog.at_level(logging.WARNING, logger="modeldebug.onnx"):
        assert main(["onnx", "compare", str(files["net"]), "--torch", f"{files['nets']}:build",
                     "--inputs", f"{files['nets']}:bf16", "-q"]) == 0
        assert main(["onnx", "profile", str(files["net"]), "--inputs", f"{files['nets']}:bf16", "-q",
                     "--iterations", "1", "--warmup", "0"]) == 0
    said = [r.getMessage() for r in caplog.records if "bfloat16" in r.getMessage()]
    assert len(said) == 2 and "cast to float32" in said[0] and "exact" in said[0]
    assert "(PASS)" in capsys.readouterr().out
    assert main(["onnx", "compare", str(files["net"]), "--torch", f"{files['nets']}:build",
                 "--inputs", f"{files['nets']}:text"]) == 2
    assert "text returned a str ('inputs.npz'), not arrays or tensors" in one_line_error(capsys)


def test_lossy_input_cast_is_said(files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    x = np.random.default_rng(0).standard_normal((2, 4))  # float64: rounded to the model's float32, not worth a line
    x[0, 0], x[1, 1] = 1e300, 1e-300  # ... but these become inf and 0
    model = torch.nn.Linear(4, 3)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in zip(("weight", "bias"), _linear())})
    with caplog.at_level(logging.WARNING, logger="modeldebug.onnx"):
        compare(model.eval(), str(files["net"]), {"x": np.random.default_rng(0).standard_normal((2, 4))})
        compare(model, str(files["net"]), {"x": np.ones((2, 4))})  # exact in float32: nothing to say
        assert not [r for r in caplog.records if "cast to" in r.getMessage()]
        compare(model.eval(), str(files["net"]), {"x": x})
    (said,) = [r.getMessage() for r in caplog.records if "cast to" in r.getMessage()]
    assert "float64 values cast to float32" in said and "2 of 8 values overflowed or underflowed" in said


def test_check_advice_names_the_command_that_has_shape(files: dict[str, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Before: check said 'give real sizes with --shape NAME=...', an option check does not have."""
    assert main(["onnx", "check", str(files["net"]), "-q"]) == 0
    out = capsys.readouterr().out
    assert f"`modeldebug onnx inspect {files['net']} --shape NAME=D0,D1,...`" in out
    assert main(["onnx", "inspect", str(files["net"])]) == 0
    assert "give real sizes with --shape NAME=D0,D1,..." in capsys.readouterr().out


def test_an_empty_batch_compares_nothing(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Before: PASS with '0.0% of 0 elements out of tolerance'."""
    np.savez("empty.npz", x=np.zeros((0, 4), np.float32))
    assert main(["onnx", "compare", str(files["net"]), "--torch", f"{files['nets']}:build",
                 "--inputs", "empty.npz"]) == 2
    assert "nothing was compared: every output has 0 elements" in one_line_error(capsys)
    assert main(["onnx", "compare", str(files["net"]), str(files["net"]), "--inputs", "empty.npz"]) == 2
    assert "nothing was compared" in one_line_error(capsys)
