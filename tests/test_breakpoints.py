"""Semantic breakpoints: `modeldebug run --break-on ...` and `watch(..., break_on=...)`.

The stop is driven as a user meets it: a real `modeldebug run` on a pseudo-terminal, pdb's prompt
answered with `p step` and `c`. In process, `sys.breakpointhook` is replaced by one that records
the frame it was called from, which is how any debugger chosen with PYTHONBREAKPOINT is called.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import torch
from torch import nn

import modeldebug as md
from modeldebug.cli import main
from modeldebug.commands._breakon import ONLINE, parse_break_on
from modeldebug.errors import BadInputError

TRAIN = textwrap.dedent("""
    import sys
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(64, 4); y = x.sum(1, keepdim=True)
    corrupt_at = int(sys.argv[1])  # -1: a healthy run
    for step in range(20):
        batch = x.clone()
        if step == corrupt_at:
            batch[5, 2] = float("nan")  # one corrupt sample in this step's batch
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(batch), y)
        loss.backward()
        opt.step()
        seen = step * 10
    print("finished", step)
""")


def drive(args: list[str], answers: list[str], cwd: Path, env: dict[str, str] | None = None,
          timeout: float = 120) -> tuple[int, str]:
    """Run `modeldebug ARGS` on a pseudo-terminal; answer each `(Pdb)` prompt with the next answer."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "modeldebug", *args], stdin=slave, stdout=slave, stderr=slave,
                            cwd=cwd, env={**os.environ, **(env or {})}, close_fds=True)
    os.close(slave)
    out, pending, end = b"", list(answers), time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                out += data
                if pending and out.rstrip().endswith(b"(Pdb)"):
                    os.write(master, pending.pop(0).encode() + b"\n")
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
    return code, out.decode(errors="replace").replace("\r\n", "\n")


@pytest.fixture
def script(tmp_path: Path) -> Path:
    p = tmp_path / "train.py"
    p.write_text(TRAIN)
    return p


@pytest.mark.slow
def test_break_on_nonfinite_stops_in_the_loop_at_the_corrupt_step(script: Path, tmp_path: Path) -> None:
    code, out = drive(["run", "--break-on", "nonfinite", "--db", "run.db", "-q", "--no-progress", "--",
                       str(script), "7"], ["p step", "p seen", "p torch.isnan(batch).any().item()", "c"], tmp_path)
    assert code == 0, out
    assert "modeldebug: break at step 7: NUM001 (nonfinite) in the model's input: the loss is nan" in out
    assert "stopping in train.py:" in out
    # pdb stopped in the script's own frame, on the line after opt.step(), before it ran
    assert "train.py(19)<module>()" in out and "-> seen = step * 10" in out
    replies = out.split("(Pdb) ")[1:]
    assert replies[0].splitlines()[1:2] == ["7"]    # p step: the user's own loop variable
    assert replies[1].splitlines()[1:2] == ["60"]   # p seen: the line after the stop has not run yet
    assert replies[2].splitlines()[1:2] == ["True"]
    assert "finished 19" in out  # `c` goes on to the end of the run
    assert out.count("(Pdb)") == 4  # one stop: a prompt per answer, none after `c`


@pytest.mark.slow
def test_pythonbreakpoint_0_prints_and_does_not_stop(script: Path, tmp_path: Path) -> None:
    code, out = drive(["run", "--break-on", "nonfinite", "--db", "run.db", "-q", "--no-progress", "--",
                       str(script), "7"], ["c"], tmp_path, env={"PYTHONBREAKPOINT": "0"})
    assert code == 0, out
    assert "break at step 7: NUM001 (nonfinite)" in out
    assert "not stopping: PYTHONBREAKPOINT=0" in out
    assert "(Pdb)" not in out and "finished 19" in out


@pytest.mark.slow
def test_q_ends_the_run_without_calling_it_a_crash(script: Path, tmp_path: Path) -> None:
    code, out = drive(["run", "--break-on", "nonfinite", "--db", "run.db", "--no-progress", "--",
                       str(script), "7"], ["q"], tmp_path)
    assert code == 1, out
    assert "the run was ended from the debugger after 8 steps" in out
    assert "NUM001" in out and "RUN006" not in out and "BdbQuit" not in out and "finished 19" not in out


@pytest.mark.slow
def test_healthy_twin_never_stops(script: Path, tmp_path: Path) -> None:
    code, out = drive(["run", "--break-on", ",".join(ONLINE), "--db", "run.db", "-q", "--no-progress", "--",
                       str(script), "-1"], ["c"], tmp_path)
    assert code == 0, out
    assert "break at" not in out and "(Pdb)" not in out and "finished 19" in out


# -- bad conditions ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, words", [
    ("ACT001", ["ACT001 (dead_activations) is judged from the whole run", "nonfinite, loss_spike, NUM001"]),
    ("dead_activations", ["ACT001", "supported: nonfinite"]),
    ("nonfinite,bogus", ["'bogus' is not a condition modeldebug knows", "loss_spike"]),
    (",", ["names no condition"]),
    ("", ["'' names no condition"]),
])
def test_bad_condition_is_one_line_exit_2(value: str, words: list[str], script: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--break-on", value, "--db", "run.db", "--", str(script), "-1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "--break-on" in err and all(w in err for w in words), err
    assert not Path("run.db").exists()  # refused before the script ran


def test_parse_resolves_kinds_and_aliases() -> None:
    assert parse_break_on("nonfinite, exploding_gradients,grd001,LOSS_SPIKE") == ("nonfinite", "GRD001", "loss_spike")
    assert parse_break_on(["missing_zero_grad", "LOS001"]) == ("LOP001", "LOS001")
    with pytest.raises(BadInputError, match="LRN001"):
        md.watch(nn.Linear(2, 2), db=":memory:", break_on="lr_too_high")
    with pytest.raises(BadInputError, match=r"^break_on= .* names no condition"):  # watch's own name for it
        md.watch(nn.Linear(2, 2), db=":memory:", break_on=[])


def test_repeated_break_on_adds_conditions(script: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`--break-on GRD001 --break-on nonfinite` watches both (the last one alone did before)."""
    from modeldebug.record import Record

    monkeypatch.setenv("PYTHONBREAKPOINT", "0")
    code = main(["run", "--break-on", "GRD001", "--break-on", "nonfinite,NUM001,", "--db", "run.db", "-q",
                 "--no-progress", "--", str(script), "3"])
    err = capsys.readouterr().err
    assert code == 0
    assert Record.open("run.db").meta["break_on"] == ["GRD001", "nonfinite"]  # NUM001 is nonfinite: once
    assert err.count("break at step 3: NUM001 (nonfinite)") == 1, err
    assert parse_break_on("NUM001,nonfinite,,") == ("NUM001",)


def test_max_steps_ends_the_script_there(script: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--max-steps", "5", "--db", "run.db", "-q", "--", str(script), "-1"])
    assert code == 0
    assert "finished" not in capsys.readouterr().out  # the rest of the script did not run
    assert md.Record.open("run.db").n_steps == 5
    with pytest.raises(SystemExit) as exc:
        main(["run", "--max-steps", "0", "--", str(script), "-1"])
    assert exc.value.code == 2


# -- in process: watch(break_on=...) with the hook a debugger installs --------------------------------------
class Hook:
    """Stands where pdb's set_trace is: records the frame it was called from (its caller's caller)."""

    def __init__(self) -> None:
        self.frames: list[FrameType] = []
        self.locals: list[dict[str, Any]] = []

    def __call__(self) -> None:
        caller = sys._getframe(1).f_back  # pdb.set_trace() stops in sys._getframe().f_back's caller
        assert caller is not None
        self.frames.append(caller)
        self.locals.append(dict(caller.f_locals))


def _train(break_on: str, hook: Hook, monkeypatch: pytest.MonkeyPatch, *, steps: int = 30, scale_at: int = -1,
           zero_grad: bool = True) -> list[int]:
    monkeypatch.setattr(sys, "breakpointhook", hook)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(64, 4)
    y = x.sum(1, keepdim=True)
    stops: list[int] = []
    with md.watch(model, optimizer=opt, db=":memory:", break_on=break_on):
        for step in range(steps):
            batch = x * 1000.0 if step == scale_at else x  # a batch that missed its normalisation
            if zero_grad:
                opt.zero_grad()
            loss = nn.functional.mse_loss(model(batch), y)
            loss.backward()
            opt.step()
            if len(hook.frames) > len(stops):
                stops.append(step)  # the hook ran before this line: at the step that fired
    return stops


def test_watch_stops_in_the_callers_frame_at_a_loss_spike(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    hook = Hook()
    stops = _train("loss_spike", hook, monkeypatch, scale_at=20)
    assert stops == [20]
    assert hook.frames[0].f_code.co_name == "_train"  # our frames, torch's and the optimizer's are skipped
    assert hook.locals[0]["step"] == 20 and hook.locals[0]["loss"].item() > 1.0  # ~0.09 the steps before
    assert "break at step 20: loss_spike" in capsys.readouterr().err


def test_exploding_gradient_code(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    hook = Hook()
    assert _train("GRD001", hook, monkeypatch, scale_at=20) == [20]
    assert "GRD001" in capsys.readouterr().err and hook.locals[0]["step"] == 20


def test_missing_zero_grad_code(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    hook = Hook()
    assert _train("LOP001", hook, monkeypatch, zero_grad=False) == [2]  # carried at steps 1 and 2
    assert "no zero_grad" in capsys.readouterr().err


def test_healthy_loop_never_calls_the_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = Hook()
    assert _train(",".join(ONLINE), hook, monkeypatch) == []
    assert hook.frames == []


def test_no_listener_without_break_on() -> None:
    session = md.watch(nn.Linear(2, 2), db=":memory:")
    assert session.tracer.listeners == []  # nothing judged, nothing computed


@pytest.mark.parametrize("corrupt_at", [10, 19])
def test_loop_without_optimizer(corrupt_at: int, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """Weights updated by hand: a step ends at the next backward pass, so the stop comes after it;
    a step that fires only when the session closes does not stop (the loop is over)."""
    hook = Hook()
    monkeypatch.setattr(sys, "breakpointhook", hook)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    x = torch.randn(32, 4)
    y = x.sum(1, keepdim=True)
    with md.watch(model, db=":memory:", break_on="nonfinite"):
        for step in range(20):
            batch = x.clone()
            if step == corrupt_at:
                batch[0, 0] = float("inf") - float("inf")
            loss = nn.functional.mse_loss(model(batch), y)
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.05 * p.grad
    err = capsys.readouterr().err
    assert f"break at step {corrupt_at}: NUM001" in err
    if corrupt_at == 10:
        assert [f["step"] for f in hook.locals] == [11]  # in this loop's frame, after the next backward()
    else:
        assert hook.frames == [] and "not stopping: the run has ended" in err


def test_a_diverging_loss_stops_at_the_spike_then_at_los001(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The learning rate raised x10 at step 30: the first jump stops as loss_spike, the smoothed rise as LOS001."""
    hook = Hook()
    monkeypatch.setattr(sys, "breakpointhook", hook)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(64, 4)
    y = x.sum(1, keepdim=True)
    losses: list[float] = []
    with md.watch(model, optimizer=opt, db=":memory:", break_on="loss_spike,LOS001"):
        for step in range(60):
            if step == 30:
                opt.param_groups[0]["lr"] = 0.5
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    err = capsys.readouterr().err
    stops = [f["step"] for f in hook.locals]
    first_jump = next(i for i, v in enumerate(losses) if i >= 30 and v > 0.5 * losses[0])  # half the progress undone
    assert first_jump > 30 and stops[0] == first_jump
    assert len(stops) == 2 and first_jump < stops[1] <= first_jump + 8
    assert f"break at step {stops[0]}: loss_spike" in err and f"break at step {stops[1]}: LOS001" in err


TRAINER = textwrap.dedent("""
    import torch

    def fit(model, opt, x, y, corrupt_at):
        for step in range(20):
            batch = x.clone()
            if step == corrupt_at:
                batch[0, 0] = float("nan")
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(batch), y)
            loss.backward()
            opt.step()
        return step
""")


def test_a_trainer_librarys_loop_is_where_it_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """When an installed package's loop calls optimizer.step(), the stop is there at once, not after fit()."""
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "tinytrainer.py").write_text(TRAINER)
    monkeypatch.syspath_prepend(str(site))
    import tinytrainer  # type: ignore[import-not-found]

    hook = Hook()
    monkeypatch.setattr(sys, "breakpointhook", hook)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(16, 4)
    with md.watch(model, optimizer=opt, db=":memory:", break_on="nonfinite"):
        tinytrainer.fit(model, opt, x, x.sum(1, keepdim=True), 4)
    assert [(f.f_code.co_name, loc["step"]) for f, loc in zip(hook.frames, hook.locals)] == [("fit", 4)]
    assert "the loop of an installed package that called it (`up` reaches your code)" in capsys.readouterr().err
