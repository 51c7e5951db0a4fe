"""A self-contained HTML report: summary, ranked findings and inline-SVG plots.

The file opens offline: no scripts, fonts or CDNs; every plot is SVG drawn here from the run
record. Every string that comes from the run is passed through ``html.escape``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

import numpy as np

from ..rules.context import fmt

if TYPE_CHECKING:
    from ..record import Record, Series
    from ..rules.base import Finding
    from .model import Report

__all__ = ["render_html"]

_SEV_COLOR = {"high": "#c0392b", "medium": "#d68910", "low": "#2e86c1"}
_MAX_ITEMS = 8          # items shown of a long list or dict in evidence
_MAX_TEXT = 300         # characters shown of a long string in evidence
_MAX_COLS = 200         # heatmap columns (steps are binned above this)
_MAX_ROWS = 60          # heatmap rows (parameters)
_W, _H = 720, 260       # line chart size
_ML, _MR, _MT, _MB = 70, 16, 22, 30  # chart margins
_VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]
_TIMES = [("t_data", "data", "#8e44ad"), ("t_forward", "forward", "#2e86c1"),
          ("t_backward", "backward", "#d68910"), ("t_optimizer", "optimizer", "#27ae60")]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:980px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px}h3{font-size:15px;margin:0}
.verdict{font-size:17px;font-weight:600;margin:8px 0 14px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:14px 16px;margin:0 0 14px}
.finding{border-left:5px solid var(--sev)}
.badge{display:inline-block;color:#fff;border-radius:4px;padding:1px 7px;font-size:12px;font-weight:700;text-transform:uppercase}
.meta{color:#5b6472;font-size:13px;margin:4px 0 8px}
table{border-collapse:collapse;font-size:13px}td,th{border-top:1px solid #eceff3;padding:3px 8px;text-align:left;vertical-align:top}
th{color:#5b6472;font-weight:600;white-space:nowrap}code,pre{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#1f2430;color:#e6e6e6;padding:10px 12px;border-radius:6px;overflow-x:auto}
.note{color:#7a8391;font-style:italic;font-size:13px}figure{margin:0}figcaption{font-weight:600;margin-bottom:6px}
svg{max-width:100%;height:auto;font-size:11px;font-family:inherit}.axis{stroke:#9aa3af}.grid{stroke:#eceff3}
"""


# -- small formatting helpers ------------------------------------------------------------------
def _e(value: Any) -> str:
    """Escape any value for HTML text or an attribute."""
    return escape(str(value), quote=True)


def _num(value: Any) -> str:
    """A number for display: ints as is, floats with 3 significant digits, None as a dash."""
    if value is None:
        return "—"
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return fmt(value)
    return str(value)


def _clip(text: str, limit: int) -> str:
    """Shorten a string to `limit` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compact(value: Any, depth: int = 0) -> str:
    """Escaped, compact HTML for an evidence value: nested containers inline, long ones cut."""
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, dict):
        if depth >= 3:
            return f"{{… {len(value)} keys}}"
        items = list(value.items())
        parts = [f"<b>{_e(k)}</b>: {_compact(v, depth + 1)}" for k, v in items[:_MAX_ITEMS]]
        if len(items) > _MAX_ITEMS:
            parts.append(f"… +{len(items) - _MAX_ITEMS} more")
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, (list, tuple)):
        if depth >= 3:
            return f"[… {len(value)} items]"
        parts = [_compact(v, depth + 1) for v in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            parts.append(f"… +{len(value) - _MAX_ITEMS} more")
        return "[" + ", ".join(parts) + "]"
    if value is None or isinstance(value, (bool, int, float)):
        return _e(_num(value))
    return _e(_clip(str(value), _MAX_TEXT))


def _badge(severity: str) -> str:
    """A coloured severity badge."""
    color = _SEV_COLOR.get(severity, "#7a8391")
    return f'<span class="badge" style="background:{color}">{_e(severity)}</span>'


def _rows(pairs: Iterable[tuple[str, str]]) -> str:
    """A two-column table from (escaped header, escaped value) pairs."""
    return "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in pairs) + "</table>"


# -- summary and findings --------------------------------------------------------------------------
def _summary(report: Report) -> str:
    """Verdict plus the run's metadata."""
    r = report.run
    if report.findings:
        n, worst = len(report.findings), report.worst() or "low"
        verdict = (f'<div class="verdict" style="color:{_SEV_COLOR.get(worst, "#333")}">'
                   f"{n} problem{'s' if n > 1 else ''} found (worst: {_e(worst)}). Root causes first.</div>")
    else:
        verdict = '<div class="verdict" style="color:#1e8449">No problems found.</div>'
    dur = r.get("duration_s")
    fields = [("script", r.get("script")), ("steps", r.get("steps")),
              ("duration", None if dur is None else f"{_num(dur)} s"), ("level", r.get("level")),
              ("device", r.get("device")), ("torch", r.get("torch")),
              ("modeldebug overhead_s", r.get("overhead_s")), ("status", r.get("status")),
              ("exit code", r.get("exit_code")), ("loss", None if r.get("first_loss") is None else
                                                  f"{_num(r.get('first_loss'))} → {_num(r.get('final_loss'))}"),
              ("run record", r.get("record")), ("modeldebug", r.get("modeldebug"))]
    table = _rows((_e(k), _e(_num(v))) for k, v in fields if v is not None)
    return f'<section id="summary" class="card"><h2 style="margin-top:0">Summary</h2>{verdict}{table}</section>'


def _symptoms(symptoms: Any) -> str:
    """The findings this one explains (evidence["symptoms"])."""
    if not symptoms:
        return ""
    items = []
    for s in symptoms if isinstance(symptoms, list) else [symptoms]:
        if isinstance(s, dict):
            title = str(s.get("title", ""))
            step = "" if s.get("step") is None or f"step {s['step']}" in title else f" (step {_e(s['step'])})"
            items.append(f"<li>{_badge(str(s.get('severity', '')))} <code>{_e(s.get('code', ''))}</code> "
                         f"{_e(title)}{step}</li>")
        else:
            items.append(f"<li>{_compact(s)}</li>")
    return f'<div class="symptoms"><b>Explains:</b><ul>{"".join(items)}</ul></div>'


def _finding(i: int, f: Finding) -> str:
    """One finding as a card: header, where/when, description, evidence, recommendations."""
    where = [f"kind <code>{_e(f.kind)}</code>", f"category {_e(f.category)}"]
    if f.location:
        where.append(f"at <code>{_e(f.location)}</code>")
    if f.step is not None:
        where.append(f"since step {_e(f.step)}")
    try:
        where.append(f"confidence {float(f.confidence):.0%}")
    except (TypeError, ValueError):
        where.append(f"confidence {_e(f.confidence)}")
    evidence = {k: v for k, v in (f.evidence or {}).items() if k != "symptoms"}
    ev = (f"<details open><summary>Evidence</summary>"
          f"{_rows((_e(k), _compact(v, 1)) for k, v in evidence.items())}</details>") if evidence else ""
    recs = []
    for rec in f.recommendations:
        code = f"<pre><code>{_e(rec.implementation)}</code></pre>" if rec.implementation else ""
        label = _e(str(rec.type).replace("_", " ").capitalize())
        recs.append(f'<div class="rec"><p><b>{label}:</b> {_e(rec.description)}</p>{code}</div>')
    color = _SEV_COLOR.get(f.severity, "#7a8391")
    return (f'<article class="card finding" id="finding-{i}" style="--sev:{color}">'
            f"<h3>{i}. {_badge(f.severity)} <code>{_e(f.code)}</code> {_e(f.title)}</h3>"
            f'<div class="meta">{", ".join(where)}</div><p>{_e(f.description)}</p>'
            f"{ev}{_symptoms((f.evidence or {}).get('symptoms'))}{''.join(recs)}</article>")


# -- plotting primitives -----------------------------------------------------------------------
def _scale(lo: float, hi: float, p0: float, p1: float, log: bool) -> Callable[[float], float]:
    """Map data values in [lo, hi] (log10 when `log`) to pixels [p0, p1]."""
    a, b = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
    span = (b - a) or 1.0
    return lambda v: p0 + ((math.log10(v) if log else v) - a) / span * (p1 - p0)


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    """Axis tick values: powers of ten (at most ~6) for log axes, 5 even steps otherwise."""
    if not log:
        return [float(v) for v in np.linspace(lo, hi, 5)]
    k0, k1 = math.ceil(math.log10(lo)), math.floor(math.log10(hi))
    every = max(1, math.ceil((k1 - k0 + 1) / 6))
    ticks = [10.0 ** k for k in range(k0, k1 + 1, every)]
    return ticks or [lo, hi]


def _range(values: np.ndarray, log: bool) -> tuple[float, float]:
    """Plot range of finite values, widened when they are all equal."""
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return (lo / 2, hi * 2) if log else (lo - 1, hi + 1)
    return lo, hi


def _column(record: Record, name: str) -> Series | None:
    """A per-step column, or None when the record lacks it."""
    try:
        return record.column(name)
    except KeyError:
        return None


def _line_chart(name: str, col: Series, *, log: bool, markers: Sequence[tuple[int, str]] = ()) -> str:
    """An SVG line chart of a series' finite values, its non-finite steps ticked in red at the
    bottom, and vertical labelled markers; the x axis spans every recorded step."""
    x0, x1, y0, y1 = _ML, _W - _MR, _H - _MB, _MT
    fin = col.finite()
    steps, values = fin.steps, fin.values
    sx = _scale(*_range(col.steps.astype(float), False), x0, x1, False)
    ylo, yhi = _range(values, log)
    sy = _scale(ylo, yhi, y0, y1, log)
    out = [f'<svg viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" aria-label="{_e(name)}">']
    for t in _ticks(ylo, yhi, log):
        y = sy(t)
        out.append(f'<line class="grid" x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(fmt(t))}</text>')
    xlo, xhi = int(col.steps.min()), int(col.steps.max())
    for t in sorted({xlo, xhi, *(int(v) for v in np.linspace(xlo, xhi, 6))}):
        out.append(f'<text x="{sx(t):.1f}" y="{y0 + 16}" text-anchor="middle">{t}</text>')
    out.append(f'<path class="axis" fill="none" d="M{x0},{y1} V{y0} H{x1}"/>')
    pts = " ".join(f"{sx(s):.1f},{sy(v):.1f}" for s, v in zip(steps.tolist(), values.tolist()))
    out.append(f'<polyline class="series" data-series="{_e(name)}" fill="none" stroke="#2e86c1" '
               f'stroke-width="1.6" points="{pts}"/>')
    for x in sorted({round(sx(s)) for s in col.steps[~np.isfinite(col.values)].tolist()}):  # one per pixel
        out.append(f'<rect class="nonfinite" x="{x - 1}" y="{y0 - 6}" width="2" height="6" fill="#e74c3c"/>')
    for n, (step, label) in enumerate(markers):
        if xlo <= step <= xhi:
            x = sx(step)
            tx, anchor = (x - 3, "end") if x > x1 - 60 else (x + 3, "start")
            out.append(f'<g class="marker"><line x1="{x:.1f}" x2="{x:.1f}" y1="{y1}" y2="{y0}" '
                       f'stroke="#c0392b" stroke-dasharray="4 3"/><text x="{tx:.1f}" text-anchor="{anchor}" '
                       f'y="{y1 + 10 + 11 * (n % 4)}" fill="#c0392b">{_e(label)}</text></g>')
    out.append("</svg>")
    return "".join(out)


def _figure(fig_id: str, caption: str, body: str, note: str = "") -> str:
    """Wrap a plot (or a note saying why it is missing) in a captioned figure."""
    note_html = f'<p class="note">{_e(note)}</p>' if note else ""
    return f'<figure class="card" id="{fig_id}"><figcaption>{_e(caption)}</figcaption>{body}{note_html}</figure>'


# -- the four plots --------------------------------------------------------------------------------
def _loss_plot(record: Record, findings: Sequence[Finding]) -> str:
    """Training loss over steps; log y when positive and spanning >100x; finding steps marked."""
    col = _column(record, "loss")
    if col is None or not len(col.finite()):
        return _figure("plot-loss", "Training loss", "", "No finite loss values recorded.")
    fin = col.finite()
    log = bool(fin.values.min() > 0 and fin.values.max() / fin.values.min() > 100)
    markers = [(int(f.step), f.code) for f in findings if f.step is not None]
    skipped = len(col) - len(fin)
    note = ""
    if skipped:
        first = int(col.steps[~np.isfinite(col.values)][0])
        note = f"{skipped} non-finite value(s) skipped (red ticks), the first at step {first}."
    svg = _line_chart("loss", col, log=log, markers=markers)
    return _figure("plot-loss", f"Training loss{' (log scale)' if log else ''}", svg, note)


def _grad_plot(record: Record) -> str:
    """Total gradient norm over steps, log y when every finite value is positive."""
    col = _column(record, "grad_norm")
    if col is None or not len(col.finite()):
        return _figure("plot-grad-norm", "Total gradient norm", "", "No finite gradient norms recorded.")
    fin = col.finite()
    log = bool(fin.values.min() > 0)
    skipped = len(col) - len(fin)
    note = f"{skipped} non-finite value(s) skipped (red ticks)." if skipped else ""
    svg = _line_chart("grad_norm", col, log=log)
    return _figure("plot-grad-norm", f"Total gradient norm{' (log scale)' if log else ''}", svg, note)


def _color(t: float) -> str:
    """Viridis-like colour for t in [0, 1]."""
    t = min(1.0, max(0.0, t)) * (len(_VIRIDIS) - 1)
    i = min(int(t), len(_VIRIDIS) - 2)
    a, b = _VIRIDIS[i], _VIRIDIS[i + 1]
    mix = [round(int(a[k:k + 2], 16) * (1 - (t - i)) + int(b[k:k + 2], 16) * (t - i)) for k in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in mix)


def _cell_fill(value: float, nonfinite: bool, lo: float, hi: float) -> str:
    """Heatmap colour: red when non-finite, grey when unrecorded, else log-scaled viridis."""
    if nonfinite:
        return "#e74c3c"
    if not math.isfinite(value):
        return "#e3e6ea"
    if value <= 0:
        return _VIRIDIS[0]
    return _color((math.log10(value) - lo) / ((hi - lo) or 1.0))


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


def _heatmap(record: Record) -> str:
    """Per-parameter gradient norms: params x (binned) steps, log colour scale."""
    stats = record.stat("grad_norm", kind="param")
    if not stats:
        return _figure("plot-heatmap", "Per-parameter gradient norm", "", "No per-parameter gradient norms recorded.")
    names = list(stats)[:_MAX_ROWS]
    all_steps = np.unique(np.concatenate([stats[n].steps for n in names]))
    starts = np.array([b[0] for b in np.array_split(all_steps, min(_MAX_COLS, len(all_steps)))])
    grid = [_binned(stats[n], starts) for n in names]
    pos = np.concatenate([v[np.isfinite(v) & (v > 0)] for v, _ in grid])
    lo, hi = (float(np.log10(pos.min())), float(np.log10(pos.max()))) if len(pos) else (0.0, 1.0)
    label_w, cell_h, plot_w = 180, 14, _W - 180 - _MR
    cell_w = plot_w / len(starts)
    height = _MT + cell_h * len(names) + 40
    out = [f'<svg viewBox="0 0 {_W} {height}" width="{_W}" height="{height}" role="img" aria-label="heatmap" '
           f'data-cols="{len(starts)}" data-rows="{len(names)}">']
    for r, (name, (vals, bad)) in enumerate(zip(names, grid)):
        y = _MT + r * cell_h
        out.append(f'<g><title>{_e(name)}</title><text x="{label_w - 6}" y="{y + 11}" '
                   f'text-anchor="end">{_e(_clip(name, 28))}</text>')
        fills = [_cell_fill(v, b, lo, hi) for v, b in zip(vals.tolist(), bad.tolist())]
        c = 0
        while c < len(fills):  # one <rect> per run of equal colour
            run = c
            while run + 1 < len(fills) and fills[run + 1] == fills[c]:
                run += 1
            out.append(f'<rect x="{label_w + c * cell_w:.2f}" y="{y}" width="{(run - c + 1) * cell_w + 0.05:.2f}" '
                       f'height="{cell_h - 1}" fill="{fills[c]}"/>')
            c = run + 1
        out.append("</g>")
    ly = _MT + cell_h * len(names) + 10
    out.append(f'<text x="{label_w}" y="{ly + 22}">step {int(starts[0])}</text><text x="{_W - _MR}" '
               f'y="{ly + 22}" text-anchor="end">step {int(all_steps[-1])}</text>')
    for k in range(20):
        out.append(f'<rect x="{label_w + 200 + k * 8}" y="{ly}" width="8" height="10" fill="{_color(k / 19)}"/>')
    out.append(f'<text x="{label_w + 194}" y="{ly + 9}" text-anchor="end">{_e(fmt(10 ** lo))}</text>'
               f'<text x="{label_w + 366}" y="{ly + 9}">{_e(fmt(10 ** hi))} (red: non-finite, grey: none)</text></svg>')
    total = len(stats)
    note = f"Showing {len(names)} of {total} parameters." if total > len(names) else ""
    if len(all_steps) > len(starts):
        note += f" {len(all_steps)} steps binned into {len(starts)} columns (max per bin)."
    return _figure("plot-heatmap", "Per-parameter gradient norm (log colour)", "".join(out), note.strip())


def _timing_plot(record: Record) -> str:
    """Median step-time breakdown as one stacked horizontal bar."""
    parts = []
    for col, label, color in _TIMES:
        s = _column(record, col)
        if s is not None and len(s.finite()):
            parts.append((label, color, float(np.median(s.finite().values))))
    total = sum(v for _, _, v in parts)
    if not parts or total <= 0:
        return _figure("plot-timing", "Step time breakdown", "", "No step timings recorded.")
    out, x, width = [f'<svg viewBox="0 0 {_W} 90" width="{_W}" height="90" role="img" aria-label="timing">'], 10.0, _W - 20
    for n, (label, color, v) in enumerate(parts):
        w = width * v / total
        out.append(f'<rect x="{x:.2f}" y="10" width="{w:.2f}" height="28" fill="{color}"><title>{label}</title></rect>')
        out.append(f'<rect x="{10 + n * 175}" y="56" width="10" height="10" fill="{color}"/><text x="{24 + n * 175}" '
                   f'y="65">{label} {v * 1e3:.3g} ms ({v / total:.0%})</text>')
        x += w
    out.append("</svg>")
    return _figure("plot-timing", f"Median step time: {total * 1e3:.3g} ms", "".join(out))


def _plots(report: Report) -> str:
    """All plots, or one note when the report carries no run record."""
    if report.record is None:
        body = '<p class="note">No run record attached: plots are unavailable.</p>'
    else:
        rec = report.record
        body = _loss_plot(rec, report.findings) + _grad_plot(rec) + _heatmap(rec) + _timing_plot(rec)
    return f'<section id="plots"><h2>Plots</h2>{body}</section>'


def render_html(report: Report) -> str:
    """The whole report as one self-contained HTML document."""
    script = report.run.get("script") or "run"
    findings = "".join(_finding(i, f) for i, f in enumerate(report.findings, 1))
    findings = findings or '<p class="note">No findings.</p>'
    findings_html = f'<section id="findings"><h2>Findings</h2>{findings}</section>'
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>modeldebug report: {_e(script)}</title><style>{_CSS}</style></head><body><main>"
            f"<h1>modeldebug report: <code>{_e(script)}</code></h1>"
            f"{_summary(report)}{findings_html}{_plots(report)}</main></body></html>\n")
