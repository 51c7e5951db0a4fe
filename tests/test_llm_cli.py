"""The --llm flags, and the path without a model: it imports no DSPy and changes nothing."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from modeldebug.errors import BadInputError
from modeldebug.llm.cli import add_llm_options, check_llm_args, handle_llm
from modeldebug.report import Report
from modeldebug.rules.base import Finding
from modeldebug.testing import build_record


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_llm_options(p)
    return p.parse_args(list(argv))


def a_report() -> Report:
    record = build_record(loss=[2.3, 2.3, 2.3, 2.3], grad_norm=[0.0, 0.0, 0.0, 0.0], lr=0.1)
    f = Finding("LOS002", "loss_not_decreasing", "loss", "high", 0.9, "Loss flat at 2.3", "...", None, 0)
    return Report([f], {"script": "train.py", "steps": 4}, record)


def test_without_a_model_nothing_of_dspy_is_imported() -> None:
    code = """
import argparse, sys
import modeldebug, modeldebug.agent, modeldebug.capture, modeldebug.cli, modeldebug.report, modeldebug.testing
modeldebug.Report, modeldebug.Record, modeldebug.watch, modeldebug.agent.ModelDebuggingAgent
import modeldebug.llm, modeldebug.llm.cli, modeldebug.llm.guard, modeldebug.llm.queries, modeldebug.llm.result
from modeldebug.llm.cli import add_llm_options, check_llm_args, handle_llm
from modeldebug.report import Report
from modeldebug.testing import build_record
p = argparse.ArgumentParser(); add_llm_options(p); args = p.parse_args([])
check_llm_args(args)
handle_llm(Report([], {}, build_record(loss=[1.0, 0.5])), args)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("dspy", "litellm"))
assert not bad, bad
print("clean")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "clean", out.stderr[-2000:]
    assert out.stderr == ""  # no output at all without --llm


def test_bad_llm_flags_are_refused_before_any_work() -> None:
    for argv, fragment in ((("--ask", "why?"), "--ask needs --llm"),
                           (("--llm-base-url", "http://localhost:8080/v1"), "--llm-base-url needs --llm"),
                           (("--llm", "ollama chat"), "is not a model name"),
                           (("--llm", "llama3"), "names no provider"),
                           (("--llm", "openai/x", "--llm-base-url", "localhost:8080"), "not an http(s) URL"),
                           (("--llm", "ollama_chat/x", "--llm-timeout", "0"), "must be a positive number")):
        with pytest.raises(BadInputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            check_llm_args(parse(*argv))
    args = parse("--llm", "llama3.2:3b", "--llm-base-url", "http://localhost:8080/v1")
    check_llm_args(args)  # a bare name with a server means an OpenAI-compatible one; building contacts nobody
    assert args.llm_lm.model == "openai/llama3.2:3b" and args.llm_lm.kwargs["api_key"] == "local"


def test_handle_llm_prints_the_explanation_after_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("dspy")
    from modeldebug.llm.testing import echo_analyst, fake_lm

    args = parse("--llm", "fake/scripted", "--ask", "why is the loss flat?")
    handle_llm(a_report(), args, lm=fake_lm(echo_analyst))
    err = capsys.readouterr().err
    assert err.startswith("LLM explanation (fake/scripted; 3 LLM calls")
    assert "question: why is the loss flat?" in err and "answer: Loss flat at 2.3" in err
    assert "list_findings()" in err


def test_an_unreachable_server_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("dspy")
    args = parse("--llm", "ollama_chat/llama3.2", "--llm-base-url", "http://127.0.0.1:9", "--llm-timeout", "20")
    handle_llm(a_report(), args)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("modeldebug: LLM explanation unavailable (")
    assert "the rule report stands" in err
