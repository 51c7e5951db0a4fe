"""Knowledge scoring: lenient by default (a model that answers in sentences is right), strict as an option."""

from __future__ import annotations

import pytest

from modeldebug.behaviour import BehaviourConfig, load_facts, probe
from modeldebug.behaviour.scoring import lenient_match, match, strict_match
from modeldebug.cli import main
from modeldebug.errors import BadInputError

FACTS, _ = load_facts()
BY_PROMPT = {f.prompt: f for f in FACTS}


def in_sentences(prompt: str) -> str:
    """A perfect model that answers every fact in a full sentence."""
    f = BY_PROMPT.get(prompt)
    if f is None:
        return "Hello! How can I help you today?"
    if f.capability == "capitals":
        return f"The capital of {prompt.rsplit(' of ', 1)[-1].rstrip('?')} is {f.answers[0]}."
    return f"Good question. The answer is {f.answers[0]}, as far as I know."


def test_a_perfect_model_answering_in_sentences_is_right_by_default() -> None:
    r = probe(in_sentences, probes=["knowledge"])
    caps = r.results["knowledge"].summary["capabilities"]
    assert caps["capitals"]["lenient"]["k"] == 12 and caps["capitals"]["strict"]["k"] == 0
    assert r.results["knowledge"].summary["scoring"] == "lenient" and r.findings == []
    text = r.summary_text()
    assert "lenient (scored)" in text and "scored leniently" in text


def test_strict_scoring_is_an_option_and_says_so() -> None:
    r = probe(in_sentences, probes=["knowledge"], config=BehaviourConfig(scoring="strict"))
    caps = r.results["knowledge"].summary["capabilities"]
    assert caps["all"]["strict"]["k"] == 0 and r.results["knowledge"].attempts[0].passed is False
    assert "strict (scored)" in r.summary_text()
    # "Knows nothing" is lenient accuracy (docs/behaviour.md): 48 of 48 leniently is not knowing nothing.
    assert "BEH020" not in [f.code for f in r.findings]
    wrong = probe(lambda p: str(len(p) * 1000 + 7), probes=["knowledge"], config=BehaviourConfig(scoring="strict"))
    f = wrong.findings[0]
    assert f.code == "BEH020" and "0 of 48 basic facts right (lenient), 0 strict" in f.title
    assert f.evidence["scoring"] == "strict" and f.evidence["decided_by"] == "lenient"
    with pytest.raises(BadInputError, match="scoring 'fuzzy'"):
        BehaviourConfig(scoring="fuzzy")


@pytest.mark.parametrize(("output", "answers", "lenient", "strict"), [
    ("Paris", ["Paris"], True, True),
    ("The capital of France is Paris.", ["Paris"], True, False),
    ('"paris."', ["Paris"], True, True),
    ("There are TWELVE.", ["12"], True, False),
    ("It weighs 1,000 grams", ["1000"], True, False),
    ("12.0", ["12"], True, True),
    ("Sao Paulo is the largest city.", ["São Paulo"], True, False),
    ("The answer is 120.", ["12"], False, False),       # a number is whole, not a prefix
    ("Parisian food is famous.", ["Paris"], False, False),
    ("", ["Paris"], False, False),
])
def test_match_rules(output: str, answers: list[str], lenient: bool, strict: bool) -> None:
    assert lenient_match(output, answers) is lenient and match(output, answers) is lenient
    assert strict_match(output, answers) is strict and match(output, answers, "strict") is strict


def test_the_command_takes_scoring(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "bot.py").write_text(
        "from modeldebug.behaviour import load_facts\nF = {f.prompt: f.answers[0] for f in load_facts()[0]}\n"
        "def answer(prompt):\n    return f'I believe it is {F.get(prompt, \"unknown\")}.'\n")
    spec = f"{tmp_path / 'bot.py'}:answer"
    assert main(["behaviour", "probe", "--model", spec, "--probes", "knowledge", "--fail-on", "high", "-q"]) == 0
    capsys.readouterr()
    assert main(["behaviour", "probe", "--model", spec, "--probes", "knowledge", "--scoring", "strict",
                 "--fail-on", "high"]) == 0  # it knows every fact, in sentences: not "knows nothing"
    err = capsys.readouterr().err
    assert "strict (scored)" in err and "all             0/48" in err and "BEH020" not in err
