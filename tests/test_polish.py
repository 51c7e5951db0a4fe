"""Small promises: bad numbers refused in one line, every file a command writes named, rule failures in the catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_onnx_cli import files  # noqa: F401  (fixture: an exported MLP, a perturbed copy, a nets.py)

from modeldebug.catalogue import CATALOGUE
from modeldebug.cli import main
from modeldebug.distributed.rules import _failed

MODULE = '''
import torch
from torch import nn

def healthy():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))

def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 20, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.3).long()
'''


@pytest.fixture()
def mynet(tmp_path: Path) -> Path:
    path = tmp_path / "mynet.py"
    path.write_text(MODULE)
    return path


def _doctor(mynet: Path, *extra: str) -> list[str]:
    return ["doctor", "--model", f"{mynet}:healthy", "--batch", f"{mynet}:batch", "--loss", "CrossEntropyLoss",
            *extra]


@pytest.mark.parametrize("lr", ["inf", "-inf", "nan", "-1e-3", "0"])
def test_doctor_refuses_a_learning_rate_that_is_not_positive_and_finite(
        mynet: Path, capsys: pytest.CaptureFixture[str], lr: str) -> None:
    assert main(_doctor(mynet, f"--lr={lr}")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("modeldebug: --lr ") and "positive, finite learning rate" in err


def test_doctor_names_every_file_it_wrote(mynet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, html, viz = tmp_path / "doctor.json", tmp_path / "doctor.html", tmp_path / "viz"
    assert main(_doctor(mynet, "--steps", "10", "-q", "--json", str(out), "--html", str(html), "--viz", str(viz))) == 0
    err = capsys.readouterr().err
    assert json.loads(out.read_text())["model_unchanged"] is True and html.read_text().startswith("<!DOCTYPE")
    assert f"modeldebug: JSON report written to {out}" in err
    assert f"modeldebug: HTML report written to {html}" in err
    line = next(x for x in err.splitlines() if x.startswith("modeldebug: plots ("))
    assert line.endswith(f"written to {viz}") and "gradient_flow" in line and (viz / "gradient_flow.svg").is_file()


def test_onnx_commands_name_every_file_they_wrote(files: dict[str, Path], tmp_path: Path,  # noqa: F811
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "inspect.json"
    assert main(["onnx", "inspect", str(files["clean"]), "--json", str(out)]) == 0
    assert f"modeldebug: JSON report written to {out}" in capsys.readouterr().err and out.is_file()
    golden, repro, report = tmp_path / "golden.npz", tmp_path / "repro", tmp_path / "compare.json"
    main(["onnx", "compare", str(files["perturbed"]), "--torch", f"{files['nets']}:build", "--save-golden",
          str(golden), "--repro", str(repro), "--json", str(report), "-q"])
    err = capsys.readouterr().err
    assert golden.is_file() and (repro / "model.onnx").is_file() and report.is_file()
    assert f"modeldebug: golden inputs and outputs written to {golden}" in err
    assert f"written to {repro}" in err and "modeldebug: repro (model.onnx" in err
    assert f"modeldebug: JSON report written to {report}" in err
    assert main(["onnx", "check", str(files["clean"]), "--json", "-", "-q"]) == 0  # stdout: no file, no line
    assert "written to" not in capsys.readouterr().err


def test_a_cross_rank_rule_that_fails_is_the_catalogues_internal_error() -> None:
    f = _failed("DST003", ValueError("ranks   disagree\non shapes"))
    spec = CATALOGUE["INT001"]
    assert (f.code, f.kind, f.category, f.severity) == (spec.code, spec.kind, spec.category, "low") == \
        ("INT001", "internal_error", "runtime", "low")
    assert f.evidence == {"rule": "DST003", "error": "ValueError: ranks disagree on shapes"}
    assert "DST003 could not run" in f.title
    assert spec.family == "internal" and not spec.problems()
