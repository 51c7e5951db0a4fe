"""`modeldebug history [-n N] [--json] [--journal P]`: the project journal, newest first."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add"]

_UNJUDGED = {"no_training_step": "no training step", "too_short": "too short to judge"}


def add(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "history", help="list the journal of runs (newest first, with short ids)",
        description="Every `modeldebug run` and watch() session of this project (./.modeldebug/journal.db), "
        "newest first: short id, name, script and arguments, steps, outcome and the top finding. Name a "
        "run with `modeldebug mark ID good`; compare two with `modeldebug diff A B`.")
    p.add_argument("-n", "--limit", type=int, default=20, metavar="N", help="show the newest N runs (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--journal", metavar="P", help="the journal file (default ./.modeldebug/journal.db)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..compare.render import render_history
    from ..compare.resolve import open_journal
    from ..errors import BadInputError
    from ..journal.verdict import reference, verdict

    if args.limit < 1:
        raise BadInputError(f"-n {args.limit}: give a number of runs of at least 1")
    journal = open_journal(args.journal, required=True)
    assert journal is not None
    with journal:
        entries = journal.entries(args.limit)
        ref = reference(journal)
        rows = []
        for e in entries:
            v = verdict(journal, e)
            top = v.get("top")
            rows.append({
                "id": e.uid, "created": e.created, "names": e.names, "reference": ref is not None and ref.id == e.id,
                "command": e.command, "steps": e.steps, "status": e.status, "exit_code": e.exit_code,
                "top": (f"{top['severity']} {top['code']} {top['title']}" if top else
                        ("(record missing)" if v.get("error") else "clean" if v.get("clean") else
                         _UNJUDGED.get(v.get("judged"), "-"))),
                "record": e.record, "commit": ((e.facts.get("git") or {}).get("commit") or "")[:10] or None,
            })
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
    else:
        sys.stdout.write(render_history(rows))
    return 0
