"""`modeldebug run`'s own lines: the repro bundle said once, and removed when no finding needs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldebug.capture.bundle import bundle_path
from modeldebug.cli import main
from modeldebug.record import Record

# A healthy regression with one mislabelled batch at step 40: the loss jumps once (a loss spike the
# bundle watch saves), then training goes on and converges; no rule judges that a problem.
ONE_BAD_BATCH = '''
import sys
import torch
from torch import nn
import torch.nn.functional as F

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
lr = float(sys.argv[1])
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x = torch.randn(256, 8)
y = x[:, :2].sum(1, keepdim=True)
for step in range(60):
    xb, yb = x[(step % 8) * 32:(step % 8 + 1) * 32], y[(step % 8) * 32:(step % 8 + 1) * 32]
    if step == 40:
        yb = -yb  # one mislabelled batch
        for g in opt.param_groups:
            g["lr"] = lr  # the faulty twin: a learning rate 100x too high from here on
    opt.zero_grad()
    loss = F.mse_loss(model(xb), yb)
    loss.backward()
    opt.step()
'''


def _run(tmp_path: Path, lr: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    script = tmp_path / "train.py"
    script.write_text(ONE_BAD_BATCH)
    code = main(["run", "--db", "run.db", "--no-progress", "--", str(script), lr])
    return code, capsys.readouterr().err.splitlines()


def test_a_spike_no_finding_needs_is_removed_and_said_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(tmp_path, "0.05", capsys)
    assert code == 0
    assert "No problems found." in err
    lines = [line for line in err if "repro bundle" in line]
    assert len(lines) == 1, lines
    assert "step 40 (loss spike)" in lines[0] and "removed: no finding needs it" in lines[0]
    assert not bundle_path("run.db").exists()
    meta = Record.open("run.db").meta["bundle"]
    assert meta["removed"] is True and meta["saved"] is False and meta["trigger"] == "loss_spike"
    assert err.index(lines[0]) > err.index("No problems found.")  # after the report, not while training


def test_a_spike_a_finding_explains_is_kept_and_said_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(tmp_path, "5.0", capsys)
    assert code == 0
    assert any("lr_too_high" in line or "exploding_gradients" in line for line in err)
    lines = [line for line in err if "repro bundle" in line]
    assert len(lines) == 1, lines
    assert "(loss spike) saved as a repro bundle" in lines[0] and "Replay it" in lines[0]
    assert bundle_path("run.db").is_file()
    assert Record.open("run.db").meta["bundle"]["saved"] is True


def test_a_crash_bundle_is_kept_and_said_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "crash.py"
    script.write_text(ONE_BAD_BATCH.replace("yb = -yb", "xb = xb[:, :3]"))  # step 40: a column missing
    assert main(["run", "--db", "run.db", "--no-progress", "--", str(script), "0.05"]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if "repro bundle" in line]
    assert len(lines) == 1 and "step 40 (crash) saved as a repro bundle" in lines[0]
    assert bundle_path("run.db").is_file()


def test_a_file_that_is_not_python_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("hello world\nlearning rate 0.1 next time\n")
    assert main(["run", "--db", "run.db", "--no-progress", "--", "notes.txt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'notes.txt' is not a Python script" in err[0] and "line 1" in err[0]
    assert not Path("run.db").exists()  # refused before a record was claimed
    (tmp_path / "train").write_text("import sys\nsys.exit(3)\n")  # a script without .py is run all the same
    assert main(["run", "--db", "ok.db", "--no-progress", "--", "train"]) == 3


def test_a_python_script_that_does_not_compile_reads_like_python(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.py").write_text("import torch\nx = (\n")
    assert main(["run", "--db", "run.db", "--no-progress", "--", "bad.py"]) == 1
    err = capsys.readouterr().err
    assert "<frozen runpy>" not in err and "Traceback" not in err
    assert err.startswith(f'  File "{tmp_path / "bad.py"}", line 2') and "SyntaxError: '(' was never closed" in err


WATCHED = '''
import torch
from torch import nn
import modeldebug

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x, y = torch.randn(64, 4), torch.randn(64, 1)
with modeldebug.watch(model, opt, db="watched.db"):
    for step in range(25):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
'''


def test_a_watch_run_records_its_script_as_run_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    (tmp_path / "watchit.py").write_text(WATCHED)
    (tmp_path / "plain.py").write_text(WATCHED.replace('with modeldebug.watch(model, opt, db="watched.db"):',
                                                      "if True:"))
    subprocess.run([sys.executable, "watchit.py"], check=True, capture_output=True, timeout=120)
    assert Record.open("watched.db").meta["script"] == "watchit.py"
    assert main(["run", "--db", "plain.db", "--no-progress", "-q", "--", "plain.py"]) == 0
    capsys.readouterr()
    main(["diff", "plain.db", "watched.db"])
    out = capsys.readouterr().out
    assert "script: plain.py -> watchit.py" in out and "Sequential" not in out


def test_a_watch_in_a_runner_that_is_not_the_users_script_keeps_the_model_name(tmp_path: Path) -> None:
    import torch

    import modeldebug

    model = torch.nn.Linear(2, 1)
    with modeldebug.watch(model, db="w.db"):  # under pytest: sys.argv[0] is pytest's, an installed file
        model(torch.randn(3, 2)).sum().backward()
    assert Record.open("w.db").meta["script"] == "Linear"
