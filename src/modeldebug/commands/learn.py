"""`modeldebug learn RUN [RUN ...] -o INVARIANTS.json`: what held in healthy runs, as invariants."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add"]


def add(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "learn", help="infer invariants from healthy runs (for --against)",
        description="Learn what held in every healthy run: relations (every step changes every trainable "
        "parameter, no gradient carried between steps, the loss falls at least this much by step N, the "
        "hyperparameters) and per-module envelopes by phase of training. Give two runs or more (other seeds) "
        "for envelopes; one run supports the relations and wide envelopes only. Check a run with "
        "`modeldebug run --against FILE -- SCRIPT` or `modeldebug report RUN.db --against FILE`.")
    p.add_argument("runs", metavar="RUN", nargs="+", help="run records (RUN.db), or journal ids or names")
    p.add_argument("-o", "--output", metavar="INVARIANTS.json", required=True, help="where to write the invariants")
    p.add_argument("--journal", metavar="P", help="the journal file, for ids and names (default ./.modeldebug/journal.db)")
    p.set_defaults(handler=run)


def _check_output(path: str) -> None:
    from pathlib import Path

    from ..errors import BadInputError

    p = Path(path)
    if p.is_dir():
        raise BadInputError(f"-o {path!r} is a directory: give a file name, e.g. {p / 'good.json'}")
    if not p.parent.is_dir():
        raise BadInputError(f"-o {path!r}: the folder {str(p.parent)!r} does not exist: create it first")
    if p.exists() and p.suffix in (".db", ".py", ".pt", ".pth", ".onnx"):
        raise BadInputError(f"-o {path!r} would overwrite a {p.suffix} file: give a .json file name")


def _healthy(side) -> str | None:  # type: ignore[no-untyped-def]
    """Why `side` may not be a healthy run (None when it looks healthy)."""
    from ..catalogue import SEVERITY_ORDER
    from ..report import Report

    status, code = side.facts.get("status"), side.facts.get("exit_code")
    if status not in (None, "finished") or code not in (None, 0):
        return f"it ended {status} (exit {code})"
    serious = [f for f in Report.from_record(side.record).findings if SEVERITY_ORDER[f.severity] >= 1]
    return f"it has a {serious[0].severity} finding ({serious[0].code} {serious[0].title})" if serious else None


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..compare.learn import learn
    from ..compare.resolve import open_journal, side
    from ..errors import BadInputError

    _check_output(args.output)
    journal = open_journal(args.journal, required=False)
    sides = [side(ref, journal) for ref in args.runs]
    seen: dict[Path, str] = {}
    for ref, s in zip(args.runs, sides):
        if s.record is None:
            gone = s.entry.record if s.entry is not None else ref
            raise BadInputError(f"run {ref!r}: its record {gone!r} is gone: nothing to learn from")
        key = Path(str(s.record.path)).resolve()
        if key in seen:  # one run twice would count as two: envelopes that no second run supports
            same = "is given twice" if seen[key] == ref else f"and {seen[key]!r} are the same run"
            raise BadInputError(f"run {ref!r} {same} ({s.label}): learning from it twice would count it as two "
                                "runs; give each run once (other seeds for more runs)")
        seen[key] = ref
        why = _healthy(s)
        if why:
            print(f"modeldebug: warning: {s.label}: {why}: is it a healthy run?", file=sys.stderr)
    invariants = learn([s.record for s in sides], labels=[s.record.path for s in sides])
    invariants.write(args.output)
    counts = ", ".join(f"{n} {rule}" for rule, n in invariants.by_rule().items())
    print(f"modeldebug: {len(invariants.invariants)} invariants from {len(sides)} run(s) ({counts}) "
          f"written to {args.output}", file=sys.stderr)
    if len(sides) == 1:
        print("modeldebug: learned from one run: relations only and wide envelopes; learn from two runs or more "
              "(other seeds) for tighter ones", file=sys.stderr)
    else:
        scripts = sorted({Path(str(s.record.meta.get("script"))).name for s in sides if s.record.meta.get("script")})
        if "structure" not in invariants.by_rule():  # no module or parameter in common: not runs of one model
            why = "the runs share no module or parameter (runs of different models?)"
        elif len(scripts) > 1:  # modules named alike (a Sequential's 0, 1, 2) can hide two models
            why = f"the runs come from different scripts ({', '.join(scripts)})"
        else:
            why = ""
        if why:
            print(f"modeldebug: warning: {why}: invariants hold what every run shared; learn from seeds of one "
                  "training", file=sys.stderr)
    if journal is not None:
        journal.close()
    return 0
