"""Detection ranges: every measured range names a real rule, and the sweep's typical cases are found."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from modeldebug.catalogue import CATALOGUE
from modeldebug.catalogue.ranges import MEASURED, RANGES
from modeldebug.report.catalogue import explain_markdown, rules_markdown

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "severity_sweep.py"


def _sweep_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("severity_sweep", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["severity_sweep"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_every_range_names_a_training_rule_of_the_catalogue_and_the_sweep_that_measured_it() -> None:
    sweep = _sweep_module()
    assert RANGES and set(RANGES) == {s.code for s in sweep.SWEEPS}
    for code, ranges in RANGES.items():
        assert code in CATALOGUE and CATALOGUE[code].family == "training"
        swept = [s for s in sweep.SWEEPS if s.code == code]
        assert [r.knob for r in ranges] == [s.knob for s in swept]
        for s, r in zip(swept, ranges):
            assert s.kind == CATALOGUE[code].kind and "healthy twin" in r.text
            assert [x.grade for x in s.settings] == list(sweep.GRADES)
    assert "commit" in MEASURED


def test_explain_and_the_docs_show_the_range_and_rules_without_one_have_none() -> None:
    text = explain_markdown("LOP001")
    assert "## Detection range" in text and RANGES["LOP001"][0].text in text and MEASURED in text
    unswept = next(s.code for s in CATALOGUE if s.code not in RANGES)
    assert "Detection range" not in explain_markdown(unswept)
    docs = rules_markdown()
    assert docs.count("#### Detection range") == len(RANGES)


@pytest.mark.parametrize("code", ["LOP001", "DAT001"])
def test_the_typical_case_is_found_and_the_healthy_twin_is_not(code: str) -> None:
    sweep = _sweep_module()
    s = next(s for s in sweep.SWEEPS if s.code == code)
    typical = sweep.judge(s, s.setting("typical"))
    assert typical.error is None and typical.fired and typical.severity in ("medium", "high")
    twin = sweep.judge(s, s.setting("healthy"))
    assert twin.error is None and not twin.fired and twin.serious == []


def test_range_text_says_when_the_typical_case_is_missed() -> None:
    sweep = _sweep_module()
    Case = sweep.Case
    cases = [Case("X", "dial", "k", "healthy", "x1", False), Case("X", "dial", "k", "mild", "x3", False, first="other"),
             Case("X", "dial", "k", "typical", "x10", False),
             Case("X", "dial", "k", "extreme", "x100", True, "high", "first")]
    text = sweep.range_text(cases)
    assert text.startswith("found at x100 (high)")
    assert "x3 not found (first finding: other)" in text and "x10 not found (the typical case: a miss)" in text
    assert text.endswith("healthy twin clean")
