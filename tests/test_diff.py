"""modeldebug diff with real runs: the change first (the cause that explains the most first), then the
first step and module where the runs part, then the findings that differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from compare_runs import NAN_INPUT_SCRIPT, SCRIPT, md, project, train

from modeldebug.compare.diff import Side, diff_runs
from modeldebug.journal.facts import record_facts
from modeldebug.record import Record


@pytest.fixture(autouse=True)
def _no_env_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELDEBUG_JOURNAL", raising=False)


@pytest.fixture
def shared(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    p = project(tmp_path_factory)
    monkeypatch.chdir(p.root)  # its journal is the project's
    return p


def _diff(a: str | Path, b: str | Path) -> dict:  # type: ignore[type-arg]
    code, out, err = md("diff", str(a), str(b), "--json", "-")
    assert code == 0, err
    return json.loads(out)


def test_a_learning_rate_x30_comes_first_and_explains_the_divergence(shared) -> None:  # type: ignore[no-untyped-def]
    d = _diff(shared.runs["seed0"], shared.runs["lr"])
    top = d["changes"][0]
    assert top["category"] == "lr" and top["a"] == 0.01 and top["b"] == 0.3
    assert "from argument --lr (not given) -> 0.3" in top["text"]
    assert any("update ratio" in e for e in top["explains"])
    assert d["first_step"] == 0 and d["partings"][0]["series"] == "lr"
    assert d["first_module"] == "0"  # every module's update is x10 at step 0: the first in forward order
    assert [f["code"] for f in d["findings"]["only_b"]][:1] == ["LRN001"]  # the rules' verdict that differs


def test_a_frozen_layer_is_named_by_its_parameter_groups_and_parts_in_module_2(shared) -> None:  # type: ignore[no-untyped-def]
    d = _diff(shared.runs["seed0"], shared.runs["frozen"])
    top = d["changes"][0]
    assert top["category"] == "groups" and "2.weight, 2.bias no longer held by any optimizer" in top["text"]
    assert d["first_step"] == 0 and d["first_module"] == "2"
    first_module = next(p for p in d["partings"] if p["location"] == "2")
    assert first_module["series"] == "module 2 update_ratio" and first_module["b"] is None


def test_a_changed_init_parts_first_in_module_2_at_step_0(shared) -> None:  # type: ignore[no-untyped-def]
    d = _diff(shared.runs["seed0"], shared.runs["init"])
    assert "--init-std (not given) -> 0.6" in d["changes"][0]["text"]
    assert d["first_step"] == 0 and d["first_module"] == "2"
    assert d["partings"][0]["series"] == "module 2 std"


def test_two_healthy_seeds_differ_by_the_seed_and_part_nowhere_beyond_noise(shared) -> None:  # type: ignore[no-untyped-def]
    d = _diff(shared.runs["seed0"], shared.runs["seed1"])
    assert [c["category"] for c in d["changes"]] == ["args", "seed"]
    assert d["partings"] == [] and d["findings"] == {"only_a": [], "only_b": []}


def test_a_removed_zero_grad_in_the_code_is_shown_as_the_changed_line(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.read_text())
    train(tmp_path, "before", "--steps", "30", script=script)
    script.write_text(SCRIPT.read_text().replace("    if not args.no_zero_grad:\n        opt.zero_grad()\n", ""))
    train(tmp_path, "after", "--steps", "30", script=script)
    code, out, err = md("diff")  # the last run against the reference: the newest clean run before it
    assert code == 0, err
    text = out.splitlines()
    changed = text.index("What changed (most likely cause first)")
    assert text[changed + 1].strip().startswith("1. script content changed (2 line(s) differ)")
    assert "-        opt.zero_grad()" in text[changed + 3]
    assert "zero_grad calls 1 -> 0 at step 0" in out and "first step:   0" in out
    assert "only in B: " in out  # the rules' missing_zero_grad finding, only in the new run
    code, out, _ = md("diff", "last", "--json", "-")  # one run: compared with the reference
    assert code == 0 and json.loads(out)["changes"][0]["category"] == "code"


def test_records_outside_the_journal_are_compared_from_what_they_hold(shared) -> None:  # type: ignore[no-untyped-def]
    a, b = Record.open(shared.runs["seed0"]), Record.open(shared.runs["lr"])
    d = diff_runs(Side("A", record_facts(a), a), Side("B", record_facts(b), b))
    assert d.changes[0].category == "lr" and d.first_step is not None and d.first_step.step == 0
    assert any("seeds differ or are unknown" in n for n in d.notes)


def test_bad_run_names_are_one_line(shared) -> None:  # type: ignore[no-untyped-def]
    code, _, err = md("diff", "nosuchrun", str(shared.runs["lr"]))
    assert code == 2 and "no run 'nosuchrun' in the journal" in err and err.count("\n") == 1


def test_a_loss_that_went_nan_is_called_non_finite_not_none(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # the record stores NaN as no value; the diff must not say the loss is missing ("none")
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "nan_input.py"
    script.write_text(NAN_INPUT_SCRIPT)
    good, bad = train(tmp_path, "good", script=script), train(tmp_path, "bad", "--nan-at", "20", script=script)
    d = _diff(good, bad)
    loss = next(p for p in d["partings"] if p["series"] == "loss")
    assert loss["step"] == 20 and "-> non-finite at step 20" in loss["text"] and "none" not in loss["text"]
    code, out, _ = md("diff", str(good), str(bad))
    assert code == 0 and "loss" in out and "-> non-finite at step 20" in out


def test_a_run_compared_with_itself_says_so(shared) -> None:  # type: ignore[no-untyped-def]
    d = _diff(shared.runs["seed0"], shared.runs["seed0"])
    assert d["notes"][0].startswith("A and B are the same run") and d["partings"] == []
    assert not _diff(shared.runs["seed0"], shared.runs["seed1"])["notes"][0].startswith("A and B are the same")


def test_a_run_that_crashed_before_its_first_step_is_not_said_to_change_optimizer_or_data(
        tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # it never reached its optimizer step nor its loss: "optimizer: Adam -> none" and a data form
    # "float32[6] -> float32[6]" were differences of what was not seen, not changes
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "train.py"
    script.write_text(NAN_INPUT_SCRIPT)
    good = train(tmp_path, "good", script=script)
    script.write_text(NAN_INPUT_SCRIPT.replace("nn.Linear(16, 2)", "nn.Linear(15, 2)"))  # a shape crash at step 0
    bad = tmp_path / "bad.db"
    code, _, err = md("run", "-q", "--no-progress", "--db", str(bad), str(script))
    assert code == 1, err
    d = _diff(good, bad)
    assert [c["category"] for c in d["changes"]] == ["code"], d["changes"]
    assert d["changes"][0]["text"].startswith("script content changed")
    assert [f["kind"] for f in d["findings"]["only_b"]] == ["shape_mismatch"]


def test_input_mean_noise_between_batches_of_unit_scale_data_is_not_a_change() -> None:
    from modeldebug.compare.changes import changes

    def facts(mean: float) -> dict:  # type: ignore[type-arg]
        return {"data": {"inputs": [{"dtype": "float32", "shape": [8], "mean": mean, "std": 1.0}]}}
    assert changes(facts(0.001), facts(0.033)) == []  # 3% of the spread: one batch against another
    assert [c.text for c in changes(facts(0.0), facts(0.5))] == ["data: input mean 0 -> 0.5"]


def test_a_json_path_that_cannot_be_written_stops_diff_before_any_output(shared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = md("diff", str(shared.runs["seed0"]), str(shared.runs["seed1"]), "--json",
                        str(tmp_path / "missing" / "d.json"))
    assert code == 2 and out == "" and "d.json" in err and "Traceback" not in err
