"""The user's files and runs are never lost or damaged; `modeldebug run` behaves like `python`."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import modeldebug as md
from modeldebug.capture.session import open_writer
from modeldebug.cli import main
from modeldebug.errors import RecordBusyError
from modeldebug.record import RunWriter
from modeldebug.record.lock import live_writer

PY = sys.executable

TRAIN = textwrap.dedent("""
    import sys
    import torch
    from torch import nn
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    for step in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
""")

# Trains, says so on stdout, then waits to be stopped (the test sends the signal after the line).
WAIT = TRAIN + textwrap.dedent("""
    print("trained", flush=True)
    import time
    time.sleep(60)
""")


def _train(steps: int) -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    with md.watch(model, optimizer=opt, db="same.db"):
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()


@pytest.mark.parametrize("name, content", [
    ("mytrain.py", TRAIN.encode()),
    ("model.onnx", bytes(range(256)) * 8),
    ("notes.txt", b"my notes\n"),
])
def test_db_never_overwrites_a_file_that_is_not_a_record(tmp_path: Path, name: str, content: bytes,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    Path("train.py").write_text(TRAIN)
    Path(name).write_bytes(content)
    assert main(["run", "--db", name, "-q", "train.py"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a modeldebug run record" in err[0] and name in err[0]
    assert Path(name).read_bytes() == content
    assert not Path(name + ".lock").exists()


def test_db_never_overwrites_another_sqlite_database(capsys: pytest.CaptureFixture[str]) -> None:
    Path("train.py").write_text(TRAIN)
    conn = sqlite3.connect("app.db")
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.execute("INSERT INTO users VALUES ('ada')")
    conn.commit()
    conn.close()
    before = Path("app.db").read_bytes()
    assert main(["run", "--db", "app.db", "-q", "train.py"]) == 2
    assert "is not a modeldebug run record" in capsys.readouterr().err
    assert Path("app.db").read_bytes() == before


def test_an_old_record_or_an_empty_file_is_replaced(capsys: pytest.CaptureFixture[str]) -> None:
    Path("train.py").write_text(TRAIN)
    Path("empty.db").write_bytes(b"")  # what `mktemp` leaves
    assert main(["run", "--db", "empty.db", "-q", "--json", "a.json", "train.py", "5"]) == 0
    assert main(["run", "--db", "empty.db", "-q", "--json", "b.json", "train.py", "9"]) == 0
    assert json.loads(Path("a.json").read_text())["run"]["steps"] == 5
    assert json.loads(Path("b.json").read_text())["run"]["steps"] == 9
    assert main(["report", "empty.db", "--json", "c.json", "-q"]) == 0
    assert json.loads(Path("c.json").read_text())["run"]["steps"] == 9
    assert not Path("empty.db.lock").exists() and not Path("empty.db-wal").exists()  # one self-contained file


def test_db_in_a_missing_or_unwritable_folder_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    Path("train.py").write_text(TRAIN)
    assert main(["run", "--db", "no/such/dir/run.db", "-q", "train.py"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not Path("no").exists()
    assert main(["run", "--html", "missing/report.html", "-q", "train.py"]) == 2
    assert not Path("missing").exists()
    # /sys refuses new files even to root (tests here run as root, so chmod proves nothing)
    assert main(["run", "--db", "/sys/run.db", "-q", "train.py"]) == 2
    assert "cannot be written: permission denied" in capsys.readouterr().err


def test_a_record_being_written_is_refused_to_a_second_run(capsys: pytest.CaptureFixture[str]) -> None:
    Path("train.py").write_text(TRAIN)
    first = RunWriter("same.db")  # a live run holds the record
    first.set_meta(script="first")
    first.flush()
    assert live_writer("same.db") is not None
    assert main(["run", "--db", "same.db", "-q", "train.py"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "being written by another modeldebug run" in err[0]
    with pytest.raises(RecordBusyError):
        md.watch(nn.Linear(2, 2), db="same.db")
    first.close()
    assert live_writer("same.db") is None
    assert json.loads(dict(sqlite3.connect("same.db").execute("SELECT key, value FROM meta"))["script"]) == "first"


def test_default_names_are_never_shared_by_two_live_runs() -> None:
    a, pa = open_writer(None, "train")
    b, pb = open_writer(None, "train")
    assert pa != pb and pa is not None and pb is not None
    a.close()
    b.close()


def test_a_report_describes_its_own_run_even_after_the_path_is_reused() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    with md.watch(model, optimizer=opt, db="same.db") as first:
        for _ in range(4):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    _train(11)  # a second session replaces the file at the same path
    assert first.report().run["steps"] == 4
    assert md.Report.from_record(md.Record.open("same.db")).run["steps"] == 11


def test_the_scripts_logging_config_works_and_file_is_absolute(tmp_path: Path) -> None:
    Path("train.py").write_text(textwrap.dedent("""
        import logging
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
        logging.info("file=%s", __file__)
    """) + TRAIN)
    plain = subprocess.run([PY, "train.py", "3"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    watched = subprocess.run([PY, "-m", "modeldebug", "run", "-q", "train.py", "3"], capture_output=True, text=True,
                             cwd=tmp_path, timeout=120)
    line = f"INFO file={tmp_path / 'train.py'}"
    assert line in plain.stderr.splitlines()
    assert line in watched.stderr.splitlines()


def test_tracebacks_show_no_modeldebug_frames(capsys: pytest.CaptureFixture[str]) -> None:
    Path("crash.py").write_text(textwrap.dedent("""
        import torch
        class Boom(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2
            @staticmethod
            def backward(ctx, g):
                raise RuntimeError("boom in backward")
        w = torch.ones(3, requires_grad=True)
        Boom.apply(w).sum().backward()
    """))
    assert main(["run", "-q", "--db", ":memory:", "crash.py"]) == 1
    err = capsys.readouterr().err
    frames = [ln for ln in err.splitlines() if ln.strip().startswith('File "')]
    assert frames and "crash.py" in frames[0]
    assert not [f for f in frames if "/modeldebug/" in f], frames
    assert "RuntimeError: boom in backward" in err


@pytest.mark.slow
@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, "terminated"), (signal.SIGINT, "interrupted")])
def test_a_signal_closes_the_record_prints_the_report_and_ends_like_python(tmp_path: Path, sig: int,
                                                                            status: str) -> None:
    Path("wait.py").write_text(WAIT)
    codes = []
    for cmd in ([PY, "wait.py", "20"], [PY, "-m", "modeldebug", "run", "--db", "run.db", "wait.py", "20"]):
        # a shell's background job starts with SIGINT ignored, and Python then never raises
        # KeyboardInterrupt: give both children the default a terminal would
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        assert proc.stdout is not None and proc.stdout.readline().strip() == "trained"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        codes.append(proc.returncode)
    assert codes == [-sig, -sig]  # a calling shell script sees the same death as with plain python
    assert "Run record: run.db" in err  # the report was printed before dying
    meta = dict(sqlite3.connect(tmp_path / "run.db").execute("SELECT key, value FROM meta"))
    assert json.loads(meta["status"]) == status
    assert sqlite3.connect(tmp_path / "run.db").execute("SELECT count(*) FROM steps").fetchone()[0] == 20


def test_a_record_left_running_says_whether_a_run_is_still_writing_it() -> None:
    Path("train.py").write_text(TRAIN)
    assert main(["run", "--db", "r.db", "-q", "train.py", "5"]) == 0
    live = RunWriter("live.db")
    live.set_meta(status="running", script="live.py")
    live.flush()
    run = md.Report.from_record(md.Record.open("live.db")).run
    assert run["status"] == "running" and "still in progress" in run["status_note"]
    live.conn.close()  # what kill -9 leaves: the record says running, nobody holds it
    live._release()
    run = md.Report.from_record(md.Record.open("live.db")).run
    assert run["status"] == "unfinished" and "ended without closing its record" in run["status_note"]
    text = md.Report.from_record(md.Record.open("live.db")).to_text()
    assert "ended without closing its record" in text
    assert "status_note" not in md.Report.from_record(md.Record.open("r.db")).run


FULL_DISK = """
import resource, signal, torch
import modeldebug as md
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit, write() fails with EFBIG, as on a full disk
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(512, 20), torch.randint(0, 3, (512,))
with md.watch(model, optimizer=opt, db="run.db") as session:
    resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))  # the disk fills during the run
    for i in range(1200):
        j = (i * 32) % 512
        loss = torch.nn.functional.cross_entropy(model(x[j:j + 32]), y[j:j + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
print(f"trained {loss.item():.6f}")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_record_that_cannot_be_written_never_stops_the_training(tmp_path: Path) -> None:
    """A full disk mid-run: the record's writes fail; the script trains to the end, prints what plain python
    would, exits 0, and is told in one line that the report will miss steps."""
    (tmp_path / "full.py").write_text(FULL_DISK, encoding="utf-8")
    plain = FULL_DISK.replace('with md.watch(model, optimizer=opt, db="run.db") as session:', "if True:")
    (tmp_path / "plain.py").write_text(plain, encoding="utf-8")
    run = lambda name: subprocess.run([sys.executable, name], cwd=tmp_path, capture_output=True,  # noqa: E731
                                      text=True, timeout=240, check=False)
    watched, alone = run("full.py"), run("plain.py")
    assert watched.returncode == 0, watched.stderr[-2000:]
    assert watched.stdout == alone.stdout and watched.stdout.startswith("trained ")
    said = [line for line in watched.stderr.splitlines() if "cannot be written" in line]
    assert len(said) == 1 and "run.db" in said[0] and "Traceback" not in watched.stderr, watched.stderr
