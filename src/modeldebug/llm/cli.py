"""The command-line side: `--llm MODEL [--llm-base-url URL] [--ask QUESTION] [--llm-timeout S] [--llm-notice S]`.

`modeldebug run` and `modeldebug report` call, in this order:
1. `add_llm_options(parser)` when building their parser;
2. `check_llm_args(args)` before any work (a bad flag exits 2 before a script runs, not after);
3. `handle_llm(report, args)` after the rule report is printed: the explanation goes to stderr,
   or one line saying why there is none. It never changes the report or the exit code.
Without `--llm` these do nothing and import nothing of DSPy.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from ..errors import BadInputError, DebuggingError

__all__ = ["LLM_VALUE_OPTIONS", "add_llm_options", "check_llm_args", "handle_llm"]

#: options that take a value (for `modeldebug run`'s split of its own options from the script's)
LLM_VALUE_OPTIONS = frozenset({"--llm", "--llm-base-url", "--ask", "--llm-timeout", "--llm-notice"})
_DEFAULT_TIMEOUT = 120.0  # = explain.DEFAULT_TIMEOUT, kept here so building the parser imports nothing
_DEFAULT_NOTICE = 5.0  # = explain.DEFAULT_NOTICE_AFTER


def add_llm_options(parser: argparse.ArgumentParser) -> None:
    """Add the language-model options to a subcommand's parser."""
    g = parser.add_argument_group("language model (optional, see docs/llm.md)")
    g.add_argument("--llm", metavar="MODEL",
                   help="also explain the findings with a language model: ollama_chat/NAME (Ollama), "
                        "openai/NAME with --llm-base-url (llama.cpp, vLLM, LM Studio), or a hosted model")
    g.add_argument("--llm-base-url", metavar="URL",
                   help="the model server, e.g. http://localhost:11434 (Ollama) or http://localhost:8080/v1")
    g.add_argument("--ask", metavar="QUESTION",
                   help="a question for the model, e.g. \"why did it diverge?\" (it may query the stored run)")
    g.add_argument("--llm-timeout", metavar="S", type=float, default=_DEFAULT_TIMEOUT,
                   help=f"seconds the model may take in all (default {_DEFAULT_TIMEOUT:g}); then the rule report stands")
    g.add_argument("--llm-notice", metavar="S", type=float, default=_DEFAULT_NOTICE,
                   help=f"after S seconds without an answer, print one 'waiting for MODEL' line to stderr "
                        f"(default {_DEFAULT_NOTICE:g}; 0 at once)")


def check_llm_args(args: argparse.Namespace, *, preflight: bool = True, build: bool = True,
                   file: TextIO | None = None) -> None:
    """Reject unusable LLM flags with one clear line (BadInputError / MissingDependencyError); build the LM
    (`args.llm_lm`), or with `build=False` only check the flags, without importing DSPy: `modeldebug
    run` checks before the script's first line, and `handle_llm` builds the model after the run.

    With `preflight`, a model that cannot answer now (its server is not there, its key is not set, no
    network) is one warning line, and `--llm` is dropped: the run goes on, without the explanation."""
    model = getattr(args, "llm", None)
    if not model:
        for flag, value in (("--ask", getattr(args, "ask", None)), ("--llm-base-url", getattr(args, "llm_base_url", None))):
            if value:
                raise BadInputError(f"{flag} needs --llm MODEL (e.g. --llm ollama_chat/llama3.2)")
        return
    timeout = getattr(args, "llm_timeout", _DEFAULT_TIMEOUT)
    if timeout is None or not timeout > 0:
        raise BadInputError(f"--llm-timeout {timeout!r} must be a positive number of seconds")
    notice = getattr(args, "llm_notice", _DEFAULT_NOTICE)
    if notice is None or not notice >= 0:
        raise BadInputError(f"--llm-notice {notice!r} must be a number of seconds, 0 or more")
    from .lm import check_model, make_lm, require_dspy

    base_url = getattr(args, "llm_base_url", None)
    if build:
        args.llm_lm = make_lm(model, base_url=base_url, timeout=timeout)
        name = args.llm_lm.model
    else:
        name = check_model(model, base_url=base_url, timeout=timeout)
        require_dspy()
    if not preflight:
        return
    from .lm import API_KEY_ENV
    from .preflight import unavailable

    why = unavailable(name, base_url, api_key=os.environ.get(API_KEY_ENV))
    if why:
        print(f"modeldebug: warning: --llm {model}: {why}; going on without the LLM explanation",
              file=file if file is not None else sys.stderr)
        args.llm, args.llm_lm = None, None


def handle_llm(report: Any, args: argparse.Namespace, *, lm: Any = None, file: TextIO | None = None) -> None:
    """Print the model's explanation of `report` to stderr (after the rule report); no-op without --llm.

    `lm` overrides the model built from the flags (tests pass a fake one). A failure of any kind
    prints one line and leaves the report as it is.
    """
    out = file if file is not None else sys.stderr
    if lm is None and not getattr(args, "llm", None):
        return
    try:
        if lm is None:
            lm = getattr(args, "llm_lm", None)
            if lm is None:
                check_llm_args(args, preflight=False)
                lm = args.llm_lm
        from .explain import explain_report

        notice = getattr(args, "llm_notice", _DEFAULT_NOTICE)
        explanation = explain_report(report, lm, getattr(args, "ask", None) or None,
                                     timeout=getattr(args, "llm_timeout", None) or _DEFAULT_TIMEOUT,
                                     notice_after=_DEFAULT_NOTICE if notice is None else notice, notice=out)
    except DebuggingError as exc:
        print(f"modeldebug: LLM explanation unavailable ({exc.message}); the rule report stands.", file=out)
        return
    except Exception as exc:  # noqa: BLE001 - a broken DSPy install, met after the run: one line, never a traceback
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        print(f"modeldebug: LLM explanation unavailable ({why}); the rule report stands.", file=out)
        return
    print(explanation.to_text(), file=out)
