"""`modeldebug replay BUNDLE`: re-execute the step a watched run saved when it first went wrong."""

from __future__ import annotations

import argparse
import contextlib
import sys

__all__ = ["add"]


def add(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "replay", help="re-execute the step a run saved at its first NaN, loss spike or crash (RUN.bundle.pt)",
        description="Rebuild the model, load the bundle's weights, optimizer state, batch and random state, and "
        "re-execute the step (forward, loss, backward, optimizer step); say whether the same values came back bit "
        "for bit; run it again under autograd's anomaly mode with every module's statistics; bisect the module "
        "list for the first module whose output leaves the healthy range. Exit 0: reproduced, 1: not reproduced, "
        "2: bad input. See docs/replay.md.")
    p.add_argument("bundle", metavar="BUNDLE", help="the RUN.bundle.pt a watched run saved next to RUN.db")
    p.add_argument("--model", metavar="MODULE:CALLABLE",
                   help="what builds the model, with no arguments (train.py:make_model, mypkg.models:Net); default: "
                        "the model's class, or a make_model/build_model/... factory of a script that trains only "
                        "under `if __name__ == '__main__':`")
    p.add_argument("--no-bisect", action="store_true", help="skip the module bisection")
    p.add_argument("--json", metavar="P", help="write the result as JSON to P ('-' for stdout)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the result to stderr")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ..jsonsafe import json_safe
    from ..replay import replay
    from ..replay.render import to_dict, to_text

    from ..cli import _check_outputs

    _check_outputs(args)  # a --json path that cannot be written fails before the replay, not after
    # `--json -` promises parseable JSON on stdout: the user's model code prints to stderr while it runs
    with contextlib.redirect_stdout(sys.stderr) if args.json == "-" else contextlib.nullcontext():
        result = replay(args.bundle, model=args.model, bisect=not args.no_bisect)
    if not args.quiet:
        print(to_text(result), file=sys.stderr)
    if args.json:
        text = json.dumps(json_safe(to_dict(result)), indent=2, default=str)
        if args.json == "-":
            sys.stdout.write(text + "\n")
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return result.exit_code
