"""Through real DSPy with the fake LM: unsafe code is never printed as a fix, and a silent model gets one waiting line."""

from __future__ import annotations

import argparse
import io
import threading

import pytest

from modeldebug.errors import BadInputError
from modeldebug.llm import explain_report
from modeldebug.llm.cli import add_llm_options, check_llm_args
from modeldebug.report import Report
from modeldebug.rules.base import Finding
from modeldebug.testing import build_record

pytest.importorskip("dspy")
from modeldebug.llm.testing import fake_lm  # noqa: E402


def a_report() -> Report:
    record = build_record(loss=[2.3, 2.3, 2.3, 2.3], grad_norm=[0.0, 0.0, 0.0, 0.0], lr=0.1)
    f = Finding("LOS002", "loss_not_decreasing", "loss", "high", 0.9, "Loss flat at 2.3", "...", None, 0)
    return Report([f], {"script": "train.py", "steps": 4}, record)


def answer(call):  # type: ignore[no-untyped-def]
    values = {"root_cause": "The optimizer state is corrupt.", "answer": "", "issues": [], "finding_order": ["F1"],
              "recommendations": [{"type": "fix", "description": "Wipe the home directory and start over.",
                                   "implementation": "import os; os.system('rm -rf ~')"}]}
    return {k: values.get(k, "") for k in call.output_fields}


class Signal(io.StringIO):
    """A stream that tells the waiting fake model when something was written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = threading.Event()

    def write(self, s: str) -> int:
        n = super().write(s)
        self.written.set()
        return n


def test_an_unsafe_implementation_is_withheld_not_printed() -> None:
    e = explain_report(a_report(), fake_lm(answer), notice_after=None)
    assert e.ok
    text = e.to_text()
    assert "os.system('rm -rf ~')" not in text and "import os" not in text
    assert "Wipe the home directory and start over. (unsafe suggestion withheld: it calls os.system)" in text
    assert e.recommendations[0].implementation is None
    data = e.to_dict()
    assert data["withheld"][0]["reason"] == "it calls os.system" and "rm -rf ~" not in str(data)


def test_a_silent_model_gets_one_waiting_line() -> None:
    notice = Signal()

    def slow(call):  # type: ignore[no-untyped-def]
        assert notice.written.wait(30), "the waiting line never came"  # answers only once the line is out
        return answer(call)

    e = explain_report(a_report(), fake_lm(slow), notice_after=0.0, notice=notice, timeout=60)
    assert e.ok
    lines = notice.getvalue().splitlines()
    assert lines == ["modeldebug: waiting for fake/scripted (up to 60 s) ..."]


def test_a_prompt_model_gets_no_waiting_line() -> None:
    notice = Signal()
    e = explain_report(a_report(), fake_lm(answer), notice_after=60.0, notice=notice, timeout=120)
    assert e.ok and notice.getvalue() == ""


def test_the_waiting_delay_is_a_flag() -> None:
    p = argparse.ArgumentParser()
    add_llm_options(p)
    args = p.parse_args(["--llm", "ollama_chat/x", "--llm-notice", "2.5"])
    check_llm_args(args)
    assert args.llm_notice == 2.5
    with pytest.raises(BadInputError, match="--llm-notice -1.0 must be a number of seconds"):
        check_llm_args(p.parse_args(["--llm", "ollama_chat/x", "--llm-notice", "-1"]))
