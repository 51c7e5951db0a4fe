"""Real tiny training runs shared by test_journal, test_learn and test_diff: trained once per test session.

Seven runs of tests/compare_train.py under `modeldebug run` (in-process, journaled in the project's own
folder): healthy seeds 0, 1 and 2, and seed 0 with one planted change each.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from modeldebug.cli import main

SCRIPT = Path(__file__).with_name("compare_train.py")
CHANGES = {"lr": ["--lr", "0.3"], "frozen": ["--freeze", "2"], "no_zero_grad": ["--no-zero-grad"],
           "init": ["--init-std", "0.6"]}


# a tiny classifier; --nan-at N puts one NaN into the batch of step N (the data brings it)
NAN_INPUT_SCRIPT = """
import argparse, torch, torch.nn as nn
p = argparse.ArgumentParser()
p.add_argument("--nan-at", type=int, default=-1)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--steps", type=int, default=40)
a = p.parse_args()
torch.manual_seed(a.seed)
g = torch.Generator().manual_seed(1)
X = torch.randn(256, 6, generator=g); Y = (X[:, 0] > 0).long()
model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.Adam(model.parameters(), lr=0.01)
for step in range(a.steps):
    i = torch.randint(0, 256, (32,), generator=g)
    x = X[i].clone()
    if step == a.nan_at:
        x[0, 0] = float("nan")
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), Y[i]).backward()
    opt.step()
"""


@dataclass
class Project:
    """A folder with its journal and one record per run (`runs["seed0"]`, `runs["lr"]`, ...)."""

    root: Path
    runs: dict[str, Path]

    @property
    def journal(self) -> Path:
        return self.root / ".modeldebug" / "journal.db"


def md(*args: str) -> tuple[int, str, str]:
    """`modeldebug ARGS` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def train(root: Path, name: str, *args: str, script: Path = SCRIPT) -> Path:
    """One `modeldebug run` of `script` in `root` (the journal goes to root/.modeldebug)."""
    db = root / f"{name}.db"
    here = os.getcwd()
    os.chdir(root)
    try:
        code, _, err = md("run", "-q", "--no-progress", "--db", str(db), str(script), *args)
    finally:
        os.chdir(here)
    assert code == 0, err
    return db


_PROJECT: list[Project] = []


def project(factory: pytest.TempPathFactory) -> Project:
    """The shared runs, trained on first use."""
    if not _PROJECT:
        saved = os.environ.pop("MODELDEBUG_JOURNAL", None)
        try:
            root = factory.mktemp("compare-project")
            runs = {f"seed{s}": train(root, f"seed{s}", "--seed", str(s)) for s in range(3)}
            runs |= {name: train(root, name, *args) for name, args in CHANGES.items()}
        finally:
            if saved is not None:
                os.environ["MODELDEBUG_JOURNAL"] = saved
        _PROJECT.append(Project(root, runs))
    return _PROJECT[0]
