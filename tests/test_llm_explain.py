"""Explaining a real run's report through real DSPy with a deterministic fake model (offline).

Covers parsing into our schema, token and time reporting, the guard on a contrarian answer, and
every fallback: malformed output, an exception, a timeout.
"""

from __future__ import annotations

import json
import math
import threading

import pytest
import torch

import modeldebug as md
from modeldebug.llm import explain_report
from modeldebug.llm.guard import Hypothesis
from modeldebug.rules.base import Finding, Recommendation
from modeldebug.testing import healthy_mlp, train

dspy = pytest.importorskip("dspy")
from modeldebug.llm.testing import contrarian_analyst, fake_lm  # noqa: E402


@pytest.fixture(scope="module")
def dead_report():  # type: ignore[no-untyped-def]
    """A real watched run of an MLP whose first ReLU is killed by a bias of -10."""
    torch.set_num_threads(1)
    model, data = healthy_mlp()
    with torch.no_grad():
        model[0].bias.fill_(-10.0)
    with md.watch(model, db=":memory:") as session:
        train(model, data, steps=40)
    report = session.report()
    assert [f.kind for f in report.findings][:1] == ["dead_activations"]
    return report


def test_answer_is_parsed_into_our_schema_with_tokens_and_time(dead_report) -> None:  # type: ignore[no-untyped-def]
    lm = fake_lm([{
        "root_cause": "Layer 0's bias of -10 makes every pre-activation negative, so ReLU 1 outputs zero.",
        "answer": "",
        "issues": [{"type": "Activations", "severity": "high", "description": "ReLU 1 is dead.", "finding": "F1"},
                   {"type": "optimizer", "severity": "medium", "description": "Adam may hide it.", "location": "0"}],
        "recommendations": [{"type": "fix", "description": "Zero the bias of layer 0.",
                             "implementation": "nn.init.zeros_(model[0].bias)"}],
        "finding_order": ["F1", "F2"]}])
    e = explain_report(dead_report, lm)
    assert e.ok and e.fallback_reason is None
    assert e.root_cause.startswith("Layer 0's bias of -10")
    assert [f.kind for f in e.findings] == [f.kind for f in dead_report.findings]
    assert all(isinstance(f, Finding) for f in e.findings) and e.findings[0].evidence["llm_note"] == "ReLU 1 is dead."
    assert e.hypotheses == [Hypothesis("optimizer", "medium", "Adam may hide it.", "0", True)]
    assert e.recommendations == [Recommendation("fix", "Zero the bias of layer 0.", "nn.init.zeros_(model[0].bias)")]
    # tokens are what the (fake) server reported: 4 characters a token of the real prompt DSPy built
    (call,) = lm.engine.calls
    assert "F1" in call.inputs["rule_findings"] and "dead_activations" in call.inputs["rule_findings"]
    assert e.tokens.calls == 1 and e.tokens.prompt_tokens == math.ceil((len(call.system) + len(call.prompt)) / 4)
    assert e.tokens.total_tokens == e.tokens.prompt_tokens + e.tokens.completion_tokens > 500
    assert 0 < e.seconds < 30
    assert "1 LLM call," in e.to_text() and "hypotheses of the LLM" in e.to_text()
    json.dumps(e.to_dict(), allow_nan=False)


def test_a_contrarian_model_cannot_drop_demote_or_reorder_against_the_evidence(dead_report, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "checkpoints").mkdir()  # the contrarian recommends shutil.rmtree('checkpoints')
    e = explain_report(dead_report, fake_lm(contrarian_analyst))
    assert e.ok
    rules = [(f.code, f.location, f.severity, f.confidence) for f in dead_report.findings]
    assert [(f.code, f.location, f.severity, f.confidence) for f in e.findings] == rules
    assert "F1" not in e.llm_order and e.order[0] == "F1"
    assert any("left out F1" in n for n in e.notes)
    assert e.hypotheses[0].location_known is False
    text = e.to_text()
    assert "\x1b" not in text and "not verified; nothing was run" in text
    assert "shutil.rmtree" in text and (tmp_path / "checkpoints").is_dir()  # shown, never executed


class _Blocked:
    """An answer that arrives only when the test lets it (no sleeping)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, call):  # type: ignore[no-untyped-def]
        self.release.wait(30)
        return {"root_cause": "late"}


@pytest.mark.parametrize("case", ["garbage", "bad_enum", "empty", "exception", "timeout"])
def test_every_failure_falls_back_to_the_rule_report_with_one_line(dead_report, case: str) -> None:  # type: ignore[no-untyped-def]
    blocked = _Blocked()
    script = {
        "garbage": lambda call: "I think the model is fine :)",
        "bad_enum": lambda call: {k: ([{"type": "vibes", "severity": "high", "description": "d"}] if k == "issues"
                                      else [] if k in ("recommendations", "finding_order") else "x")
                                  for k in call.output_fields},
        "empty": lambda call: {k: ([] if k in ("issues", "recommendations", "finding_order") else "")
                               for k in call.output_fields},
        "exception": [ConnectionResetError("server went away")],
        "timeout": blocked,
    }[case]
    try:
        e = explain_report(dead_report, fake_lm(script), timeout=0.5 if case == "timeout" else 30)
    finally:
        blocked.release.set()
    reason = {"garbage": "not in the expected format", "bad_enum": "not in the expected format",
              "empty": "answer is empty", "exception": "server went away", "timeout": "no answer within 0.5 s"}[case]
    assert not e.ok and reason in e.fallback_reason
    assert e.to_text() == e.fallback_line() and "\n" not in e.to_text() and "the rule report stands" in e.to_text()
    assert [f.to_dict() for f in e.findings] == [f.to_dict() for f in dead_report.findings]
    assert not e.hypotheses and not e.recommendations and not e.root_cause
    if case == "timeout":
        assert e.seconds < 10
