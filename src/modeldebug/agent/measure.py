"""What the agent's tools measure, written the way capture writes a run, and judged by the same rules.

A tool measures on a copy of the model and writes its numbers into an in-memory record under the
names `modeldebug run` uses: modules and parameters named and registered by capture's `Registry`,
activation statistics from `capture.stats` under their stored names (`dead_frac`, `saturated_frac`),
`grad_norm`, `param_norm` and `update_ratio` per parameter, per-step columns in seconds. `judge`
then runs the catalogue's rules for the codes the tool measures for, with the user's config: a dead
ReLU found by `LayerAnalyzer` is ACT001's finding, with ACT001's threshold and wording.

```python
m = Measurement(model, optimizer=opt)
...forward with a hook calling m.activations(0, module, output)...
m.end_step(0, loss=float(loss))
findings = m.judge(config, ("ACT001", "ACT002"))
```
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..capture import stats as S
from ..capture.registry import Registry
from ..catalogue import CATALOGUE, Finding
from ..config import DebuggingConfig
from ..record import Record, RunWriter

__all__ = ["Measurement", "judge", "scoped", "selected"]

#: The families whose rules judge a training record.
_RECORD_FAMILIES = ("training", "plugin")


def scoped(config: DebuggingConfig, codes: Iterable[str] | None = None) -> DebuggingConfig:
    """`config` with its rule selection narrowed to `codes` (None: every rule that judges records).

    The user's thresholds are kept, and so is their selection: a code their `select` leaves out or
    their `ignore` names stays out. A selection that keeps nothing judges nothing (never an error:
    the tool's numbers still stand).
    """
    from ..catalogue.plugins import load_entry_points

    load_entry_points()
    wanted = None if codes is None else set(codes)
    pool = [s for s in CATALOGUE if s.family in _RECORD_FAMILIES]
    keep = [s.code for s in pool
            if (wanted is None or s.code in wanted)
            and (not config.select or any(CATALOGUE.matches(s, sel) for sel in config.select))
            and not any(CATALOGUE.matches(s, sel) for sel in config.ignore)]
    if keep:
        return config.model_copy(update={"select": keep, "ignore": []})
    return config.model_copy(update={"select": [], "ignore": [s.code for s in pool]})


def selected(config: DebuggingConfig, finding: Finding) -> bool:
    """Does `config`'s select/ignore keep `finding`? (For the probes' codes, which no record rule runs.)"""
    spec = CATALOGUE[finding.code] if finding.code in CATALOGUE else None
    if spec is None:
        return True
    return ((not config.select or any(CATALOGUE.matches(spec, s) for s in config.select))
            and not any(CATALOGUE.matches(spec, s) for s in config.ignore))


def judge(record: Record, config: DebuggingConfig, codes: Iterable[str] | None = None) -> list[Finding]:
    """The findings of the rules for `codes` on `record`, judged with `config`'s thresholds."""
    from ..rules import analyze

    return analyze(record, scoped(config, codes))


class Measurement:
    """One tool pass as a run record: `model` (and `optimizer`) registered as capture registers them.

    Statistics stay on the device until `end_step`, which copies the step's numbers to the host at
    once, writes them with the step's columns, and keeps the latest value of each by entity name in
    `stats` for the tool's own result.
    """

    def __init__(self, model: nn.Module, *, optimizer: torch.optim.Optimizer | None = None,
                 device: torch.device | str | None = None) -> None:
        self.writer = RunWriter(":memory:")
        self.registry = Registry(self.writer)
        self.registry.add_model(model)
        if optimizer is not None:
            self.registry.add_optimizer(optimizer)
        if device is not None:
            self.writer.set_meta(device=str(device))
        self.stats: dict[str, dict[str, float]] = {}
        self.steps = 0
        self._pending: list[tuple[int, list[tuple[int, str, str]], torch.Tensor]] = []

    def name(self, module: nn.Module) -> str | None:
        """The module's name in the record (the qualified name; the model's class name for the root)."""
        info = self.registry.modules.get(module)
        return info.name if info is not None else None

    # -- what a tool measures --------------------------------------------------------------------------
    def activations(self, step: int, module: nn.Module, output: Any) -> bool:
        """Capture's activation statistics of `module`'s output, plus saturation for bounded activations.

        False (and nothing written) when the module is not the model's or its output cannot be measured.
        """
        info = self.registry.modules.get(module)
        t = S.first_tensor(output)
        if info is None or t is None or S.unmeasurable(t) is not None or t.numel() == 0:
            return False
        values = [S.activation_stats(t)]
        names = list(S.ACTIVATION_STATS)
        if info.type in S.SATURATING:
            values.append(S.saturation(t, info.type))
            names.append("saturated_frac")
        self._pending.append((step, [(info.eid, n, info.name) for n in names],
                              torch.cat([v.reshape(-1).to(torch.float64) for v in values])))
        return True

    def gradients(self, step: int) -> None:
        """The gradient norm of every learnable parameter that has a gradient now (capture's `grad_norm`)."""
        held = [(p, info) for p, info in self.registry.tracked_params() if p.grad is not None]
        if held:
            self._pending.append((step, [(info.eid, "grad_norm", info.name) for _, info in held],
                                  S.stacked_norms([p.grad.detach() for p, _ in held]).to(torch.float64)))

    def before_update(self) -> list[tuple[torch.Tensor, torch.Tensor, Any]]:
        """A copy of every learnable parameter, to measure what the optimizer step changes."""
        return [(p, p.detach().clone(), info) for p, info in self.registry.tracked_params()]

    def after_update(self, step: int, before: list[tuple[torch.Tensor, torch.Tensor, Any]]) -> None:
        """Update-to-weight ratio and weight norm after the step, as capture measures them."""
        if not before:
            return
        ps = [p.detach() for p, _, _ in before]
        d = S.norms(S.differences(ps, [b for _, b, _ in before]))
        w = S.norms(ps)
        ratio = torch.stack(d).to(torch.float64) / torch.stack(w).to(torch.float64).clamp_min(1e-30)
        for stat, values in (("update_ratio", ratio), ("param_norm", torch.stack(w).to(torch.float64))):
            self._pending.append((step, [(info.eid, stat, info.name) for _, _, info in before], values))

    def end_step(self, step: int, **columns: Any) -> None:
        """Write the step: its statistics (one copy to the host) and `columns` (loss, lr, t_step, ...)."""
        pending = [p for p in self._pending if p[0] == step]
        self._pending = [p for p in self._pending if p[0] != step]
        if pending:
            device = pending[0][2].device
            flat = torch.cat([v.to(device) for _, _, v in pending]).tolist()
            rows = [key for _, keys, _ in pending for key in keys]
            self.writer.add_stats(step, [(eid, stat, v) for (eid, stat, _), v in zip(rows, flat)])
            for (_, stat, name), v in zip(rows, flat):
                self.stats.setdefault(name, {})[stat] = v
            grads = [v for (_, stat, _), v in zip(rows, flat) if stat == "grad_norm"]
            if grads and "grad_norm" not in columns:  # the step's total, as capture computes it
                columns["grad_norm"] = math.sqrt(sum(v * v for v in grads))
        self.writer.add_step(step, **{k: v for k, v in columns.items() if v is not None})
        self.steps = max(self.steps, step + 1)

    # -- the verdict ------------------------------------------------------------------------------------
    def record(self) -> Record:
        """Everything written so far, as a record the rules read."""
        self.writer.set_meta(steps=self.steps)
        self.writer.flush()
        return Record(self.writer.conn)

    def judge(self, config: DebuggingConfig, codes: Iterable[str]) -> list[Finding]:
        """The catalogue's findings for `codes` on what was measured, with the user's `config`."""
        return judge(self.record(), config, codes)

