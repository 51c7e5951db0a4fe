"""The `modeldebug` command.

Exit codes of modeldebug's own commands: 0 ok, 1 findings at or above `--fail-on`, 2 bad input or
usage (one line on stderr, never a traceback). `modeldebug run` exits with the script's own code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import NoReturn

from ._version import __version__
from .config import LEVELS, DebuggingConfig
from .errors import DebuggingError
from .llm.cli import LLM_VALUE_OPTIONS, add_llm_options, check_llm_args, handle_llm

__all__ = ["main"]

_RUN_VALUE_OPTIONS = {"--json", "--html", "--db", "--level", "--select", "--ignore", "--rules", "--against",
                      "--break-on", "--max-steps",
                      *LLM_VALUE_OPTIONS}
_RUN_VALUE_OPTIONS.add("--bundle-max-mb")  # repro bundles (capture/bundle.py)
_RUN_FLAG_OPTIONS = {"--quiet", "-q", "--no-progress"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str, prog: str | None = None) -> NoReturn:
        self.exit(2, f"modeldebug: {message} (see `{prog or self.prog} --help`)\n")


def _load_rules(args: argparse.Namespace) -> None:
    """Users' own rules: installed plugins, then each `--rules FILE` (before any config is built)."""
    from .catalogue.plugins import load_entry_points, load_rules

    load_entry_points()
    for path in getattr(args, "rules", None) or []:
        load_rules(path)


def _config(args: argparse.Namespace) -> DebuggingConfig:
    _load_rules(args)
    split = lambda v: [s for s in (v or "").split(",") if s]  # noqa: E731
    extra = {} if getattr(args, "bundle_max_mb", None) is None else {"bundle_max_mb": args.bundle_max_mb}
    return DebuggingConfig(analysis_level=getattr(args, "level", None) or "basic",
                           select=split(getattr(args, "select", None)), ignore=split(getattr(args, "ignore", None)),
                           **extra)


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", metavar="P", help="write the JSON report to P ('-' for stdout)")
    p.add_argument("--html", metavar="P", help="write the HTML report to P ('-' for stdout)")
    p.add_argument("--select", metavar="CODES", help="only these rules: codes, prefixes or kinds, comma-separated")
    p.add_argument("--ignore", metavar="CODES", help="skip these rules: codes, prefixes or kinds, comma-separated")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the report to stderr")
    _add_rules_option(p)


def _add_rules_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", metavar="FILE", action="append",
                   help="load your own rules from this Python file (repeatable; see docs/plugins.md)")


def _megabytes(value: str) -> float:
    try:
        mb = float(value)
    except ValueError:
        mb = -1.0
    if not mb >= 0 or mb == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a size in MB (a number >= 0; 0 saves no bundle)")
    return mb


def _parser() -> _Parser:
    p = _Parser(prog="modeldebug", description="Finds out why a PyTorch model will not train, and says how to fix it.")
    p.add_argument("--version", action="version", version=f"modeldebug {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = sub.add_parser("demo", help="train a small built-in model that has a real bug and diagnose it")
    from .demos import DEMOS

    d.add_argument("--bug", choices=sorted(DEMOS), default="dead-relu", help="which built-in bug to show")
    d.add_argument("--list", action="store_true", help="list the built-in bugs")
    d.add_argument("--db", metavar="P", help="where to store the run record")
    d.add_argument("--level", choices=LEVELS, default="basic")
    _add_output_options(d)

    r = sub.add_parser("run", help="run a training script unmodified and diagnose it",
                       usage="modeldebug run [--json P] [--html P] [--db P] [--level LEVEL] [--no-progress] [--] "
                             "SCRIPT [ARGS...]")
    r.add_argument("--db", metavar="P", help="where to store the run record (default .modeldebug/runs/...)")
    r.add_argument("--level", choices=LEVELS, default="basic", help="how much to capture (default basic)")
    r.add_argument("--no-progress", action="store_true",
                   help="no live status line on stderr while the script trains (it is off anyway when "
                        "stderr is not a terminal)")
    _add_output_options(r)
    add_llm_options(r)
    from .compare.invariants import against_option

    r.add_argument("--against", metavar="INVARIANTS.json", type=against_option,
                   help="judge the run against invariants learned from healthy runs (`modeldebug learn`)")
    from .commands._breakon import break_on_option, positive_steps

    r.add_argument("--break-on", metavar="CONDITIONS", type=break_on_option, action="extend",
                   help="stop in your training loop's frame, in pdb, at the first step where one holds: "
                        "nonfinite, loss_spike, or a code judged per step (NUM001, GRD001, LOS001, LOP001), "
                        "comma-separated or repeated (docs/breakpoints.md)")
    r.add_argument("--max-steps", metavar="N", type=positive_steps,
                   help="end the script after N training steps, as sys.exit(0) would (a short run)")
    r.add_argument("--bundle-max-mb", metavar="MB", type=_megabytes,
                   help="largest repro bundle saved at the first NaN, loss spike or crash (default 200; over it, "
                        "saved without the model's state; 0: none); `modeldebug replay` re-executes it")
    r.add_argument("script", metavar="SCRIPT", help="the training script")
    r.add_argument("script_args", metavar="ARGS", nargs="*", default=[], help="its arguments")  # optional

    rep = sub.add_parser("report", help="re-analyse a stored run record")
    rep.add_argument("record", metavar="RUN.db")
    rep.add_argument("--fail-on", choices=["low", "medium", "high"], help="exit 1 if a finding is this severe")
    _add_output_options(rep)
    add_llm_options(rep)
    rep.add_argument("--against", metavar="INVARIANTS.json", type=against_option,
                     help="judge the run against invariants learned from healthy runs (`modeldebug learn`)")

    rl = sub.add_parser("rules", help="list the rule catalogue")
    rl.add_argument("--markdown", action="store_true", help="print the full catalogue as Markdown (docs/rules.md)")
    from .catalogue import FAMILIES

    rl.add_argument("--family", choices=list(FAMILIES), help="only this family's codes")
    _add_rules_option(rl)
    e = sub.add_parser("explain", help="print the documentation of any code (GRD001, ONX010, BEH020, MON001, ...)")
    e.add_argument("rule", metavar="CODE", help="a code (GRD001), kind or name, of any family")
    _add_rules_option(e)

    from .commands import register

    register(sub)
    return p


def _split_run(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split `run` arguments into modeldebug's options and SCRIPT + its arguments, untouched."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return argv[:i], argv[i + 1:]
        if a == "-m":  # `python -m pkg.train` habits: SCRIPT is "-m", which main() refuses in one line
            return argv[:i], argv[i:]
        if a in _RUN_VALUE_OPTIONS:
            i += 2
        elif a.split("=", 1)[0] in _RUN_VALUE_OPTIONS or a in _RUN_FLAG_OPTIONS or a in ("-h", "--help"):
            i += 1
        elif a.startswith("-"):
            return argv[:i + 1], []  # unknown option: let argparse say so
        else:
            return argv[:i], argv[i:]
    return argv, []


def _script_mistake(script: str, script_args: list[str]) -> str | None:
    """What is wrong with `run -m pkg.train` or `run python train.py` (the `python` command line copied whole)."""
    from pathlib import Path

    if script == "-m":
        module = script_args[0] if script_args else "MODULE"
        return (f"run takes a script's path, not -m {module}: give the file "
                f"(modeldebug run {module.replace('.', '/')}.py ...)")
    if Path(script).name.startswith("python") and not Path(script).is_file() and script_args \
            and script_args[0].endswith(".py"):
        return f"{script!r} is the interpreter, not the script: drop it (modeldebug run {' '.join(script_args)})"
    return None


def _emit(report, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    from .commands._output import emit

    emit(report, args)


def _check_outputs(args: argparse.Namespace) -> None:
    """Fail before hours of training, not after, when --json/--html/--db cannot be written there, or would
    replace an input (commands/_paths.py)."""
    from pathlib import Path

    from .commands._paths import check_paths
    from .errors import BadInputError
    from .record.lock import check_replaceable

    if getattr(args, "json", None) == "-" and getattr(args, "html", None) == "-":
        raise BadInputError("--json - and --html - would both write to stdout: give one of them a file name")
    check_paths(args)
    db = getattr(args, "db", None)
    if db and db != ":memory:":
        check_replaceable(Path(db))


def _rules_config(config: DebuggingConfig) -> DebuggingConfig | None:
    from .rules.diagnosis import rules_config

    return rules_config(config)


def _cmd_run(args: argparse.Namespace, script: str, script_args: list[str]) -> int:
    from .capture import run_script

    config = _config(args)
    from .catalogue import CATALOGUE

    # `--against` with a --select of invariants only (INV004): capture and rules run unselected, their
    # findings are dropped below; the invariant findings are picked by `config`
    only_invariants = getattr(args, "against", None) is not None and _rules_config(config) is None
    run_config = config.model_copy(update={"select": []}) if only_invariants else config
    # A bad --select fails before the script runs, not after; by the catalogue alone (plugins' specs
    # are in it by now): the rules themselves are imported after the script, not before its first line.
    CATALOGUE.select(run_config.select, run_config.ignore, family=("training", "plugin"))
    check_llm_args(args, build=False)  # so does a bad --llm (the model is built after the run: no DSPy import before it)
    _check_outputs(args)  # and an output path that cannot be written
    # `--json -` (or `--html -`) promises a clean report on stdout: the script's own prints go to stderr then.
    to_stdout = "-" in (args.json, args.html)
    cwd = os.getcwd()
    try:
        with contextlib.redirect_stdout(sys.stderr) if to_stdout else contextlib.nullcontext():
            result = run_script(script, script_args, config=run_config, db=args.db,
                                progress=not getattr(args, "no_progress", False),
                                break_on=getattr(args, "break_on", None), max_steps=getattr(args, "max_steps", None),
                                announce_bundle=False)  # said once, after the report
    finally:  # a script that chdir()s: --json, --html and the record's path are relative to the user's folder
        with contextlib.suppress(OSError):
            os.chdir(cwd)
    from .distributed import run_report
    from .replay.note import print_bundle_note

    report = run_report(result, run_config)  # per-rank runs: rank 0 merges every rank, the others print nothing
    if report is None:
        print_bundle_note(result.record)  # but a rank's own repro bundle
        return result.exit_code
    if only_invariants:
        report.findings = []
        if report.diagnosis is not None:
            report.diagnosis.config = config
    from .compare.check import apply_against

    report = apply_against(report, getattr(args, "against", None))
    _emit(report, args)
    # where the repro bundle is, if the run saved one (removed when no finding needs it: docs/replay.md)
    print_bundle_note(result.record, report, keep="loss_spike" in (getattr(args, "break_on", None) or ()))
    handle_llm(report, args)
    if result.signal is not None:
        args.died_by = result.signal
    return result.exit_code


def _cmd_report(args: argparse.Namespace) -> int:
    from .record import Record
    from .report import Report

    config = _config(args)
    check_llm_args(args)
    _check_outputs(args)  # before anything is written: `--html RUN.db` must not replace the record
    report = Report.from_record(Record.open(args.record), config, against=args.against is not None)
    from .compare.check import apply_against

    report = apply_against(report, args.against)
    _emit(report, args)
    handle_llm(report, args)
    return report.exit_code(args.fail_on)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demos import DEMOS, demo_path

    if args.list:
        for name, what in DEMOS.items():
            print(f"{name:12} {what}")
        return 0
    from rich.console import Console

    Console(stderr=True).print(f"[bold]modeldebug demo[/]: {DEMOS[args.bug]}\n"
                               f"  the script: {demo_path(args.bug)}\n"
                               f"  the same as: modeldebug run {demo_path(args.bug)}\n")
    _cmd_run(args, str(demo_path(args.bug)), [])
    return 0


def rules_markdown() -> str:
    """The whole catalogue as Markdown (docs/rules.md)."""
    from .report.catalogue import rules_markdown as markdown

    return markdown()


def _cmd_rules(*, markdown: bool = False, family: str | None = None) -> int:
    if markdown:
        sys.stdout.write(rules_markdown())
        return 0
    from .report.catalogue import print_rules

    print_rules(family=family)
    return 0


def _cmd_explain(code: str) -> int:
    from .report.catalogue import print_explain

    print_explain(code)
    return 0


def _die_by(signum: int) -> None:
    """End the process by `signum`, as `python SCRIPT` does after Ctrl-C or SIGTERM, so a calling shell sees it."""
    import os
    import signal

    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _late_positionals(parser: argparse.ArgumentParser, args: argparse.Namespace, unknown: list[str]) -> list[str]:
    """Give an optional positional written after the options its value: `onnx compare M --atol 1e-3 REF`.

    argparse matches a command's positionals in one go, so an optional one (`nargs="?"`) left empty
    before the first option comes back unrecognized. Returns what is still unrecognized.
    """
    leaf = parser
    while True:  # the subcommand that was chosen, e.g. `onnx compare`
        subs = [a for a in leaf._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, subs[0].dest, None) if subs else None
        if chosen not in (subs[0].choices if subs else {}):
            break
        leaf = subs[0].choices[chosen]
    empty = [a for a in leaf._actions if not a.option_strings and a.nargs == "?"
             and getattr(args, a.dest, None) == a.default]
    left = []
    for word in unknown:
        if empty and not word.startswith("-"):
            setattr(args, empty.pop(0).dest, word)
        else:
            left.append(word)
    return left


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `modeldebug` command; returns the exit code.

    Called as the program (`argv` None), a run ended by Ctrl-C or SIGTERM ends modeldebug by the
    same signal once the report is out; called with `argv` (tests, other tools) it returns 130/143.
    The root logger is left alone: the script's own `logging.basicConfig` must work.
    """
    as_program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    script: str | None = None
    script_args: list[str] = []
    if argv and argv[0] == "run":
        opts, rest = _split_run(argv[1:])
        if rest:
            script, script_args = rest[0], rest[1:]
            mistake = _script_mistake(script, script_args)
            if mistake:
                print(f"modeldebug: {mistake}", file=sys.stderr)
                return 2
            argv = ["run", *opts, script]
    args, unknown = parser.parse_known_args(argv)
    unknown = _late_positionals(parser, args, unknown)
    if unknown:  # name the subcommand's help, not the top level's: `modeldebug onnx profile --help`
        words = [getattr(args, k, None) for k in ("command", "onnx_command", "behaviour_action")]
        parser.error(f"unrecognized arguments: {' '.join(unknown)}",
                     prog=" ".join(["modeldebug", *[w for w in words if isinstance(w, str)]]))
    try:
        if args.command == "run":
            code = _cmd_run(args, script or args.script, script_args)
            if as_program and getattr(args, "died_by", None):
                _die_by(args.died_by)
            return code
        if args.command == "report":
            return _cmd_report(args)
        if args.command == "demo":
            return _cmd_demo(args)
        if args.command == "rules":
            _load_rules(args)
            return _cmd_rules(markdown=args.markdown, family=args.family)
        if args.command == "explain":
            _load_rules(args)
            return _cmd_explain(args.rule)
        handler = getattr(args, "handler", None)
        if handler is not None:
            from .commands._paths import check_paths

            check_paths(args)  # no output may replace an input
            return int(handler(args))
        parser.print_help()
        return 2
    except DebuggingError as exc:
        print(f"modeldebug: {exc.message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `modeldebug rules | head`: the reader left; say nothing
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        print(f"modeldebug: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
