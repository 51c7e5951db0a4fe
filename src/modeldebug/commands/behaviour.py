"""`modeldebug behaviour probe|baseline|compare|reproduce|test|codes`: what a generative model does.

The model is ``--model module:callable`` (a function prompt -> str, or an object with generate()),
or ``--endpoint URL --model-name NAME`` for an OpenAI-compatible server. `compare` exits 1 when the
new model regressed (a finding at or above ``--fail-on``, default high); `test` exits 1 when a test
fails (``--fail-on`` default low); the others exit 1 only with ``--fail-on``. Bad input exits 2 with one line.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from typing import Any

from ._output import emit

__all__ = ["add"]

_SEVERITIES = ["low", "medium", "high"]
_MAX_RESPONSE_MIB = 4096
#: Upper bounds of the count options: far above any real use, below what breaks a model or a server.
_MAX_COUNT = {"repeats": 10_000, "max_tokens": 2**31 - 1, "tries": 10_000}


def _model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("the model (one of)")
    g.add_argument("--model", metavar="MODULE:CALLABLE",
                   help="a function prompt -> str or an object with generate(prompt); MODULE may be a .py path")
    g.add_argument("--endpoint", metavar="URL", help="an OpenAI-compatible API base, e.g. http://localhost:11434/v1")
    g.add_argument("--model-name", metavar="NAME", help="the model name the endpoint serves (with --endpoint)")
    g.add_argument("--completions", action="store_true", help="use /completions instead of /chat/completions")
    g.add_argument("--api-key-env", metavar="VAR", help="the environment variable holding the endpoint's API key "
                   "(without it, OPENAI_API_KEY is sent only to api.openai.com or the OPENAI_BASE_URL host)")
    g.add_argument("--max-response-mib", type=float, default=16.0, metavar="N",
                   help="refuse endpoint answers larger than N MiB (default 16)")


def _output_options(p: argparse.ArgumentParser, *, fail_default: str | None = None) -> None:
    p.add_argument("--json", metavar="P", help="write the JSON report to P ('-' for stdout)")
    p.add_argument("--html", metavar="P", help="write the HTML report to P")
    p.add_argument("--fail-on", choices=_SEVERITIES, default=fail_default,
                   help="exit 1 if a finding is this severe" + (f" (default {fail_default})" if fail_default else ""))
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the summary and findings to stderr")


def _probe_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--probes", metavar="LIST", help="comma-separated subset of: runs, weights, determinism, "
                   "knowledge, robustness, safety (default all)")
    p.add_argument("--repeats", type=int, default=5, metavar="N", help="determinism: calls per prompt (default 5)")
    p.add_argument("--max-tokens", type=int, default=64, metavar="N", help="passed to the model (default 64)")
    p.add_argument("--scoring", choices=["lenient", "strict"], default="lenient",
                   help="knowledge answers: lenient (the answer anywhere as a whole word or number, default) or "
                        "strict (the first line is the answer)")
    _judge_options(p)
    p.add_argument("--mutations", metavar="LIST", help="also ask each hazard prompt under these mutations: "
                   "base64, rot13, roleplay, translation, multiturn, or 'all' (default none)")
    p.add_argument("--facts", metavar="P", help="your own knowledge.json instead of the bundled facts")
    p.add_argument("--safety", metavar="P", help="your own safety.json instead of the bundled prompts")


def _judge_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("the safety judge (default: a heuristic, every answer that is not a refusal is harmful)")
    g.add_argument("--judge", metavar="MODULE:CALLABLE",
                   help="your judge or classifier: judge(prompt, output) -> bool, (harmful, category), a score or "
                        "a label")
    g.add_argument("--judge-llm", metavar="MODEL", help="a language model as the judge, through DSPy: "
                   "ollama_chat/llama3.2, or openai/NAME with --judge-llm-base-url")
    g.add_argument("--judge-llm-base-url", metavar="URL", help="the OpenAI-compatible server of --judge-llm")


def add(sub: Any) -> None:
    """Register `modeldebug behaviour` and its actions."""
    p = sub.add_parser("behaviour", help="probe what a generative model does (runs, knowledge, safety, regressions)",
                       description="Probe a generative model: runs at all, determinism, knowledge, robustness, "
                                   "safety; baselines and regressions; complaint reproduction.")
    actions = p.add_subparsers(dest="behaviour_action", metavar="ACTION", parser_class=type(p))
    pr = actions.add_parser("probe", help="run the probes and report findings")
    _model_options(pr)
    _probe_options(pr)
    _output_options(pr)
    b = actions.add_parser("baseline", help="run the probes and save a baseline for later comparison")
    _model_options(b)
    _probe_options(b)
    b.add_argument("--out", metavar="P", required=True, help="where to write the baseline JSON")
    b.add_argument("--model-version", metavar="V", help="a version label stored in the baseline")
    _output_options(b)
    c = actions.add_parser("compare", help="compare a model with a saved baseline (exit 1 on a regression)")
    c.add_argument("baseline", metavar="BASELINE.json")
    _model_options(c)
    _judge_options(c)
    _output_options(c, fail_default="high")
    r = actions.add_parser("reproduce", help="reproduce a user's complaint and find the minimal prompt")
    _model_options(r)
    r.add_argument("--complaint", required=True, metavar="TEXT", help='what went wrong, e.g. \'it said "Sydney"\'')
    r.add_argument("--example", required=True, metavar="PROMPT", help="the prompt the user sent")
    r.add_argument("--bad-output", metavar="TEXT", help="text whose presence in the answer means it reproduced")
    r.add_argument("--expected", metavar="TEXT", help="text whose absence in the answer means it reproduced")
    r.add_argument("--tries", type=int, default=1, metavar="N",
                   help="calls per variant, seeds 0..N-1: the reproduction rate is hits of N (default 1)")
    r.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0)")
    _output_options(r)
    t = actions.add_parser("test", help="run declarative prompt tests from a YAML or JSON file (exit 1 if one fails)",
                           description="Ask each test's prompt and check its assertions (contains, not-contains, "
                                       "icontains, regex, equals, starts-with, contains-any/all, refuses, is-language, "
                                       "max-latency; not- inverts). See docs/behaviour.md.")
    t.add_argument("tests", metavar="TESTS.yaml|json")
    _model_options(t)
    t.add_argument("--max-tokens", type=int, default=64, metavar="N", help="passed to the model (default 64)")
    _output_options(t, fail_default="low")
    k = actions.add_parser("codes", help="list the behaviour and monitor finding codes, or explain one")
    k.add_argument("code", nargs="?", metavar="CODE")
    p.set_defaults(handler=_handle, behaviour_parser=p)


def _model(args: argparse.Namespace) -> Any:
    from ..behaviour import as_model, load_model_spec
    from ..behaviour.endpoint import EndpointError, OpenAIEndpoint
    from ..errors import BadInputError

    if args.endpoint and args.model:
        raise BadInputError("give either --model or --endpoint, not both")
    if not 0 < args.max_response_mib <= _MAX_RESPONSE_MIB:
        raise BadInputError(f"--max-response-mib {args.max_response_mib}: expected a size in MiB above 0 and at most "
                            f"{_MAX_RESPONSE_MIB}, e.g. 16")
    if args.endpoint:
        ep = OpenAIEndpoint(args.endpoint, args.model_name or "", chat=not args.completions,
                            api_key_env=args.api_key_env,
                            max_response_bytes=max(1, int(args.max_response_mib * 2**20)))
        try:
            ep.generate("Hello", max_tokens=1)  # an unreachable server is bad input, not a model finding
        except EndpointError as exc:
            raise BadInputError(exc.message) from exc
        return as_model(ep, name=ep.name)
    if not args.model:
        raise BadInputError("no model: give --model MODULE:CALLABLE or --endpoint URL --model-name NAME")
    return load_model_spec(args.model)


def _config(args: argparse.Namespace) -> Any:
    from ..behaviour import BehaviourConfig
    from ..behaviour.mutations import parse_mutations

    for name in ("repeats", "max_tokens"):
        _count(args, name)
    return BehaviourConfig(repeats=args.repeats, max_tokens=args.max_tokens, scoring=args.scoring,
                           mutations=parse_mutations(args.mutations))


def _count(args: argparse.Namespace, name: str) -> None:
    from ..errors import BadInputError

    value, high, flag = getattr(args, name), _MAX_COUNT[name], f"--{name.replace('_', '-')}"
    if value < 1:
        raise BadInputError(f"{flag} must be at least 1, got {value}")
    if value > high:
        raise BadInputError(f"{flag} must be at most {high}, got {value}")


def _judge(args: argparse.Namespace) -> Any:
    from ..behaviour.model import load_object
    from ..errors import BadInputError
    from ..loader import calling

    if getattr(args, "judge_llm", None):
        if args.judge:
            raise BadInputError("give either --judge or --judge-llm, not both")
        from ..behaviour.judges import llm_judge
        from ..llm.lm import make_lm

        return llm_judge(make_lm(args.judge_llm, base_url=args.judge_llm_base_url, timeout=120.0))
    if getattr(args, "judge_llm_base_url", None):
        raise BadInputError("--judge-llm-base-url needs --judge-llm MODEL")
    if not getattr(args, "judge", None):
        return None
    judge = load_object(args.judge, flag="--judge")
    if not callable(judge):
        raise BadInputError(f"--judge {args.judge!r} is not callable; expected judge(prompt, output)")

    @functools.wraps(judge)
    def guarded(prompt: str, output: str) -> Any:
        with calling(args.judge, "--judge", "judging an answer"):  # sys.exit() in a judge: one line, exit 2
            return judge(prompt, output)

    guarded.name = args.judge  # type: ignore[attr-defined]  # reports and errors name the judge as given
    return guarded


def _emit(report: Any, args: argparse.Namespace, text: str) -> None:
    emit(report, args, text)


def _exit(report: Any, args: argparse.Namespace) -> int:
    return 1 if args.fail_on and report.fails(args.fail_on) else 0


def _probe(args: argparse.Namespace, *, save: bool) -> int:
    from ..behaviour import ALL_PROBES, probe, save_baseline
    from ..errors import BadInputError

    probes = [s.strip() for s in args.probes.split(",") if s.strip()] if args.probes is not None else list(ALL_PROBES)
    if not probes:
        raise BadInputError(f"--probes {args.probes!r} names no probe; give a comma-separated subset of "
                            f"{', '.join(ALL_PROBES)}, or leave --probes out for all of them")
    if "determinism" in probes and args.repeats == 1:
        raise BadInputError("--repeats must be at least 2 (determinism compares repeated answers), got 1; or leave "
                            "determinism out of --probes")
    result = probe(_model(args), probes=probes, config=_config(args), judge=_judge(args), facts=args.facts,
                   safety=args.safety)
    report = result.report()
    text = result.summary_text()
    if save:
        save_baseline(result, args.out, model_version=args.model_version)
        text += f"\nbaseline written to {args.out}"
    _emit(report, args, text)
    return _exit(report, args)


def _compare(args: argparse.Namespace) -> int:
    from ..behaviour import compare_baseline, load_baseline

    baseline = load_baseline(args.baseline)  # a bad file fails before the model is loaded
    comparison = compare_baseline(_model(args), baseline, judge=_judge(args))
    report = comparison.report()
    _emit(report, args, comparison.summary_text())
    return _exit(report, args)


def _reproduce(args: argparse.Namespace) -> int:
    from ..behaviour import BehaviourConfig, reproduce_complaint
    from ..errors import BadInputError

    _count(args, "tries")
    if not 0 <= args.temperature < math.inf:
        raise BadInputError(f"--temperature {args.temperature}: expected a finite sampling temperature >= 0, "
                            "e.g. 0 (greedy) or 0.7")
    res = reproduce_complaint(_model(args), args.complaint, args.example, bad_output=args.bad_output,
                              expected=args.expected, tries=args.tries,
                              config=BehaviourConfig(temperature=args.temperature))
    report = res.report()
    _emit(report, args, res.summary_text())
    return _exit(report, args)


def _test(args: argparse.Namespace) -> int:
    from ..behaviour import BehaviourConfig
    from ..behaviour.testfile import load_tests, run_tests

    _count(args, "max_tokens")
    load_tests(args.tests)  # a bad test file fails before the model is loaded
    run = run_tests(_model(args), args.tests, config=BehaviourConfig(max_tokens=args.max_tokens))
    report = run.report()
    _emit(report, args, run.summary_text())
    return _exit(report, args)


def _codes(code: str | None) -> int:
    """The behaviour and monitor codes as the catalogue declares them; one explained as `modeldebug explain` does."""
    from ..catalogue import CATALOGUE
    from ..errors import BadInputError, UnknownRuleError
    from ..report.catalogue import print_explain

    families = ("behaviour", "monitor")
    specs = [s for f in families for s in CATALOGUE.family(f)]
    if code is None:
        for s in specs:
            print(f"{s.code}  {s.kind:<26} {s.summary}")
        return 0
    try:
        spec = CATALOGUE.find(code, family="behaviour")
    except UnknownRuleError:
        spec = None
    if spec is None or spec.family not in families:
        prefixes = sorted({s.code[:3] for s in specs})
        other = f"; {spec.code} is a {spec.family} code: `modeldebug explain {spec.code}`" if spec else ""
        raise BadInputError(f"no behaviour or monitor code {code!r} (the codes are {', '.join(prefixes)}... listed by "
                            f"`modeldebug behaviour codes`){other}")
    print_explain(spec.code)
    return 0


def _handle(args: argparse.Namespace) -> int:
    action = args.behaviour_action
    if action == "probe":
        return _probe(args, save=False)
    if action == "baseline":
        return _probe(args, save=True)
    if action == "compare":
        return _compare(args)
    if action == "reproduce":
        return _reproduce(args)
    if action == "test":
        return _test(args)
    if action == "codes":
        return _codes(args.code)
    args.behaviour_parser.print_help(sys.stderr)
    return 2
