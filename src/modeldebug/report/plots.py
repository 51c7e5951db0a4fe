"""The report's curves over steps: loss (train and validation), learning rate, update-to-weight
ratios, memory and step time. Each panel reads what the record stores and, when the record lacks
it, says so instead of drawing an empty plot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..config import Thresholds
from ..rules.context import fmt
from .svg import PALETTE, W, Line, Zone, esc, figure, legend, line_chart

if TYPE_CHECKING:
    from ..record import Record, Series
    from ..rules.base import Finding

__all__ = ["column", "thresholds", "loss_plot", "lr_plot", "update_ratio_plot", "memory_plot", "timing_plot"]

_MAX_LINES = 8
_TIMES = [("t_data", "data", "#8e44ad"), ("t_forward", "forward", "#2e86c1"),
          ("t_backward", "backward", "#d68910"), ("t_optimizer", "optimizer", "#27ae60")]


def column(record: Record, name: str) -> Series | None:
    """A per-step column, or None when the record lacks it or holds no value in it."""
    try:
        col = record.column(name)
    except KeyError:
        return None
    return col if len(col) and not np.isnan(col.values).all() else None


def thresholds(record: Record) -> Thresholds:
    """The thresholds the run was captured with (from its stored config), defaults otherwise."""
    config = record.meta.get("config")
    stored = (config.get("thresholds") or {}) if isinstance(config, dict) else {}
    known = {k: v for k, v in stored.items() if k in Thresholds.model_fields}
    try:
        return Thresholds(**known)
    except ValueError:  # a record from a version with other types: draw with the defaults
        return Thresholds()


def _is_log(values: np.ndarray, span: float, *, positive_only: bool = False) -> bool:
    """Draw on a log scale? When every finite value (or every positive one) is above zero and they
    span more than `span` times."""
    fin = values[np.isfinite(values) & ((values > 0) if positive_only else True)]
    return bool(len(fin) and fin.min() > 0 and fin.max() / fin.min() > span)


def _val_lines(record: Record) -> list[Line]:
    """One line per validation loss: the mean of the calls made at each step (one per pass)."""
    lines = []
    for n, e in enumerate(x for x in record.entities("loss") if x.info.get("phase") == "val"):
        s = record.series(e.name, "val_loss", kind="loss")
        if not len(s):
            continue
        steps = np.unique(s.steps)
        means = np.array([float(f.mean()) if len(f := v[np.isfinite(v)]) else np.nan
                          for v in (s.values[s.steps == st] for st in steps)])
        lines.append(Line(f"validation {e.name}", steps, means, PALETTE[(1 + n) % len(PALETTE)], dots=True))
    return lines


def loss_plot(record: Record, findings: Sequence[Finding]) -> str:
    """Training loss and validation losses over steps, with each finding marked at its onset."""
    train = column(record, "loss")
    lines = ([Line("loss", train.steps, train.values, nonfinite=True)] if train is not None else []) + _val_lines(record)
    if not any(np.isfinite(ln.values).any() for ln in lines):
        why = (f"Every one of the {len(train)} recorded losses is NaN or infinite." if train is not None
               else "No loss recorded (no backward pass on a scalar loss was seen).")
        return figure("plot-loss", "Training loss", "", why)
    log = _is_log(np.concatenate([ln.values for ln in lines]), 100)
    markers = [(int(f.step), f.code) for f in findings if f.step is not None]
    notes = []
    if train is not None and not np.isfinite(train.values).all():
        bad = ~np.isfinite(train.values)
        notes.append(f"{int(bad.sum())} non-finite value(s) skipped (red ticks), "
                     f"the first at step {int(train.steps[bad][0])}.")
    if len(lines) == 1:
        notes.append("No validation loss recorded (loss calls under torch.no_grad() are recorded as validation).")
    body = line_chart(lines, log=log, label="loss", markers=markers)
    if len(lines) > 1:
        body += legend([(ln.color, ln.name) for ln in lines])
    caption = f"Loss: training{' and validation' if len(lines) > 1 else ''}{' (log scale)' if log else ''}"
    return figure("plot-loss", caption, body, " ".join(notes))


def lr_plot(record: Record) -> str:
    """The learning rate of the first parameter group over steps."""
    lr = column(record, "lr")
    if lr is None or not np.isfinite(lr.values).any():
        return figure("plot-lr", "Learning rate", "", "No learning rate recorded (no optimizer was seen stepping).")
    log = _is_log(lr.values, 10)
    fin = lr.values[np.isfinite(lr.values)]
    note = f"Constant at {fmt(float(fin[0]))}." if fin.min() == fin.max() else ""
    body = line_chart([Line("lr", lr.steps, lr.values, PALETTE[3])], log=log, label="learning rate", height=200)
    return figure("plot-lr", f"Learning rate{' (log scale)' if log else ''}", body, note)


def update_ratio_plot(record: Record) -> str:
    """‖Δw‖/‖w‖ of each parameter over the sampled steps, log scale, with the lr rules' bands."""
    stats = record.stat("update_ratio", kind="param")
    if not stats:
        return figure("plot-update", "Update-to-weight ratio", "",
                      "No update ratios recorded (they are measured on sampled optimizer steps).")
    shapes = {e.name: e.info.get("shape") or [] for e in record.entities("param")}
    # weights (2-d and up) first: biases often move differently and crowd the plot
    names = sorted(stats, key=lambda n: len(shapes.get(n, [])) < 2)
    drawable = [n for n in names if ((v := stats[n].values) > 0).any() and np.isfinite(v).any()]
    still = [n for n in names if n not in drawable]
    shown = drawable[:_MAX_LINES]
    notes = []
    if len(drawable) > len(shown):
        notes.append(f"Showing {len(shown)} of {len(drawable)} parameters (weights first).")
    if still:
        notes.append(f"{len(still)} parameter(s) had no finite non-zero update on any sampled step (not drawable "
                     f"on a log scale): {', '.join(still[:6])}{' …' if len(still) > 6 else ''}.")
    if not shown:
        return figure("plot-update", "Update-to-weight ratio", "", " ".join(notes))
    t = thresholds(record)
    lines = [Line(n, stats[n].steps, stats[n].values, PALETTE[i % len(PALETTE)], dots=True) for i, n in enumerate(shown)]
    zones = [Zone(t.lr_high_update_ratio, None, "#c0392b", f"above {fmt(t.lr_high_update_ratio)}: large (lr_too_high)"),
             Zone(None, t.lr_low_update_ratio, "#2e86c1", f"below {fmt(t.lr_low_update_ratio)}: tiny (lr_too_low)")]
    edges = [t.lr_low_update_ratio / 3, t.lr_high_update_ratio * 3]  # both bands always in view
    body = (line_chart(lines, log=True, label="update ratio", zones=zones, include=edges)
            + legend([(ln.color, ln.name) for ln in lines]))
    notes.append("About 1e-3 per step is typical of healthy training.")
    caption = "Update-to-weight ratio ‖Δw‖/‖w‖ per parameter (log scale)"
    return figure("plot-update", caption, body, " ".join(notes))


def memory_plot(record: Record) -> str:
    """Process resident memory and CUDA memory held by tensors over steps."""
    lines = [Line(label, c.steps, c.values, color) for name, label, color in
             (("rss_mb", "process RSS (MiB)", PALETTE[0]), ("cuda_mb", "CUDA tensors (MiB)", PALETTE[2]))
             if (c := column(record, name)) is not None]
    if not lines:
        return figure("plot-memory", "Memory", "", "No memory readings recorded.")
    body = line_chart(lines, log=False, label="memory", height=200) + legend([(ln.color, ln.name) for ln in lines])
    note = "" if len(lines) > 1 else "No CUDA memory recorded (a CPU run)."
    return figure("plot-memory", "Memory over steps (MiB)", body, note)


def timing_plot(record: Record) -> str:
    """Median step-time breakdown as one stacked bar, and each part over the run."""
    parts = [(label, color, c) for name, label, color in _TIMES if (c := column(record, name)) is not None]
    medians = [(label, color, float(np.nanmedian(c.values))) for label, color, c in parts]
    total = sum(v for _, _, v in medians)
    if not parts or total <= 0:
        return figure("plot-timing", "Step time breakdown", "", "No step timings recorded.")
    out, x, width = [f'<svg viewBox="0 0 {W} 80" width="{W}" height="80" role="img" aria-label="timing">'], 10.0, W - 20
    for n, (label, color, v) in enumerate(medians):
        w = width * v / total
        out.append(f'<rect x="{x:.2f}" y="8" width="{w:.2f}" height="28" fill="{color}"><title>{esc(label)}</title></rect>')
        out.append(f'<rect x="{10 + n * 220}" y="52" width="10" height="10" fill="{color}"/><text x="{24 + n * 220}" '
                   f'y="61">{esc(label)} {v * 1e3:.3g} ms ({v / total:.0%})</text>')
        x += w
    out.append("</svg>")
    lines = [Line(label, c.steps, c.values * 1e3, color) for label, color, c in parts]
    log = _is_log(np.concatenate([ln.values for ln in lines]), 100, positive_only=True)
    body = "".join(out) + line_chart(lines, log=log, label="step time", height=200)
    note = ("Data: from the end of the previous step to the first forward pass; forward: up to the "
            "first backward pass (loss included). Lower panel: each part per step, in ms"
            + (" (log scale; zeros not drawn)." if log else "."))
    return figure("plot-timing", f"Step time: median {total * 1e3:.3g} ms per step", body, note)
