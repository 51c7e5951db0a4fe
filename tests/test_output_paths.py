"""No command may write an output over one of its inputs (commands/_paths.py): the ONNX model, the
production log, the run records `learn` reads, the golden file's own model. Each refusal is one line and
exit code 2, the input unchanged byte for byte; the healthy twin writes where it is told."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

import modeldebug
from modeldebug.cli import main


@pytest.fixture
def onnx_model(tmp_path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [x], [y])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps({"ts": i, "latency": 0.1, "error": False}) + "\n" for i in range(5)))
    return path


@pytest.fixture
def record(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(16, 4)
    db = tmp_path / "run.db"
    with modeldebug.watch(model, optimizer=opt, db=db):
        for _ in range(3):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
    return db


def _refused(argv: list[str], kept: Path, capsys: pytest.CaptureFixture[str], *words: str) -> None:
    before = kept.read_bytes()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("modeldebug: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and all(w in err for w in words), err
    assert kept.read_bytes() == before


def test_onnx_report_is_not_written_over_the_model(onnx_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused(["onnx", "inspect", str(onnx_model), "--json", str(onnx_model)], onnx_model, capsys,
             "the model", "destroy")
    _refused(["onnx", "check", str(onnx_model), "--json", str(onnx_model)], onnx_model, capsys, "the model")


def test_onnx_golden_file_is_not_saved_over_the_model(onnx_model: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    reference = tmp_path / "ref.onnx"
    reference.write_bytes(onnx_model.read_bytes())
    _refused(["onnx", "compare", str(onnx_model), str(reference), "--save-golden", str(reference)], reference,
             capsys, "the reference model")


def test_a_report_is_not_written_over_another_model_either(onnx_model: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.onnx"
    other.write_bytes(onnx_model.read_bytes())
    _refused(["onnx", "inspect", str(onnx_model), "--json", str(other)], other, capsys, ".onnx")


def test_monitor_report_is_not_written_over_the_log(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused(["monitor", str(log), "--json", str(log), "-q"], log, capsys, "the log")
    _refused(["monitor", str(log), "--html", str(log), "-q"], log, capsys, "the log")


def test_two_outputs_to_one_file_are_refused(log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert main(["monitor", str(log), "--json", str(out), "--html", str(out), "-q"]) == 2
    assert "same file as --json" in capsys.readouterr().err and not out.exists()


def test_learn_does_not_write_invariants_over_a_record(record: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _refused(["learn", str(record), "-o", str(record)], record, capsys, "the run")


def test_a_missing_folder_is_named_before_the_work(log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", str(log), "--json", str(tmp_path / "nope" / "r.json"), "-q"]) == 2
    assert "does not exist: create it first" in capsys.readouterr().err


def test_healthy_twin_outputs_beside_their_inputs_are_written(onnx_model: Path, log: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    before = onnx_model.read_bytes()
    assert main(["onnx", "inspect", str(onnx_model), "--json", str(tmp_path / "inspect.json"), "-q"]) == 0
    assert json.loads((tmp_path / "inspect.json").read_text())["version"] == 1
    assert onnx_model.read_bytes() == before
    (tmp_path / "old.json").write_text("{}")  # an earlier report is replaced, as users expect
    assert main(["monitor", str(log), "--json", str(tmp_path / "old.json"), "-q"]) == 0
    assert json.loads((tmp_path / "old.json").read_text())["run"]["requests"] == 5


def test_a_folder_path_and_a_checkpoint_are_not_written_as_outputs(log: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Review: `--json ./sub/` with `sub` missing wrote a file named `sub`; `behaviour baseline --out model.pt`
    would replace a checkpoint (only --json/--html were checked for models and records)."""
    assert main(["monitor", str(log), "--json", str(tmp_path / "sub") + "/", "-q"]) == 2
    assert "names a folder" in capsys.readouterr().err and not (tmp_path / "sub").exists()
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights")
    _refused(["behaviour", "baseline", "--model", "nowhere:gen", "--out", str(ckpt)], ckpt, capsys, ".pt")
    old = tmp_path / "baseline.json"  # an earlier baseline is replaced, as users expect
    old.write_text("{}")
    assert main(["behaviour", "baseline", "--model", "nowhere:gen", "--out", str(old)]) == 2  # (the model is missing)
    assert "would overwrite" not in capsys.readouterr().err
