"""Activation panels: histograms over time per layer (the "colorful dimension" view: steps across,
values up, colour = log count) and per-layer dead / saturated fractions as bars.

Histograms are drawn as small PNG images (embedded as data: URIs) inside the SVG: one pixel column
per step is far smaller than one SVG rectangle per (step, bin).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..rules.context import fmt
from .plots import thresholds
from .svg import MR, MT, W, clip, colormap, esc, figure, png_data_uri, shorten

if TYPE_CHECKING:
    from ..record import Record

__all__ = ["histogram_plot", "fractions_plot"]

_MAX_LAYERS = 12   # histogram strips
_MAX_COLS = 200    # histogram columns (evenly chosen steps above this)
_ROWS = 56         # pixel rows per strip
_MAX_BARS = 30     # layers in the fraction bars
_LABEL_W = 190


class _Axis:
    """Value -> [0, 1] along a strip: linear, or symmetric-log when the range spans far more than a
    typical step's own range (an exploding layer would otherwise crush every earlier step)."""

    def __init__(self, lo: float, hi: float, spans: np.ndarray) -> None:
        pos = spans[spans > 0]
        small = float(np.percentile(pos, 10)) if len(pos) else 0.0
        self.symlog = bool(small > 0 and (hi - lo) > 20 * small)
        self.c = small / 4 if self.symlog else 1.0
        self.t0, self.t1 = self.f(lo), self.f(hi)

    def f(self, v: np.ndarray | float) -> np.ndarray:
        v = np.asarray(v, dtype=float)
        return np.sign(v) * np.log10(1 + np.abs(v) / self.c) if self.symlog else v

    def unit(self, v: np.ndarray | float) -> np.ndarray:
        return (self.f(v) - self.t0) / ((self.t1 - self.t0) or 1.0)


def _strip(hists: list[tuple[int, float, float, list[int]]]) -> tuple[np.ndarray, _Axis, float, float]:
    """The image of one layer: rows = value (top = high), columns = steps, colour = log count
    normalised per step."""
    if len(hists) > _MAX_COLS:
        hists = [hists[i] for i in np.linspace(0, len(hists) - 1, _MAX_COLS).round().astype(int)]
    los = np.array([h[1] for h in hists], dtype=float)
    his = np.array([h[2] for h in hists], dtype=float)
    lo, hi = float(np.nanmin(los)), float(np.nanmax(his))
    if not hi > lo:
        lo, hi = lo - 1.0, hi + 1.0
    axis = _Axis(lo, hi, his - los)
    img = np.zeros((_ROWS, len(hists)))
    rows = np.arange(_ROWS + 1, dtype=float)
    for j, (_, a, b, counts) in enumerate(hists):
        c = np.asarray(counts, dtype=float)
        if not (math.isfinite(a) and math.isfinite(b)) or c.sum() <= 0:
            continue
        if b > a:  # spread each bin's count over the pixel rows it covers
            y = axis.unit(np.linspace(a, b, len(c) + 1)) * _ROWS
            mass = np.diff(np.interp(rows, y, np.concatenate([[0.0], np.cumsum(c)])))
        else:  # a constant output (e.g. all zeros): everything in one row
            mass = np.zeros(_ROWS)
            mass[int(min(max(axis.unit(a) * _ROWS, 0), _ROWS - 1))] = c.sum()
        if mass.max() > 0:
            img[:, j] = np.log1p(mass) / np.log1p(mass.max())
    return colormap(img[::-1]), axis, lo, hi


def histogram_plot(record: Record) -> str:
    """Per layer, the activation histogram at every recorded step as one colour strip."""
    layers = []
    for e in record.entities("module"):
        if e.info.get("leaf") and (h := record.histograms(e.name)):
            layers.append((e.name, e.type or "", h))
    if not layers:
        level = record.meta.get("level")
        return figure("plot-histograms", "Activation histograms over time", "",
                      "Not recorded: activation histograms are captured at the comprehensive level "
                      "(`modeldebug run --level comprehensive`)" + (f"; this run used level {level}." if level else "."))
    shown = layers[:_MAX_LAYERS]
    strip_h, gap, plot_w = _ROWS, 14, W - _LABEL_W - MR - 70
    height = MT + len(shown) * (strip_h + gap) + 14
    out = [f'<svg viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" aria-label="activation histograms">']
    for i, (name, mtype, hists) in enumerate(shown):
        rgb, axis, lo, hi = _strip(hists)
        y = MT + i * (strip_h + gap)
        out.append(f'<g class="strip"><title>{esc(name)}</title>'
                   f'<text x="{_LABEL_W - 8}" y="{y + strip_h / 2 - 2:.0f}" text-anchor="end">{esc(shorten(name, 30))}</text>'
                   f'<text x="{_LABEL_W - 8}" y="{y + strip_h / 2 + 11:.0f}" text-anchor="end" class="muted">'
                   f'{esc(clip(mtype, 24))}{" (symlog)" if axis.symlog else ""}</text>'
                   f'<image x="{_LABEL_W}" y="{y}" width="{plot_w}" height="{strip_h}" preserveAspectRatio="none" '
                   f'style="image-rendering:pixelated" href="{png_data_uri(rgb)}"/>'
                   f'<text x="{_LABEL_W + plot_w + 4}" y="{y + 9}">{esc(fmt(hi))}</text>'
                   f'<text x="{_LABEL_W + plot_w + 4}" y="{y + strip_h}">{esc(fmt(lo))}</text>')
        if lo < 0 < hi:
            zy = y + strip_h * (1 - float(axis.unit(0.0)))
            out.append(f'<line x1="{_LABEL_W}" x2="{_LABEL_W + plot_w}" y1="{zy:.1f}" y2="{zy:.1f}" stroke="#fff" '
                       f'stroke-opacity="0.5" stroke-dasharray="3 3"/>'
                       f'<text x="{_LABEL_W + plot_w + 4}" y="{zy + 4:.1f}">0</text>')
        out.append("</g>")
    steps = [h[0] for h in shown[-1][2]]
    ty = MT + len(shown) * (strip_h + gap) + 2
    out.append(f'<text x="{_LABEL_W}" y="{ty}">step {steps[0]}</text>'
               f'<text x="{_LABEL_W + plot_w}" y="{ty}" text-anchor="end">step {steps[-1]}</text></svg>')
    note = ("Each column is one recorded step; colour is the log of the count in each value range, "
            "per step (bright: many values). Layers whose values spread over orders of magnitude use a symmetric "
            "log axis (symlog).")
    if len(layers) > len(shown):
        note += f" Showing {len(shown)} of {len(layers)} layers."
    return figure("plot-histograms", "Activation histograms over time, per layer", "".join(out), note)


def _bars(title: str, rows: list[tuple[str, str, float, float]], threshold: float) -> str:
    """Horizontal bars in [0, 1]: the last sampled value, a tick at the run's maximum, and the
    rule's threshold as a dashed line."""
    x0, x1, row = _LABEL_W, W - 120, 16
    sx = lambda v: x0 + v * (x1 - x0)  # noqa: E731
    height = MT + 8 + row * len(rows) + 22
    out = [f'<svg viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" aria-label="{esc(title)}">',
           f'<text x="{x0}" y="{MT - 6}" font-weight="600">{esc(title)}</text>']
    top = MT + 4
    for r, (name, mtype, last, peak) in enumerate(rows):
        y = top + r * row
        color = "#c0392b" if last >= threshold else "#2e86c1"
        out.append(f'<text x="{x0 - 6}" y="{y + 11}" text-anchor="end">{esc(shorten(name, 30))}'
                   f'<title>{esc(name)} ({esc(mtype)})</title></text>'
                   f'<rect class="bar" x="{x0}" y="{y + 2}" width="{max(sx(last) - x0, 0.5):.1f}" '
                   f'height="{row - 5}" fill="{color}"/><line x1="{sx(peak):.1f}" x2="{sx(peak):.1f}" '
                   f'y1="{y + 1}" y2="{y + row - 2}" stroke="#1d2330" stroke-width="2"/>'
                   f'<text x="{x1 + 6}" y="{y + 11}">{last:.0%} (max {peak:.0%})</text>')
    bottom = top + row * len(rows)
    out.append(f'<line x1="{sx(threshold):.1f}" x2="{sx(threshold):.1f}" y1="{top}" y2="{bottom}" stroke="#c0392b" '
               f'stroke-dasharray="4 3"/><text x="{sx(threshold):.1f}" y="{bottom + 14}" text-anchor="middle" '
               f'fill="#c0392b">threshold {threshold:.0%}</text>')
    for v in (0.0, 1.0):
        out.append(f'<text x="{sx(v):.1f}" y="{bottom + 14}" text-anchor="middle">{v:.0%}</text>')
    out.append(f'<path class="axis" fill="none" d="M{x0},{top} V{bottom} H{x1}"/></svg>')
    return "".join(out)


def fractions_plot(record: Record) -> str:
    """Dead-unit and saturated-output fractions per layer: last sampled value and maximum."""
    t = thresholds(record)
    types = {e.name: e.type or "" for e in record.entities("module")}
    parts: list[str] = []
    notes: list[str] = []
    drawn: set[str] = set()
    for stat, title, threshold in (("dead_frac", "Dead units: share of units that output zero for every sample",
                                    t.dead_fraction),
                                   ("saturated_frac", "Saturated outputs: share within 1% of the bound",
                                    t.saturated_fraction)):
        rows = []
        for name, s in record.stat(stat, kind="module").items():
            fin = s.values[np.isfinite(s.values)]
            if len(fin):
                rows.append((name, types.get(name, ""), float(fin[-1]), float(fin.max())))
        if not rows:
            continue
        if len(rows) > _MAX_BARS:  # keep the worst, in forward order
            worst = set(sorted(range(len(rows)), key=lambda i: -rows[i][3])[:_MAX_BARS])
            notes.append(f"{title.split(':')[0]}: showing the {_MAX_BARS} highest of {len(rows)} layers.")
            rows = [r for i, r in enumerate(rows) if i in worst]
        parts.append(_bars(title, rows, threshold))
        drawn.add(stat)
    if not parts:
        return figure("plot-fractions", "Dead and saturated units per layer", "",
                      "No activation statistics recorded (they are measured on sampled steps of training forward passes).")
    notes.append("Bar: the last sampled step; black tick: the run's maximum.")
    if "saturated_frac" not in drawn:
        notes.append("No saturating activations (Sigmoid, Tanh, Hardtanh, Hardsigmoid) were recorded.")
    return figure("plot-fractions", "Dead and saturated units per layer", "".join(parts), " ".join(notes))
