"""The terminal text of `modeldebug diff` and `modeldebug history` (plain text: it goes to pipes and CI logs)."""

from __future__ import annotations

import os
import time
from typing import Any

from .diff import RunDiff

__all__ = ["render_diff", "render_history"]


def _side(label: str, facts: dict[str, Any]) -> str:
    argv = " ".join(facts.get("argv") or []) or facts.get("script") or "?"
    outcome = facts.get("status") or "?"
    if facts.get("exit_code") not in (None, 0):
        outcome += f", exit {facts['exit_code']}"
    return f"{label}: {argv}  ({facts.get('steps', '?')} steps, {outcome})"


def _nowhere(d: RunDiff) -> str:
    """What "no parting" means: nothing compared (a record missing, a run with no step), or the steps compared."""
    if d.a.record is None or d.b.record is None:
        return "  unknown (a record is missing)"
    if not d.compared_steps:
        idle = [s.label for s in (d.a, d.b) if not s.record.n_steps]
        return f"  nothing to compare: {' and '.join(idle)} took no training step"
    if d.a.record.n_steps != d.b.record.n_steps:
        return f"  nowhere beyond noise over the {d.compared_steps} steps both runs took"
    return "  nowhere beyond noise"


def render_diff(d: RunDiff, *, parts: int = 8) -> str:
    """What changed (most likely cause first), where the runs part, and the findings that differ."""
    lines = [f"A  {_side(d.a.label, d.a.facts)}", f"B  {_side(d.b.label, d.b.facts)}", ""]
    lines.append("What changed (most likely cause first)")
    if not d.changes:
        lines.append("  nothing the journal or the records know of: same code, arguments, hyperparameters, seed, "
                     "data form and versions")
    for i, ch in enumerate(d.changes, 1):
        lines.append(f"  {i}. {ch.text}")
        lines += [f"       {ln}" for ln in ch.detail[:12]]
        if ch.explains:
            lines.append(f"       explains: {'; '.join(ch.explains[:3])}")
    lines += ["", "Where they part"]
    first, module = d.first_step, d.first_module
    if first is None:
        lines.append(_nowhere(d))
    else:
        lines.append(f"  first step:   {first.step}: {first.text}")
        if module is not None:
            lines.append(f"  first module: '{module.location}' at step {module.step}: {module.text}")
        rest = [p for p in d.partings if p is not first and p is not module]
        for p in rest[:parts]:
            lines.append(f"  - step {p.step}: {p.text}")
        if len(rest) > parts:
            lines.append(f"  ... and {len(rest) - parts} more series")
    lines += ["", "Findings that differ"]
    if not d.only_a and not d.only_b:
        lines.append("  none" if d.a.record is not None and d.b.record is not None else "  unknown")
    for tag, found in (("only in B", d.only_b), ("only in A", d.only_a)):
        for f in found[:6]:
            lines.append(f"  {tag}: {f.severity} {f.code} {f.title}")
    for note in d.notes:
        lines.append(f"\nnote: {note}")
    return "\n".join(lines) + "\n"


def _short_command(command: str, width: int = 48) -> str:
    """The script as a path relative to here (or its name), then its arguments; cut in the middle
    of the script's path, never in the arguments that tell runs apart."""
    script, _, args = command.partition(" ")
    try:
        rel = os.path.relpath(script)
        script = rel if not rel.startswith("..") else script
    except ValueError:  # another drive
        pass
    room = width - len(args) - 1
    if len(script) > max(room, 12):
        keep = max(room, 12) - 3
        script = "..." + script[-keep:]
    line = f"{script} {args}".strip()
    return line if len(line) <= width else line[: width - 3] + "..."


def render_history(rows: list[dict[str, Any]]) -> str:
    """One line per run, newest first: id, when, name, command, steps, outcome, top finding."""
    if not rows:
        return "no runs in the journal yet\n"
    out = []
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"]))
        names = ",".join(r["names"]) + (" *" if r.get("reference") else "")
        top = r.get("top") or "-"
        outcome = f"{r.get('status') or '?'} {r.get('exit_code') if r.get('exit_code') is not None else '?'}"
        command = _short_command(r["command"])
        out.append(f"{r['id']}  {when}  {names:10.10} {command:48}  {r.get('steps') or 0:>6}  {outcome:12}  {top}")
    header = f"{'id':8}  {'when':16}  {'name':10} {'run':48}  {'steps':>6}  {'outcome':12}  top finding"
    legend = "(* the default reference: the run named 'good', else the newest clean run)" \
        if any(r.get("reference") for r in rows) else \
        "(the default reference, the run named 'good' else the newest clean run, is not among these)"
    return "\n".join([header, *out, legend]) + "\n"
