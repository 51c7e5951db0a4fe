"""`modeldebug bisect --good REV --bad REV [--steps N] [--against F] -- SCRIPT ARGS`: the first bad commit."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add"]


def add(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from ._breakon import positive_steps

    p = sub.add_parser(
        "bisect", help="find the first git commit whose training goes bad",
        usage="modeldebug bisect --good REV --bad REV [--steps N] [--against INVARIANTS.json] [--timeout S] "
              "-- SCRIPT [ARGS...]",
        description="Binary-search the commits between a good and a bad one (first-parent history), running "
        "SCRIPT ARGS for --steps steps at each commit tried, in a temporary git worktree (your working tree and "
        "index are not touched). Each run is judged against the good commit's invariants (learned from its run, "
        "or --against): a broken invariant, or a high finding the good run did not have, makes a commit bad. A "
        "commit where the script does not run to the end is skipped. Exit 0: the first bad commit is named; 1: "
        "it could not be (the bad commit judges good, or skipped commits hide it); 2: bad input.")
    p.add_argument("--good", metavar="REV", required=True, help="a commit where training is healthy")
    p.add_argument("--bad", metavar="REV", required=True, help="a later commit where it is not")
    p.add_argument("--steps", metavar="N", type=positive_steps, default=50,
                   help="training steps at each commit (default 50; at least 10 to learn from the good run)")
    from ..compare.invariants import against_option

    p.add_argument("--against", metavar="INVARIANTS.json", type=against_option,
                   help="judge each commit against these invariants (default: learned from the good commit's run)")
    p.add_argument("--timeout", metavar="S", type=_seconds, default=900.0,
                   help="seconds one run may take; a slower commit is skipped (default 900)")
    p.add_argument("script", metavar="SCRIPT", help="the training script, as a path in the repository")
    p.add_argument("script_args", metavar="ARGS", nargs=argparse.REMAINDER, help="its arguments")
    p.set_defaults(handler=run)


def _seconds(value: str) -> float:
    """The argparse type of `--timeout`: a number of seconds above 0."""
    try:
        s = float(value)
    except ValueError:
        s = 0.0
    if not s > 0 or s == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds: give one above 0, e.g. 600")
    return s


def run(args: argparse.Namespace) -> int:
    from ..compare.bisect import Bisect
    from ..compare.learn import MIN_STEPS
    from ..errors import BadInputError

    script_args = list(args.script_args)
    if script_args[:1] == ["--"]:
        script_args = script_args[1:]
    if args.against is None and args.steps < MIN_STEPS:
        raise BadInputError(f"--steps {args.steps}: learning from the good run needs at least {MIN_STEPS} steps")
    against = os.path.abspath(args.against.path) if args.against is not None else None
    b = Bisect(args.good, args.bad, args.script, script_args, steps=args.steps, against=against,
               timeout=args.timeout)
    try:
        out = b.search()
    except KeyboardInterrupt:  # Ctrl-C: the run in progress is killed, the temporary worktree removed
        print("modeldebug: bisect interrupted; the temporary worktree is removed, your checkout untouched",
              file=sys.stderr)
        return 130
    bad = out.verdicts.get(b.bad)
    if out.first_bad is None:
        why = bad.reason if bad is not None else "it judges good"
        print(f"modeldebug: --bad {b.bad[:10]} judges good ({why}): nothing to bisect; try more --steps, or "
              "invariants learned from more runs (--against)", file=sys.stderr)
        return 1
    if out.skipped:
        print(f"modeldebug: skipped {len(out.skipped)} commit(s) where the script does not run to the end: "
              + ", ".join(s[:10] for s in out.skipped), file=sys.stderr)
    if out.candidates:
        print("the first bad commit is one of (skipped commits hide which):")
        for sha in out.candidates:
            print(f"  {sha} {b.subject(sha)}")
        return 1
    print(f"first bad commit: {out.first_bad} {b.subject(out.first_bad)}")
    d = out.decided_by
    if d is not None:
        print(f"  decided by: {d.reason}")
        if d.finding and d.finding.get("description"):
            print(f"  {d.finding['description']}")
    else:
        print("  decided by: it is the given --bad commit (its own run did not run to the end)")
    return 0
