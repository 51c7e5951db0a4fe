"""The one catalogue: every code of every family documented, explainable, listed and selectable."""

from __future__ import annotations

import pytest

from modeldebug.catalogue import CATALOGUE, FAMILIES, HEADINGS, Catalogue, Option, Spec
from modeldebug.cli import main
from modeldebug.config import DebuggingConfig
from modeldebug.errors import BadInputError, UnknownRuleError
from modeldebug.rules import RULES, selected_rules


def test_every_spec_is_documented_under_the_five_headings() -> None:
    problems = {s.code: s.problems() for s in CATALOGUE if s.problems()}
    assert problems == {}
    for spec in CATALOGUE:
        assert list(spec.sections())[:len(HEADINGS)] == list(HEADINGS), spec.code


def test_codes_are_unique_and_kinds_unique_within_a_family() -> None:
    seen: dict[tuple[str, str], str] = {}
    for spec in CATALOGUE:
        assert (spec.family, spec.kind) not in seen, f"{spec.code} repeats {seen[(spec.family, spec.kind)]}'s kind"
        seen[(spec.family, spec.kind)] = spec.code
    assert {s.family for s in CATALOGUE} >= {"training", "onnx", "behaviour", "monitor", "probe"}


def test_every_training_rule_has_a_spec_and_every_training_spec_a_rule() -> None:
    assert set(RULES) == {s.code for s in CATALOGUE.family("training")}
    for code, rule in RULES.items():
        assert rule.spec is CATALOGUE[code] and rule.kind == rule.spec.kind


def test_every_option_is_declared_once_and_typed() -> None:
    names = [o.name for o, _ in CATALOGUE.options()]
    assert len(names) == len(set(names))
    thresholds = DebuggingConfig().thresholds
    for option, code in CATALOGUE.options():
        assert getattr(thresholds, option.name) == option.default
        assert option.doc.strip(), option.name
        assert code is None or option in CATALOGUE[code].options


@pytest.mark.parametrize("code", [s.code for s in CATALOGUE])
def test_explain_works_for_every_code_of_every_family(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", code]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# {code} ") and "## Recommended fix" in out


def test_rules_lists_every_family(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    for spec in CATALOGUE:
        assert spec.code in out
    assert main(["rules", "--family", "monitor"]) == 0
    out = capsys.readouterr().out
    assert "MON001" in out and "GRD001" not in out


def test_a_misspelled_option_or_selector_fails_loudly_with_a_hint() -> None:
    with pytest.raises(BadInputError, match="did you mean 'grad_growth'"):
        DebuggingConfig(thresholds={"grad_grwth": 1e4})
    with pytest.raises(ValueError, match="grad_growth"):
        DebuggingConfig(thresholds={"grad_growth": "big"})
    with pytest.raises(UnknownRuleError, match="no rule matches .GRD0001. .did you mean GRD001"):
        selected_rules(DebuggingConfig(select=["GRD0001"]))
    with pytest.raises(BadInputError):
        getattr(DebuggingConfig().thresholds, "dead_fractoin")
    with pytest.raises(UnknownRuleError, match="GRD names 3 rules .GRD001, GRD002, GRD003.; explain one of them"):
        CATALOGUE.find("GRD")  # `modeldebug explain GRD`: a family's prefix lists its codes


def test_selecting_codes_of_another_family_on_a_training_record_says_where_they_come_from() -> None:
    with pytest.raises(BadInputError, match="names no training or plugin rule.*onnx"):
        selected_rules(DebuggingConfig(select=["ONX", "PRB"]))
    assert [r.code for r in selected_rules(DebuggingConfig(select=["GRD"]))] == ["GRD001", "GRD002", "GRD003"]
    kept = selected_rules(DebuggingConfig(select=["training"], ignore=["RUN", "dead_activations"]))
    assert "ACT001" not in {r.code for r in kept} and not any(r.code.startswith("RUN") for r in kept)


def test_a_spec_that_collides_or_lacks_docs_is_refused() -> None:
    doc = "\n".join(f"## {h}\ntext" for h in HEADINGS)
    cat = Catalogue([CATALOGUE["GRD001"]])
    with pytest.raises(BadInputError, match="already used"):
        cat.add(Spec(code="GRD001", kind="mine", category="gradient", family="plugin", name="mine", summary="s",
                     doc=doc, source="my_rules"))
    with pytest.raises(BadInputError, match="lacks Known problems"):
        cat.add(Spec(code="USR001", kind="mine", category="gradient", family="plugin", name="mine", summary="s",
                     doc=doc.split("## Known problems")[0], source="my_rules"))
    with pytest.raises(BadInputError, match="already declared"):
        cat.add(Spec(code="USR001", kind="mine", category="gradient", family="plugin", name="mine", summary="s",
                     doc=doc, options=(Option("grad_growth", 1.0, "mine"),), source="my_rules"))
    assert cat.add(Spec(code="USR001", kind="mine", category="gradient", family="plugin", name="mine",
                        summary="s", doc=doc, source="my_rules")).code == "USR001"
    assert set(FAMILIES) >= {"plugin"}
