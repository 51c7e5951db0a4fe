"""Where two runs part: the first step, and the first module, where their statistics differ beyond noise.

Three kinds of series, three tests:
- exact per-step columns (learning rate, zero_grad calls, backward passes, mode flags): any
  difference counts;
- noisy per-step columns (loss, gradient norm): a trailing running median of 3 steps on a log scale, parted
  where the gap exceeds max(a factor of 1.5 (3 when the seeds differ), 4x the series' own step-to-step
  jitter) for 3 steps;
- sampled statistics (the envelopes' series: module outputs, module weights, updates, gradients,
  gradient shares, the input): parted where they differ by more than the noise floor: a factor
  of 1.5 (0.1 for fractions) when both runs used the same seed; otherwise by more than `learn`'s
  floors (a factor of 3, 0.25 for fractions) and 4x the series' step-to-step jitter; or where one
  run has a value and the other none (a module that stopped being updated). A change persists:
  the next sample both runs took must be beyond the limit too (the last sample: twice the limit).
Within a step, exact columns come first, then statistics in `STAT_RANK` and model order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .bands import FLOORS, NOISE_FACTOR, jitter, to_scale
from .learn import ENVELOPES, STAT_RANK, STAT_WORDS, carried_fractions, envelope_series
from .view import RunView

__all__ = ["Parting", "partings"]

_EXACT = {"lr": "lr", "zero_grad_calls": "loop", "n_backward": "loop", "fwd_eval_mode": "loop",
          "fwd_train_mode_nograd": "loop", "clip_max": "loop"}
_COLUMN_WORDS = {"lr": "learning rate", "zero_grad_calls": "zero_grad calls", "n_backward": "backward passes",
                 "fwd_eval_mode": "training passes in eval mode", "fwd_train_mode_nograd": "no-grad passes in train mode",
                 "clip_max": "clip_grad_norm_ max_norm", "loss": "loss", "grad_norm": "gradient norm"}
_FAMILY = {"std": "activation", "dead_frac": "activation", "saturated_frac": "activation", "zero_frac": "activation",
           "const_frac": "input", "param_norm": "weights", "update_ratio": "update", "grad_norm": "gradient",
           "grad_share": "gradient"}


@dataclass
class Parting:
    """One series where the runs part, from `step` on."""

    series: str  # "lr", "loss", "module 2 std", ...
    family: str  # lr | loop | loss | gradient | activation | weights | update | input
    step: int
    a: float | None
    b: float | None
    text: str
    location: str | None = None
    order: tuple[int, ...] = (0,)

    def to_dict(self) -> dict[str, Any]:
        return {"series": self.series, "family": self.family, "step": self.step, "location": self.location,
                "a": self.a, "b": self.b, "text": self.text}


def _v(x: float | None, view: RunView | None = None, step: int | None = None) -> str:
    """A value as the text says it: a missing one is "none", unless the run had gone non-finite by then
    (the record stores NaN as no value), then "non-finite"."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        since = view.nonfinite_from if view is not None else None
        return "non-finite" if since is not None and step is not None and step >= since else "none"
    return f"{x:.4g}"


def _exact(va: RunView, vb: RunView) -> list[Parting]:
    out = []
    for col, family in _EXACT.items():
        a, b = va.column(col), vb.column(col)
        for step in sorted(set(a) & set(b)):
            x, y = a[step], b[step]
            if math.isnan(x) and math.isnan(y):
                continue
            if math.isnan(x) or math.isnan(y) or not math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-12):
                out.append(Parting(col, family, step, x, y, f"{_COLUMN_WORDS[col]} {_v(x, va, step)} -> {_v(y, vb, step)} at step {step}",
                                   order=(-2,)))
                break
    fa, fb = carried_fractions(va), carried_fractions(vb)
    for step in sorted(set(fa) & set(fb)):
        if step > 0 and (fa[step] > 0.01) != (fb[step] > 0.01):
            out.append(Parting("carried_grad", "loop", step, fa[step], fb[step],
                               f"gradients carried over into step {step}: {fa[step]:.0%} -> {fb[step]:.0%} of the "
                               "previous step's norm", order=(-2,)))
            break
    return out


def _smooth(values: np.ndarray, width: int = 3) -> np.ndarray:
    """Trailing running median: a step's value never depends on later steps."""
    out = np.full(len(values), np.nan)
    for i in range(len(values)):
        window = values[max(0, i - width + 1):i + 1]
        if np.isfinite(window).any():
            out[i] = np.nanmedian(window)
    return out


def _noisy(va: RunView, vb: RunView, same_seed: bool) -> list[Parting]:
    out = []
    for col, family in (("loss", "loss"), ("grad_norm", "gradient")):
        a, b = va.column(col), vb.column(col)
        steps = sorted(set(a) & set(b))
        if len(steps) < 5:
            continue
        xa, xb = np.array([a[s] for s in steps]), np.array([b[s] for s in steps])
        bad = np.isfinite(xa) != np.isfinite(xb)
        if (xa[np.isfinite(xa)] <= 0).any() or (xb[np.isfinite(xb)] <= 0).any():
            continue  # a loss that goes negative has no log scale; its parting shows in the statistics
        la, lb = _smooth(np.log10(np.where(xa > 0, xa, np.nan))), _smooth(np.log10(np.where(xb > 0, xb, np.nan)))
        noise = max(jitter([dict(zip(steps, la.tolist()))], "fraction"), jitter([dict(zip(steps, lb.tolist()))], "fraction"))
        limit = max(math.log10(1.5) if same_seed else FLOORS["log"][1], NOISE_FACTOR * noise)
        gap = np.abs(la - lb) > limit
        over = bad | np.nan_to_num(gap, nan=0).astype(bool)
        for i in range(len(steps)):
            if bad[i] or over[i:i + 3].all() and len(over[i:i + 3]) == 3:
                s = steps[i]
                out.append(Parting(col, family, s, a[s], b[s],
                                   f"{_COLUMN_WORDS[col]} parts at step {s}: {_v(a[s], va, s)} -> {_v(b[s], vb, s)} "
                                   f"(smoothed gap x{10 ** abs(la[i] - lb[i]):.3g}, noise allows x{10 ** limit:.3g})"
                                   if not bad[i] else f"{_COLUMN_WORDS[col]} {_v(a[s], va, s)} -> {_v(b[s], vb, s)} at step {s}",
                                   order=(9,)))
                break
    return out


def _gap(x: float, y: float | None, scale: str) -> float | None:
    """How far apart, in scale units (inf: one side has no value or a non-finite one; None: neither)."""
    if y is None:
        return math.inf if math.isfinite(x) else None
    if not (math.isfinite(x) or math.isfinite(y)):
        return None
    if not (math.isfinite(x) and math.isfinite(y)):
        return math.inf
    return abs(to_scale(x, scale) - to_scale(y, scale))


def _sampled(va: RunView, vb: RunView, same_seed: bool) -> list[Parting]:
    out = []
    for _code, _rule, kind, stat, scale, source in ENVELOPES:
        sa, sb = envelope_series(va, kind, stat, source), envelope_series(vb, kind, stat, source)
        sampled_b = {s for series in sb.values() for s in series}
        floor = (math.log10(1.5) if scale == "log" else 0.1) if same_seed else FLOORS[scale][1]
        for name, xa in sa.items():
            ea, eb = va.entity(kind, name), vb.entity(kind, name)
            if eb is None or (kind == "module" and ea is not None and ea.type != eb.type):
                continue  # no such module in B, or another layer under its name: the structure differs
            xb = sb.get(name, {})
            limit = floor if same_seed else max(floor, NOISE_FACTOR * jitter([xa, xb], scale))
            steps = [s for s in sorted(xa) if s in sampled_b]  # steps both runs sampled
            gaps = [_gap(xa[s], xb.get(s), scale) for s in steps]
            for i, (step, gap) in enumerate(zip(steps, gaps)):
                # parted when beyond the limit here and at the next shared sample: a real change persists
                last = i + 1 == len(steps)
                if gap is None or gap <= limit or (not last and (gaps[i + 1] or 0.0) <= limit) \
                        or (last and gap <= 2 * limit):  # the last sample cannot be confirmed: twice as far
                    continue
                x, y = xa[step], xb.get(step)
                words = STAT_WORDS.get((kind, stat), stat)
                ratio = f" (x{10 ** gap:.3g})" if scale == "log" and math.isfinite(gap) else ""
                out.append(Parting(f"{kind} {name} {stat}", _FAMILY[stat], step, x, y,
                                   f"{words} of {va.describe(kind, name)}: {_v(x, va, step)} -> {_v(y, vb, step)}{ratio} at step {step}",
                                   location=va.module_of(kind, name),
                                   order=(STAT_RANK.get(stat, 0), *va.order(kind, name))))
                break
    return out


def partings(va: RunView, vb: RunView, *, same_seed: bool = False) -> list[Parting]:
    """Every series where A and B part, earliest first (then exact columns, statistics in model order, loss)."""
    found = [*_exact(va, vb), *_sampled(va, vb, same_seed), *_noisy(va, vb, same_seed)]
    return sorted(found, key=lambda p: (p.step, p.order))
