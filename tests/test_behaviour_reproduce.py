"""Complaint reproduction keeps the question: key tokens, operators, the sentence that asks; rates over tries."""

from __future__ import annotations

from collections import Counter

import pytest

from modeldebug.behaviour import BehaviourConfig, reproduce_complaint
from modeldebug.behaviour.question import asks, key_tokens, missing, question_text, strip_punctuation


@pytest.mark.parametrize(("example", "keys"), [
    ("I'm doing homework. How many grams are in a kilogram?", ["grams", "how", "kilogram", "many"]),
    ("What is 15 - 7?", ["-", "15", "7", "what"]),
    ("What is 7+7?", ["+", "7", "7", "what"]),
    ("Please, could you tell me the capital city of Australia? Thanks!", ["australia", "capital", "city"]),
    ("Is a well-known fact twelve times true", ["fact", "known", "times", "true", "twelve"]),
])
def test_key_tokens_are_what_the_question_asks(example: str, keys: list[str]) -> None:
    assert sorted(key_tokens(example).elements()) == keys


def test_a_prompt_asks_when_it_keeps_every_key() -> None:
    keys = key_tokens("How many grams are in a kilogram?")
    assert asks("how many grams kilogram", keys) and asks("How many garms in a kilogram?", keys)  # a typo counts
    assert missing("kilogram", keys) == ["how", "many", "grams"]
    assert missing("What is 7 5?", key_tokens("What is 7 + 5?")) == ["+"]
    assert not asks("What is 7?", key_tokens("What is 7 + 7?"))  # numbers count as often as they occur
    assert question_text("I'm doing homework. How many grams are in a kilogram?") == "How many grams are in a kilogram?"


def test_no_punctuation_keeps_operators_and_decimals() -> None:
    assert strip_punctuation("What is 7 + 5?") == "What is 7 + 5"
    assert strip_punctuation("Is 2.5 * 4 = 10, really?!") == "Is 2.5 * 4 = 10 really"
    assert strip_punctuation("What's 1,000 - 1?") == "What's 1,000 - 1"


class Recorder:
    """A model that remembers every prompt it was asked."""

    def __init__(self, answer):  # type: ignore[no-untyped-def]
        self.answer, self.prompts = answer, []

    def __call__(self, prompt: str, *, seed: int | None = None, temperature: float | None = None) -> str:
        self.prompts.append(prompt)
        return self.answer(prompt, seed or 0)


def test_expected_answer_complaint_shrinks_to_a_prompt_that_still_asks() -> None:
    def homework_bug(prompt: str, seed: int) -> str:  # wrong whenever homework is mentioned; confused when not asked
        p = prompt.lower()
        if "gram" in p and "kilogram" in p and "many" in p:
            return "100 grams." if "homework" in p else "There are 1000 grams in a kilogram."
        return "Could you say that again?"

    model = Recorder(homework_bug)
    example = "I'm doing homework. How many grams are in a kilogram?"
    res = reproduce_complaint(model, "it got the kilogram wrong", example, expected="1000")
    keys = key_tokens(example)
    assert all(asks(p, keys) for p in model.prompts)  # "homework." and "kilogram" are never asked
    assert {s["kind"] for s in res.skipped} >= {"first sentence"}
    assert res.minimal is not None and asks(res.minimal, keys) and "homework" in res.minimal.lower()
    assert res.minimal_rate == (1, 1)
    by_kind = {v["kind"]: v["reproduced"] for v in res.variants}
    assert by_kind["original"] and not by_kind["last sentence"]  # without "homework" the model is right


def test_the_no_punctuation_variant_keeps_the_plus_and_a_right_model_does_not_reproduce() -> None:
    model = Recorder(lambda p, seed: "12" if "+" in p and "7" in p and "5" in p else "Add or multiply them?")
    res = reproduce_complaint(model, "it cannot add", "What is 7 + 5?", expected="12")
    assert not res.reproduced and [f.code for f in res.findings] == ["BEH051"]
    assert model.prompts and all("+" in p for p in model.prompts)
    assert "What is 7 + 5" in [v["prompt"] for v in res.variants if v["kind"] == "no punctuation"]


def test_reproduction_rate_of_a_sampling_model() -> None:
    def flaky(prompt: str, seed: int) -> str:  # says Sydney on one seed in three
        return "Sydney" if seed % 3 == 0 else "Canberra"

    cfg = BehaviourConfig(temperature=0.7)
    res = reproduce_complaint(Recorder(flaky), 'it said "Sydney"', "What is the capital of Australia?", tries=6,
                              config=cfg)
    original = next(v for v in res.variants if v["kind"] == "original")
    assert (original["hits"], original["tries"]) == (2, 6) and res.varies
    assert res.minimal_rate == (2, 6)
    f = res.findings[0]
    assert "(2 of 6 tries)" in f.title and "the example reproduces in 2 of 6 tries" in f.title
    assert "2/6" in res.summary_text()

    once = reproduce_complaint(Recorder(flaky), 'it said "Sydney"', "What is the capital of Australia?")
    assert once.varies and "run with tries > 1" in once.findings[0].description
    steady = reproduce_complaint(Recorder(lambda p, s: "Sydney"), 'it said "Sydney"', "What is the capital of Australia?")
    assert not steady.varies


def test_every_asked_prompt_keeps_its_numbers() -> None:
    model = Recorder(lambda p, seed: "wrong")
    res = reproduce_complaint(model, "bad maths", "Sorry to bother you. What is 12 / 3 + 4?", expected="8")
    assert res.reproduced
    for p in model.prompts:
        assert Counter(t for t in p.split() if t.strip("?").isdigit() or t in "+-*/") >= Counter(
            {"12": 1, "/": 1, "+": 1}), p
    assert res.minimal is not None and set("12 / 3 + 4".split()) <= set(res.minimal.rstrip("?").split())
