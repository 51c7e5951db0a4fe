"""`modeldebug bisect`: a real temporary git repository with a planted bug, searched by real runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modeldebug.cli import main

TRAIN = textwrap.dedent("""
    import sys
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(64, 4); y = x.sum(1, keepdim=True)
    for step in range(int(sys.argv[1])):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    print("final", loss.item())
""")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def commit(repo: Path, message: str, **files: str) -> str:
    for name, text in files.items():
        (repo / name.replace("__", ".")).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "project"
    r.mkdir()
    git(r, "init", "-q")
    git(r, "config", "user.email", "dev@example.com")
    git(r, "config", "user.name", "dev")
    git(r, "config", "commit.gpgsign", "false")
    return r


@pytest.mark.slow
def test_bisect_finds_the_commit_that_removed_zero_grad(repo: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    good = commit(repo, "first model", train__py=TRAIN)
    commit(repo, "readme", README__md="# tiny\n")
    commit(repo, "docs", README__md="# tiny\nTrains a tiny MLP.\n")
    broken = commit(repo, "refactor (breaks the script)", train__py=TRAIN.replace("import torch\n", "import torch(\n"))
    commit(repo, "fix the refactor", train__py=TRAIN)
    planted = commit(repo, "tidy the loop", train__py=TRAIN.replace("    opt.zero_grad()\n", ""))
    commit(repo, "print more", train__py=TRAIN.replace("    opt.zero_grad()\n", "").replace('"final"', '"final loss"'))
    (repo / "scratch.txt").write_text("the user's uncommitted work\n")
    status_before = git(repo, "status", "--porcelain")
    monkeypatch.chdir(repo)

    code = main(["bisect", "--good", good[:8], "--bad", "HEAD", "--steps", "15", "--", "train.py", "15"])

    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"first bad commit: {planted} tidy the loop" in out
    # what decided it names the missing zero_grad: the rule's finding, or the good run's zero_grad invariant
    assert "decided by: LOP001" in out or "decided by: INV004" in out, out
    assert f"skipped 1 commit(s) where the script does not run to the end: {broken[:10]}" in err
    assert f"{broken[:10]} skip" in err and "(exit code 1: SyntaxError:" in err
    # the user's working tree, index and worktree list are as they were
    assert git(repo, "status", "--porcelain") == status_before
    assert len(git(repo, "worktree", "list").splitlines()) == 1


def test_bad_rev_is_one_line_exit_2(repo: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    first = commit(repo, "first", train__py=TRAIN)
    second = commit(repo, "second", README__md="x\n")
    monkeypatch.chdir(repo)
    cases = [
        (["--good", "no-such-rev", "--bad", "HEAD"], "--good 'no-such-rev' is not a commit"),
        (["--good", first, "--bad", "v9.9"], "--bad 'v9.9' is not a commit"),
        (["--good", second, "--bad", first], "is newer than --bad"),
        (["--good", "HEAD", "--bad", second], "the same commit"),
        (["--good", first, "--bad", "HEAD", "--steps", "5"], "--steps 5: learning from the good run needs at least 10"),
    ]
    for bad in ("-5", "0", "abc"):  # refused before any run (a negative one timed every run out)
        with pytest.raises(SystemExit) as exc:
            main(["bisect", "--good", first, "--bad", "HEAD", "--timeout", bad, "--", "train.py", "10"])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "is not a number of seconds" in err and "bisect:" not in err, err
    for args, words in cases:
        assert main(["bisect", *args, "--", "train.py", "10"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err and "Traceback" not in err, err
    assert "are --good and --bad swapped?" in (main(["bisect", "--good", second, "--bad", first, "--", "train.py"]),
                                               capsys.readouterr().err)[1]
    (repo / "new.py").write_text(TRAIN)  # not committed: no commit has it
    assert main(["bisect", "--good", first, "--bad", second, "--", "new.py", "10"]) == 2
    err = capsys.readouterr().err
    assert "new.py is not in the --good commit" in err and "is it committed?" in err and err.count("\n") == 1


@pytest.mark.slow
def test_run_from_a_subfolder_of_the_repository(repo: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`cd scripts && modeldebug bisect ... -- train.py`: each run starts in that subfolder, with the script's
    path from there (it was given from the repository's top and not found)."""
    (repo / "scripts").mkdir()
    good = commit(repo, "first model", **{"scripts/train.py": TRAIN})
    bad = commit(repo, "lr x60", **{"scripts/train.py": TRAIN.replace("lr=0.05", "lr=3.0")})
    (repo / "scripts" / "train.py").write_text(TRAIN)  # the user's uncommitted fix: in no run
    monkeypatch.chdir(repo / "scripts")
    monkeypatch.setenv("MODELDEBUG_JOURNAL", str(repo.parent / "journal.db"))  # the user's journal
    code = main(["bisect", "--good", good, "--bad", "HEAD", "--steps", "10", "--", "train.py", "10"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"first bad commit: {bad}" in out and "skip" not in err
    assert "your uncommitted changes (1 file(s), e.g. scripts/train.py) are in no run" in err
    assert (repo / "scripts" / "train.py").read_text() == TRAIN
    assert not (repo.parent / "journal.db").exists()  # bisect's trial runs are not journaled


@pytest.mark.slow
def test_a_bad_commit_that_judges_good_exits_1(repo: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The healthy twin: a later commit that changes no training is not called bad."""
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text("#!/bin/sh\ntouch \"$(git rev-parse --git-common-dir)/../hook-ran\"\n")
    hook.chmod(0o755)
    good = commit(repo, "first", train__py=TRAIN)
    commit(repo, "docs", README__md="# tiny\n")
    commit(repo, "print more", train__py=TRAIN.replace('"final"', '"final loss"'))
    monkeypatch.chdir(repo)
    assert main(["bisect", "--good", good, "--bad", "HEAD", "--steps", "12", "--", "train.py", "12"]) == 1
    out, err = capsys.readouterr()
    assert "judges good" in err and "nothing to bisect" in err and "first bad commit" not in out
    assert not (repo / "hook-ran").exists()  # the repository's own checkout hooks did not run
    with pytest.raises(SystemExit) as exc:
        main(["bisect", "--good", good, "--bad", "HEAD", "--against", "missing.json", "--", "train.py", "12"])
    assert exc.value.code == 2 and "missing.json" in capsys.readouterr().err


def test_outside_a_repository_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "train.py").write_text(TRAIN)
    assert main(["bisect", "--good", "HEAD~1", "--bad", "HEAD", "--", "train.py"]) == 2
    err = capsys.readouterr().err
    assert "is not inside a git repository" in err and err.count("\n") == 1


def test_help_lists_bisect() -> None:
    out = subprocess.run([sys.executable, "-m", "modeldebug", "bisect", "--help"], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0 and "--good REV --bad REV" in out.stdout


def test_ctrl_c_removes_the_worktree_and_says_so(repo: Path) -> None:
    import signal

    good = commit(repo, "first", train__py=TRAIN)
    commit(repo, "second", train__py=TRAIN.replace("lr=0.05", "lr=3.0"))
    proc = subprocess.Popen([sys.executable, "-m", "modeldebug", "bisect", "--good", good, "--bad", "HEAD",
                             "--steps", "10", "--", "train.py", "100000"], cwd=repo, stderr=subprocess.PIPE, text=True,
                            # a background CI shell starts children with SIGINT ignored: give the default back
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    with proc.stderr:
        first = proc.stderr.readline()  # the search has begun: the good commit's run is under way
        assert first.startswith("bisect:"), first
        proc.send_signal(signal.SIGINT)
        err = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert "bisect interrupted" in err and "Traceback" not in err, err
    assert len(git(repo, "worktree", "list").splitlines()) == 1
