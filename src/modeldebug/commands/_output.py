"""How every command hands a report to the user: terminal (stderr), JSON and HTML (`-` = stdout)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["emit"]


def emit(report: Any, args: argparse.Namespace, header: str = "") -> None:
    """Print `report` (after `header`) unless `--quiet`; write `--json` and `--html` where asked.

    Each file written is named on stderr, so a user (or a CI log) knows where to look. Parent folders
    are never created: a missing one is refused before the work starts (see `cli._check_outputs`).
    """
    if not getattr(args, "quiet", False):
        if header:
            print(header, file=sys.stderr)
        report.print()
    json_path = getattr(args, "json", None)
    if json_path == "-":
        sys.stdout.write(report.to_json() + "\n")
    elif json_path:
        report.to_json(json_path)
        _written("JSON", json_path)
    html_path = getattr(args, "html", None)
    if html_path == "-":  # as --json -: stdout, not a file named "-"
        sys.stdout.write(report.to_html())
    elif html_path:
        report.to_html(html_path)
        _written("HTML", html_path)


def _written(what: str, path: str) -> None:
    print(f"modeldebug: {what} report written to {path}", file=sys.stderr)
