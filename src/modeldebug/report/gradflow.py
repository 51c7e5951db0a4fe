"""Gradient flow panels: the total gradient norm, a parameters x steps heatmap of per-parameter
gradient norms (log colour), and per-parameter bars for a chosen step with vanishing and exploding
zones shaded. The zones use the run's own thresholds (``grad_growth``, ``vanishing_ratio``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..rules.context import fmt
from .plots import column, thresholds
from .svg import MR, MT, W, Line, Zone, esc, figure, line_chart, scale, shorten, tick_labels, ticks, viridis

if TYPE_CHECKING:
    from ..record import Record, Series
    from ..rules.base import Finding

__all__ = ["grad_norm_plot", "heatmap", "grad_bars"]

_MAX_COLS = 200   # heatmap columns (steps are binned above this)
_MAX_ROWS = 60    # heatmap rows and bars (parameters)
_MAX_CHOICES = 8  # steps offered for the bars
_LABEL_W = 190
_ZERO = "#000000"  # an exactly zero gradient (saturated or cut-off layer), apart from merely small ones


def _head(n: int) -> int:
    """How many first steps form the run's early baseline (as the exploding-gradient rule counts)."""
    return int(min(5, max(3, n // 10)))


def grad_norm_plot(record: Record, findings: Sequence[Finding]) -> str:
    """Total gradient norm over steps, log y, the exploding zone shaded above grad_growth x its
    median over the first steps."""
    col = column(record, "grad_norm")
    if col is None or not (np.isfinite(col.values) & (col.values > 0)).any():
        why = ("No gradient norms recorded." if col is None else
               f"No finite, non-zero total gradient norm in the {len(col)} recorded steps.")
        return figure("plot-grad-norm", "Total gradient norm", "", why)
    t = thresholds(record)
    k = _head(len(col))
    head = col.values[:k][np.isfinite(col.values[:k])]
    zones = []
    if len(head) and (base := float(np.median(head))) > 0:
        zones.append(Zone(base * t.grad_growth, None, "#c0392b",
                          f"exploding: above {fmt(t.grad_growth)}x the first {k} steps' median"))
    bad = int((~np.isfinite(col.values)).sum())
    markers = [(int(f.step), f.code) for f in findings if f.step is not None and f.category in ("gradient", "numerics")]
    svg = line_chart([Line("grad_norm", col.steps, col.values, nonfinite=True)], log=True, label="gradient norm",
                     markers=markers, zones=zones)
    return figure("plot-grad-norm", "Total gradient norm (log scale)", svg,
                  f"{bad} non-finite value(s) skipped (red ticks)." if bad else "")


def _cell_fill(value: float, nonfinite: bool, lo: float, hi: float) -> str:
    """Heatmap colour: red when non-finite, grey when unrecorded, black when exactly zero, else
    log-scaled viridis."""
    if nonfinite:
        return "#e74c3c"
    if not math.isfinite(value):
        return "#e3e6ea"
    if value <= 0:
        return _ZERO
    return viridis((math.log10(value) - lo) / ((hi - lo) or 1.0))


def _binned(series: Series, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the max finite value, and whether any value there was non-finite."""
    vals, bad = np.full(len(starts), np.nan), np.zeros(len(starts), dtype=bool)
    cols = np.searchsorted(starts, series.steps, side="right") - 1
    for c, v in zip(cols.tolist(), series.values.tolist()):
        if c < 0:
            continue
        if not math.isfinite(v):
            bad[c] = True
        elif not v <= vals[c]:  # NaN (empty) or smaller
            vals[c] = v
    return vals, bad


def heatmap(record: Record) -> str:
    """Per-parameter gradient norms: parameters (forward order) x (binned) steps, log colour."""
    stats = record.stat("grad_norm", kind="param")
    if not stats:
        return figure("plot-heatmap", "Gradient flow: per-parameter gradient norm", "",
                      "No per-parameter gradient norms recorded.")
    names = list(stats)[:_MAX_ROWS]
    all_steps = np.unique(np.concatenate([stats[n].steps for n in names]))
    starts = np.array([b[0] for b in np.array_split(all_steps, min(_MAX_COLS, len(all_steps)))])
    grid = [_binned(stats[n], starts) for n in names]
    pos = np.concatenate([v[np.isfinite(v) & (v > 0)] for v, _ in grid])
    lo, hi = (float(np.log10(pos.min())), float(np.log10(pos.max()))) if len(pos) else (0.0, 1.0)
    cell_h, plot_w = 14, W - _LABEL_W - MR
    cell_w = plot_w / len(starts)
    ly = MT + cell_h * len(names) + 22
    height = ly + 24
    out = [f'<svg viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" aria-label="heatmap" '
           f'data-cols="{len(starts)}" data-rows="{len(names)}">']
    for r, (name, (vals, bad)) in enumerate(zip(names, grid)):
        y = MT + r * cell_h
        out.append(f'<g><title>{esc(name)}</title><text x="{_LABEL_W - 6}" y="{y + 11}" '
                   f'text-anchor="end">{esc(shorten(name, 30))}</text>')
        fills = [_cell_fill(v, b, lo, hi) for v, b in zip(vals.tolist(), bad.tolist())]
        c = 0
        while c < len(fills):  # one <rect> per run of equal colour
            run = c
            while run + 1 < len(fills) and fills[run + 1] == fills[c]:
                run += 1
            out.append(f'<rect x="{_LABEL_W + c * cell_w:.2f}" y="{y}" width="{(run - c + 1) * cell_w + 0.05:.2f}" '
                       f'height="{cell_h - 1}" fill="{fills[c]}"/>')
            c = run + 1
        out.append("</g>")
    ty = MT + cell_h * len(names) + 12
    for i in sorted({0, len(starts) - 1, *(int(v) for v in np.linspace(0, len(starts) - 1, 6))}):
        out.append(f'<text x="{_LABEL_W + (i + 0.5) * cell_w:.1f}" y="{ty}" text-anchor="middle">{int(starts[i])}</text>')
    out.append(f'<text x="{_LABEL_W - 6}" y="{ty}" text-anchor="end">step</text>')
    out.append(f'<text x="{_LABEL_W - 6}" y="{ly + 9}" text-anchor="end">{esc(fmt(10 ** lo))}</text>')
    out.extend(f'<rect x="{_LABEL_W + k * 8}" y="{ly}" width="8" height="10" fill="{viridis(k / 19)}"/>' for k in range(20))
    out.append(f'<text x="{_LABEL_W + 166}" y="{ly + 9}">{esc(fmt(10 ** hi))}</text>'
               f'<rect x="{_LABEL_W + 240}" y="{ly}" width="10" height="10" fill="#e74c3c"/>'
               f'<text x="{_LABEL_W + 254}" y="{ly + 9}">non-finite</text>'
               f'<rect x="{_LABEL_W + 330}" y="{ly}" width="10" height="10" fill="#e3e6ea"/>'
               f'<text x="{_LABEL_W + 344}" y="{ly + 9}">no gradient</text>'
               f'<rect x="{_LABEL_W + 430}" y="{ly}" width="10" height="10" fill="{_ZERO}"/>'
               f'<text x="{_LABEL_W + 444}" y="{ly + 9}">zero</text></svg>')
    note = f"Showing {len(names)} of {len(stats)} parameters." if len(stats) > len(names) else ""
    if len(all_steps) > len(starts):
        note += f" {len(all_steps)} steps binned into {len(starts)} columns (max per bin)."
    return figure("plot-heatmap", "Gradient flow: per-parameter gradient norm over steps (log colour)",
                  "".join(out), note.strip())


def _choices(record: Record, steps: np.ndarray, findings: Sequence[Finding]) -> tuple[list[tuple[int, str]], int]:
    """Steps worth looking at, labelled (first, each finding's onset, peak total norm, last), and
    the default: the first gradient finding's onset, else the first finding's, else the last step."""
    reasons: dict[int, list[str]] = {}

    def add(step: int, why: str) -> int:
        snapped = int(steps[min(np.searchsorted(steps, step), len(steps) - 1)])  # a step with gradients
        reasons.setdefault(snapped, []).append(why)
        return snapped

    add(int(steps[0]), "first")
    onsets = [(f, add(int(f.step), f"{f.code} onset")) for f in findings[:_MAX_CHOICES - 3] if f.step is not None]
    total = column(record, "grad_norm")
    if total is not None and np.isfinite(total.values).any():
        add(int(total.steps[int(np.nanargmax(np.where(np.isfinite(total.values), total.values, np.nan)))]),
            "largest total norm")
    add(int(steps[-1]), "last")
    grad = [s for f, s in onsets if f.category == "gradient"]
    default = grad[0] if grad else (onsets[0][1] if onsets else int(steps[-1]))
    return [(s, ", ".join(reasons[s])) for s in sorted(reasons)], default


def _bars_svg(names: list[str], values: list[float | None], sx: Callable[[float], float], zones: list[Zone], x_lo: float,
              x_hi: float) -> str:
    x0, x1, row = _LABEL_W, W - 110, 14
    height = MT + row * len(names) + 26
    out = [f'<svg viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" aria-label="gradient bars">']
    for z in zones:
        a, b = sx(max(z.lo or x_lo, x_lo)), sx(min(z.hi or x_hi, x_hi))
        if b > a:
            out.append(f'<g class="zone"><rect x="{a:.1f}" y="{MT - 4}" width="{b - a:.1f}" '
                       f'height="{row * len(names) + 4}" '
                       f'fill="{z.color}" fill-opacity="0.13"/><text x="{(a + b) / 2:.1f}" y="{MT - 8}" '
                       f'text-anchor="middle" fill="{z.color}">{esc(z.label)}</text></g>')
    for r, (name, v) in enumerate(zip(names, values)):
        y = MT + r * row
        out.append(f'<text x="{x0 - 6}" y="{y + 10}" text-anchor="end">{esc(shorten(name, 30))}'
                   f"<title>{esc(name)}</title></text>")
        if v is None:
            out.append(f'<text x="{x0 + 4}" y="{y + 10}" class="muted">no gradient</text>')
        elif not math.isfinite(v):
            out.append(f'<rect class="bar" x="{x0}" y="{y + 1}" width="{x1 - x0}" height="{row - 3}" fill="#e74c3c"/>'
                       f'<text x="{x1 + 4}" y="{y + 10}">{esc(str(v))}</text>')
        elif v <= 0:
            out.append(f'<text x="{x0 + 4}" y="{y + 10}" class="muted">0</text>')
        else:
            w = max(sx(min(max(v, x_lo), x_hi)) - x0, 1.0)
            out.append(f'<rect class="bar" x="{x0}" y="{y + 1}" width="{w:.1f}" height="{row - 3}" fill="#2e86c1"/>'
                       f'<text x="{x0 + w + 4:.1f}" y="{y + 10}">{esc(fmt(v))}</text>')
    ty = MT + row * len(names) + 14
    xt = ticks(x_lo, x_hi, True)
    for t, text in zip(xt, tick_labels(xt, True)):
        out.append(f'<text x="{sx(t):.1f}" y="{ty}" text-anchor="middle">{esc(text)}</text>')
    out.append(f'<path class="axis" fill="none" d="M{x0},{MT - 4} V{ty - 11} H{x1}"/></svg>')
    return "".join(out)


def grad_bars(record: Record, findings: Sequence[Finding]) -> str:
    """Each parameter's gradient norm at a chosen step (a drop-down of notable steps), log x, with
    the vanishing and exploding zones relative to the median parameter's early gradient norm."""
    stats = record.stat("grad_norm", kind="param")
    if not stats:
        return figure("plot-grad-bars", "Gradient flow at one step", "", "No per-parameter gradient norms recorded.")
    names = list(stats)[:_MAX_ROWS]
    steps = np.unique(np.concatenate([stats[n].steps for n in names]))
    choices, default = _choices(record, steps, findings)
    at: dict[int, list[float | None]] = {}
    for s, _ in choices:
        row: list[float | None] = []
        for n in names:
            i = np.searchsorted(stats[n].steps, s)
            row.append(float(stats[n].values[i]) if i < len(stats[n].steps) and stats[n].steps[i] == s else None)
        at[s] = row
    t = thresholds(record)
    k = _head(len(steps))
    early = [float(np.median(h)) for n in names if len(h := stats[n].values[:k][np.isfinite(stats[n].values[:k])])]
    early = [e for e in early if e > 0]
    pos = [v for row in at.values() for v in row if v is not None and math.isfinite(v) and v > 0]
    zones: list[Zone] = []
    if early:
        base = float(np.median(early))
        zones = [Zone(None, base * t.vanishing_ratio, "#2e86c1", "vanishing"),
                 Zone(base * t.grad_growth, None, "#c0392b", "exploding")]
        pos += [base * t.vanishing_ratio, base * t.grad_growth]
    pos = [v for v in pos if math.isfinite(v) and v > 0] or [1e-3, 1.0]  # a zone edge can pass float64's ends
    x_lo, x_hi = (min(pos) / 3 or min(pos)), (max(pos) * 3 if math.isfinite(max(pos) * 3) else max(pos))
    sx = scale(x_lo, x_hi, _LABEL_W, W - 110, True)
    options, panels = [], []
    for s, why in choices:
        sel = " selected" if s == default else ""
        options.append(f'<option value="{s}"{sel}>step {s} ({esc(why)})</option>')
        hidden = "" if s == default else " hidden"
        panels.append(f'<div class="choice" data-choice="grad-bars" data-key="{s}"{hidden}>'
                      f"{_bars_svg(names, at[s], sx, zones, x_lo, x_hi)}</div>")
    picker = (f'<label class="pick">Step: <select data-choose="grad-bars" aria-label="step">{"".join(options)}'
              f"</select></label>")
    note = ""
    if early:
        note = (f"Zones relative to the median parameter's gradient norm over the first {k} steps ({fmt(base)}): "
                f"vanishing below {fmt(t.vanishing_ratio)}x, exploding above {fmt(t.grad_growth)}x. "
                "A guide for the eye: the rules judge gradients relative to the weights and to the run's history.")
    if len(stats) > len(names):
        note += f" Showing {len(names)} of {len(stats)} parameters."
    return figure("plot-grad-bars", "Gradient flow at one step: per-parameter gradient norm (log scale)",
                  picker + "".join(panels), note.strip())
