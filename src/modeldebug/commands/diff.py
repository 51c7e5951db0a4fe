"""`modeldebug diff [A] [B] [--json P]`: what changed between two runs, then where they part."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add"]


def add(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "diff", help="what changed between two runs, and where they part",
        description="Compare run A with run B: first what changed (code, arguments, hyperparameters, seed, data, "
        "versions), the most likely cause first; then the first step and the first module where their "
        "statistics part beyond noise; then the findings that differ. A and B are record paths, journal "
        "short ids or names ('last', 'good'). With one run, it is compared with the reference (the run "
        "named 'good', else the newest clean run); with none, the last run is.")
    p.add_argument("a", metavar="A", nargs="?", help="the reference run (default: the journal's reference)")
    p.add_argument("b", metavar="B", nargs="?", help="the run to explain (default: the last run)")
    p.add_argument("--json", metavar="P", help="write the comparison as JSON to P ('-' for stdout)")
    p.add_argument("--journal", metavar="P", help="the journal file (default ./.modeldebug/journal.db)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..compare.diff import diff_runs
    from ..compare.render import render_diff
    from ..compare.resolve import open_journal, side
    from ..errors import BadInputError

    journal = open_journal(args.journal, required=args.b is None)
    refs = [r for r in (args.a, args.b) if r]
    if len(refs) < 2:
        from ..journal.verdict import reference

        assert journal is not None
        b_ref = refs[0] if refs else "last"
        b_side = side(b_ref, journal)
        ref = reference(journal, before=b_side.entry)
        if ref is None:
            good = journal.named("good")
            if good is not None and b_side.entry is not None and good.id == b_side.entry.id:
                raise BadInputError(f"{b_ref!r} is the reference run itself and no earlier run is clean: give the "
                                    f"run to compare it with (modeldebug diff {b_ref} last)")
            raise BadInputError("no reference run to compare with: no run is named 'good' and no earlier run is "
                                "clean; give two runs (modeldebug diff A B)")
        a_side = side(ref.uid, journal)
    else:
        a_side, b_side = side(refs[0], journal), side(refs[1], journal)
    result = diff_runs(a_side, b_side)
    if args.json == "-":
        sys.stdout.write(json.dumps(result.to_dict(), indent=1, default=str, allow_nan=False) + "\n")
    else:
        if args.json:  # first: a path that cannot be written stops the command before any output
            with open(args.json, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(result.to_dict(), indent=1, default=str, allow_nan=False) + "\n")
        sys.stdout.write(render_diff(result))
        if args.json:
            print(f"modeldebug: JSON written to {args.json}", file=sys.stderr)
    if journal is not None:
        journal.close()
    return 0
