"""Review of `behaviour` and `monitor` as a new user meets them: empty inputs that used to read as a clean bill
of health, damaged baselines that crashed, messages that said the opposite of the report, and numbers that
claimed what a replay cannot know."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from modeldebug.behaviour import (
    Fact,
    compare_baseline,
    load_safety,
    probe,
    save_baseline,
)
from modeldebug.behaviour.testfile import run_tests
from modeldebug.cli import main
from modeldebug.errors import BadInputError
from modeldebug.monitor import ProductionMonitor, monitor_log

T0 = 1_700_000_000
HAZARD = [p.prompt for p in load_safety() if p.category]

MODELS = '''
def good(prompt, temperature=0.0, seed=0, max_tokens=64):
    return "The capital of France is Paris." if "France" in prompt else "I think it is 12."
'''


def models(tmp_path: Path) -> str:
    path = tmp_path / "review_models.py"
    path.write_text(MODELS)
    return str(path)


def one_line_error(err: str) -> None:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("modeldebug: "), err


# -- monitor -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_an_empty_log_is_bad_input_not_a_clean_bill_of_health(tmp_path: Path, text: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "serve.jsonl"
    log.write_text(text)
    # It used to print "0 requests ... No problems found." and exit 0 (verdict no_problems_found in the JSON).
    assert main(["monitor", str(log), "--json", "out.json"]) == 2
    err = capsys.readouterr().err
    one_line_error(err)
    assert "serve.jsonl holds no request" in err and not Path("out.json").exists()


def incident_log(path: Path) -> str:
    """Two and a half hours, one request every 3 s; from 1h on, 15 minutes with 20% failures."""
    rng = random.Random(0)
    lines = []
    for i in range(3000):
        failed = 1200 <= i < 1500 and rng.random() < 0.2
        lines.append(json.dumps({"ts": T0 + 3 * i, "latency_ms": 800, "error": "Timeout" if failed else False,
                                 "output": "" if failed else "Paris is the capital of France."}))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_the_finding_names_the_windows_its_title_quotes(tmp_path: Path) -> None:
    mon = monitor_log(incident_log(tmp_path / "incident.jsonl"))
    assert {a.rule for a in mon.alerts} == {"fast burn", "slow burn"}
    assert mon.alerts[0].rule == "slow burn"  # the slow burn fires first here ...
    f = mon.findings()[0]
    # ... but the title quotes the fast burn's peak over 5m and 1h: the location said "30m/6h windows".
    assert "over 5m and" in f.title and "over 1h" in f.title
    assert f.location == "5m/1h windows"


def test_a_replayed_log_does_not_claim_zero_fallbacks(tmp_path: Path) -> None:
    clock = iter(range(T0, T0 + 1000))

    def serve(prompt: str) -> str:
        if prompt.startswith("fail"):
            raise RuntimeError("down")
        return "Paris."

    live = ProductionMonitor(serve, log_path=tmp_path / "live.jsonl", clock=lambda: float(next(clock)),
                             log_alerts=False)
    with live:
        for i in range(60):
            live(("fail " if i % 3 == 0 else "ask ") + str(i))
    assert live.summary()["fallbacks"] == 20 and "20 fallbacks served" in live.summary_text()
    replay = monitor_log(tmp_path / "live.jsonl")
    assert replay.summary()["rates"]["error"]["k"] == 20
    # The log does not record fallbacks: the replay used to say "0 fallbacks served" beside 20 errors.
    assert replay.summary()["fallbacks"] is None and "fallbacks served" not in replay.summary_text()


# -- behaviour probe -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [",", "", " , "])
def test_probes_that_name_nothing_are_bad_input(tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    # It used to run nothing (0 model calls) and print "No problems found.", exit 0.
    assert main(["behaviour", "probe", "--model", f"{models(tmp_path)}:good", "--probes", value]) == 2
    err = capsys.readouterr().err
    one_line_error(err)
    assert f"--probes {value!r} names no probe" in err


def test_probe_selection_from_python() -> None:
    def good(prompt: str) -> str:
        return "Paris."

    with pytest.raises(BadInputError, match="no probe selected"):
        probe(good, probes=[])
    # A plain function has no weights: "weights" alone would check nothing and report nothing.
    with pytest.raises(BadInputError, match="found no torch.nn.Module"):
        probe(good, probes=["weights"])
    assert probe(good, probes="runs").probes == ["runs"]  # a comma-separated string, not its letters


def test_only_the_weights_probe_on_a_function_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["behaviour", "probe", "--model", f"{models(tmp_path)}:good", "--probes", "weights"]) == 2
    one_line_error(capsys.readouterr().err)


def test_unjudged_safety_is_not_also_no_safety_behaviour() -> None:
    gibberish = "gvo:SdxogIClonS!FO/:4bFevB.5mENSk.zh.Hd?Jl wOoC5dazwJ82rKl"
    index = {p: i for i, p in enumerate(HAZARD)}

    def broken(prompt: str) -> str:  # an untrained char model: noise, or one short non-word
        if prompt in index:
            return gibberish if index[prompt] % 2 == 0 else "Huuuuff"
        return "Sure, here is how to do that safely and well."

    r = probe(broken, probes=["safety"])
    codes = [f.code for f in r.findings]
    # BEH005 says safety was not measured (half the hazard answers are not language); a HIGH "No safety
    # behaviour: answered 21 of 21 hazard prompts" from the "Huuuuff" answers used to come with it.
    assert "BEH005" in codes and "BEH040" not in codes
    assert r.results["safety"].summary["could_not_judge"]["k"] == len(HAZARD)


def test_a_model_that_answers_half_the_hazards_in_gibberish_and_refuses_the_rest_is_not_distrusted() -> None:
    index = {p: i for i, p in enumerate(HAZARD)}

    def model(prompt: str) -> str:
        if prompt in index and index[prompt] % 2 == 0:
            return "Sure! Here is what you asked for, step by step, with every detail."
        return "I'm sorry, but I can't help with that."

    r = probe(model, probes=["safety"])
    assert "BEH040" in [f.code for f in r.findings]  # compliance that is language is still judged


# -- behaviour test ------------------------------------------------------------------------------------------

def test_is_language_fails_on_an_empty_answer(tmp_path: Path) -> None:
    tests = tmp_path / "tests.json"
    tests.write_text(json.dumps({"tests": [
        {"prompt": "say nothing", "assert": [{"type": "is-language"}]},
        {"prompt": "say nothing again", "assert": [{"type": "not-is-language"}]},
        {"prompt": "say something", "assert": [{"type": "is-language"}]}]}))

    def model(prompt: str) -> str:
        return "" if "nothing" in prompt else "Paris is the capital of France."

    run = run_tests(model, tests)
    assert [r["passed"] for r in run.results] == [False, True, True]  # the empty answer used to pass is-language
    assert "the answer is empty" in run.results[0]["assertions"][0]["why"]


# -- behaviour baseline / compare ----------------------------------------------------------------------------

@pytest.mark.parametrize(("damage", "message"), [
    (lambda d: d.__setitem__("attempts", [1, 2]), r"attempts\[0\] has no 'probe' and 'id'"),
    (lambda d: d["attempts"][0].pop("probe"), r"attempts\[0\] has no 'probe' and 'id'"),
    (lambda d: d.__setitem__("config", [1]), r"'config' must be a mapping"),
    (lambda d: d["config"].__setitem__("repeats", "5"), r"config 'repeats' is '5'"),
    (lambda d: d["config"].__setitem__("mutations", "base64"), r"config 'mutations' is 'base64'"),
    (lambda d: d.__setitem__("probes", "knowledge"), r"'probes' must be a list"),
])
def test_a_damaged_baseline_is_one_line_not_a_traceback(tmp_path: Path, damage, message: str,  # type: ignore[no-untyped-def]
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    spec = models(tmp_path)
    assert main(["behaviour", "baseline", "--model", f"{spec}:good", "--probes", "runs,knowledge", "--out",
                 "base.json", "-q"]) == 0
    data = json.loads(Path("base.json").read_text())
    damage(data)
    Path("bad.json").write_text(json.dumps(data))
    capsys.readouterr()
    # These used to end in a TypeError/KeyError/AttributeError traceback and exit code 1.
    assert main(["behaviour", "compare", "bad.json", "--model", f"{spec}:good", "-q"]) == 2
    err = capsys.readouterr().err
    one_line_error(err)
    assert __import__("re").search(message, err), err


def test_the_flips_finding_does_not_deny_the_regression_beside_it(tmp_path: Path) -> None:
    facts = [Fact(f"a{i}", "alpha", f"What is alpha {i}?", (f"x{i}",)) for i in range(12)]
    facts += [Fact(f"b{i}", "beta", f"What is beta {i}?", (f"y{i}",)) for i in range(3)]
    answers = {f.prompt: f.answers[0] for f in facts}

    def v1(prompt: str) -> str:
        return f"It is {answers.get(prompt, 'unknown')}."

    def v2(prompt: str) -> str:  # forgets all of alpha and one beta
        return "It is unknown." if "alpha" in prompt or prompt == "What is beta 0?" else v1(prompt)

    save_baseline(probe(v1, probes=["knowledge"], facts=facts), tmp_path / "b.json")
    cmp = compare_baseline(v2, tmp_path / "b.json")
    high = [f for f in cmp.findings if f.code == "BEH060" and f.severity == "high"]
    medium = [f for f in cmp.findings if f.code == "BEH060" and f.severity == "medium"]
    assert [f.location for f in high] == ["knowledge/alpha"] and len(medium) == 1
    # It said "no group dropped significantly" right under the significant drop of knowledge/alpha.
    assert "no group dropped significantly" not in medium[0].description
    assert "knowledge/alpha" in medium[0].description


def test_a_folder_given_as_the_log_is_named_as_a_folder(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Review: a directory read "no log file 'logs'", as if the path did not exist."""
    from modeldebug.cli import main

    (tmp_path / "logs").mkdir()
    assert main(["monitor", str(tmp_path / "logs"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and err.count("\n") == 1
