"""The live progress line: drawn in place on a terminal, alerts as thresholds are crossed, out of
the way of the script's own output, silent when stderr is not a terminal, and free for training
(the same weights with and without it)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import modeldebug
from modeldebug import DebuggingConfig
from modeldebug.capture.progress import Progress, StepInfo
from modeldebug.cli import main


class Terminal:
    """What a terminal shows: both streams write onto one screen; \\r returns to the line's start."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str]] = []

    def screen(self) -> list[str]:
        lines, col = [""], 0
        for _, text in self.writes:
            for ch in text:
                if ch == "\n":
                    lines.append("")
                    col = 0
                elif ch == "\r":
                    col = 0
                else:
                    line = lines[-1]
                    lines[-1] = line[:col] + ch + line[col + 1:]
                    col += 1
        return [line.rstrip() for line in lines]


class FakeTTY(io.StringIO):
    """A terminal stream for tests: isatty() is True; writes also land on a shared Terminal."""

    def __init__(self, terminal: Terminal | None = None, name: str = "stderr") -> None:
        super().__init__()
        self.terminal = terminal or Terminal()
        self.name = name

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.terminal.writes.append((self.name, text))
        return super().write(text)


def _train(steps: int, *, lr: float = 0.05, scale: float = 1.0, progress: object = False,
           config: DebuggingConfig | None = None, say: bool = False) -> tuple[modeldebug.WatchSession, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = torch.randn(64, 8), torch.randn(64, 1) * scale
    with modeldebug.watch(model, optimizer=opt, db=":memory:", progress=progress, config=config) as session:
        for step in range(steps):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            if say and step % 5 == 0:
                print(f"epoch {step} done")
    return session, [p.detach().clone() for p in model.parameters()]


def test_status_line_is_drawn_in_place_and_erased_at_exit() -> None:
    err = FakeTTY()
    session, _ = _train(30, progress=err)
    text = err.getvalue()
    assert "\rmodeldebug | step 0 | loss " in text and " ms/step | grad norm " in text
    assert "\n" not in text  # only redraws in place: no alert in a healthy run
    assert session.progress is not None and session.progress.alerts == []
    assert err.terminal.screen() == [""]  # erased when the session ended
    assert sys.stdout is not session.progress.stream  # streams handed back


def test_alerts_fire_once_each_as_thresholds_are_crossed() -> None:
    """lr far too high: the gradient norm explodes past grad_growth x its early median, then the
    loss and the gradients turn non-finite. Each alert is printed once, on its own line."""
    err = FakeTTY()
    session, _ = _train(40, lr=0.5, scale=100.0, progress=err)
    live = session.progress
    assert live is not None
    kinds = [kind for _, kind, _ in live.alerts]
    assert kinds.count("grad_growth") == 1 and kinds.count("nonfinite_loss") == 1
    assert len(kinds) == len(set(kinds))
    # the growth alert comes before the NaN, at the first step above the threshold
    grad = session.record.column("grad_norm").values
    base = float(torch.tensor(grad[:5]).median())
    (growth_step,) = [s for s, k, _ in live.alerts if k == "grad_growth"]
    first_over = next(i for i, g in enumerate(grad[5:], 5) if not g <= 100 * base)
    assert growth_step == first_over
    nan_step = next(s for s, k, _ in live.alerts if k == "nonfinite_loss")
    assert nan_step > growth_step
    screen = [line for line in err.terminal.screen() if line]
    assert screen == [f"modeldebug: alert at step {s}: {m}" for s, _, m in live.alerts]
    assert "the loss is nan" in screen[-1] or "the loss is inf" in " ".join(screen)


def test_config_thresholds_raise_alerts() -> None:
    config = DebuggingConfig(thresholds={"loss_alert": 0.1, "grad_norm_alert": 1e-6, "memory_mb": 1.0})
    err = FakeTTY()
    session, _ = _train(3, progress=err, config=config)
    assert session.progress is not None
    assert [(s, k) for s, k, _ in session.progress.alerts] == [(0, "grad_norm_alert"), (0, "loss_alert"), (0, "memory_mb")]
    assert "is above loss_alert 0.1" in err.getvalue()


def test_the_scripts_output_is_never_mixed_with_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", FakeTTY(terminal, "stdout"))
    monkeypatch.setattr(Progress, "INTERVAL", 0.0)  # redraw at every step: the worst case for mixing
    err = FakeTTY(terminal, "stderr")
    session, _ = _train(30, progress=err, say=True)
    screen = terminal.screen()
    printed = [line for line in screen if line.startswith("epoch")]
    assert printed == [f"epoch {s} done" for s in range(0, 30, 5)]  # whole lines, nothing left over
    assert all("modeldebug" not in line for line in screen)  # the line was erased each time
    # and it was drawn between them, every step
    assert session.progress is not None and session.progress.redraws == 30
    drawn = [i for i, (name, text) in enumerate(terminal.writes) if text.startswith("\rmodeldebug |")]
    said = [i for i, (name, _) in enumerate(terminal.writes) if name == "stdout"]
    assert drawn[0] < said[0] < drawn[-1]
    assert isinstance(sys.stdout, FakeTTY)  # given back


def test_an_unfinished_script_line_is_not_overwritten(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(1000))
    err = FakeTTY()
    monkeypatch.setattr(sys, "stderr", err)  # the script's stderr is the terminal the line is on
    live = Progress(err, interval=0.5, clock=lambda: float(next(clock))).install()
    try:
        live.on_step(StepInfo(0, loss=1.0))
        sys.stderr.write("Epoch 1: ")  # the script's own unfinished line (e.g. its own progress bar)
        for step in range(1, 5):
            live.on_step(StepInfo(step, loss=1.0))
        assert err.terminal.screen()[-1] == "Epoch 1:"
        sys.stderr.write("ok\n")
        live.on_step(StepInfo(5, loss=0.5))
        assert err.terminal.screen()[-2:] == ["Epoch 1: ok", "modeldebug | step 5 | loss 0.5"]
    finally:
        live.close()
    assert sys.stderr is err and err.terminal.screen()[-1] == ""


def test_log_handlers_made_before_the_run_erase_the_line_too(monkeypatch: pytest.MonkeyPatch) -> None:
    err = FakeTTY()
    monkeypatch.setattr(sys, "stderr", err)
    handler = logging.StreamHandler(err)  # what logging.basicConfig() made before the run
    logger = logging.getLogger("modeldebug-test-progress")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        live = Progress(err, interval=0.0).install()
        live.on_step(StepInfo(0, loss=1.0))
        assert err.terminal.screen() == ["modeldebug | step 0 | loss 1"]
        logger.warning("a warning from the script")
        live.on_step(StepInfo(1, loss=0.5))
        assert err.terminal.screen() == ["a warning from the script", "modeldebug | step 1 | loss 0.5"]
        live.close()
        assert handler.stream is err and err.terminal.screen() == ["a warning from the script", ""]
    finally:
        logger.removeHandler(handler)


def test_redraws_are_rate_limited_and_fit_the_width(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    err = FakeTTY()
    live = Progress(err, interval=0.25, clock=lambda: now[0])
    monkeypatch.setenv("COLUMNS", "60")
    for step in range(100):  # 100 steps of 10 ms: one second
        live.on_step(StepInfo(step, loss=1.0 / (step + 1), grad_norm=0.5, t_step=0.01))
        now[0] += 0.01
    assert live.redraws == 4  # at 0, 0.25, 0.5, 0.75 s
    assert max(len(line) for line in err.getvalue().split("\r")) <= 59
    last = err.getvalue().rsplit("\r", 1)[-1]
    assert last == "modeldebug | step 75 | loss 0.0132 | 10 ms/step | grad norm"  # cut to fit 60 columns


def test_silent_and_untouched_when_not_a_terminal() -> None:
    err = io.StringIO()  # isatty() is False, as when stderr is a file or a pipe
    stdout, stderr = sys.stdout, sys.stderr
    session, _ = _train(30, lr=0.5, scale=100.0, progress=err)  # alerts would fire on a terminal
    assert err.getvalue() == ""
    assert session.progress is None and session.tracer.listeners == []
    assert sys.stdout is stdout and sys.stderr is stderr


def test_training_is_bit_identical_with_the_line() -> None:
    _, plain = _train(25)
    _, live = _train(25, progress=FakeTTY())
    assert all(torch.equal(a, b) for a, b in zip(plain, live))


def test_a_failing_listener_is_switched_off_and_training_goes_on() -> None:
    calls = []

    def broken(info: StepInfo) -> None:
        calls.append(info.step)
        raise RuntimeError("boom")

    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with modeldebug.watch(model, optimizer=opt, db=":memory:") as session:
        session.tracer.listeners.append(broken)
        for _ in range(5):
            opt.zero_grad()
            model(torch.ones(2, 4)).sum().backward()
            opt.step()
    assert calls == [0] and session.record.n_steps == 5
    assert any(e.data["probe"] == "listener" for e in session.record.events("internal_error"))


SCRIPT = textwrap.dedent("""
    import torch
    from torch import nn
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(32, 4); y = x.sum(1, keepdim=True)
    for step in range(40):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        if step % 10 == 0:
            print("script says", step, flush=True)
""")


def test_cli_no_progress_flag_and_non_tty_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    assert main(["run", "-q", "--db", "a.db", str(script)]) == 0  # stderr captured: not a terminal
    out = capsys.readouterr()
    assert out.out.count("script says") == 4 and "modeldebug |" not in out.err
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    assert main(["run", "-q", "--no-progress", "--db", "b.db", str(script)]) == 0
    assert tty.getvalue() == "" and "--no-progress" not in capsys.readouterr().out  # not passed to the script
    assert main(["run", "-q", "--db", "c.db", str(script)]) == 0
    assert "\rmodeldebug | step 0 | loss " in tty.getvalue() and tty.terminal.screen() == [""]
    assert sys.stderr is tty


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_cli_draws_the_line_on_a_real_terminal(tmp_path: Path) -> None:
    """`modeldebug run` in a subprocess on a pseudo-terminal: the line is drawn on the real tty and
    the script's lines stay whole."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    main_fd, child_fd = os.openpty()
    env = {**os.environ, "COLUMNS": "100", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "modeldebug", "run", "-q", "--db", "r.db", str(script)],
                            stdin=subprocess.DEVNULL, stdout=child_fd, stderr=child_fd, cwd=tmp_path, env=env)
    os.close(child_fd)
    chunks, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main_fd)
    assert proc.wait(timeout=60) == 0
    shown = b"".join(chunks).decode()
    assert "\rmodeldebug | step 0 | loss " in shown
    term = Terminal()
    term.writes.append(("pty", shown.replace("\r\n", "\n")))  # the tty turns \n into \r\n
    assert [line for line in term.screen() if line] == [f"script says {s}" for s in (0, 10, 20, 30)]
