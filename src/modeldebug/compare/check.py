"""check: judge a run against learned invariants; each violated code is one finding.

A finding names where the invariant first broke (the earliest step, then the first module in
forward order) and lists the other violations of the same code in its evidence.
`apply_against` adds them to a report and ranks everything again, so that a changed
hyperparameter comes before the symptoms it explains.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..catalogue import CATALOGUE, SEVERITY_ORDER, Finding, Recommendation, Severity
from .bands import Band, phase_of
from .invariants import Invariant, InvariantSet
from .learn import (
    STAT_RANK,
    STAT_WORDS,
    carried_fractions,
    envelope_series,
    loss_ratio,
    nonfinite_steps,
    settings_of,
)
from .view import RunView

__all__ = ["Violation", "apply_against", "check", "violations"]


@dataclass
class Violation:
    """One invariant broken at one step."""

    invariant: Invariant
    step: int | None
    title: str
    severity: Severity
    location: str | None = None
    order: tuple[int, ...] = (-1,)  # within a step: relations first, then by statistic and model order
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "location": self.location, "what": self.title, "severity": self.severity,
                "invariant": self.invariant.description, **self.data}


def _structure(view: RunView, inv: Invariant, _: InvariantSet) -> list[Violation]:
    missing = [(k, n) for k, key in (("module", "modules"), ("param", "params"))
               for n in inv.params.get(key, []) if view.entity(k, n) is None]
    if not missing:
        return []
    total = len(inv.params.get("modules", [])) + len(inv.params.get("params", []))
    names = ", ".join(n for _, n in missing[:6]) + (" ..." if len(missing) > 6 else "")
    sev: Severity = "medium" if len(missing) * 2 > total else "low"
    return [Violation(inv, None, f"{len(missing)} of the {total} modules and parameters of the healthy runs are "
                      f"missing ({names}): the invariants about them cannot be checked", sev,
                      data={"missing": [n for _, n in missing]})]


def _optimizer(view: RunView, inv: Invariant, _: InvariantSet) -> list[Violation]:
    types = [e.data.get("type") for e in view.record.events("optimizer")]
    if not types or types == inv.params["types"]:
        return []
    return [Violation(inv, 0, f"The optimizer is {', '.join(map(str, types))}; the healthy runs used "
                      f"{', '.join(inv.params['types'])}", "medium", data={"value": types})]


def _settings(view: RunView, inv: Invariant, _: InvariantSet) -> list[Violation]:
    now = settings_of(view)
    if not view.record.events("optimizer"):
        now = {k: v for k, v in now.items() if k == "batch_size"}  # no optimizer seen: nothing to compare
    changed = []
    for key, want in inv.params["settings"].items():
        if key.startswith("holder/"):
            param = key.split("/", 1)[1]
            if view.entity("param", param) is None or not view.record.events("optimizer"):
                continue
            got = now.get(key)
            if _slot(got) != _slot(want):  # another optimizer type in the same place is INV002 optimizer's
                changed.append((f"{param} is held by {got or 'no optimizer'} (healthy: {want})", param))
        elif key in now and json.dumps(now[key]) != json.dumps(want):
            changed.append((f"{key.split('/')[-1]} of {key.split('/')[0]} is {now[key]!r} (healthy: {want!r})"
                            if "/" in key else f"{key} is {now[key]!r} (healthy: {want!r})", None))
    if not changed:
        return []
    params = [p for _, p in changed if p]
    location = view.module_of("param", params[0]) if params else None
    what = "; ".join(t for t, _ in changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
    return [Violation(inv, 0, f"Hyperparameters differ from the healthy runs': {what}", "medium", location,
                      data={"changed": [t for t, _ in changed]})]


def _slot(holder: Any) -> Any:
    """'Adam 0 group 1' -> '0 group 1': which optimizer and group hold a parameter, whatever its type."""
    return " ".join(holder.split()[-3:]) if isinstance(holder, str) else holder


def _lr(view: RunView, inv: Invariant, invs: InvariantSet) -> list[Violation]:
    b = Band.from_list(inv.params["band"], "log")
    for step, lr in sorted(view.column("lr").items()):
        if phase_of(step, invs.bounds) != inv.phase or not math.isfinite(lr):
            continue
        excess = b.excess(lr)
        if excess > 0:
            sev: Severity = "high" if excess * b.margin >= math.log10(5) else "medium"
            return [Violation(inv, step, f"Learning rate {lr:.3g} at step {step} is outside the {b.text()} of the "
                              f"healthy runs ({inv.phase} steps)", sev, data={"value": lr, "band": [b.lo, b.hi]})]
    return []


def _updates(view: RunView, inv: Invariant, _: InvariantSet) -> list[Violation]:
    ratios = view.stat("param", "update_ratio")
    sampled = sorted({s for series in ratios.values() for s in series})
    if not sampled:
        return []
    held = {p for e in view.record.events("optimizer") for g in e.data.get("groups", []) for p in g.get("params", [])}
    out = []
    for name in inv.params["params"]:
        e = view.entity("param", name)
        if e is None:
            continue
        series, since = ratios.get(name, {}), view.nonfinite_from
        # a ratio that reads NaN once the run went non-finite is a NaN weight or update, not a frozen one (INV005)
        step = next((s for s in sampled if not (series.get(s, 0.0) > 0)
                     and not (since is not None and s >= since
                              and (math.isnan(series.get(s, 0.0)) or s in view.nonfinite_samples))), None)
        if step is None:
            continue
        if e.info.get("requires_grad") is False:
            why = "it requires no gradient (requires_grad is False)"
        elif view.record.events("optimizer") and name not in held:
            why = "no optimizer holds it"
        elif not view.series("param", name, "grad_norm"):
            why = "it got no gradient"
        else:
            why = "its update was zero"
        module = view.module_of("param", name)
        out.append(Violation(inv, step, f"Parameter {name} was not changed by the optimizer step at step {step}: {why}",
                             "high", module, (-1, *view.order("param", name)), data={"parameter": name, "why": why}))
    return out


def _zero_grad(view: RunView, inv: Invariant, _: InvariantSet) -> list[Violation]:
    limit = inv.params["max_carried_fraction"]
    for step, frac in sorted(carried_fractions(view).items()):
        if step > 0 and frac > limit:
            return [Violation(inv, step, f"Gradients carried over into step {step} ({frac:.0%} of the previous "
                              "step's norm): they were not cleared before backward", "high",
                              data={"carried_fraction": frac})]
    return []


def _finite(view: RunView, inv: Invariant, _: InvariantSet) -> list[Violation]:
    bad = nonfinite_steps(view)
    if not bad:
        return []
    origin = next((e.data.get("origin") or {} for e in view.record.events("nonfinite")), {})
    module = origin.get("module") if isinstance(origin, dict) else None
    return [Violation(inv, bad[0], f"The loss or the gradient norm is not finite at step {bad[0]}; every healthy run "
                      "stayed finite", "high", module)]


def _loss_progress(view: RunView, inv: Invariant, _: InvariantSet) -> list[Violation]:
    at, w, limit = int(inv.params["step"]), int(inv.params["window"]), float(inv.params["max_ratio"])
    loss = view.loss()
    if len(loss) <= at:
        return []
    ratio = loss_ratio(loss, at, w)
    if math.isnan(ratio) or ratio <= limit:
        return []
    sev: Severity = "high" if ratio >= 1.0 else "medium"
    shown = "not finite" if math.isinf(ratio) else f"{ratio:.0%} of its start"
    return [Violation(inv, at, f"By step {at} the loss is {shown} (healthy runs: at most {limit:.0%})", sev,
                      data={"ratio": ratio, "max_ratio": limit})]


def _envelope(view: RunView, inv: Invariant, invs: InvariantSet) -> list[Violation]:
    assert inv.kind is not None and inv.subject is not None and inv.stat is not None
    if view.entity(inv.kind, inv.subject) is None:
        return []
    series = envelope_series(view, inv.kind, inv.stat, inv.params.get("source", "stat")).get(inv.subject, {})
    scale = inv.params["scale"]
    phase_band = Band.from_list(inv.params["band"], scale)
    per_step = inv.params.get("steps", {})
    last = invs.last_step
    for step in sorted(series):
        if last is not None and step > last:
            break  # past the healthy runs' length: nothing was learned there
        if phase_of(step, invs.bounds) != inv.phase:
            continue
        value = series[step]
        since = view.nonfinite_from
        if since is not None and step >= since and \
                (math.isnan(value) or step in view.nonfinite_samples):
            continue  # statistics of a model full of NaN, once the run went non-finite, are INV005's
        b = Band.from_list(per_step[str(step)], scale) if str(step) in per_step else phase_band
        excess = b.excess(value)
        if excess <= 0:
            continue
        words = STAT_WORDS.get((inv.kind, inv.stat), inv.stat)
        shown = f"{value:.0%}" if inv.stat == "grad_share" else f"{value:.3g}"
        band_text = f"{b.lo:.0%}-{b.hi:.0%}" if inv.stat == "grad_share" else b.text()
        sev: Severity = "high" if excess >= 3 else "medium"
        what = view.describe(inv.kind, inv.subject)
        return [Violation(inv, step, f"{words[0].upper()}{words[1:]} of {what} is {shown} at step {step}, outside "
                          f"the healthy {band_text}", sev, view.module_of(inv.kind, inv.subject),
                          (STAT_RANK.get(inv.stat, 0), *view.order(inv.kind, inv.subject)),
                          data={"subject": inv.subject, "stat": inv.stat, "value": value, "band": [b.lo, b.hi],
                                "margins_outside": round(excess, 2) if math.isfinite(excess) else "inf"})]
    return []


_CHECKS: dict[str, Callable[[RunView, Invariant, InvariantSet], list[Violation]]] = {
    "structure": _structure, "optimizer": _optimizer, "settings": _settings, "lr": _lr, "updates": _updates,
    "zero_grad": _zero_grad, "finite": _finite, "loss_progress": _loss_progress, "envelope": _envelope,
    "grad_share": _envelope,
}
_FIXES = {
    "INV002": "Put the hyperparameter back to the healthy runs' value, or learn again from healthy runs that use the new one.",
    "INV003": "Build the optimizer over model.parameters() after the model is final; freeze only on purpose.",
    "INV004": "Call optimizer.zero_grad(set_to_none=True) once per step, before backward().",
}


def violations(record: Any, invariants: InvariantSet) -> list[Violation]:
    """Every violated invariant, in the order: step, then model order."""
    view = RunView(record)
    out = []
    for inv in invariants.invariants:
        check_one = _CHECKS.get(inv.rule)
        if check_one is not None:
            out += check_one(view, inv, invariants)
    return sorted(out, key=lambda v: (v.step if v.step is not None else -1, v.order))


def check(record: Any, invariants: InvariantSet) -> list[Finding]:
    """One finding per violated code, at its first violation."""
    return _findings(violations(record, invariants), invariants)


def _findings(found: list[Violation], invariants: InvariantSet) -> list[Finding]:
    by_code: dict[str, list[Violation]] = {}
    for v in found:
        by_code.setdefault(v.invariant.code, []).append(v)
    findings = []
    for code, vs in by_code.items():
        first = vs[0]
        spec = CATALOGUE[code]
        severity = max((v.severity for v in vs), key=lambda s: SEVERITY_ORDER[s])
        more = f" (and {len(vs) - 1} more)" if len(vs) > 1 else ""
        recs = [Recommendation("best_practice", "See what changed since the healthy runs: modeldebug diff GOOD THIS "
                               "(GOOD: one of the runs the invariants were learned from).")]
        if code in _FIXES:
            recs.insert(0, Recommendation("fix", _FIXES[code]))
        findings.append(spec.finding(
            severity=severity, confidence=0.8 if first.invariant.rule != "envelope" else 0.7,
            title=first.title + more,
            description=f"In the healthy runs, {first.invariant.description}. "
                        + (f"{len(vs)} violations of {code} invariants; the first at step {first.step}."
                           if len(vs) > 1 else ""),
            location=first.location, step=first.step,
            evidence={"against": invariants.path, "learned_from": len(invariants.learned_from), "violations": len(vs),
                      "first": [v.to_dict() for v in vs[:10]]},
            recommendations=recs))
    return findings


def _selected(found: list[Finding], config: Any) -> list[Finding]:
    """The invariant findings `--select`/`--ignore` keep: `--ignore INV005` drops it; a `--select` that
    names no invariant code (`--select GRD001`) keeps none of them."""
    if config is None or not (config.select or config.ignore):
        return found
    specs = CATALOGUE.family("invariant")
    select = [s for s in config.select if any(CATALOGUE.matches(sp, s) for sp in specs)]
    if config.select and not select:
        return []
    keep = {sp.code for sp in CATALOGUE.select(select, config.ignore, family="invariant")}
    return [f for f in found if f.code in keep]


def apply_against(report: Any, invariants: InvariantSet | None) -> Any:
    """Add the violations of `invariants` to `report` (ranked with its findings); `report` unchanged when None."""
    if invariants is None or getattr(report, "record", None) is None:
        return report
    from ..rules.ranking import rank

    vs = violations(report.record, invariants)
    found = _selected(_findings(vs, invariants), getattr(getattr(report, "diagnosis", None), "config", None))
    report.findings = rank(list(report.findings) + found, report.record.n_steps)
    report.run["against"] = {"file": invariants.path, "invariants": len(invariants.invariants),
                             "violated": len({id(v.invariant) for v in vs})}  # invariants, not findings
    learned = sorted({str(s["level"]) for s in invariants.learned_from if isinstance(s, dict) and s.get("level")})
    level = report.record.meta.get("level")
    if learned and level and level not in learned:  # other sampled steps: the envelopes judge other samples
        report.run["against"]["note"] = (f"learned at --level {', '.join(learned)}, this run is at --level {level}: "
                                         "learn and check at the same level")
    return report
