"""Terminal rendering with rich: a verdict line, then each finding with its evidence and fix."""

from __future__ import annotations

from io import StringIO
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.text import Text

from ..rules.context import fmt

if TYPE_CHECKING:
    from .model import Report

__all__ = ["print_report", "render_text", "stderr_console"]

_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan"}


def _headline(report: Report) -> Text:
    r = report.run
    bits = [f"{r['steps']} steps"] if r.get("steps") is not None else []
    if r.get("calls") is not None:
        bits.append(f"{r['calls']} model calls")
    if r.get("requests") is not None:
        bits.append(f"{r['requests']} requests")
    if r.get("duration_s") is not None:
        bits.append(f"{r['duration_s']:.1f}s")
    if r.get("first_loss") is not None:
        bits.append(f"loss {fmt(r['first_loss'])} -> {fmt(r.get('final_loss'))}")
    if r.get("exit_code") not in (None, 0):
        bits.append(f"exit code {r['exit_code']}")
    name = r.get("script") or "run"
    t = Text()
    t.append("modeldebug ", style="bold")
    t.append(f"{name}: " + ", ".join(bits))
    return t


def _verdict(report: Report) -> Text:
    if not report.findings:
        return Text("No problems found.", style="bold green")
    n = len(report.findings)
    worst = report.worst() or "low"
    return Text(f"{n} problem{'s' if n > 1 else ''} found (worst: {worst}). Root causes first.",
                style=_STYLE[worst])


def _finding(i: int, f) -> Panel:  # type: ignore[no-untyped-def]
    parts: list = [Text(f.title, style="bold")]
    where = []
    if f.location:
        where.append(f"at {f.location}")
    if f.step is not None:
        where.append(f"since step {f.step}")
    where.append(f"confidence {f.confidence:.0%}")
    parts.append(Text(", ".join(where), style="dim"))
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
    title = Text.assemble((f"{i}. ", "bold"), (f"[{f.severity.upper()}] ", _STYLE[f.severity]),
                          (f"{f.code} {f.kind}", "bold"))
    return Panel(Group(*parts), title=title, title_align="left", border_style=_STYLE[f.severity])


def stderr_console() -> Console:
    """A rich console on stderr; logs and CI (not a terminal) get 120 columns, not 80, so fixes stay whole."""
    import sys

    return Console(stderr=True, width=None if sys.stderr.isatty() else 120)


def print_report(report: Report, console: Console | None = None) -> None:
    console = console or stderr_console()
    console.print(_headline(report))
    console.print(_verdict(report))
    for i, f in enumerate(report.findings, 1):
        console.print(_finding(i, f))
    rec = report.run.get("record")
    if rec:
        console.print(Text(f"Run record: {rec}  (modeldebug report {rec})", style="dim"))


def render_text(report: Report, *, width: int = 100) -> str:
    buf = StringIO()
    print_report(report, Console(file=buf, width=width, color_system=None, force_terminal=False))
    return buf.getvalue()
