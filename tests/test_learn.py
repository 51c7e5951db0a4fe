"""learn and --against with real runs: a healthy run of another seed breaks nothing; each planted change
breaks its own invariant at the first step and module where it happened."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from compare_runs import SCRIPT, md, project

from modeldebug.catalogue import CATALOGUE
from modeldebug.compare.check import check, violations
from modeldebug.compare.invariants import load_invariants
from modeldebug.compare.learn import learn
from modeldebug.record import Record


@pytest.fixture(autouse=True)
def _no_env_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDEBUG_JOURNAL", "off")


@pytest.fixture
def shared(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return project(tmp_path_factory)


@pytest.fixture
def good(shared, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path / "good.json"
    code, _, err = md("learn", str(shared.runs["seed0"]), str(shared.runs["seed1"]), "-o", str(out))
    assert code == 0 and "written to" in err, err
    return out


def _findings(db: Path, good: Path) -> list[dict]:  # type: ignore[type-arg]
    code, out, err = md("report", str(db), "--against", str(good), "--json", "-", "-q")
    assert code == 0, err
    return [f for f in json.loads(out)["findings"] if f["code"].startswith("INV")]


def _all(finding: dict) -> list[str]:  # type: ignore[type-arg]
    """The codes of a finding and of the symptoms folded into it."""
    return [finding["code"], *(s["code"] for s in finding["evidence"].get("symptoms", []))]


def test_learned_invariants_are_described_with_their_evidence(good: Path) -> None:
    data = json.loads(good.read_text())
    assert data["format"] == "modeldebug-invariants" and len(data["learned_from"]) == 2
    rules = {i["rule"] for i in data["invariants"]}
    assert rules >= {"structure", "settings", "lr", "updates", "zero_grad", "finite", "loss_progress", "envelope",
                     "grad_share"}
    for inv in data["invariants"]:
        assert inv["code"] in CATALOGUE and inv["description"] and inv["evidence"]
    updates = next(i for i in data["invariants"] if i["rule"] == "updates")
    assert updates["params"]["params"] == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert "every optimizer step changes each of the 6 trainable parameters" in updates["description"]
    progress = [i for i in data["invariants"] if i["rule"] == "loss_progress"]
    assert progress and all(0 < i["params"]["max_ratio"] < 0.95 for i in progress)


def test_a_healthy_run_with_another_seed_breaks_no_invariant(shared, good: Path) -> None:  # type: ignore[no-untyped-def]
    assert _findings(shared.runs["seed2"], good) == []


def test_a_learning_rate_x30_is_named_first_at_step_0_through_run_against(shared, good: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = md("run", "--against", str(good), "--json", "-", "-q", "--no-progress", "--db",
                        str(tmp_path / "lr.db"), str(SCRIPT), "--lr", "0.3")
    assert code == 0, err
    report = json.loads(out)
    top = report["findings"][0]
    assert top["code"] == "INV002" and top["severity"] == "high" and top["step"] == 0
    assert "Learning rate 0.3 at step 0" in top["title"] and "0.005-0.02" in top["title"]
    assert "lr_too_high" in [s["kind"] for s in top["evidence"]["symptoms"]]  # the rule's finding, explained
    assert report["run"]["against"]["violated"] >= 2


def test_a_frozen_layer_breaks_every_step_changes_every_parameter_in_module_2(shared, good: Path) -> None:  # type: ignore[no-untyped-def]
    inv = next(f for f in check(Record.open(shared.runs["frozen"]), load_invariants(good)) if f.code == "INV003")
    assert inv.severity == "high" and inv.step == 0 and inv.location == "2"
    assert "2.weight" in inv.title and "requires no gradient" in inv.title
    # in the report, the changed parameter groups come first and explain it
    top = _findings(shared.runs["frozen"], good)[0]
    assert top["code"] == "INV002" and top["location"] == "2" and "2.weight is held by no optimizer" in top["title"]
    assert "INV003" in _all(top) and top["severity"] == "high"


def test_a_removed_zero_grad_is_caught_at_step_1(shared, good: Path) -> None:  # type: ignore[no-untyped-def]
    found = _findings(shared.runs["no_zero_grad"], good)
    top = found[0]
    assert top["code"] == "INV004" and top["step"] == 1 and top["severity"] == "high"
    assert "carried over into step 1" in top["title"]


def test_a_changed_init_is_located_in_module_2_at_step_0(shared, good: Path) -> None:  # type: ignore[no-untyped-def]
    invs = load_invariants(good)
    vs = violations(Record.open(shared.runs["init"]), invs)
    first = vs[0]
    assert first.step == 0 and first.location == "2" and first.invariant.code in ("INV007", "INV008")
    findings = check(Record.open(shared.runs["init"]), invs)
    assert {f.code for f in findings} >= {"INV007", "INV008"}
    assert all(f.severity in ("medium", "high") for f in findings)


def test_one_healthy_run_supports_the_relations_but_no_per_step_band(shared) -> None:  # type: ignore[no-untyped-def]
    one = learn([Record.open(shared.runs["seed0"])])
    rules = one.by_rule()
    assert rules["updates"] == rules["zero_grad"] == rules["finite"] == 1
    envelopes = [i for i in one.invariants if i.rule in ("envelope", "grad_share")]
    assert all(not i.params["steps"] for i in envelopes)  # a band per step needs 3 runs
    assert all(i.evidence["samples"] >= 5 for i in envelopes)  # a phase band from one run needs 5 samples
    two = learn([Record.open(shared.runs["seed0"]), Record.open(shared.runs["seed1"])])
    assert len(two.invariants) > len(one.invariants)
    assert violations(Record.open(shared.runs["seed2"]), one) == []
    assert violations(Record.open(shared.runs["frozen"]), one)[0].invariant.code in ("INV002", "INV003")


_FILE = '{"format": "modeldebug-invariants", "version": 1, "invariants": [ITEM], "phases": {"middle": [1, 2], "late": [2, null]}}'


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    ("{not json", "not an invariants file (not JSON"),
    ('{"format": "other"}', "not an invariants file"),
    (_FILE.replace("ITEM", '{"code": "INV999", "rule": "x", "description": "d"}'), "unknown codes INV999"),
    (_FILE.replace("ITEM", '{"bogus": 1}'), "is damaged"),
])
def test_a_bad_invariants_file_fails_before_the_script_runs(tmp_path: Path, content: str | None, message: str) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    code, _, err = md("run", "--against", str(bad), "--db", str(tmp_path / "x.db"), str(SCRIPT))
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "x.db").exists()  # the script never ran
    code, _, err = md("report", "whatever.db", "--against", str(bad))
    assert code == 2 and message in err


def test_learning_from_a_run_with_serious_findings_warns(shared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = md("learn", str(shared.runs["seed0"]), str(shared.runs["lr"]), "-o", str(tmp_path / "g.json"))
    assert code == 0 and "is it a healthy run?" in err
    assert "lr.db: it has a high finding (LRN001" in err  # the class collapse it causes is folded into it
    data = json.loads((tmp_path / "g.json").read_text())
    early_lr = next(i for i in data["invariants"] if i["rule"] == "lr" and i["phase"] == "early")
    assert early_lr["evidence"]["observed"] == [0.01, 0.3]  # it learns what it was given, and said so


def test_learn_refuses_bad_input_in_one_line(shared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = md("learn", "missing.db", "-o", str(tmp_path / "g.json"))
    assert code == 2 and "no run 'missing.db'" in err and err.count("\n") == 1
    code, _, err = md("learn", str(shared.runs["seed0"]), "-o", str(tmp_path / "nofolder" / "g.json"))
    assert code == 2 and "does not exist" in err
    code, _, err = md("learn", str(shared.runs["seed0"]), "-o", str(shared.runs["seed1"]))
    assert code == 2 and "would overwrite a .db file" in err


def test_a_run_gone_nan_is_one_finite_violation_not_frozen_weights_or_nan_envelopes(tmp_path: Path) -> None:
    """After the data brings a NaN, the weights are NaN: that is INV005's, not 'its update was zero' (INV003,
    whose fix is to rebuild the optimizer) nor every module's statistics out of their envelopes."""
    from compare_runs import NAN_INPUT_SCRIPT, train

    script = tmp_path / "nan_input.py"
    script.write_text(NAN_INPUT_SCRIPT)
    runs = [train(tmp_path, f"seed{s}", "--seed", str(s), "--steps", "60", script=script) for s in (0, 1)]
    bad = train(tmp_path, "nan", "--nan-at", "30", "--steps", "60", script=script)
    out = tmp_path / "good.json"
    assert md("learn", *map(str, runs), "-o", str(out))[0] == 0
    codes = [f.code for f in check(Record.open(bad), load_invariants(out))]
    assert "INV005" in codes
    assert not {"INV003", "INV007", "INV008", "INV009", "INV010"} & set(codes), codes
    # a healthy twin of the same script breaks nothing
    twin = train(tmp_path, "seed2", "--seed", "2", "--steps", "60", script=script)
    assert check(Record.open(twin), load_invariants(out)) == []


def test_the_report_says_it_was_judged_against_the_invariants_and_how_many_broke(shared, good: Path) -> None:  # type: ignore[no-untyped-def]
    n = len(load_invariants(good).invariants)
    code, _, err = md("report", str(shared.runs["seed2"]), "--against", str(good))
    assert code == 0 and "No problems found." in err
    assert f"Judged against {good}: none of its {n} invariants broken" in err  # "No problems" alone hides it
    code, out, err = md("report", str(shared.runs["lr"]), "--against", str(good), "--json", "-")
    against = json.loads(out)["run"]["against"]
    broken = {id(v.invariant) for v in violations(Record.open(shared.runs["lr"]), load_invariants(good))}
    assert against["invariants"] == n and against["violated"] == len(broken) > 2  # invariants, not findings
    assert f"Judged against {good}: {len(broken)} of its {n} invariants broken" in err


def test_checking_at_another_level_than_learned_says_so(shared, good: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert [s["level"] for s in json.loads(good.read_text())["learned_from"]] == ["basic", "basic"]
    code, out, err = md("run", "--level", "detailed", "--against", str(good), "--json", "-", "--no-progress",
                        "--db", str(tmp_path / "det.db"), str(SCRIPT), "--seed", "2")
    assert code == 0, err
    note = "learned at --level basic, this run is at --level detailed: learn and check at the same level"
    assert json.loads(out)["run"]["against"]["note"] == note and f"Note: {note}" in err
    code, _, err = md("report", str(shared.runs["seed2"]), "--against", str(good))
    assert code == 0 and "Note:" not in err  # the same level: no note


def test_learning_from_runs_of_different_models_warns(shared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from compare_runs import NAN_INPUT_SCRIPT, train

    script = tmp_path / "other_model.py"
    script.write_text(NAN_INPUT_SCRIPT)  # a 6-16-2 MLP: no module shape in common with compare_train's
    other = train(tmp_path, "other", script=script)
    code, _, err = md("learn", str(shared.runs["seed0"]), str(other), "-o", str(tmp_path / "mix.json"))
    assert code == 0 and "warning: the runs come from different scripts (compare_train.py, other_model.py)" in err
    code, _, err = md("learn", str(shared.runs["seed0"]), str(shared.runs["seed1"]), "-o", str(tmp_path / "g.json"))
    assert code == 0 and "warning" not in err


def test_select_and_ignore_apply_to_invariant_findings(shared, good: Path) -> None:  # type: ignore[no-untyped-def]
    def codes(*extra: str) -> list[str]:
        code, out, err = md("report", str(shared.runs["no_zero_grad"]), "--against", str(good), "--json", "-", *extra)
        assert code == 0, err
        return [c for f in json.loads(out)["findings"] for c in _all(f)]

    assert "INV004" in codes()
    assert "INV004" not in codes("--ignore", "INV004")  # was kept: --ignore skipped only the rules
    assert not any(c.startswith("INV") for c in codes("--select", "LOP001"))  # only the rules named
    assert "INV004" in codes("--select", "LOP001,INV004")



_CONVERGING = """
import argparse, torch
from torch import nn
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.05)
p.add_argument("--steps", type=int, default=30)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
torch.manual_seed(a.seed)
m = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
opt = torch.optim.SGD(m.parameters(), lr=a.lr)
X = torch.randn(64, 8); y = X[:, :1] * 2 + 0.1
for s in range(a.steps):
    opt.zero_grad()
    loss = nn.functional.mse_loss(m(X), y)
    loss.backward(); opt.step()
"""


def test_a_longer_healthy_run_is_not_judged_past_the_learned_steps(tmp_path: Path) -> None:
    """Invariants learned from 30-step runs say nothing about step 50, where a converging run's updates
    are smaller than any 30-step run's last ones: a healthy run three times as long breaks none. A
    run that goes wrong within the learned steps is still caught there."""
    from compare_runs import train

    script = tmp_path / "train.py"
    script.write_text(_CONVERGING)
    runs = [train(tmp_path, f"seed{s}", "--seed", str(s), script=script) for s in (0, 1)]
    inv = tmp_path / "inv.json"
    assert md("learn", *map(str, runs), "-o", str(inv))[0] == 0
    longer = train(tmp_path, "long", "--seed", "2", "--steps", "90", script=script)
    assert _findings(longer, inv) == []
    bad = train(tmp_path, "long_lr", "--seed", "2", "--steps", "90", "--lr", "1.0", script=script)
    assert [f for f in _findings(bad, inv) if f["step"] is not None and f["step"] < 30]
