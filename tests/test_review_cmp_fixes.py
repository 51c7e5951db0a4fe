"""Review fixes in the comparison, the journal and the distributed parts, each found by using the tool:
one journal entry per distributed job, a run that trained nothing is never the default reference,
a damaged invariants file is one line, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from compare_runs import NAN_INPUT_SCRIPT, md, train
from torch import nn

import modeldebug
from modeldebug.journal import Journal


def _train_watched(db: Path, steps: int = 3) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    with modeldebug.watch(model, optimizer=opt, db=db):
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()


def test_a_distributed_job_is_one_journal_entry_rank_0s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # every rank used to journal its own record: `modeldebug diff` right after one torchrun job then
    # compared rank 1 with rank 0 of that same job ("the last run" against "the newest clean run")
    journal = tmp_path / "journal.db"
    monkeypatch.setenv("MODELDEBUG_JOURNAL", str(journal))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MODELDEBUG_HANG_MIN_S", "60")
    for rank in (1, 0):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        _train_watched(tmp_path / "job.db")
    assert sorted(p.name for p in tmp_path.glob("job.rank*.db")) == ["job.rank0.db", "job.rank1.db"]
    with Journal(journal) as j:
        entries = j.entries()
    assert [Path(e.record or "").name for e in entries] == ["job.rank0.db"]


def test_a_run_that_trained_nothing_is_never_the_default_reference(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # a 0-step run (the script never reached its loop) used to count as "clean": the next `modeldebug diff`
    # compared the new run with a run that has no statistics at all
    monkeypatch.delenv("MODELDEBUG_JOURNAL", raising=False)
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "train.py"
    script.write_text(NAN_INPUT_SCRIPT)
    good = train(tmp_path, "good", script=script)
    train(tmp_path, "empty", "--steps", "0", script=script)
    train(tmp_path, "short", "--steps", "2", script=script)
    train(tmp_path, "new", "--seed", "1", script=script)
    code, out, err = md("diff", "--json", "-")
    assert code == 0, err
    with Journal(tmp_path / ".modeldebug" / "journal.db") as j:
        assert json.loads(out)["a"] == j.by_record(good).uid  # type: ignore[union-attr]
    code, out, _ = md("history", "--json")
    tops = {Path(r["record"]).name: r["top"] for r in json.loads(out)}
    assert tops == {"new.db": "clean", "short.db": "too short to judge", "empty.db": "no training step",
                    "good.db": "clean"}


def _invariants(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    script = tmp_path / "train.py"
    script.write_text(NAN_INPUT_SCRIPT)
    runs = [train(tmp_path, f"s{s}", "--seed", str(s), "--steps", "20", script=script) for s in (0, 1)]
    code, _, err = md("learn", *map(str, runs), "-o", str(tmp_path / "good.json"))
    assert code == 0, err
    return json.loads((tmp_path / "good.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize(("rule", "edit", "message"), [
    ("lr", lambda inv: inv["params"].pop("band"), "params.band is missing"),
    ("lr", lambda inv: inv["params"].update(band=[1.0, 2.0]), "params.band is not [low, high, margin]"),
    ("envelope", lambda inv: inv.pop("params"), "params.scale is missing"),
    ("optimizer", lambda inv: inv["params"].update(types="SGD"), "params.types is missing or not a list"),
    ("loss_progress", lambda inv: inv["params"].pop("window"), "params.window is missing"),
    ("structure", lambda inv: inv.update(params=None), '"params" and "evidence" must be objects'),
    ("finite", lambda inv: inv.update(code=["INV005"]), "its code, rule and description must be strings"),
])
def test_a_damaged_invariant_is_one_line_naming_it_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  rule: str, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    # the file's frame was checked, each invariant's params were not: `report --against` then died with
    # KeyError: 'band' (or AssertionError, AttributeError) in the middle of the check
    monkeypatch.setenv("MODELDEBUG_JOURNAL", "off")
    monkeypatch.chdir(tmp_path)
    data = _invariants(tmp_path)
    i = next(k for k, inv in enumerate(data["invariants"]) if inv["rule"] == rule)
    edit(data["invariants"][i])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    code, _, err = md("report", str(tmp_path / "s1.db"), "--against", str(bad))
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert "is damaged: invariant" in err and message in err


OPT_SCRIPT = """
import argparse, torch, torch.nn as nn
p = argparse.ArgumentParser()
p.add_argument("--opt", default="sgd")
a = p.parse_args()
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 1))
opt = (torch.optim.SGD if a.opt == "sgd" else torch.optim.Adam)(model.parameters(), lr=0.01)
x, y = torch.randn(32, 6), torch.randn(32, 1)
for step in range(12):
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()
"""


def test_another_optimizer_type_is_one_change_not_every_parameter_moved(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # the groups were keyed by the optimizer's type: SGD -> Adam read as every parameter moved from
    # "SGD 0 group 0" to "Adam 0 group 0" (ranked first, as the most likely cause) and as two learning
    # rates "0.01 -> (no such optimizer)" and "(no such optimizer) -> 0.01"
    monkeypatch.setenv("MODELDEBUG_JOURNAL", "off")
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "train.py"
    script.write_text(OPT_SCRIPT)
    sgd, adam = train(tmp_path, "sgd", script=script), train(tmp_path, "adam", "--opt", "adam", script=script)
    code, out, err = md("diff", str(sgd), str(adam), "--json", "-")
    assert code == 0, err
    changes = json.loads(out)["changes"]
    assert [c["category"] for c in changes if c["category"] != "args"] == ["optimizer"]
    assert changes[0]["text"] == "optimizer: SGD -> Adam"


def _crash_watched(db: Path, rank: int, message: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    with pytest.raises(RuntimeError), modeldebug.watch(model, optimizer=opt, db=db):
        for _ in range(3):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        if rank == 1:
            raise RuntimeError(message)  # the bug
        raise RuntimeError(message)  # the next collective, its peer gone


def test_the_rank_that_crashed_first_is_named_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # rank 1 crashes; rank 0 then fails in its next collective ("Connection closed by peer"). Both crashes
    # are high at one step, and the merged report listed rank 0's symptom first, the lowest rank
    from modeldebug.distributed import merged_report
    from modeldebug.record import Record

    monkeypatch.setenv("MODELDEBUG_JOURNAL", "off")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MODELDEBUG_HANG_MIN_S", "60")
    for rank, message in ((1, "the real bug on rank 1"), (0, "Connection closed by peer [127.0.0.1]:2469")):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        _crash_watched(tmp_path / "job.db", rank, message)
    records = {r: Record.open(tmp_path / f"job.rank{r}.db") for r in (0, 1)}
    crashes = [f for f in merged_report(records).findings if f.code.startswith("RUN")]
    assert [f.evidence["ranks"] for f in crashes] == [[1], [0]]
    assert "the real bug on rank 1" in crashes[0].description


def test_another_optimizer_type_is_not_every_parameter_in_another_group_against_invariants(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the same keying in `--against`: INV002 listed "0.weight is held by Adam 0 group 0 (healthy: SGD 0
    # group 0)" for every parameter, beside "The optimizer is Adam; the healthy runs used SGD"
    monkeypatch.setenv("MODELDEBUG_JOURNAL", "off")
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "train.py"
    script.write_text(OPT_SCRIPT)
    sgd, adam = train(tmp_path, "sgd", script=script), train(tmp_path, "adam", "--opt", "adam", script=script)
    assert md("learn", str(sgd), "-o", "good.json")[0] == 0
    code, out, err = md("report", str(adam), "--against", "good.json", "--json", "-")
    assert code == 0, err
    (inv002,) = [f for f in json.loads(out)["findings"] if f["code"] == "INV002"]
    assert [v["what"] for v in inv002["evidence"]["first"]] == ["The optimizer is Adam; the healthy runs used SGD"]


def test_history_with_a_huge_n_lists_every_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # -n 99999999999999999999 went into SQL as a LIMIT SQLite cannot hold: IntegrityError, a traceback
    monkeypatch.delenv("MODELDEBUG_JOURNAL", raising=False)
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "train.py"
    script.write_text(NAN_INPUT_SCRIPT)
    train(tmp_path, "one", "--steps", "3", script=script)
    code, out, err = md("history", "-n", "9" * 20, "--json")
    assert code == 0, err
    assert [Path(r["record"]).name for r in json.loads(out)] == ["one.db"]
