"""Drawing primitives for the HTML report: escaped text, scales, line charts, colour maps, PNG.

Everything returns markup strings; every string that may come from a run goes through `esc`.
Nothing here reads a record: the panels in `plots.py`, `gradflow.py` and `activations.py` do.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np

from ..rules.context import fmt

__all__ = ["W", "H", "ML", "MR", "MT", "MB", "PALETTE", "Line", "Zone", "esc", "clip", "shorten", "num", "scale",
           "ticks", "tick_labels", "value_range", "line_chart", "legend", "figure", "viridis", "colormap", "png_data_uri"]

W, H = 900, 260              # line chart size (the SVG scales to the page width)
ML, MR, MT, MB = 70, 16, 22, 30  # chart margins
MAX_POINTS = 1500            # points drawn per line; longer series keep each bucket's min and max
PALETTE = ["#2e86c1", "#e67e22", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#b7950b", "#5d6d7e",
           "#d35400", "#1abc9c"]
# viridis at 9 evenly spaced points
_VIRIDIS = np.array([[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
                     [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]], dtype=float)


def esc(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return escape(str(value), quote=True)


def clip(text: str, limit: int) -> str:
    """Shorten a string to `limit` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shorten(name: str, limit: int) -> str:
    """A long qualified name cut in the middle (its end tells parameters apart), marking the cut."""
    if len(name) <= limit:
        return name
    head = limit // 3
    return name[:head] + "…" + name[len(name) - (limit - head - 1):]


def num(value: Any) -> str:
    """A number for display: ints as is, floats with 3 significant digits, None as a dash."""
    if value is None:
        return "—"
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, (bool, int)):
        return str(value)
    if isinstance(value, float):
        return fmt(value)
    return str(value)


@dataclass(frozen=True)
class Line:
    """One series of a line chart. `nonfinite` ticks its NaN/Inf steps in red under the plot."""

    name: str
    steps: np.ndarray
    values: np.ndarray
    color: str = PALETTE[0]
    dots: bool = False
    nonfinite: bool = False


@dataclass(frozen=True)
class Zone:
    """A shaded band of the y axis, in data units (None: open to that side), with a label."""

    lo: float | None
    hi: float | None
    color: str
    label: str


def scale(lo: float, hi: float, p0: float, p1: float, log: bool) -> Callable[[float], float]:
    """Map data values in [lo, hi] (log10 when `log`) to pixels [p0, p1]."""
    a, b = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
    span = (b - a) or 1.0
    return lambda v: p0 + ((math.log10(v) if log else v) - a) / span * (p1 - p0)


def ticks(lo: float, hi: float, log: bool) -> list[float]:
    """Axis tick values: powers of ten (at most ~6) for log axes spanning two decades or more, five
    evenly spaced (in log space, for log axes) otherwise."""
    if not log:
        return [float(v) for v in np.linspace(lo, hi, 5)]
    k0, k1 = math.ceil(math.log10(lo)), math.floor(math.log10(hi))
    if k1 - k0 < 2:
        return [float(v) for v in np.logspace(math.log10(lo), math.log10(hi), 5)]
    every = max(1, math.ceil((k1 - k0 + 1) / 6))
    return [10.0 ** k for k in range(k0, k1 + 1, every)]


def value_range(values: np.ndarray, log: bool) -> tuple[float, float]:
    """Plot range of (finite) values, widened when they are all equal."""
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        if log:  # not past the ends of float64 (a float64 run's 1e308 or 5e-324 plotted alone)
            return (lo / 2 or lo), (hi * 2 if math.isfinite(hi * 2) else hi)
        pad = abs(lo) / 2 or 1.0
        return (lo - pad if math.isfinite(lo - pad) else lo), (hi + pad if math.isfinite(hi + pad) else hi)
    return lo, hi


def tick_labels(values: Sequence[float], log: bool) -> list[str]:
    """Labels for axis ticks: powers of ten on log axes as 1e-05 (plain between 0.001 and 1000);
    otherwise the fewest significant digits (3 to 8) that tell every tick apart."""
    powers = log and all(v > 0 and float(math.log10(v)).is_integer() for v in values)
    if powers:
        return [f"{v:g}" if 1e-3 <= v < 1e4 else f"{v:.0e}" for v in values]
    labels: list[str] = []
    for digits in range(3, 9):
        labels = [f"{v:.{digits}g}" for v in values]
        if len(set(labels)) == len(labels):
            break
    return labels


def _decimate(steps: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most ~MAX_POINTS points: each bucket keeps its min and max, so spikes stay visible."""
    if len(steps) <= MAX_POINTS:
        return steps, values
    keep: set[int] = {0, len(steps) - 1}
    for chunk in np.array_split(np.arange(len(steps)), MAX_POINTS // 2):
        v = values[chunk]
        keep.update((int(chunk[np.argmin(v)]), int(chunk[np.argmax(v)])))
    idx = np.array(sorted(keep))
    return steps[idx], values[idx]


def line_chart(lines: Sequence[Line], *, log: bool, label: str, markers: Sequence[tuple[int, str]] = (),
               zones: Sequence[Zone] = (), height: int = H, include: Sequence[float] = ()) -> str:
    """An SVG chart of the lines' finite values over steps, with shaded zones and labelled
    vertical markers; the y axis also spans the values in `include` (to show a zone's edge). The
    caller checks that at least one line has a finite (positive, for log) value; the x axis spans
    every recorded step of every line."""
    x0, x1, y0, y1 = ML, W - MR, height - MB, MT
    fin = [(ln, np.isfinite(ln.values) & ((ln.values > 0) if log else True)) for ln in lines]
    all_vals = np.concatenate([ln.values[k] for ln, k in fin] + [np.asarray(include, dtype=float)])
    all_steps = np.concatenate([ln.steps for ln in lines]).astype(float)
    sx = scale(*value_range(all_steps, False), x0, x1, False)
    ylo, yhi = value_range(all_vals, log)
    sy = scale(ylo, yhi, y0, y1, log)
    out = [f'<svg viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" aria-label="{esc(label)}">']
    for z in zones:  # behind everything else, clipped to the plot
        lo = ylo if z.lo is None else min(max(z.lo, ylo), yhi)
        hi = yhi if z.hi is None else min(max(z.hi, ylo), yhi)
        if hi > lo:
            top, bottom = sy(hi), sy(lo)
            out.append(f'<g class="zone"><rect x="{x0}" y="{top:.1f}" width="{x1 - x0}" height="{bottom - top:.1f}" '
                       f'fill="{z.color}" fill-opacity="0.13"/><text x="{x1 - 4}" y="{top + 12:.1f}" '
                       f'text-anchor="end" fill="{z.color}">{esc(z.label)}</text></g>')
    yt = ticks(ylo, yhi, log)
    for t, text in zip(yt, tick_labels(yt, log)):
        y = sy(t)
        out.append(f'<line class="grid" x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(text)}</text>')
    xlo, xhi = int(all_steps.min()), int(all_steps.max())
    for t in sorted({xlo, xhi, *(int(v) for v in np.linspace(xlo, xhi, 6))}):
        out.append(f'<text x="{sx(t):.1f}" y="{y0 + 16}" text-anchor="middle">{t}</text>')
    out.append(f'<path class="axis" fill="none" d="M{x0},{y1} V{y0} H{x1}"/>')
    for ln, keep in fin:
        steps, values = _decimate(ln.steps[keep], ln.values[keep])
        pts = " ".join(f"{sx(s):.1f},{sy(v):.1f}" for s, v in zip(steps.tolist(), values.tolist()))
        out.append(f'<polyline class="series" data-series="{esc(ln.name)}" fill="none" stroke="{ln.color}" '
                   f'stroke-width="1.6" points="{pts}"/>')
        if ln.dots and len(steps) <= 200:
            out.extend(f'<circle cx="{sx(s):.1f}" cy="{sy(v):.1f}" r="2.5" fill="{ln.color}"/>'
                       for s, v in zip(steps.tolist(), values.tolist()))
        if ln.nonfinite:  # one red tick per pixel column
            for x in sorted({round(sx(s)) for s in ln.steps[~np.isfinite(ln.values)].tolist()}):
                out.append(f'<rect class="nonfinite" x="{x - 1}" y="{y0 - 6}" width="2" height="6" fill="#e74c3c"/>')
    for n, (step, text) in enumerate(markers):
        if xlo <= step <= xhi:
            x = sx(step)
            tx, anchor = (x - 3, "end") if x > x1 - 60 else (x + 3, "start")
            out.append(f'<g class="marker"><line x1="{x:.1f}" x2="{x:.1f}" y1="{y1}" y2="{y0}" '
                       f'stroke="#c0392b" stroke-dasharray="4 3"/><text x="{tx:.1f}" text-anchor="{anchor}" '
                       f'y="{y1 + 10 + 11 * (n % 4)}" fill="#c0392b">{esc(text)}</text></g>')
    out.append("</svg>")
    return "".join(out)


def legend(items: Sequence[tuple[str, str]]) -> str:
    """An HTML legend of (colour, name) pairs."""
    spans = "".join(f'<span><i style="background:{c}"></i>{esc(n)}</span>' for c, n in items)
    return f'<div class="legend">{spans}</div>'


def figure(fig_id: str, caption: str, body: str, note: str = "") -> str:
    """Wrap a plot (or a note saying why it is missing) in a captioned figure."""
    note_html = f'<p class="note">{esc(note)}</p>' if note else ""
    return f'<figure class="card" id="{fig_id}"><figcaption>{esc(caption)}</figcaption>{body}{note_html}</figure>'


def colormap(t: np.ndarray) -> np.ndarray:
    """Viridis RGB (uint8, shape t.shape + (3,)) for values t in [0, 1]."""
    x = np.clip(np.nan_to_num(np.asarray(t, dtype=float)), 0.0, 1.0) * (len(_VIRIDIS) - 1)
    pos = np.arange(len(_VIRIDIS))
    rgb = np.stack([np.interp(x, pos, _VIRIDIS[:, c]) for c in range(3)], axis=-1)
    return np.round(rgb).astype(np.uint8)


def viridis(t: float) -> str:
    """Viridis colour for t in [0, 1] as #rrggbb."""
    r, g, b = colormap(np.array([t]))[0].tolist()
    return f"#{r:02x}{g:02x}{b:02x}"


def png_data_uri(rgb: np.ndarray) -> str:
    """An RGB image (h, w, 3 uint8) as a data: URI holding a PNG (stdlib zlib, no image library)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in np.ascontiguousarray(rgb, dtype=np.uint8))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
