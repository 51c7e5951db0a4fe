"""The optimizer constructor a fix writes: the run's own, as recorded, with only what the fix changes.

A fix that says "lower the learning rate" and prints ``torch.optim.SGD(model.parameters(), lr=0.03)``
for a run built with ``SGD(..., lr=0.5, momentum=0.9)`` silently drops the momentum: pasted in, it
changes two things. The `optimizer` event holds the parameter groups with every hyperparameter, so
the constructor is written from them: every setting that differs from the class's default is kept
(momentum, nesterov, betas, eps, weight_decay, ...), the fix's own settings replace or add theirs.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from .context import Context

__all__ = ["optimizer_ctor", "recorded_settings"]

#: Written by others into a parameter group, not arguments of the constructor (schedulers' `initial_lr`).
_NOT_ARGUMENTS = frozenset({"params", "initial_lr", "name", "param_names"})


def _class_defaults(name: str) -> dict[str, Any] | None:
    """The constructor's keyword defaults of torch.optim.`name`, or None when torch has no such class."""
    try:
        import torch.optim
        cls = getattr(torch.optim, name, None)
        if not isinstance(cls, type):
            return None
        params = inspect.signature(cls.__init__).parameters
    except (ImportError, TypeError, ValueError):
        return None
    return {k: p.default for k, p in params.items() if k not in ("self", "params") and p.default is not inspect.Parameter.empty}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return bool(a == b)


def _value(v: Any) -> str:
    """`v` as Python source: tuples for lists (betas), numbers short."""
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, (int, float)):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_value(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    return repr(v)


def recorded_settings(ctx: Context) -> tuple[str, dict[str, Any], int] | None:
    """(class name, its learning rate and the settings that differ from the class's defaults, number of
    groups) of the run's first optimizer; settings that differ between its groups are left to the groups."""
    events = ctx.record.events("optimizer")
    if not events:
        return None
    data = events[0].data
    name = str(data.get("type") or "SGD")
    groups = [g for g in data.get("groups") or [] if isinstance(g, dict)]
    defaults = _class_defaults(name)
    settings: dict[str, Any] = {}
    for key, value in (groups[0] if groups else {}).items():
        if key in _NOT_ARGUMENTS or not isinstance(value, (bool, int, float, str, list, tuple, type(None))):
            continue
        if any(not _same(g.get(key), value) for g in groups[1:]):
            continue  # per group: kept where the groups are built
        if defaults is not None and (key not in defaults or (key != "lr" and _same(defaults[key], value))):
            continue  # not an argument of the class, or its default
        if defaults is None and value in (None, False):
            continue  # a class we cannot read: keep what was set, not the off switches
        settings[key] = value
    return name, settings, len(groups)


def optimizer_ctor(ctx: Context, name: str | None = None, note: str | None = None, **changed: Any) -> str:
    """``optimizer = torch.optim.NAME(model.parameters(), lr=..., <the run's settings>)`` with `changed`
    put in, for the run's optimizer (or SGD when none was recorded); `name` replaces its class, `note`
    ends the line as a comment."""
    found = recorded_settings(ctx)
    run_name, settings, n_groups = found if found is not None else ("SGD", {}, 1)
    cls = name or run_name
    if name is not None and name != run_name:  # another class: keep only what it takes
        defaults = _class_defaults(name)
        settings = {k: v for k, v in settings.items() if defaults is None or k in defaults}
    lr = changed.pop("lr", settings.pop("lr", None))
    args = {**({"lr": lr} if lr is not None else {}), **settings, **changed}
    where = "param_groups" if n_groups > 1 else "model.parameters()"
    prefix = "torch.optim." if _class_defaults(cls) is not None else ""
    call = f"optimizer = {prefix}{cls}({where}" + "".join(f", {k}={_value(v)}" for k, v in args.items()) + ")"
    notes = ([f"param_groups: the {n_groups} groups you built it from"] if n_groups > 1 else []) + ([note] if note else [])
    return call + (f"   # {'; '.join(notes)}" if notes else "")
