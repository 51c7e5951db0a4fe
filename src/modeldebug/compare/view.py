"""RunView: a record's numbers in the shapes comparisons ask for (by step, by entity, in model order)."""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

import numpy as np

__all__ = ["RunView"]


class RunView:
    """Read-only helpers over one `Record`."""

    def __init__(self, record: Any, label: str | None = None) -> None:
        self.record = record
        self.label = label or (record.path if record.path != ":memory:" else "run")
        self.n_steps = int(record.n_steps)

    # -- per-step columns ----------------------------------------------------------------------
    def column(self, name: str) -> dict[int, float]:
        """Step -> value (NaN kept: NaN is how a non-finite or missing value reads)."""
        try:
            s = self.record.column(name)
        except KeyError:
            return {}
        return dict(zip(s.steps.tolist(), s.values.tolist()))

    @cached_property
    def nonfinite_from(self) -> int | None:
        """The step of the run's first non-finite loss or gradient (its `nonfinite` event), else None."""
        steps = [e.step for e in self.record.events("nonfinite") if e.step is not None]
        return min(steps) if steps else None

    @cached_property
    def nonfinite_samples(self) -> set[int]:
        """The sampled steps where some module's output held a NaN or an Inf (its `nonfinite` flag, or a
        mean the record could not store as a number): every statistic of such a step describes NaNs."""
        out: set[int] = set()
        for series in self.stat("module", "nonfinite").values():
            out.update(s for s, v in series.items() if v > 0)
        for series in self.stat("module", "mean").values():
            out.update(s for s, v in series.items() if not math.isfinite(v))
        return out

    def steps(self) -> list[int]:
        return sorted(self.column("loss"))

    # -- entities and their statistics --------------------------------------------------------------
    @cached_property
    def _entities(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for e in self.record.entities():
            out.setdefault(e.kind, []).append(e)
        return out

    def names(self, kind: str) -> list[str]:
        """Entity names of `kind`, in the order they were first seen (the forward order for modules)."""
        return [e.name for e in self._entities.get(kind, [])]

    def entity(self, kind: str, name: str) -> Any:
        return self.record.entity(name, kind)

    @cached_property
    def _module_order(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names("module"))}

    def module_of(self, kind: str, name: str) -> str | None:
        """The module a parameter belongs to (the module itself for a module)."""
        if kind == "module":
            return name
        if kind == "param":
            e = self.entity("param", name)
            module = e.info.get("module") if e is not None else None
            return module if module else name.rsplit(".", 1)[0] if "." in name else None
        return None

    def order(self, kind: str, name: str) -> tuple[int, int]:
        """A sort key in model order: inputs first, then modules (forward order), parameters with their module."""
        if kind == "input":
            return (-1, 0)
        module = self.module_of(kind, name)
        pos = self._module_order.get(module or "", len(self._module_order))
        return (pos, 1 if kind == "param" else 0)

    def series(self, kind: str, name: str, stat: str) -> dict[int, float]:
        """Step -> value of one statistic of one entity (empty if never recorded)."""
        s = self.record.series(name, stat, kind=kind)
        return dict(zip(s.steps.tolist(), s.values.tolist()))

    def stat(self, kind: str, stat: str) -> dict[str, dict[int, float]]:
        """Every entity's series of one statistic: name -> step -> value."""
        return {name: dict(zip(s.steps.tolist(), s.values.tolist()))
                for name, s in self.record.stat(stat, kind=kind).items()}

    @cached_property
    def module_params(self) -> dict[str, dict[str, dict[int, float]]]:
        """Per-parameter statistics folded into their module (a Linear's weight and bias together):
        stat -> module -> step -> value, for `grad_norm` and `param_norm` (root of the sum of squares)
        and `update_ratio` (|dw|/|w| of the module's parameters as one vector). A module's small
        parameters (biases) are noisy alone; together with the weights they are not."""
        grads, norms, ratios = (self.stat("param", s) for s in ("grad_norm", "param_norm", "update_ratio"))
        members: dict[str, list[str]] = {}
        for name in self.names("param"):
            module = self.module_of("param", name)
            if module is not None:
                members.setdefault(module, []).append(name)
        out: dict[str, dict[str, dict[int, float]]] = {"grad_norm": {}, "param_norm": {}, "update_ratio": {}}
        for module, params in members.items():
            for stat, source in (("grad_norm", grads), ("param_norm", norms)):
                steps = sorted({s for p in params for s in source.get(p, {})})
                if steps:
                    out[stat][module] = {s: math.sqrt(sum(source[p][s] ** 2 for p in params if s in source.get(p, {})))
                                         for s in steps}
            steps = sorted({s for p in params for s in ratios.get(p, {}) if s in norms.get(p, {})})
            values = {}
            for s in steps:
                have = [p for p in params if s in ratios.get(p, {}) and s in norms.get(p, {})]
                moved = math.sqrt(sum((ratios[p][s] * norms[p][s]) ** 2 for p in have))
                size = math.sqrt(sum(norms[p][s] ** 2 for p in have))
                values[s] = moved / size if size > 0 else math.nan
            if values:
                out["update_ratio"][module] = values
        return out

    def describe(self, kind: str, name: str) -> str:
        """`module '2' (Linear)`, `parameter 2.weight`, `the input`."""
        if kind == "input":
            return "the model's input"
        if kind == "param":
            return f"parameter {name}"
        e = self.entity(kind, name)
        typ = f" ({e.type})" if e is not None and e.type else ""
        return f"module '{name}'{typ}"

    # -- loss ------------------------------------------------------------------------------------------
    def loss(self) -> np.ndarray:
        """The loss of every step in step order (NaN where not finite)."""
        col = self.column("loss")
        return np.array([col[s] for s in sorted(col)], dtype=float)


def median(values: list[float] | np.ndarray) -> float:
    xs = [float(v) for v in values if math.isfinite(float(v))]
    return float(np.median(xs)) if xs else math.nan
