"""The --llm flags, and the path without a model: it imports no DSPy and changes nothing."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from modeldebug.cli import main
from modeldebug.errors import BadInputError
from modeldebug.llm.cli import add_llm_options, check_llm_args, handle_llm
from modeldebug.llm.preflight import unavailable
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
    check_llm_args(args, preflight=False)  # a bare name with a server means an OpenAI-compatible one; building contacts nobody
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


def _listening() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    return server


def test_an_unknown_provider_is_refused_before_the_script_runs(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("dspy")
    with pytest.raises(BadInputError, match="no provider is called 'nope'"):
        check_llm_args(parse("--llm", "nope/x"))
    (tmp_path / "train.py").write_text("open('ran', 'w').close()\n")
    assert main(["run", "--db", "run.db", "--no-progress", "--llm", "nope/x", "--", "train.py"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--llm 'nope/x': no provider is called 'nope'" in err[0]
    assert not (tmp_path / "ran").exists()


def test_a_server_that_is_there_or_not(local_connect: None) -> None:
    pytest.importorskip("dspy")
    server = _listening()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    assert unavailable("openai/qwen", url) is None
    args = parse("--llm", "qwen", "--llm-base-url", url)
    check_llm_args(args)
    assert args.llm == "qwen" and args.llm_lm is not None  # kept: the explanation will be asked for
    server.close()
    why = unavailable("openai/qwen", url)
    assert why is not None and why.startswith("the model server is not there: nothing answers at 127.0.0.1:")


def test_a_missing_server_is_a_warning_up_front_and_the_run_goes_on(
        tmp_path: Path, local_connect: None, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("dspy")
    server = _listening()
    port = server.getsockname()[1]
    server.close()  # a port nothing listens on now
    (tmp_path / "train.py").write_text("import sys\nprint('trained', file=sys.stderr)\nsys.exit(3)\n")
    code = main(["run", "--db", "run.db", "--no-progress", "--llm", "ollama_chat/llama3.2",
                 "--llm-base-url", f"http://127.0.0.1:{port}", "--", "train.py"])
    assert code == 3  # the script's own exit code: the run was not lost
    err = capsys.readouterr().err.splitlines()
    warning = [line for line in err if "--llm" in line or "LLM" in line]
    assert len(warning) == 1 and warning[0].startswith("modeldebug: warning: --llm ollama_chat/llama3.2: the model "
                                                       f"server is not there: nothing answers at 127.0.0.1:{port}")
    assert "going on without the LLM explanation" in warning[0]
    assert err.index(warning[0]) < err.index("trained")  # before the script ran


def test_a_hosted_model_without_its_key_or_network(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("dspy")
    for name in ("OPENAI_API_KEY", "MODELDEBUG_LLM_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    why = unavailable("openai/gpt-4o-mini", None)
    assert why is not None and "OPENAI_API_KEY" in why and "not set" in why
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    why = unavailable("openai/gpt-4o-mini", None)  # the conftest refuses every connection: no network
    assert why is not None and why.startswith("the network does not reach openai: nothing answers at api.openai.com:443")


def test_run_with_llm_imports_neither_dspy_nor_litellm_before_the_script(tmp_path: Path) -> None:
    """`modeldebug run --llm MODEL` checks its flags before the script's first line and builds the
    model after the run: DSPy and LiteLLM take seconds to import, which the script would wait for."""
    pytest.importorskip("dspy")
    (tmp_path / "train.py").write_text(
        "import sys\n"
        "print('BEFORE', sorted({m.split('.')[0] for m in sys.modules} & {'dspy', 'litellm'}), file=sys.stderr)\n")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]
    server.close()  # nothing listens: a warning up front, and no explanation after
    out = subprocess.run([sys.executable, "-m", "modeldebug", "run", "--db", "run.db", "--no-progress", "--llm",
                          "ollama_chat/llama3.2", "--llm-base-url", f"http://127.0.0.1:{port}", "--", "train.py"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "BEFORE []" in out.stderr
    assert "going on without the LLM explanation" in out.stderr


def test_the_providers_and_keys_known_without_litellm_are_litellms(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("litellm")
    import litellm

    from modeldebug.llm.preflight import COMMON, KEY_ENV, providers

    assert COMMON <= providers()
    for provider, name in KEY_ENV.items():
        for key in litellm.validate_environment(f"{provider}/some-model").get("missing_keys") or []:
            monkeypatch.delenv(key, raising=False)
        monkeypatch.delenv(name, raising=False)
        env = litellm.validate_environment(f"{provider}/some-model")
        assert not env["keys_in_environment"] and env["missing_keys"] == [name], (provider, env)


def test_a_broken_dspy_met_after_the_run_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`run --llm` builds the model after the run: an install that fails there with something other than an
    ImportError (a version clash) must still be one line, the report kept, never a traceback."""
    from modeldebug.llm import lm as lm_module

    def broken() -> None:
        raise RuntimeError("pydantic version clash")

    monkeypatch.setattr(lm_module, "_dspy", broken)
    args = parse("--llm", "ollama_chat/llama3.2")
    handle_llm(a_report(), args)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RuntimeError: pydantic version clash" in err[0] and "the rule report stands" in err[0]
