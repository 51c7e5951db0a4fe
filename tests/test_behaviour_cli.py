"""`modeldebug behaviour ...`: probe, baseline, compare (exit 1 on regression), reproduce, codes, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from modeldebug.cli import main

MODELS = '''
from modeldebug.behaviour import load_facts, load_safety

FACTS, _ = load_facts()
ANSWER = {f.prompt: f.answers[0] for f in FACTS}
HAZARD = {p.prompt for p in load_safety() if p.category}


def good(prompt, *, seed=None, temperature=None, max_tokens=None):
    if prompt in HAZARD:
        return "I can't help with that."
    return ANSWER.get(prompt, "Hello! How can I help?")


def bad(prompt, *, seed=None, temperature=None, max_tokens=None):
    if "capital" in prompt:
        return "Sydney"  # a new model version that got every capital wrong
    return good(prompt)
'''


@pytest.fixture
def models(tmp_path: Path) -> str:
    (tmp_path / "models.py").write_text(MODELS)
    return str(tmp_path / "models.py")


def test_probe_prints_the_tables_and_writes_json(models: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["behaviour", "probe", "--model", f"{models}:good", "--probes", "runs,knowledge,safety",
               "--json", "out.json"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "capitals" in err and "strict" in err and "No problems found" in err
    data = json.loads(Path("out.json").read_text())
    assert data["findings"] == [] and data["run"]["command"] == "behaviour probe"
    assert data["run"]["summary"]["knowledge"]["capabilities"]["all"]["lenient"]["rate"] == 1.0


def test_fail_on_sets_the_exit_code(models: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["behaviour", "probe", "--model", f"{models}:bad", "--probes", "knowledge", "-q"]
    assert main(args) == 0  # findings alone do not fail without --fail-on
    assert main([*args, "--fail-on", "medium"]) == 1  # a knowledge gap in capitals is medium
    assert main([*args, "--fail-on", "high"]) == 0


def test_baseline_then_compare_exits_1_on_regression(models: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["behaviour", "baseline", "--model", f"{models}:good", "--probes", "knowledge,safety",
                 "--out", "base.json", "--model-version", "1.0", "-q"]) == 0
    assert json.loads(Path("base.json").read_text())["model_version"] == "1.0"
    capsys.readouterr()
    assert main(["behaviour", "compare", "base.json", "--model", f"{models}:good", "-q"]) == 0
    rc = main(["behaviour", "compare", "base.json", "--model", f"{models}:bad", "--json", "-"])
    out, err = capsys.readouterr()
    assert rc == 1
    report = json.loads(out)
    assert [(f["code"], f["location"]) for f in report["findings"]] == [("BEH060", "knowledge/capitals")]
    assert report["run"]["regressed"] is True and "REGRESSION" in err


def test_reproduce_a_complaint(models: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["behaviour", "reproduce", "--model", f"{models}:bad", "--complaint",
            'Asked for the capital of Australia it said "Sydney"', "--example",
            "What is the capital of Australia?", "--json", "r.json"]
    assert main(args) == 0
    data = json.loads(Path("r.json").read_text())
    assert data["findings"][0]["code"] == "BEH050" and data["run"]["minimal"] == "What capital Australia"
    assert data["run"]["minimal_rate"] == [1, 1] and data["run"]["key_tokens"] == ["australia", "capital", "what"]
    assert main([*args, "--fail-on", "medium", "-q"]) == 1


def test_codes_read_the_catalogue_for_behaviour_and_monitor(capsys: pytest.CaptureFixture[str]) -> None:
    from modeldebug.catalogue import CATALOGUE

    assert main(["behaviour", "codes"]) == 0
    out = capsys.readouterr().out
    assert "BEH040  harmful_output" in out and "MON001  error_rate_alert" in out
    assert all(s.code in out for s in CATALOGUE.family("behaviour") + CATALOGUE.family("monitor"))
    for code in ("beh022", "MON001", "latency_alert"):
        assert main(["behaviour", "codes", code]) == 0
        shown = capsys.readouterr().out
        assert main(["explain", code]) == 0
        assert shown == capsys.readouterr().out  # rendered as `modeldebug explain` renders it
        assert shown.startswith("# ") and "## Known problems" in shown


@pytest.mark.parametrize(("args", "message"), [
    (["behaviour", "probe"], "no model: give --model"),
    (["behaviour", "probe", "--model", "x:y", "--endpoint", "http://h"], "either --model or --endpoint"),
    (["behaviour", "probe", "--endpoint", "http://127.0.0.1:9/v1", "--model-name", "m"], "cannot reach"),
    (["behaviour", "probe", "--endpoint", "http://127.0.0.1:9/v1"], "needs a model name"),
    (["behaviour", "probe", "--model", "no_such_module_abc:generate"], "cannot import 'no_such_module_abc'"),
    (["behaviour", "probe", "--model", "MODELS:good", "--probes", "knowledge,vibes"], r"unknown probe\(s\) 'vibes'"),
    (["behaviour", "probe", "--model", "MODELS:good", "--repeats", "0"], "--repeats must be at least 1"),
    (["behaviour", "probe", "--model", "MODELS:good", "--facts", "nofile.json"], "cannot read nofile.json"),
    (["behaviour", "probe", "--model", "MODELS:good", "--judge", "MODELS:ANSWER"], "--judge .* is not callable"),
    (["behaviour", "compare", "nofile.json", "--model", "MODELS:good"], "cannot read baseline 'nofile.json'"),
    (["behaviour", "codes", "XYZ999"], "no behaviour or monitor code 'XYZ999'"),
    (["behaviour", "codes", "GRD001"], "GRD001 is a training code: `modeldebug explain GRD001`"),
])
def test_bad_input_is_one_line_and_exit_2(models: str, args: list[str], message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import re

    rc = main([a.replace("MODELS", models) for a in args])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("modeldebug: ")
    assert re.search(message, err), err


def test_no_action_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["behaviour"]) == 2
    assert "probe" in capsys.readouterr().err


@pytest.mark.slow
def test_entry_point_in_a_subprocess(models: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "modeldebug", "behaviour", "probe", "--model", f"{models}:bad",
                           "--probes", "runs,knowledge", "--json", "-", "-q", "--fail-on", "medium"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["findings"][0]["code"] == "BEH021"
