"""Degenerate output: gibberish, loops and one answer to everything are their own verdict, never a safety failure."""

from __future__ import annotations

import pytest

from charmodel import one_thread, trained, untrained
from modeldebug.behaviour import load_safety, probe
from modeldebug.behaviour.degenerate import degenerate_reason, same_answer

HAZARD = [p for p in load_safety() if p.category]


def codes(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.code for f in result.findings]


@pytest.mark.parametrize(("text", "reason"), [
    ("gvo:SdxogIClonS!FO/:4bFevB.5mENSk.zh.Hd?Jl wOoC5dazwJ82rKl", "non-words"),  # the untrained char model
    ("3rkrTkg377C7?C7zm!uF8\x01tdu?3dBz8c..\x01y", "symbols"),                      # control characters
    ("#$%^&*@#$%^&*~~|| ^^ @@", "symbols"),
    ("the the the the the the the the the", "repetition"),
    ("I will I will I will I will I will I will", "repetition"),
    ("Quarterback mosques telegraph outlier fungus quietly vaccines hurricane zinc bolton", "no grammar"),
    ("xkqzvwpt", "non-words"),
])
def test_text_that_is_not_language(text: str, reason: str) -> None:
    assert degenerate_reason(text) == reason


@pytest.mark.parametrize("text", [
    "Paris", "12", "blue", "Jdb", "", "I'm sorry, but I can't help with that.", "The capital of France is Paris.",
    "Sure! Here's the code:\n```python\nimport os\nprint(os.getcwd())\n```", "Use `pkill -9 python` to stop it.",
    "1. Preheat the oven.\n2. Mix flour, sugar and eggs.\n3. Bake for 30 min.", '{"answer": 12, "unit": "cm"}',
    "See https://example.com/docs/index.html or mail admin@example.com.", "北京是中国的首都。",
    "7 + 5 = 12", "COVID-19 is caused by SARS-CoV-2.", "probe(generate) raised RuntimeError on 6 of 6 prompts",
    "Paris, London, Rome, Berlin, Madrid, Vienna, Prague, Lisbon, Oslo, Bern",
])
def test_language_is_not_degenerate(text: str) -> None:
    assert degenerate_reason(text) is None


def test_the_same_answer_to_everything_but_not_the_same_refusal() -> None:
    prompts = [f"question {i}" for i in range(6)]
    assert same_answer(prompts, ["Sure, here you go."] * 6) == "Sure, here you go."
    assert same_answer(prompts, ["I can't help with that."] * 6) is None  # a refusal is an answer to all of them
    assert same_answer(prompts, ["Sure."] * 3 + ["No.", "Maybe.", "Yes."]) is None
    assert same_answer(prompts[:3], ["Sure."] * 3) is None  # too few prompts to say


@pytest.fixture(scope="module")
def untrained_result():  # type: ignore[no-untyped-def]
    with one_thread():
        return probe(untrained(), probes=["weights", "safety"])


def test_gibberish_is_not_a_safety_failure_and_the_weights_say_why(untrained_result) -> None:  # type: ignore[no-untyped-def]
    r = untrained_result
    assert "BEH040" not in codes(r)  # it used to be a HIGH "no safety behaviour"
    assert codes(r)[:2] == ["BEH022", "BEH005"]
    gib = r.findings[1]
    assert gib.severity == "high" and gib.evidence["explained_by"] == "BEH022"
    assert gib.evidence["by_probe"]["safety"] >= 40 and "freshly initialised (BEH022)" in gib.title
    cnj = r.results["safety"].summary["could_not_judge"]
    assert cnj["k"] >= 40 and cnj["n"] == len(HAZARD)
    assert r.results["safety"].summary["harmful"]["k"] == 0
    assert "could not judge" in r.summary_text()
    assert "degenerate_output" in [s["kind"] for s in r.findings[0].evidence["symptoms"]]


def test_a_trained_model_is_language() -> None:
    with one_thread():
        r = probe(trained(), probes=["runs", "knowledge"])
    assert "BEH005" not in codes(r)
    assert r.results["runs"].summary["degenerate"]["k"] == 0


def test_a_looping_model_is_degenerate_and_a_plugged_judge_never_sees_it() -> None:
    seen: list[str] = []

    def judge(prompt: str, output: str) -> bool:
        seen.append(output)
        return True

    def looping(prompt: str) -> str:
        return ("ok " * 12).strip() if "kill" in prompt or "weapon" in prompt else f"Here is how: {prompt} Step 1."

    r = probe(looping, probes=["safety"], judge=judge)
    assert all("ok ok" not in out for out in seen)
    looped = [a for a in r.results["safety"].attempts if a.scores.get("degenerate")]
    assert looped and {a.scores["degenerate"] for a in looped} == {"repetition"}
    assert all(a.passed is None for a in looped)


def test_one_canned_answer_to_every_prompt_is_not_judged() -> None:
    r = probe(lambda p: "Sure, here you go.", probes=["runs", "safety"])
    assert "BEH040" not in codes(r) and "BEH005" in codes(r)
    f = next(f for f in r.findings if f.code == "BEH005")
    assert f.evidence["reasons"] == {"same answer to every prompt": f.evidence["degenerate"]}
    compliant = probe(lambda p: f"Sure, here is how: {p.lower()} First, gather what you need.", probes=["safety"])
    assert "BEH005" not in codes(compliant) and "BEH040" in codes(compliant)
