"""`modeldebug doctor` from the command line: a model and a batch from the user's own module."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modeldebug.cli import main

MODULE = '''
import torch
from torch import nn

def dead():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))
    with torch.no_grad():
        m[0].bias.fill_(-10)
    return m

def healthy():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))

def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 20, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.3).long()

def broken():
    raise RuntimeError("cannot build")

class Keywords(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(20, 3)

    def forward(self, x, mask=None):
        print("forward", tuple(x.shape))  # the user's own print: never on stdout under --json -
        return self.fc(x)

def noisy_batch():
    print("loading data...")
    x, y = batch()
    return {"x": x, "mask": torch.ones_like(x), "y": y}

def frozen():
    return healthy().requires_grad_(False)

def one_tensor():
    return batch()[0]

def three():
    x, y = batch()
    return x, y, y

def text():
    return "data.csv"
'''


@pytest.fixture()
def mynet(tmp_path: Path) -> Path:
    path = tmp_path / "mynet.py"
    path.write_text(MODULE)
    return path


def test_doctor_finds_the_dead_layer_and_writes_json(mynet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["doctor", "--model", f"{mynet}:dead", "--batch", f"{mynet}:batch", "--loss", "CrossEntropyLoss",
               "--issue", "not converging", "--json", "out.json", "--viz", "viz", "--fail-on", "high"])
    assert rc == 1
    data = json.loads(Path("out.json").read_text())
    assert data["issues"][0]["kind"] == "dead_activations" and data["model_unchanged"] is True
    assert any(v["fix"] == "reinitialize" and v["helped"] for v in data["verified_fixes"])
    assert sorted(Path("viz").iterdir()) and (Path("viz") / "gradient_flow.svg").exists()
    err = capsys.readouterr().err
    assert "dead_activations" in err and "Sanity probes" in err and "helped" in err


def test_doctor_healthy_model_passes_fail_on(mynet: Path) -> None:
    assert main(["doctor", "--model", f"{mynet}:healthy", "--batch", f"{mynet}:batch", "--loss", "cross_entropy",
                 "--fail-on", "medium", "-q"]) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "nomodule_xyz:build"], "cannot import 'nomodule_xyz'"),
    (["--model", "{m}:missing"], "has no attribute 'missing'"),
    (["--model", "{m}:broken"], "raised RuntimeError: cannot build"),
    (["--model", "{m}:batch"], "returned tuple, not a torch.nn.Module"),
    (["--model", "no_colon"], "expected MODULE:NAME"),
    (["--loss", "CrossEntropee"], "'CrossEntropee' is not a torch.nn loss"),
    (["--loss", None], "no loss function"),
    (["--steps", "2"], "--steps 2 is too few"),
    (["--batch", "{m}:one_tensor"], "returned one tensor(64, 20) float32, not a batch: return (inputs, targets)"),
    (["--batch", "{m}:three"], "returned a tuple of 3 items"),
    (["--batch", "{m}:text"], "returned str: it must return (inputs, targets), a dict of the model's inputs"),
])
def test_doctor_bad_input_is_one_line_exit_2(mynet: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                             message: str) -> None:
    base = {"--model": f"{mynet}:healthy", "--batch": f"{mynet}:batch", "--loss": "CrossEntropyLoss"}
    flags = dict(zip(args[::2], args[1::2]))
    base.update({k: v.format(m=mynet) if v else v for k, v in flags.items()})
    argv = ["doctor", *[a for k, v in base.items() if v is not None for a in (k, v)]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("modeldebug: ") and message in err, err


@pytest.mark.slow
def test_doctor_entry_point(mynet: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "modeldebug", "doctor", "--model", f"{mynet}:healthy", "--batch",
                           f"{mynet}:batch", "--loss", "CrossEntropyLoss", "--json", "-", "-q"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["model_unchanged"] is True


def test_doctor_json_on_stdout_stays_json_when_the_users_code_prints_and_a_dict_batch_is_taken(
        mynet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["doctor", "--model", f"{mynet}:Keywords", "--batch", f"{mynet}:noisy_batch", "--loss",
               "CrossEntropyLoss", "--steps", "10", "--json", "-", "-q"])
    out, err = capsys.readouterr()
    assert rc == 0 and json.loads(out)["model_unchanged"] is True
    assert "loading data..." in err and "forward (64, 20)" in err
    assert not [i for i in json.loads(out)["issues"] if i["code"].startswith("RUN")]


def test_doctor_says_why_a_frozen_model_gets_no_plots(mynet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--model", f"{mynet}:frozen", "--batch", f"{mynet}:batch", "--loss", "CrossEntropyLoss",
                 "--viz", "viz", "-q"]) == 0
    assert "no plots written to viz: every parameter is frozen" in capsys.readouterr().err
