"""`modeldebug onnx ...`: exit codes, JSON, and one clear line for every kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from test_onnx_models import exported, proto

from modeldebug.cli import main

NETS = """
from modeldebug.testing import healthy_mlp

def build():
    return healthy_mlp()[0]

def broken():
    raise RuntimeError("no weights here")

def not_a_model():
    return 42
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"clean": tmp_path / "mlp.onnx", "bad": tmp_path / "bad.onnx", "faulty": tmp_path / "faulty.onnx",
             "perturbed": tmp_path / "perturbed.onnx", "nets": tmp_path / "nets.py"}
    paths["clean"].write_bytes(exported("mlp"))
    paths["bad"].write_bytes(b"definitely not protobuf\n")
    m = proto("mlp")
    m.graph.node.append(helper.make_node("Relu", ["linear"], ["unused_out"], name="dead_relu"))
    onnx.save_model(m, str(paths["faulty"]))
    m = proto("mlp")
    w = next(t for t in m.graph.initializer if t.name == "2.weight")
    arr = numpy_helper.to_array(w).copy()
    arr[0] += 0.5
    w.CopyFrom(numpy_helper.from_array(arr, "2.weight"))
    onnx.save_model(m, str(paths["perturbed"]))
    paths["nets"].write_text(NETS, encoding="utf-8")
    return paths


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("modeldebug: ") and "Traceback" not in err, err
    return err


def test_check_clean_and_faulty(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["onnx", "check", str(files["clean"]), "--fail-on", "low"]) == 0
    assert "no problems found" in capsys.readouterr().out
    assert main(["onnx", "check", str(files["faulty"]), "--json", "-", "-q"]) == 0  # no --fail-on: 0
    report = json.loads(capsys.readouterr().out)
    assert [f["code"] for f in report["findings"]] == ["ONX003"] and report["findings"][0]["category"] == "onnx"
    assert report["analysis"]["inspection"]["ir_version"] > 0
    assert main(["onnx", "check", str(files["faulty"]), "--fail-on", "low", "-q"]) == 1


def test_inspect_and_profile_json(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "inspect.json"
    assert main(["onnx", "inspect", str(files["clean"]), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["inspection"]["total_macs"] == 20 * 64 + 64 * 64 + 64 * 3
    assert "Gemm" in capsys.readouterr().out
    assert main(["onnx", "profile", str(files["clean"]), "--warmup", "1", "--iterations", "3", "--json", "-", "-q"]) == 0
    prof = json.loads(capsys.readouterr().out)["profile"]
    assert len(prof["run_ms"]) == 3 and prof["nodes"]


def test_compare_names_the_node_and_saves_repro(files: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    repro = tmp_path / "repro"
    rc = main(["onnx", "compare", str(files["perturbed"]), "--torch", f"{files['nets']}:build", "--repro", str(repro),
               "--fail-on", "high", "--json", "-", "-q"])
    assert rc == 1
    data = json.loads(capsys.readouterr().out)
    assert data["comparison"]["first_divergent"]["node"] == "node_linear_1"
    assert data["findings"][0]["code"] == "ONX101" and (repro / "model.onnx").is_file()
    x = np.random.default_rng(0).standard_normal((3, 20)).astype(np.float32)
    np.savez(tmp_path / "in.npz", input=x)
    assert main(["onnx", "compare", str(files["clean"]), "--torch", f"{files['nets']}:build",
                 "--inputs", str(tmp_path / "in.npz"), "-q"]) == 0
    assert "PASS" in capsys.readouterr().out


@pytest.mark.parametrize("spec,message", [
    ("nets.py", "expected MODULE:NAME"),
    ("missing.py:build", "no such file"),
    ("nets.py:nothing", "no attribute"),
    ("nets.py:broken", "no weights here"),
    ("nets.py:not_a_model", "not a torch.nn.Module"),
    ("no_such_module_here:build", "cannot import"),
])
def test_bad_torch_factory(files: dict[str, Path], capsys: pytest.CaptureFixture[str], spec: str, message: str) -> None:
    spec = spec.replace("nets.py", str(files["nets"]))
    assert main(["onnx", "compare", str(files["clean"]), "--torch", spec]) == 2
    assert message in one_line_error(capsys)


def test_bad_inputs_one_line_each(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["onnx", "check", str(files["bad"])]) == 2
    assert "not an ONNX model" in one_line_error(capsys)
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(files["clean"].read_bytes()[:3000])
    assert main(["onnx", "inspect", str(cut)]) == 2
    assert "truncated" in one_line_error(capsys)
    np.savez(tmp_path / "wrong.npz", input=np.zeros((3, 7), np.float32))
    assert main(["onnx", "profile", str(files["clean"]), "--inputs", str(tmp_path / "wrong.npz")]) == 2
    assert "shape [3, 7]" in one_line_error(capsys)
    assert main(["onnx", "compare", str(files["clean"]), "--torch", f"{files['nets']}:build",
                 "--inputs", str(tmp_path / "missing.npz")]) == 2
    assert "no such inputs file" in one_line_error(capsys)
    new = tmp_path / "new_opset.onnx"
    m = proto("mlp")
    m.opset_import[0].version = 30
    onnx.save_model(m, str(new))
    assert main(["onnx", "profile", str(new)]) == 2
    assert "opset 30" in one_line_error(capsys)


@pytest.mark.slow
def test_entry_point_exits_2_without_traceback(files: dict[str, Path]) -> None:
    proc = subprocess.run([sys.executable, "-m", "modeldebug", "onnx", "check", str(files["bad"])],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "not an ONNX model" in proc.stderr


def test_impossible_shapes_and_tolerances_are_bad_input(files: dict[str, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    name = proto("mlp").graph.input[0].name
    assert main(["onnx", "inspect", str(files["clean"]), "--shape", f"{name}=1,2,3"]) == 2
    assert "dimensions" in capsys.readouterr().err
    assert main(["onnx", "compare", str(files["clean"]), "--torch", f"{files['nets']}:build", "--atol", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("modeldebug: --atol -1.0 must be a tolerance") and "\n" not in err


def test_reference_model_may_come_after_the_options(files: dict[str, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`onnx compare M --atol 1e-3 REF` compares with REF, as `onnx compare M REF --atol 1e-3` does."""
    rc = main(["onnx", "compare", str(files["clean"]), "--json", "-", "-q", "--fail-on", "high",
               str(files["perturbed"])])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1 and data["comparison"]["first_divergent"]["node"] == "node_linear_1"
    with pytest.raises(SystemExit) as stop:
        main(["onnx", "compare", str(files["clean"]), "-q", str(files["perturbed"]), "stray"])
    assert stop.value.code == 2
    assert "unrecognized arguments: stray" in one_line_error(capsys)
