"""A new user's first hour, second pass: the messages a first try at each command meets.

Each test runs the real command through `modeldebug.cli.main` in the test's own directory (the
autouse fixture changes into it), with real scripts, a real journal and real run records.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from modeldebug.cli import main
from modeldebug.report import Report
from modeldebug.report.terminal import render_text

TRAIN = """
    import torch
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
"""


def _err(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def _usage_err(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    return int(exc.value.code or 0), capsys.readouterr().err


def test_run_without_a_script_asks_for_the_script_only(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _usage_err(capsys, "run")
    assert code == 2
    assert "required: SCRIPT (see `modeldebug run --help`)" in err and "ARGS" not in err


@pytest.mark.parametrize(("argv", "unknown", "help_of"), [
    (["run", "--no-such-flag", "--", "train.py"], "--no-such-flag", "modeldebug run"),
    (["report", "--bogus", "x.db"], "--bogus", "modeldebug report"),
    (["diff", "--x"], "--x", "modeldebug diff"),
    (["behaviour", "probe", "--nope"], "--nope", "modeldebug behaviour probe"),
])
def test_an_unknown_option_points_at_its_own_commands_help(argv: list[str], unknown: str, help_of: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _usage_err(capsys, *argv)
    assert code == 2
    assert f"unrecognized arguments: {unknown} " in err
    assert f"(see `{help_of} --help`)" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [["report"], ["export", "--to", "csv"]])
def test_a_directory_given_as_a_record_says_it_is_one(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    Path("runs").mkdir()
    code, err = _err(capsys, command[0], "runs", *command[1:])
    assert code == 2
    assert err.strip().splitlines() == [
        "modeldebug: no run record at 'runs': it is a directory; give a .db file (`modeldebug history` lists the runs)"]


def test_report_on_a_missing_file_still_says_it_does_not_exist(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _err(capsys, "report", "nope.db")
    assert code == 2 and "does not exist" in err


def test_diff_of_the_good_run_alone_says_it_is_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    Path("train.py").write_text(textwrap.dedent(TRAIN))
    assert main(["run", "--no-progress", "-q", "train.py"]) == 0
    assert main(["mark", "last"]) == 0
    capsys.readouterr()
    code, err = _err(capsys, "diff", "good")
    assert code == 2
    assert "'good' is the reference run itself" in err and "modeldebug diff good last" in err
    assert "no run is named 'good'" not in err  # it is: the old message said the opposite


def test_a_header_without_counts_has_no_dangling_colon() -> None:
    text = render_text(Report([], {"script": "onnx check model.onnx"}))
    assert text.splitlines()[0] == "modeldebug onnx check model.onnx"
    run = render_text(Report([], {"script": "train.py", "steps": 3, "duration_s": 0.5}))
    assert run.splitlines()[0] == "modeldebug train.py: 3 steps, 0.5s"


GEN = '''
import torch


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.out = torch.nn.Linear(4, 4)

    def generate(self, prompt, max_tokens=8):
        return "Paris" if "France" in prompt else "I do not know."


def make_model():
    return Tiny()


def two_args(a, b):
    return a + b
'''


@pytest.mark.parametrize("name", ["make_model", "Tiny"])
def test_behaviour_model_may_be_a_factory(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    Path("gen.py").write_text(GEN)
    code, err = _err(capsys, "behaviour", "probe", "--model", f"gen.py:{name}", "--probes", "runs,weights")
    assert code == 0
    assert "BEH001" not in err and "TypeError" not in err  # built once, then asked: not called with a prompt
    assert "weights      20 parameters in 2 tensors" in err  # the built module's own weights were read


def test_behaviour_model_that_cannot_take_a_prompt_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    Path("gen.py").write_text(GEN)
    code, err = _err(capsys, "behaviour", "probe", "--model", "gen.py:two_args", "--probes", "runs")
    assert code == 2
    want = ("modeldebug: --model 'gen.py:two_args' cannot take a prompt: give a function prompt -> str, an object "
            "with generate(prompt), or a factory with no arguments that returns one")
    assert err.strip().splitlines() == [want]


NETS = '''
import torch


def build():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def nothing():
    return None
'''


@pytest.mark.parametrize(("batch", "returned"), [("nothing", "NoneType"), ("build", "Sequential")])
def test_doctor_batch_that_returns_no_data_names_the_flag(batch: str, returned: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    Path("nets.py").write_text(NETS)
    code, err = _err(capsys, "doctor", "--model", "nets.py:build", "--batch", f"nets.py:{batch}",
                     "--loss", "CrossEntropyLoss")
    assert code == 2
    want = f"modeldebug: --batch 'nets.py:{batch}' returned {returned}: it must return (inputs, targets), a dict of the model's inputs, or a DataLoader"
    assert err.strip().splitlines() == [want]


def test_diff_names_a_learning_rate_of_an_optimizer_only_one_run_had() -> None:
    from modeldebug.compare.changes import _group_changes

    texts = [c.text for c in _group_changes({"Adam 0 group 0 lr": 0.001}, {"SGD 0 group 0 lr": 0.5})]
    assert texts == ["learning rate (Adam 0 group 0): 0.001 -> (no such optimizer)",
                     "learning rate (SGD 0 group 0): (no such optimizer) -> 0.5"]
    assert [c.text for c in _group_changes({"Adam 0 group 0 lr": 0.001}, {"Adam 0 group 0 lr": 0.01})] == [
        "learning rate (Adam 0 group 0): 0.001 -> 0.01 (x10)"]


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "-m", "pkg.train", "--epochs", "2"],
     "run takes a script's path, not -m pkg.train: give the file (modeldebug run pkg/train.py ...)"),
    (["run", "--", "-m", "train"], "run takes a script's path, not -m train: give the file (modeldebug run train.py ...)"),
    (["run", "python", "train.py", "--epochs", "2"],
     "'python' is the interpreter, not the script: drop it (modeldebug run train.py --epochs 2)"),
    (["run", "--no-progress", "--", "python3", "train.py"],
     "'python3' is the interpreter, not the script: drop it (modeldebug run train.py)"),
])
def test_a_python_command_line_copied_whole_is_one_line(argv: list[str], message: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    Path("train.py").write_text(textwrap.dedent(TRAIN))
    code, err = _err(capsys, *argv)
    assert code == 2
    assert err.strip().splitlines() == [f"modeldebug: {message}"]
    assert not Path(".modeldebug").exists()  # refused before anything ran


def test_a_script_named_python_that_exists_still_runs(capsys: pytest.CaptureFixture[str]) -> None:
    Path("python").write_text(textwrap.dedent(TRAIN))
    Path("other.py").write_text("")
    code, err = _err(capsys, "run", "--no-progress", "python", "other.py")
    assert code == 0 and "3 steps" in err
