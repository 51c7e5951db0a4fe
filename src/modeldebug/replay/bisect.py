"""Bisect the model: the first module whose output leaves the healthy range, by halving the module list.

The modules are listed in the order their forward calls complete (children before their parent).
Each probe restores the step's weights and random state, runs the forward pass with a check on the
first half of the remaining candidates only, and keeps the half where the trouble starts: about
log2(N) forward passes, each watching at most half the model.

Healthy: every output value finite and, where the run's record holds the module's output standard
deviation on earlier sampled steps, that statistic inside its envelope: the band
`modeldebug.compare.bands.band` draws around those values (the margins `learn` uses).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..capture.stats import first_tensor
from ..compare.bands import Band, band
from .step import (
    autocast_for,
    batch_of,
    module_hooks,
    prepare,
    restore_rng,
    tensor_stats,
)

__all__ = ["BisectResult", "bisect_modules", "envelopes_from_record", "execution_order"]


@dataclass
class BisectResult:
    module: str | None  # the first module out of range, or None when every output stayed healthy
    type: str | None
    why: str
    inputs_finite: bool | None
    previous: str | None  # the module that completed just before it
    passes: int
    candidates: int


def envelopes_from_record(record_path: Path, before_step: int, kind: str | None = None) -> dict[str, Band] | None:
    """Each module's envelope of output std from the run's own record, on sampled steps before the trouble;
    None when the record is another run's (it saved no bundle of this `kind` at this step: a later run
    reused its name)."""
    if not record_path.is_file():
        return {}
    try:
        from ..record import Record

        record = Record.open(str(record_path))
        try:
            saved = record.meta.get("bundle")
            if kind is not None and not (isinstance(saved, dict) and saved.get("saved")
                                         and saved.get("trigger") == kind and saved.get("step") == before_step):
                return None
            out = {}
            for name, series in record.stat("std", kind="module").items():
                vals = [float(v) for s, v in zip(series.steps, series.values) if s < before_step and math.isfinite(v)]
                b = band(vals, "log", runs=1) if vals else None
                if b is not None:
                    out[name] = b
            return out
        finally:
            record.conn.close()
    except Exception:  # noqa: BLE001 - a damaged record: judge by finiteness alone
        return {}


def execution_order(model: nn.Module, run: Callable[[], None]) -> list[tuple[str, str]]:
    """(name, type) of every module, in the order its first forward call completed (the root, "", last)."""
    order: dict[str, str] = {}

    def seen(name: str, m: nn.Module, inp: Any, out: Any) -> None:
        order.setdefault(name, type(m).__name__)

    with module_hooks(model, None, seen):
        run()
    return list(order.items())


def _verdict(out: Any, name: str, envelopes: dict[str, Band]) -> str | None:
    """Why this output is out of the healthy range, or None."""
    t = first_tensor(out)
    if t is None:
        return None
    s = tensor_stats(t)
    if s["nan"] or s["inf"]:
        return f"its output holds {s['nan']} NaN and {s['inf']} Inf of {t.numel()} values"
    env = envelopes.get(name)
    if env is not None and env.excess(s["std"]) > 0:
        return f"its output std {s['std']:.4g} is outside its envelope {env.text()} on the run's earlier steps"
    return None


def bisect_modules(bundle: dict[str, Any], model: nn.Module, device: torch.device,
                   envelopes: dict[str, Band], *, before: str | None = None) -> BisectResult:
    """Halve the module list until one module is left: the first whose output is out of range
    (non-finite, or outside its envelope when `envelopes` has one); only modules that complete
    before `before` when it is given."""
    def forward() -> None:
        prepare(bundle, model, device)
        args, kwargs = batch_of(bundle, device)
        restore_rng(bundle)
        with torch.no_grad(), autocast_for(bundle, "forward", device):
            try:
                model(*args, **kwargs)
            except Exception:  # noqa: BLE001, S110 - a crash: the modules completed before it were checked
                pass  # a crash: the modules completed before it were still checked

    order = execution_order(model, forward)
    if before is not None:
        order = order[:[n for n, _ in order].index(before)] if before in dict(order) else order
    passes = 1
    found: dict[str, tuple[str, bool]] = {}

    def bad_among(names: list[str]) -> str | None:
        """The first of `names` (in completion order) out of range in one forward pass."""
        nonlocal passes
        passes += 1
        found.clear()

        def seen(name: str, m: nn.Module, inp: Any, out: Any) -> None:
            if name not in found:
                why = _verdict(out, name, envelopes)
                if why is not None and not all(bool(torch.isfinite(p).all()) for p in m.parameters(recurse=False)):
                    why += "; its own weights were already non-finite before the step"
                if why is not None:
                    found[name] = (why, all(_finite_input(x) for x in inp))

        with module_hooks(model, set(names), seen):
            forward()
        return next((n for n in names if n in found), None)

    lo, hi = 0, len(order)  # the first bad module lies in order[lo:hi]
    names = [n for n, _ in order]
    if not names or bad_among(names) is None:
        return BisectResult(None, None, "every module's output stayed in range", None, None, passes, len(names))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if bad_among(names[lo:mid]) is not None:
            hi = mid
        else:
            lo = mid
    culprit = names[lo]
    bad_among([culprit])
    why, inputs_ok = found.get(culprit, ("out of range", True))
    return BisectResult(culprit, dict(order)[culprit], why, inputs_ok, names[lo - 1] if lo > 0 else None,
                        passes, len(names))


def _finite_input(x: Any) -> bool:
    if isinstance(x, torch.Tensor):
        return not x.is_floating_point() or bool(torch.isfinite(x).all())
    return True
