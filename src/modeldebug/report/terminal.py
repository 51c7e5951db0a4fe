"""Terminal rendering with rich: a verdict line, then each finding with its evidence and fix."""

from __future__ import annotations

import shlex
import textwrap
from io import StringIO
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.text import Text

from ..rules.context import fmt
from .verdict import NO_STEP_HINT, verdict

if TYPE_CHECKING:
    from .model import Report

__all__ = ["print_report", "render_text", "stderr_console"]

_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan"}
_INDENT = 3        # prose under a finding's title, in logs and CI
_CODE_INDENT = 7   # code under its recommendation


def _headline(report: Report) -> Text:
    r = report.run
    steps = r.get("steps")
    bits = [f"{steps} step{'' if steps == 1 else 's'}"] if steps is not None else []
    if (r.get("world_size") or 1) > 1:  # a distributed job's one report: over how many ranks, and which came
        missing = r.get("ranks_missing") or []
        bits.append(f"{r['world_size']} ranks" + (f" (rank {', '.join(map(str, missing))} missing)" if missing else ""))
    if r.get("calls") is not None:
        bits.append(f"{r['calls']} model calls")
    if r.get("requests") is not None:
        bits.append(f"{r['requests']} requests")
    if r.get("duration_s") is not None:
        bits.append(f"{r['duration_s']:.1f}s")
    if r.get("first_loss") is not None:
        bits.append(f"loss {fmt(r['first_loss'])} -> {final_loss_text(r)}")
    if r.get("exit_code") not in (None, 0):
        bits.append(f"exit code {r['exit_code']}")
    name = r.get("script") or "run"
    t = Text()
    t.append("modeldebug ", style="bold")
    t.append(f"{name}: " + ", ".join(bits) if bits else name)  # `onnx check M.onnx` has no step counts
    return t


def final_loss_text(run: dict) -> str:
    """The loss the run ended with: `0.199`, or `nan (last finite 0.199 at step 29)` when it ended NaN/Inf."""
    if run.get("final_loss_finite") is False:
        return (f"{run.get('final_loss_value', 'nan')} (last finite {fmt(run.get('final_loss'))} "
                f"at step {run.get('last_finite_step')})")
    return fmt(run.get("final_loss"))


def _verdict(report: Report) -> list[Text]:
    v = verdict(report)
    note = [Text(report.run["status_note"], style="bold yellow")] if report.run.get("status_note") else []
    return note + _verdict_lines(report, v)


def _verdict_lines(report: Report, v) -> list[Text]:  # type: ignore[no-untyped-def]
    if v.code == "problems_found":
        return [Text(v.text, style=_STYLE[report.worst() or "low"])]
    if v.code == "no_training_step":
        return [Text(v.text, style="bold yellow"), Text(f"{v.detail} {NO_STEP_HINT}")]
    if v.code == "too_short":
        return [Text(v.text, style="bold yellow"), Text(v.detail or "")]
    return [Text(v.text, style="bold green")]


def _where(f) -> str:  # type: ignore[no-untyped-def]
    where = []
    if f.location:
        where.append(f"at {f.location}")
    if f.step is not None:
        where.append(f"since step {f.step}")
    where.append(f"confidence {f.confidence:.0%}")
    return ", ".join(where)


def _title(i: int, f) -> Text:  # type: ignore[no-untyped-def]
    return Text.assemble((f"{i}. ", "bold"), (f"[{f.severity.upper()}] ", _STYLE[f.severity]),
                         (f"{f.code} {f.kind}", "bold"))


def _finding(i: int, f) -> Panel:  # type: ignore[no-untyped-def]
    parts: list = [Text(f.title, style="bold")]
    parts.append(Text(_where(f), style="dim"))
    parts.append(Text(f.description))
    symptoms = f.evidence.get("symptoms") or []
    if symptoms:
        parts.append(Text("Explains: " + "; ".join(s["title"] for s in symptoms), style="italic"))
    for rec in f.recommendations:
        parts.append(Text(f"{rec.type.replace('_', ' ').capitalize()}: {rec.description}", style="bold"))
        if rec.implementation:
            # Wrap, never crop: a fix missing its closing parenthesis is worse than a wrapped one.
            parts.append(Syntax(rec.implementation, "python", theme="ansi_dark", background_color="default",
                                word_wrap=True))
    return Panel(Group(*parts), title=_title(i, f), title_align="left", border_style=_STYLE[f.severity])


def _print_plain(console: Console, i: int, f) -> None:  # type: ignore[no-untyped-def]
    """A finding for logs and CI (not a terminal): no box; prose wraps, code lines never do.

    A command copied from a CI log must come out whole, so each line of a fix is printed as it is,
    indented, however wide the log is.
    """
    head = _title(i, f)
    head.append(f": {f.title}", style="bold")
    console.print(head)
    _prose(console, _where(f), "dim")
    _prose(console, f.description)
    symptoms = f.evidence.get("symptoms") or []
    if symptoms:
        _prose(console, "Explains: " + "; ".join(s["title"] for s in symptoms), "italic")
    for rec in f.recommendations:
        _prose(console, f"{rec.type.replace('_', ' ').capitalize()}: {rec.description}", "bold")
        for line in (rec.implementation or "").splitlines():
            console.print(" " * _CODE_INDENT + line, soft_wrap=True, highlight=False, markup=False)


def _prose(console: Console, text: str, style: str = "", indent: int = _INDENT) -> None:
    """Prose for logs: wrapped at the console's width between words, never inside one, no padding."""
    pad = " " * indent
    lines = textwrap.wrap(text, width=max(console.width, 40), initial_indent=pad, subsequent_indent=pad,
                          break_long_words=False, break_on_hyphens=False)
    for line in lines or [""]:
        console.print(Text(line, style=style), soft_wrap=True)


def stderr_console() -> Console:
    """A rich console on stderr; logs and CI (not a terminal) get 120 columns, not 80, so fixes stay whole."""
    import sys

    return Console(stderr=True, width=None if sys.stderr.isatty() else 120)


def print_report(report: Report, console: Console | None = None) -> None:
    """The headline, the verdict and every finding; boxed in a terminal, plain in logs and CI."""
    console = console or stderr_console()
    console.print(_headline(report))
    for line in _verdict(report):
        if console.is_terminal:
            console.print(line)
        else:
            _prose(console, line.plain, str(line.style), indent=0)
    against = report.run.get("against")
    if isinstance(against, dict):  # say it was applied: "No problems found." alone does not
        broken = against.get("violated") or 0
        console.print(Text(f"Judged against {against.get('file')}: {broken or 'none'} of its "
                           f"{against.get('invariants')} invariants broken", style="dim"), soft_wrap=True)
        if against.get("note"):
            console.print(Text(f"Note: {against['note']}", style="yellow"), soft_wrap=True)
    for i, f in enumerate(report.findings, 1):
        if console.is_terminal:
            console.print(_finding(i, f))
        else:
            _print_plain(console, i, f)
    rec = report.run.get("record")
    if rec:
        # One line, never wrapped: the command in it is meant to be copied.
        console.print(Text(f"Run record: {rec}  (modeldebug report {shlex.quote(str(rec))})", style="dim"),
                      soft_wrap=True)


def render_text(report: Report, *, width: int = 100) -> str:
    buf = StringIO()
    print_report(report, Console(file=buf, width=width, color_system=None, force_terminal=False))
    return buf.getvalue()
