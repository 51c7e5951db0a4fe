"""Robustness, complaint reproduction, and regression baselines (save, compare, flips, intervals)."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

import pytest

from charmodel import one_thread, trained, untrained
from modeldebug.behaviour import compare_baseline, load_baseline, load_facts, probe, reproduce_complaint, save_baseline
from modeldebug.behaviour.robustness import PERTURBATIONS, typo
from modeldebug.errors import BadInputError

FACTS, PAIRS = load_facts()
ANSWER = {f.prompt: f.answers[0] for f in FACTS}
KEYS = {re.sub(r"\W", "", p.lower()): a for p, a in ANSWER.items()}


def exact_lookup(prompt: str) -> str:
    """Knows every fact, but only when asked in exactly the trained form."""
    return ANSWER.get(prompt, "I do not understand the question.")


def robust_lookup(prompt: str) -> str:
    """Normalises case, spacing and punctuation, and tolerates typos (closest known question)."""
    key = re.sub(r"\W", "", prompt.lower())
    close = difflib.get_close_matches(key, list(KEYS), n=1, cutoff=0.85)
    return KEYS[close[0]] if close else "I do not know."


def template_model(prompt: str) -> str:
    """Answers the template, not the question: the same answer for every question of a kind."""
    return "Paris" if "capital" in prompt else "12" if "+" in prompt or "many" in prompt else "blue"


def codes(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.code for f in result.findings]


# -- robustness -------------------------------------------------------------------------------------------
def test_typos_are_deterministic_per_prompt_and_keep_length() -> None:
    p = "What is the capital of Australia?"
    assert typo(p) == typo(p) != p and len(typo(p)) == len(p)
    assert sorted(typo(p)) == sorted(p)


def test_surface_form_model_is_not_invariant() -> None:
    r = probe(exact_lookup, probes=["knowledge", "robustness"])
    flagged = {f.evidence["perturbation"] for f in r.findings if f.code == "BEH030"}
    assert flagged == set(PERTURBATIONS)
    assert "BEH031" not in codes(r)  # it does tell different questions apart


def test_normalising_model_is_invariant() -> None:
    r = probe(robust_lookup, probes=["knowledge", "robustness"])
    assert codes(r) == []
    flips = r.results["robustness"].summary["invariance_flips"]
    assert all(v["k"] == 0 and v["n"] == 24 for v in flips.values())


def test_template_model_fails_the_directional_tests() -> None:
    r = probe(template_model, probes=["knowledge", "robustness"])
    f = next(f for f in r.findings if f.code == "BEH031")
    assert f.evidence["k"] >= 4 and "'What is 7 + 5?'" in " ".join(f.evidence["examples"])
    assert "BEH031" not in codes(probe(exact_lookup, probes=["knowledge", "robustness"]))


def test_knows_nothing_has_no_invariance_to_measure() -> None:
    r = probe(lambda p: "no idea", probes=["knowledge", "robustness"])
    assert r.results["robustness"].summary["invariance_flips"].startswith("not measured")
    assert "BEH030" not in codes(r)


# -- complaint reproduction ----------------------------------------------------------------------------
def sydney_model(prompt: str) -> str:
    """Wrong about Australia whenever Australia is mentioned, in any phrasing."""
    return "Sydney" if "australia" in prompt.lower() else robust_lookup(prompt)


def words(prompt: str) -> list[str]:
    return sorted(w.strip(",?!").lower() for w in prompt.split())


COMPLAINT = 'Asked "Please, could you tell me the capital city of Australia? Thanks!" it said "Sydney".'
EXAMPLE = "Please, could you tell me the capital city of Australia? Thanks!"


def test_complaint_reproduces_and_shrinks_to_the_minimal_prompt() -> None:
    res = reproduce_complaint(sydney_model, COMPLAINT, EXAMPLE)
    assert res.check == "the answer contains 'Sydney'"  # read from the complaint's quotes
    by_kind = {v["kind"]: v["reproduced"] for v in res.variants}
    assert res.reproduced and all(by_kind[k] for k in ("original", "lowercase", "uppercase", "no politeness"))
    # The minimal prompt still asks the question: its content words stay, the politeness goes.
    assert res.minimal is not None and words(res.minimal) == ["australia", "capital", "city"]
    assert res.keys == ["australia", "capital", "city"] and res.minimal_rate == (1, 1)
    f = res.findings[0]
    assert f.code == "BEH050" and repr(res.minimal) in f.title
    assert "minimal reproducing prompt" in res.summary_text()


def test_complaint_that_shows_only_in_one_phrasing() -> None:
    def polite_bug(prompt: str) -> str:  # the bug needs both "please" and "Australia"
        return "Sydney" if "please" in prompt.lower() and "australia" in prompt.lower() else "Canberra"

    res = reproduce_complaint(polite_bug, COMPLAINT, EXAMPLE)
    by_kind = {v["kind"]: v["reproduced"] for v in res.variants}
    assert by_kind["original"] and not by_kind["no politeness"]
    assert words(res.minimal or "") == ["australia", "capital", "city", "please"]


def test_complaint_that_does_not_reproduce() -> None:
    res = reproduce_complaint(robust_lookup, COMPLAINT, EXAMPLE)
    assert not res.reproduced and res.minimal is None
    assert [f.code for f in res.findings] == ["BEH051"]


def test_complaint_needs_a_check() -> None:
    with pytest.raises(BadInputError, match="say what went wrong"):
        reproduce_complaint(sydney_model, "it is wrong about Australia", EXAMPLE)
    res = reproduce_complaint(sydney_model, "it is wrong about Australia", EXAMPLE, expected="Canberra")
    assert res.reproduced


# -- regression baselines -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def baseline_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("baseline") / "baseline.json"
    with one_thread():
        save_baseline(probe(trained(), probes=["determinism", "knowledge", "robustness"]), path, model_version="v1")
    return path


def test_baseline_holds_prompts_outputs_scores_and_versions(baseline_file: Path) -> None:
    data = json.loads(baseline_file.read_text())
    assert data["model_version"] == "v1" and data["versions"]["torch"] and data["versions"]["python"]
    a = next(a for a in data["attempts"] if a["probe"] == "knowledge" and a["id"] == "cap-france")
    assert a["prompt"] == "What is the capital of France?" and a["outputs"] == ["Paris"]
    assert a["passed"] is True and a["scores"] == {"strict": True, "lenient": True}
    assert len(data["facts"]) == len(FACTS) and data["data_hash"]


def test_the_same_model_does_not_regress(baseline_file: Path) -> None:
    cmp = compare_baseline(trained(), baseline_file)
    assert not cmp.regressed and cmp.findings == []
    assert cmp.pass_to_fail == [] and cmp.fail_to_pass == [] and cmp.changed_outputs == 0


def test_an_untrained_model_regresses_with_intervals(baseline_file: Path) -> None:
    cmp = compare_baseline(untrained(), baseline_file)
    assert cmp.regressed
    rows = {g["group"]: g for g in cmp.groups}
    cap = rows["knowledge/capitals"]
    assert (cap["base_k"], cap["new_k"], cap["base_n"]) == (12, 0, 12)
    assert cap["regressed"] and cap["ci_high"] < 0 < cap["ci_high"] - cap["ci_low"]
    assert not rows["knowledge/units"]["regressed"]  # 0/12 before and after
    high = [f for f in cmp.findings if f.severity == "high"]
    assert {f.location for f in high} >= {"knowledge/capitals", "knowledge/arithmetic", "knowledge/common facts"}
    assert any(p["key"] == "knowledge:cap-france" and p["was"] == "Paris" for p in cmp.pass_to_fail)
    assert "REGRESSION" in cmp.summary_text()


def test_one_flip_is_reported_but_not_called_a_regression(baseline_file: Path) -> None:
    base = trained()

    def one_off(prompt: str, **kw: object) -> str:
        return "Lyon" if prompt == "What is the capital of France?" else base.generate(prompt, **kw)  # type: ignore[arg-type]

    cmp = compare_baseline(one_off, baseline_file)
    assert not cmp.regressed
    assert [p["key"] for p in cmp.pass_to_fail] == ["knowledge:cap-france"]
    assert [(f.code, f.severity) for f in cmp.findings] == [("BEH060", "medium")]


def test_bad_baseline_files_are_bad_input(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(BadInputError, match="not valid JSON"):
        load_baseline(tmp_path / "x.json")
    (tmp_path / "y.json").write_text('{"hello": 1}')
    with pytest.raises(BadInputError, match="not a modeldebug baseline"):
        load_baseline(tmp_path / "y.json")
    with pytest.raises(BadInputError, match="cannot read baseline"):
        load_baseline(tmp_path / "missing.json")
