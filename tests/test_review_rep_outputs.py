"""Review of what users see: outputs that would destroy an input, a watch() verdict, export bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import modeldebug
from modeldebug.cli import main
from modeldebug.record import Record

TRAIN = """
import torch
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x = torch.randn(32, 4); y = x.sum(1, keepdim=True)
for _ in range(3):
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
from pathlib import Path
Path("ran.txt").write_text("ran")
"""


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


@pytest.mark.parametrize("flag", ["--html", "--json"])
def test_report_refuses_to_write_its_report_over_the_record(record: Path, flag: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    before = record.read_bytes()
    assert main(["report", str(record), flag, str(record), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modeldebug: ") and err.count("\n") == 1 and str(record) in err
    assert record.read_bytes() == before
    assert Record.open(record).n_steps == 3  # still a record


def test_report_refuses_the_record_under_another_suffix_and_one_file_for_two_reports(
        record: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "run.sqlite"
    other.write_bytes(record.read_bytes())
    assert main(["report", str(other), "--json", str(other), "-q"]) == 2
    assert "is the same file as the run record" in capsys.readouterr().err
    assert Record.open(other).n_steps == 3
    assert main(["report", str(record), "--json", "out.txt", "--html", "out.txt", "-q"]) == 2
    assert "--html 'out.txt' is the same file as --json 'out.txt'" in capsys.readouterr().err
    assert not Path("out.txt").exists()


def test_report_refuses_a_missing_output_folder_before_writing_anything(
        record: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(record), "--html", "ok.html", "--json", "nowhere/r.json", "-q"]) == 2
    assert "the folder 'nowhere' does not exist" in capsys.readouterr().err
    assert not Path("ok.html").exists()


def test_run_refuses_json_over_its_own_db_before_the_script_runs(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "train.py"
    script.write_text(TRAIN, encoding="utf-8")
    assert main(["run", "-q", "--db", "out.rec", "--json", "out.rec", "--", str(script)]) == 2
    err = capsys.readouterr().err
    assert "--json 'out.rec' is the same file as --db 'out.rec'" in err and err.count("\n") == 1
    assert not Path("ran.txt").exists() and not Path("out.rec").exists()
    assert main(["run", "-q", "--db", "out.rec", "--json", "out.json", "--", str(script)]) == 0  # the fix
    assert json.loads(Path("out.json").read_text(encoding="utf-8"))["run"]["steps"] == 3
    assert Record.open("out.rec").n_steps == 3


def test_a_watch_with_no_step_does_not_claim_a_forward_pass_ran() -> None:
    model = nn.Linear(4, 1)
    with modeldebug.watch(model, db=":memory:") as session:
        pass  # the model was never called
    report = session.report()
    detail = report.to_dict()["run"]["verdict_detail"]
    assert report.to_dict()["run"]["verdict"] == "no_training_step"
    assert "forward pass of Linear ran" not in detail
    assert "Linear was watched, but no backward pass or optimizer step happened" in detail
    assert "forward pass of Linear ran" not in " ".join(report.to_text().split())
    assert "forward pass of Linear ran" not in report.to_html()


def test_wandb_export_with_a_project_name_wandb_refuses_is_one_line_exit_2(
        record: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("wandb", reason="needs the wandb extra")
    assert main(["export", str(record), "--to", "wandb", "--experiment", "team/project",
                 "--out", str(tmp_path / "wb")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modeldebug: W&B refused the run: Invalid project name 'team/project'")
    assert err.count("\n") == 1


KILLED = """
import os, signal, torch
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
x = torch.randn(32, 4); y = x.sum(1, keepdim=True)
for _ in range(45):
    opt.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    opt.step()
os.kill(os.getpid(), signal.SIGKILL)  # as kill -9 or the OOM killer would: no record closing
"""


def test_a_killed_runs_record_can_be_reported_again_and_again(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    script = tmp_path / "killed.py"
    script.write_text(KILLED, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "modeldebug", "run", "-q", "--db", "k.db", "--", str(script)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    assert Path("k.db-wal").stat().st_size > 0  # the rows are in the -wal the run left behind
    first = Record.open("k.db")
    steps = first.n_steps
    first.conn.close()  # the last connection to close: it must not fold the -wal away
    assert steps >= 20
    for _ in range(2):
        assert main(["report", "k.db", "--json", "-", "-q"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["run"]["steps"] == steps and doc["run"]["status"] == "unfinished"


def test_a_run_killed_before_its_first_step_does_not_say_it_ran_to_the_end(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    script = tmp_path / "killed_early.py"
    script.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "modeldebug", "run", "-q", "--db", "k0.db", "--", str(script)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    assert main(["report", "k0.db", "--json", "-", "-q"]) == 0
    run = json.loads(capsys.readouterr().out)["run"]
    assert run["verdict"] == "no_training_step" and run["status"] == "unfinished"
    assert "ran to the end" not in run["verdict_detail"]
    assert run["verdict_detail"].startswith("The run ended, without closing its record, before its first")


@pytest.mark.parametrize("value", [1.7e308, 5e-324], ids=["float64-max", "float64-min-subnormal"])
def test_the_html_report_draws_a_float64_run_at_the_ends_of_the_range(value: float) -> None:
    """A float64 run whose gradient norm sits at float64's largest or smallest value: the plots'
    ranges must not step past it (to inf or 0 on a log axis, a crash of the whole --html)."""
    import re

    from modeldebug import Report
    from modeldebug.testing import build_record

    record = build_record(loss=[1.0] * 30, grad_norm=[value] * 30, lr=0.1,
                          params={"fc.weight": {"grad_norm": [value] * 30, "update_ratio": [1e-3] * 30}})
    html = Report([], {"script": "f64.py", "steps": 30}, record).to_html()
    assert 'aria-label="gradient norm"' in html and 'aria-label="gradient bars"' in html
    numbers = re.findall(r'\b(?:x|y|x1|x2|y1|y2|width|height|cx|cy)="([^"]*)"', html)
    assert numbers and not [n for n in numbers if n.lower() in ("nan", "inf", "-inf")]


def test_html_dash_goes_to_stdout_not_to_a_file_named_dash(record: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(record), "--html", "-", "-q"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")
    assert not Path("-").exists()
    script = tmp_path / "train.py"
    script.write_text(TRAIN.replace('Path("ran.txt").write_text("ran")', 'print("the script speaks")'),
                      encoding="utf-8")
    assert main(["run", "-q", "--db", "s.db", "--html", "-", "--", str(script)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("<!DOCTYPE html>") and "the script speaks" in captured.err
    assert not Path("-").exists()
    assert main(["report", str(record), "--json", "-", "--html", "-", "-q"]) == 2
    assert "would both write to stdout" in capsys.readouterr().err


def test_a_script_that_changes_directory_gets_its_reports_where_the_user_asked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    Path("elsewhere").mkdir()
    script = tmp_path / "train.py"
    script.write_text('import os\nos.chdir("elsewhere")\n' + TRAIN.replace('Path("ran.txt").write_text("ran")', ""),
                      encoding="utf-8")
    here = os.getcwd()
    assert main(["run", "-q", "--db", "cd.db", "--json", "cd.json", "--html", "cd.html", "--", str(script)]) == 0
    assert os.getcwd() == here
    assert Path("cd.json").is_file() and Path("cd.html").is_file() and Record.open("cd.db").n_steps == 3
    assert not [p.name for p in Path("elsewhere").iterdir() if p.name.startswith("cd.")]
    assert not Path("cd.db.lock").exists()  # the lock is released where it was made


def test_rules_of_a_family_with_no_codes_says_so_instead_of_printing_nothing(
        capsys: pytest.CaptureFixture[str]) -> None:
    from modeldebug.catalogue import CATALOGUE

    if CATALOGUE.family("plugin"):
        pytest.skip("a plugin rule is installed in this environment")
    assert main(["rules", "--family", "plugin"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Your own rules (0): no codes in this family") and "--rules FILE" in out
