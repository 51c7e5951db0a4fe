"""A replay's result as text (the terminal) and as a JSON-safe dict (`--json`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .core import ReplayResult

__all__ = ["to_dict", "to_text"]

_STATUS = {"bit-for-bit": "REPRODUCED bit for bit", "symptom": "reproduced (the same symptom, not the same bits)",
           "not-reproduced": "NOT reproduced"}


def _culprit(r: ReplayResult) -> list[str]:
    b = r.bisect
    if b is None:
        return []
    head = f"bisect ({b.passes} forward passes over {b.candidates} modules): "
    kind = r.bundle["trigger"]["kind"]
    if b.module is None:
        if kind == "loss_spike":
            scope = (f"within the envelopes of {r.envelopes} modules from the run's earlier sampled steps"
                     if r.envelopes else "finite (the record beside the bundle gave no envelopes)")
            return [head + f"every module's output stayed {scope}: the loss rose with no layer leaving its range"]
        if kind == "crash":
            where = (r.bundle["trigger"].get("exception") or {}).get("module")
            return [head + "every module that completed stayed in range"
                    + (f"; the exception came from inside {where}" if where else "")]
        if kind == "nonfinite_gradient":
            return [head + "every module's output stayed finite: the non-finite gradient was born in the backward "
                    "pass" + (" (anomaly mode names the operation above)" if r.anomaly and r.anomaly.anomaly else "")]
        return [head + b.why + "; the trouble came after the model's output (the loss, or backward)"]
    model = r.bundle["model"].get("name") or "the model"
    name = f"{b.module} ({b.type})" if b.module else \
        f"{model}'s own forward() code" + (f", after its last submodule {b.previous}" if b.previous else "")
    out = [head + f"first module out of range: {name}: {b.why}"]
    if b.inputs_finite is False and b.previous is None:
        out.append("  its input was already non-finite: " + (
            "the batch the model was called with holds NaN/Inf (the data brought it)" if not r.batch_finite else
            f"{model}'s own forward() made it before this first module"))
    elif b.inputs_finite is False:
        out.append(f"  its input was already non-finite although {b.previous or 'the module before it'} was "
                   "in range: a functional operation in forward() between them produced it")
    e = r.earlier
    if e is not None:
        out.append(f"  before it, {e.module} ({e.type}) already left its healthy range: {e.why}")
    return out


def to_text(r: ReplayResult) -> str:
    t = r.bundle["trigger"]
    s = r.bundle.get("script") or {}
    lines = [f"modeldebug replay {r.path}",
             f"  step {t['step']} of {s.get('path') or 'the run'}: {t['kind'].replace('_', ' ')} ({t['detail']})",
             f"  model built with {r.built_with}; optimizer: {r.optimizer}; device: {r.device}"]
    lines += [f"  warning: {w}" for w in r.warnings]
    lines.append(f"{_STATUS[r.status]}")
    lines += [f"  {x}" for x in r.lines]
    a = r.anomaly
    if a is not None:
        lines.append("anomaly mode and every statistic:")
        first_bad = next((m for m in a.modules if not m.finite), None)
        if a.anomaly:
            lines.append(f"  autograd: {a.anomaly}" + (" (anomaly mode checks the backward pass; the value was "
                                                       "born in the forward pass, below)" if first_bad else ""))
        for m in a.modules[:40]:
            mark = "  <- first non-finite" if m is first_bad else ""
            lines.append(f"  {m.name or '(model)':24} {m.type:14} mean {m.mean:10.4g} std {m.std:10.4g} "
                         f"min {m.min:10.4g} max {m.max:10.4g} nan {m.nan} inf {m.inf}{mark}")
        if len(a.modules) > 40:
            lines.append(f"  ... {len(a.modules) - 40} more module calls (--json has them all)")
    lines += _culprit(r)
    if r.nonfinite_state:
        lines.append(f"the model's state was already non-finite before this step in {len(r.nonfinite_state)} "
                     f"tensor(s): {', '.join(r.nonfinite_state[:6])}")
    return "\n".join(lines)


def to_dict(r: ReplayResult) -> dict[str, Any]:
    t = r.bundle["trigger"]
    out: dict[str, Any] = {
        "bundle": r.path, "trigger": {k: v for k, v in t.items()}, "script": r.bundle.get("script"),
        "built_with": r.built_with, "optimizer": r.optimizer, "device": r.device, "status": r.status,
        "reproduced": r.reproduced, "details": r.lines, "warnings": r.warnings,
        "nonfinite_state": r.nonfinite_state, "batch_finite": r.batch_finite, "envelopes": r.envelopes,
    }
    if r.anomaly is not None:
        out["anomaly"] = {"autograd": r.anomaly.anomaly, "modules": [asdict(m) for m in r.anomaly.modules],
                          "gradients": r.anomaly.grad_stats}
    if r.bisect is not None:
        out["bisect"] = asdict(r.bisect)
    if r.earlier is not None:
        out["left_envelope_before"] = asdict(r.earlier)
    return out
