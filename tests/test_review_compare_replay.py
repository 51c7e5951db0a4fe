"""Review of `diff`, `learn`, `replay` and `export`, each bug found by using the commands on real runs:
strict JSON from `diff` when a run went NaN, a changed model said as such (not as a frozen layer), a run
with no step not said to "part nowhere", replay naming what a file that is not a bundle is, an MLflow
store that is the run record itself refused, one run given twice to `learn` refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from compare_runs import md

# a tiny seeded regressor: --bn inserts a BatchNorm1d after the first layer (every later module is
# renamed), --nan-at N puts one NaN into the batch of step N
SCRIPT = """
import argparse, torch, torch.nn as nn
p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=12)
p.add_argument("--nan-at", type=int, default=-1)
p.add_argument("--bn", action="store_true")
a = p.parse_args()
torch.manual_seed(0)
X = torch.randn(256, 6); Y = X.sum(1, keepdim=True)
layers = [nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1)]
model = nn.Sequential(*(layers if a.bn else [layers[0], *layers[2:]]))
opt = torch.optim.Adam(model.parameters(), lr=0.01)
for step in range(a.steps):
    x, y = X[step * 16:(step + 1) * 16].clone(), Y[step * 16:(step + 1) * 16]
    if step == a.nan_at:
        x[0, 0] = float("nan")
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()
"""

RUNS = {"good": [], "nan": ["--nan-at", "5"], "bn": ["--bn"], "empty": ["--steps", "0"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("review_runs")
    script = root / "train.py"
    script.write_text(SCRIPT)
    out = {}
    here, journal = os.getcwd(), os.environ.get("MODELDEBUG_JOURNAL")
    os.environ["MODELDEBUG_JOURNAL"] = "off"
    os.chdir(root)
    try:
        for name, args in RUNS.items():
            db = root / f"{name}.db"
            code, _, err = md(
                "run", "-q", "--no-progress", "--db", str(db), str(script), *args
            )
            assert code == 0, err
            out[name] = db
    finally:
        os.chdir(here)
        if journal is None:
            os.environ.pop("MODELDEBUG_JOURNAL", None)
        else:
            os.environ["MODELDEBUG_JOURNAL"] = journal
    out["bundle"] = root / "nan.bundle.pt"
    assert out["bundle"].is_file()
    return out


@pytest.fixture(autouse=True)
def _no_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDEBUG_JOURNAL", "off")


def _strict(text: str) -> dict:  # type: ignore[type-arg]
    def refuse(token: str) -> None:
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)  # type: ignore[no-any-return]


def test_diff_json_is_strict_json_when_a_run_went_nan(runs: dict[str, Path]) -> None:
    # the partings of a NaN run held bare NaN tokens: jq, JavaScript and most JSON parsers refuse them
    code, out, err = md("diff", str(runs["good"]), str(runs["nan"]), "--json", "-")
    assert code == 0, err
    d = _strict(out)
    assert d["first_step"] == 5
    assert any(p["b"] == "NaN" for p in d["partings"])


def test_an_inserted_layer_is_a_model_change_not_a_frozen_layer(
    runs: dict[str, Path],
) -> None:
    # a BatchNorm inserted after layer 0 renames every later module: the diff said "2.weight, 2.bias no
    # longer held by any optimizer (not trained)" and "update ratio of module '2' (Linear): 0.06 -> none"
    code, out, err = md("diff", str(runs["good"]), str(runs["bn"]), "--json", "-")
    assert code == 0, err
    d = _strict(out)
    model = [c for c in d["changes"] if c["category"] == "model"]
    assert (
        model
        and "'1' ReLU -> BatchNorm1d" in model[0]["text"]
        and "added '3' (Linear)" in model[0]["text"]
    )
    assert not [c for c in d["changes"] if c["category"] == "groups"]
    assert not [p for p in d["partings"] if p["b"] is None], d["partings"]


def test_a_run_that_took_no_step_is_not_said_to_part_nowhere(
    runs: dict[str, Path],
) -> None:
    # "nowhere beyond noise" claimed the runs were compared and agreed: nothing was compared
    code, out, err = md("diff", str(runs["good"]), str(runs["empty"]))
    assert code == 0, err
    where = out.split("Where they part\n", 1)[1].split("\n", 1)[0]
    assert "nowhere beyond noise" not in where and "took no training step" in where, out
    code, out, err = md("diff", str(runs["good"]), str(runs["empty"]), "--json", "-")
    assert _strict(out)["compared_steps"] == 0


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (b"", "it is empty"),
        (b"epoch,loss\n0,1.5\n", "not a file torch.save wrote"),
        (None, "it is a run record, not its bundle"),
    ],
)
def test_replay_names_what_a_file_that_is_not_a_bundle_is(
    runs: dict[str, Path], tmp_path: Path, content: bytes | None, cause: str
) -> None:
    # torch's own errors read "(EOFError)", "(101)" and "(Weights only load failed)"
    path = runs["good"] if content is None else tmp_path / "run.bundle.pt"
    if content is not None:
        path.write_bytes(content)
    code, out, err = md("replay", str(path))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert repr(str(path)) in err and cause in err, err


def test_an_mlflow_store_that_is_the_run_record_is_refused(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    # MLflow added its ~40 tables to the record itself: the export's own input, changed
    pytest.importorskip("mlflow", reason="needs the mlflow extra")
    record = tmp_path / "run.db"
    record.write_bytes(runs["good"].read_bytes())
    before = record.read_bytes()
    code, _, err = md(
        "export", str(record), "--to", "mlflow", "--tracking-uri", f"sqlite:///{record}"
    )
    assert code == 2 and "run record" in err and len(err.strip().splitlines()) == 1, err
    assert record.read_bytes() == before


def test_learning_from_one_run_given_twice_is_refused(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    # one run given twice counted as two: envelopes "of 2 run(s)" with the tighter two-run margins
    out = tmp_path / "good.json"
    code, _, err = md("learn", str(runs["good"]), str(runs["good"]), "-o", str(out))
    assert code == 2 and "given twice" in err and len(err.strip().splitlines()) == 1, (
        err
    )
    assert not out.exists()
