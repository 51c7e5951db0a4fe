"""learn: what held in every healthy run, as invariants a new run can be checked against.

Relations (one run can support them, given enough steps):
- structure (INV001): the leaf modules and parameters the model has;
- hyperparameters (INV002): the optimizer's type, its settings and which parameters each group
  holds, the batch size, and the learning rate per phase (within a factor of 2);
- updates (INV003): every optimizer step changes every trainable parameter;
- zero_grad (INV004): no gradient is carried from one step into the next;
- finite (INV005): the loss and the gradient norm stay finite;
- loss progress (INV006): by step N the loss has fallen to at most a fraction of its start.
Envelopes, per phase (early/middle/late thirds of the shortest healthy run), per statistic: of
each module's output (INV007), each parameter's gradient, weight and update (INV008), each
parameter's share of the total gradient norm (INV009, the ratios between layers), and the input
(INV010). An envelope needs two runs, or five samples of its phase in one run (then with a wider
margin); with two runs or more, it also has a band per sampled step that every run sampled.
Margins are in `bands`; why they are what they are is in docs/compare.md.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from ..errors import BadInputError
from .bands import FLOORS, PHASES, Band, band, jitter, phase_bounds, phase_of, spread
from .invariants import Invariant, InvariantSet
from .view import RunView, median

__all__ = ["ENVELOPES", "MIN_STEPS", "STAT_RANK", "STAT_WORDS", "envelope_series", "learn", "phase_text"]

MIN_STEPS = 10
#: Optimizer group keys that describe how the step is computed, not what it computes.
_BOOKKEEPING = {"params", "lr", "initial_lr", "capturable", "differentiable", "foreach", "fused"}
_LR_FLOOR = math.log10(2.0)
STEP_BAND_RUNS = 3  # per-step bands from fewer runs than this: two values say too little about one step  # a learning rate is chosen, not drawn: a factor of 2 either way
#: The envelopes: (code, rule, entity kind, statistic, scale, source). Sources: `stat`, the record's
#: statistic of that entity; `params`, a module's parameters folded together (`RunView.module_params`);
#: `share`, a module's gradient norm over the total (the ratios between layers).
ENVELOPES: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("INV010", "envelope", "input", "std", "log", "stat"),
    ("INV010", "envelope", "input", "const_frac", "fraction", "stat"),
    ("INV007", "envelope", "module", "std", "log", "stat"),
    ("INV007", "envelope", "module", "dead_frac", "fraction", "stat"),
    ("INV007", "envelope", "module", "saturated_frac", "fraction", "stat"),
    ("INV007", "envelope", "module", "zero_frac", "fraction", "stat"),
    ("INV008", "envelope", "module", "update_ratio", "log", "params"),
    ("INV008", "envelope", "module", "param_norm", "log", "params"),
    ("INV008", "envelope", "module", "grad_norm", "log", "params"),
    ("INV009", "grad_share", "module", "grad_share", "log", "share"),
)
#: Which statistics are judged first at one step: what the forward pass and the weights show
#: points at the changed module; gradients flow back, so they change in every module before it.
STAT_RANK = {"std": 0, "dead_frac": 0, "saturated_frac": 0, "zero_frac": 0, "const_frac": 0, "param_norm": 1,
             "update_ratio": 1, "grad_norm": 2, "grad_share": 2}
STAT_WORDS = {
    ("module", "std"): "the output's standard deviation", ("module", "dead_frac"): "the dead-unit fraction",
    ("module", "saturated_frac"): "the saturated fraction", ("module", "zero_frac"): "the fraction of zero outputs",
    ("module", "grad_norm"): "the gradient norm", ("module", "update_ratio"): "the update ratio |dw|/|w|",
    ("module", "param_norm"): "the weight norm", ("input", "std"): "the standard deviation",
    ("input", "const_frac"): "the fraction of constant features",
    ("module", "grad_share"): "the share of the total gradient norm",
}


def envelope_series(view: RunView, kind: str, stat: str, source: str) -> dict[str, dict[int, float]]:
    """name -> step -> value of one envelope's statistic in one run."""
    if source == "params":
        return view.module_params.get(stat, {})
    if source == "share":
        return grad_shares(view)
    return view.stat(kind, stat)


def phase_text(phase: str, bounds: tuple[int, int]) -> str:
    b1, b2 = bounds
    span = {"early": f"0-{b1 - 1}", "middle": f"{b1}-{b2 - 1}", "late": f"{b2}+"}[phase]
    return f"{phase} steps ({span})"


def learn(records: list[Any], *, labels: list[str] | None = None) -> InvariantSet:
    """Invariants that held in every one of `records` (healthy runs of the same script)."""
    if not records:
        raise BadInputError("learn needs at least one healthy run record")
    views = [RunView(r, (labels or [None] * len(records))[i]) for i, r in enumerate(records)]
    short = min(views, key=lambda v: v.n_steps)
    if short.n_steps < MIN_STEPS:
        raise BadInputError(f"{short.label} has {short.n_steps} steps: learn needs runs of at least {MIN_STEPS} steps")
    bounds = phase_bounds(short.n_steps)
    invs: list[Invariant] = []
    invs += _structure(views)
    invs += _hyperparameters(views, bounds)
    invs += _updates(views)
    invs += _zero_grad(views)
    invs += _finite(views)
    invs += _loss_progress(views, short.n_steps)
    for code, rule, kind, stat, scale, source in ENVELOPES:
        data = [envelope_series(v, kind, stat, source) for v in views]
        invs += _envelopes(views, data, code, rule, kind, stat, scale, source, bounds)
    sources = [{"record": v.label, "script": v.record.meta.get("script"), "argv": v.record.meta.get("argv"),
                "steps": v.n_steps, "level": v.record.meta.get("level")} for v in views]
    return InvariantSet(invs, sources, bounds)


# -- relations --------------------------------------------------------------------------------------------
def _common(views: list[RunView], kind: str, keep: Any = None) -> list[str]:
    first = [n for n in views[0].names(kind) if keep is None or keep(views[0], n)]
    return [n for n in first if all(v.entity(kind, n) is not None for v in views[1:])]


def _structure(views: list[RunView]) -> list[Invariant]:
    modules = _common(views, "module", lambda v, n: bool(v.entity("module", n).info.get("leaf", True)))
    params = _common(views, "param")
    if not modules and not params:
        return []
    return [Invariant("INV001", "structure",
                      f"the model had the same {len(modules)} leaf modules and {len(params)} parameters",
                      evidence={"runs": len(views)}, params={"modules": modules, "params": params})]


def _optimizers(view: RunView) -> list[dict[str, Any]]:
    return [e.data for e in view.record.events("optimizer")]


def settings_of(view: RunView) -> dict[str, Any]:
    """'Adam 0 group 0/weight_decay' -> value, 'batch_size' -> n, 'holder/<param>' -> 'Adam 0 group 0'
    (optimizer type and index, parameter group index)."""
    out: dict[str, Any] = {}
    for i, opt in enumerate(_optimizers(view)):
        for j, g in enumerate(opt.get("groups", [])):
            prefix = f"{opt.get('type')} {i} group {j}"
            for k, val in g.items():
                if k not in _BOOKKEEPING:
                    out[f"{prefix}/{k}"] = val
            for p in g.get("params", []):
                out[f"holder/{p}"] = prefix
    shape = next((e.info.get("shape") for e in view.record.entities("input") if isinstance(e.info.get("shape"), list)), None)
    if shape:
        out["batch_size"] = shape[0]
    return out


def _hyperparameters(views: list[RunView], bounds: tuple[int, int]) -> list[Invariant]:
    out = []
    types = [[o.get("type") for o in _optimizers(v)] for v in views]
    if types[0] and all(t == types[0] for t in types):
        out.append(Invariant("INV002", "optimizer", f"the optimizer is {', '.join(map(str, types[0]))}",
                             evidence={"runs": len(views)}, params={"types": types[0]}))
    settings = [settings_of(v) for v in views]
    same = {k: val for k, val in settings[0].items()
            if all(k in s and json.dumps(s[k]) == json.dumps(val) for s in settings[1:])}
    if same:
        shown = [f"{k.split('/', 1)[-1]} {val}" for k, val in same.items() if not k.startswith("holder/")][:8]
        held = sum(1 for k in same if k.startswith("holder/"))
        out.append(Invariant("INV002", "settings",
                             f"the optimizer settings were {', '.join(shown)}, and the same parameter group held "
                             f"each of the {held} parameters",
                             evidence={"runs": len(views)}, params={"settings": same}))
    lrs = [v.column("lr") for v in views]
    for phase in PHASES:
        values = [x for col in lrs for s, x in col.items() if phase_of(s, bounds) == phase and math.isfinite(x) and x > 0]
        if not values:
            continue
        # a learning rate is chosen, not drawn: the band is what the healthy runs used, a factor of 2 either way
        b = Band(min(values) / 10 ** _LR_FLOOR, max(values) * 10 ** _LR_FLOOR, _LR_FLOOR, "log")
        out.append(Invariant("INV002", "lr", f"the learning rate stays within {b.text()} in {phase_text(phase, bounds)}",
                             evidence={"runs": len(views), "observed": [min(values), max(values)]},
                             params={"band": b.to_list()}, phase=phase))
    return out


def _updates(views: list[RunView]) -> list[Invariant]:
    held: list[str] = []
    smallest, samples = math.inf, 0
    ratios = [v.stat("param", "update_ratio") for v in views]
    sampled = [sorted({s for series in r.values() for s in series}) for r in ratios]
    if any(len(s) < 3 for s in sampled):
        return []
    for name in _common(views, "param"):
        ok = True
        for r, steps in zip(ratios, sampled):
            series = r.get(name, {})
            vals = [series.get(s, math.nan) for s in steps]
            if not all(math.isfinite(x) and x > 0 for x in vals):
                ok = False
                break
        if ok:
            held.append(name)
            smallest = min(smallest, *(x for r in ratios for x in r[name].values()))
    samples = sum(len(s) for s in sampled)
    if not held:
        return []
    return [Invariant("INV003", "updates",
                      f"every optimizer step changes each of the {len(held)} trainable parameters (update ratio "
                      f"above 0 at all {samples} sampled steps of {len(views)} run(s); smallest {smallest:.3g})",
                      evidence={"runs": len(views), "sampled_steps": samples, "smallest_update_ratio": smallest},
                      params={"params": held})]


def carried_fractions(view: RunView) -> dict[int, float]:
    """Step -> norm of the gradient carried into it, as a fraction of the previous step's gradient norm."""
    carried, gn = view.column("carried_grad_norm"), view.column("grad_norm")
    out = {}
    for s in sorted(gn):
        c = carried.get(s, math.nan)
        if math.isnan(c) or c <= 0:  # NULL: nothing was carried
            out[s] = 0.0
            continue
        prev = gn.get(s - 1, math.nan)
        out[s] = c / prev if math.isfinite(prev) and prev > 0 else 1.0
    return out


def _zero_grad(views: list[RunView]) -> list[Invariant]:
    fracs = [x for v in views for s, x in carried_fractions(v).items() if s > 0]
    if len(fracs) < 5 or max(fracs) > 0.01:
        return []
    return [Invariant("INV004", "zero_grad",
                      "gradients are cleared before every step's first backward pass (zero_grad or set to None): "
                      f"nothing carried over on {len(fracs)} steps of {len(views)} run(s)",
                      evidence={"runs": len(views), "steps": len(fracs), "largest_carried_fraction": max(fracs)},
                      params={"max_carried_fraction": 0.01})]


def nonfinite_steps(view: RunView) -> list[int]:
    """Steps whose loss or gradient norm was not finite (a step without backward has no gradient norm)."""
    loss, gn, nb = view.column("loss"), view.column("grad_norm"), view.column("n_backward")
    bad = [s for s in sorted(gn) if (nb.get(s) or 0) >= 1 and not (math.isfinite(gn[s]) and math.isfinite(loss.get(s, 0.0)))]
    bad += [e.step for e in view.record.events("nonfinite") if e.step is not None]
    return sorted(set(bad))


def _finite(views: list[RunView]) -> list[Invariant]:
    steps = sum(v.n_steps for v in views)
    if steps < 5 or any(nonfinite_steps(v) for v in views):
        return []
    return [Invariant("INV005", "finite", f"the loss and the gradient norm stay finite ({steps} steps of {len(views)} run(s))",
                      evidence={"runs": len(views), "steps": steps}, params={})]


def loss_window(steps: int) -> int:
    return max(3, steps // 10)


def loss_ratio(loss: np.ndarray, at: int, window: int) -> float:
    """Median loss of the `window` steps ending at `at`, over the median of the first `window` steps."""
    start = median(loss[:window])
    if not (math.isfinite(start) and start > 0) or at + 1 > len(loss):
        return math.nan
    chunk = loss[at - window + 1:at + 1]
    if not np.isfinite(chunk).all():
        return math.inf
    return median(chunk) / start


def _loss_progress(views: list[RunView], steps: int) -> list[Invariant]:
    w = loss_window(steps)
    losses = [v.loss() for v in views]
    if any((~np.isfinite(loss[:steps])).any() or (loss[:steps] < 0).any() for loss in losses):
        return []
    out = []
    b1, b2 = phase_bounds(steps)
    for at in sorted({b1, b2, steps - 1}):
        if at < 2 * w - 1:
            continue
        ratios = [loss_ratio(loss, at, w) for loss in losses]
        if not all(math.isfinite(r) for r in ratios):
            continue
        worst = max(ratios)
        drop = 1.0 - worst
        if len(views) >= 2:
            sigma = 1.4826 * float(np.median(np.abs(np.array(ratios) - np.median(ratios))))
            limit = max(worst + 3 * sigma, 1.0 - 0.5 * drop)
        elif drop >= 0.2:
            limit = 1.0 - 0.5 * drop
        else:
            continue
        if limit >= 0.95:
            continue
        out.append(Invariant(
            "INV006", "loss_progress",
            f"by step {at} the loss is at most {limit:.0%} of its start (median of steps {at - w + 1}-{at} over the "
            f"median of steps 0-{w - 1}; healthy runs: {min(ratios):.0%}-{worst:.0%})",
            evidence={"runs": len(views), "ratios": [round(r, 4) for r in ratios]},
            params={"step": at, "window": w, "max_ratio": round(limit, 4)}))
    return out


# -- envelopes ---------------------------------------------------------------------------------------------
def grad_shares(view: RunView) -> dict[str, dict[int, float]]:
    """Each module's gradient norm as a share of the total, on steps where every module has one."""
    g = view.module_params.get("grad_norm", {})
    names = list(g)
    if len(names) < 2:
        return {}
    steps = set.intersection(*(set(g[n]) for n in names))
    out: dict[str, dict[int, float]] = {n: {} for n in names}
    for s in sorted(steps):
        vals = [g[n][s] for n in names]
        if not all(math.isfinite(x) for x in vals):
            continue
        total = math.sqrt(sum(x * x for x in vals))
        if total > 0:
            for n, x in zip(names, vals):
                out[n][s] = x / total
    return out


def _envelopes(views: list[RunView], data: list[dict[str, dict[int, float]]], code: str, rule: str, kind: str,
               stat: str, scale: str, source: str, bounds: tuple[int, int]) -> list[Invariant]:
    k = len(views)
    out = []
    for name in [n for n in views[0].names(kind) if all(n in d for d in data)]:
        noise = max(jitter([d[name] for d in data], scale), spread([d[name] for d in data], scale))
        for phase in PHASES:
            per_run = [{s: x for s, x in d[name].items() if phase_of(s, bounds) == phase and math.isfinite(x)}
                       for d in data]
            values = [x for r in per_run for x in r.values()]
            if any(not r for r in per_run) or (k == 1 and len(values) < 5):
                continue
            b = _capped(band(values, scale, runs=k, noise=noise), stat)
            if b is None:
                continue
            steps = {}
            if k >= STEP_BAND_RUNS:
                for s in sorted(set.intersection(*(set(r) for r in per_run))):
                    sb = _capped(band([r[s] for r in per_run], scale, runs=k, noise=noise), stat)
                    if sb is not None:
                        steps[str(s)] = sb.to_list()
            words = STAT_WORDS.get((kind, stat), stat)
            observed = f"{_fmt(min(values), stat)}-{_fmt(max(values), stat)}"
            out.append(Invariant(
                code, rule,
                f"{words} of {views[0].describe(kind, name)} stays within {_text(b, stat)} in {phase_text(phase, bounds)} "
                f"(healthy: {observed} over {len(values)} samples of {k} run(s); margin "
                f"{_margin(b)})",
                evidence={"runs": k, "samples": len(values), "observed": [min(values), max(values)],
                          "floor": FLOORS[scale][0 if k < 2 else 1]},
                params={"scale": scale, "source": source, "band": b.to_list(), "steps": steps},
                subject=name, kind=kind, stat=stat, phase=phase))
    return out


def _margin(b: Band) -> str:
    return f"x{10 ** b.margin:.3g}" if b.scale == "log" else f"{b.margin:.3g}"


def _capped(b: Band | None, stat: str) -> Band | None:
    """A share is at most 100%."""
    if b is None or stat != "grad_share":
        return b
    return Band(b.lo, min(b.hi, 1.0), b.margin, b.scale)


def _fmt(v: float, stat: str) -> str:
    return f"{v:.0%}" if stat == "grad_share" else f"{v:.3g}"


def _text(b: Band, stat: str) -> str:
    return f"{_fmt(b.lo, stat)}-{_fmt(b.hi, stat)}" if stat == "grad_share" else b.text()
