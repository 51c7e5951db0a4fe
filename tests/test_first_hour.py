"""The first hour of a new user (issue 12, item 15): what the report says and where it went.

Each test runs a tiny real script through `modeldebug.cli.main(["run", ...])` in the test's own
directory (the autouse fixture changes into it), as a user's first runs would.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from modeldebug.cli import main
from modeldebug.config import DebuggingConfig
from modeldebug.record import Record, RunWriter
from modeldebug.report import Report
from modeldebug.rules.context import Context
from modeldebug.rules.resources import DataloaderBottleneck


def _script(name: str, body: str) -> str:
    Path(name).write_text(textwrap.dedent(body))
    return name


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, dict]:
    """cli.main(["run", "--json", "out.json", "--db", "run.db", *args]) -> exit code, stderr, JSON."""
    code = main(["run", "--json", "out.json", "--db", "run.db", *args])
    err = capsys.readouterr().err
    return code, err, json.loads(Path("out.json").read_text())


INFERENCE_ONLY = """
    import torch
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    with torch.no_grad():
        print(model(torch.randn(3, 4)).sum().item())
"""

TRAINS = """
    import torch
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(32, 4); y = x.sum(1, keepdim=True)
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
"""


# -- no training step: not "No problems found" ----------------------------------------------------
def test_a_script_that_ran_no_training_step_says_so_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    script = _script("infer.py", INFERENCE_ONLY)
    code, err, doc = _run(capsys, "--html", "out.html", "--", script)
    assert code == 0
    assert "No problems found" not in err
    assert "No training step observed" in err
    said = " ".join(err.split())  # prose may wrap
    assert "the forward pass of Linear ran, but no backward pass or optimizer step happened" in said
    assert doc["run"]["verdict"] == "no_training_step" and doc["run"]["steps"] == 0 and doc["findings"] == []
    assert "exit code 0" in doc["run"]["verdict_detail"] and "Linear" in doc["run"]["verdict_detail"]
    html = Path("out.html").read_text(encoding="utf-8")
    assert "No training step observed" in html and "No problems found" not in html


def test_a_script_that_trains_is_judged_as_before(capsys: pytest.CaptureFixture[str]) -> None:
    code, err, doc = _run(capsys, "--", _script("train.py", TRAINS))
    assert code == 0 and doc["run"]["steps"] == 5
    assert doc["run"]["verdict"] in ("no_problems_found", "problems_found", "too_short")  # 5 steps < min_steps
    assert "No training step observed" not in err


# -- where the reports went ------------------------------------------------------------------------
def test_each_written_report_is_named_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    _, err, _ = _run(capsys, "--html", "out.html", "--", _script("train.py", TRAINS))
    assert "modeldebug: JSON report written to out.json\n" in err
    assert "modeldebug: HTML report written to out.html\n" in err
    assert main(["report", "run.db", "--json", "again.json", "--html", "again.html"]) == 0
    err = capsys.readouterr().err
    assert "modeldebug: JSON report written to again.json\n" in err
    assert "modeldebug: HTML report written to again.html\n" in err
    main(["report", "run.db", "--json", "-"])
    captured = capsys.readouterr()
    assert "written to" not in captured.err and json.loads(captured.out)["version"] == 1


def test_report_writing_creates_no_folders(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _run(capsys, "--", _script("train.py", TRAINS))
    report = Report.from_record(Record.open("run.db"))
    with pytest.raises(FileNotFoundError):
        report.to_json(tmp_path / "missing" / "r.json")
    with pytest.raises(FileNotFoundError):
        report.to_html(tmp_path / "missing" / "r.html")
    assert main(["report", "run.db", "--html", "gone/r.html", "--json", "gone2/r.json"]) == 2
    assert not (tmp_path / "missing").exists() and not (tmp_path / "gone").exists()
    assert not (tmp_path / "gone2").exists()


# -- a script's own bug is not a training diagnosis ------------------------------------------------
def test_a_plain_value_error_before_torch_is_the_scripts_own_bug(capsys: pytest.CaptureFixture[str]) -> None:
    script = _script("config_bug.py", """
        config = {"lr": "fast"}
        raise ValueError(f"lr must be a number, got {config['lr']!r}")
    """)
    code, err, doc = _run(capsys, "--", script)
    assert code == 1
    [finding] = doc["findings"]
    assert finding["kind"] == "runtime_error" and finding["severity"] == "low"
    assert "lr must be a number, got 'fast'" in finding["description"]
    assert "config_bug.py:3" in finding["location"] and finding["evidence"]["torch_in_traceback"] is False
    assert "[HIGH]" not in err and "before any training step" in err


def test_a_value_error_raised_by_torch_stays_a_high_runtime_error(capsys: pytest.CaptureFixture[str]) -> None:
    script = _script("no_params.py", """
        import torch
        model = torch.nn.ReLU()                                   # no parameters
        opt = torch.optim.SGD(model.parameters(), lr=0.1)         # torch raises ValueError
    """)
    code, _, doc = _run(capsys, "--", script)
    assert code == 1
    [finding] = doc["findings"]
    assert finding["kind"] == "runtime_error" and finding["severity"] == "high"
    assert "empty parameter list" in finding["description"]


def test_weights_left_on_the_meta_device_are_named_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    script = _script("meta.py", """
        import torch
        with torch.device("meta"):
            model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
        loss = torch.nn.functional.cross_entropy(model(x), y)
    """)
    code, _, doc = _run(capsys, "--", script)
    assert code == 1
    [finding] = doc["findings"]
    assert finding["code"] == "RUN003" and finding["severity"] == "high"
    assert "meta device" in finding["title"] and "to_empty" in finding["recommendations"][0]["implementation"]


# -- PRF001 recommends what fits the device the run used -------------------------------------------
SLOW_LOADER = """
    import time
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Slow(Dataset):
        def __len__(self): return 40
        def __getitem__(self, i):
            end = time.perf_counter() + 0.004          # a costly decode, done in the training process
            while time.perf_counter() < end:
                pass
            return torch.randn(4), torch.randn(1)

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for x, y in DataLoader(Slow(), batch_size=1):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
"""


def test_dataloader_bottleneck_on_a_cpu_run_does_not_recommend_gpu_settings(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, doc = _run(capsys, "--", _script("slow_loader.py", SLOW_LOADER))
    assert code == 0 and doc["run"]["device"] == "cpu"
    [finding] = [f for f in doc["findings"] if f["code"] == "PRF001"]
    text = json.dumps(finding["recommendations"])
    assert "num_workers=4" in text
    assert "pin_memory" not in text and "GPU" not in text


def _hand_record(device: str, cuda_mb: float | None) -> Record:
    """A record whose loader wait is 80% of every step, on `device` (written through RunWriter)."""
    w = RunWriter(":memory:")
    for step in range(30):
        w.add_step(step, t_step=0.010, t_loader=0.008, t_data=0.008, lr=0.01, cuda_mb=cuda_mb)
    w.set_meta(steps=30, device=device)
    w.flush()
    return Record(w.conn)


@pytest.mark.parametrize(("device", "cuda_mb", "pinned"), [
    ("cuda (NVIDIA H100)", 512.0, True),    # trained on the GPU
    ("cuda (NVIDIA H100)", 0.0, False),     # a GPU was there, no tensor went to it
    ("cpu", None, False),
])
def test_pin_memory_is_recommended_only_when_batches_go_to_a_gpu(device: str, cuda_mb: float | None,
                                                                  pinned: bool) -> None:
    [finding] = DataloaderBottleneck().check(Context(_hand_record(device, cuda_mb), DebuggingConfig()))
    code = "\n".join(r.implementation or "" for r in finding.recommendations)
    assert ("pin_memory=True" in code) is pinned


# -- fixes copied from a CI log come out whole -----------------------------------------------------
LONG_NAMES = """
    import torch
    from torch import nn

    class Stage(nn.Module):
        def __init__(self):
            super().__init__()
            self.projection_before_the_rectifier_layer = nn.Linear(8, 32)
            self.rectifier_that_dies_at_initialisation = nn.ReLU()
        def forward(self, x):
            return self.rectifier_that_dies_at_initialisation(self.projection_before_the_rectifier_layer(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder_stage_with_a_rather_long_descriptive_name = Stage()
            self.head = nn.Linear(32, 3)
        def forward(self, x):
            return self.head(self.encoder_stage_with_a_rather_long_descriptive_name(x))

    torch.manual_seed(0)
    model = Net()
    nn.init.constant_(model.encoder_stage_with_a_rather_long_descriptive_name
                      .projection_before_the_rectifier_layer.bias, -10.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(256, 8); y = (x[:, 0] > 0).long()
    for step in range(40):
        idx = torch.randint(0, 256, (32,))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
"""


def test_fix_lines_are_not_wrapped_in_a_log(capsys: pytest.CaptureFixture[str]) -> None:
    _, err, doc = _run(capsys, "--", _script("long_names.py", LONG_NAMES))
    [dead] = [f for f in doc["findings"] if f["kind"] == "dead_activations"]
    code_lines = [line for r in dead["recommendations"] for line in (r["implementation"] or "").splitlines()]
    assert max(len(line) for line in code_lines) > 120  # longer than the 120 columns a log gets
    printed = [line.strip() for line in err.splitlines()]
    for line in code_lines:
        assert line.strip() in printed, f"fix line wrapped or cut: {line}"
    assert "modeldebug report run.db" in err  # the record's command, on one line
