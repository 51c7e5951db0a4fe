"""UpdateCollector: what an optimizer step does to the weights, on sampled steps.

Before a sampled optimizer step, a copy of every tracked parameter; after it, the norm of each
change and of each weight (fused per device and dtype): ``update_ratio`` (‖Δw‖/‖w‖) and
``param_norm`` rows. The copy is the cost, so it is taken only when a rule reads either measure.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import measures as M
from . import stats as S
from .buffer import stats_sink

__all__ = ["UpdateCollector"]


class UpdateCollector:
    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.on = tracer.plan.any((M.UPDATE_RATIO, M.PARAM_NORM))
        self._before: list[tuple[torch.Tensor, int, torch.Tensor]] | None = None

    def before_step(self) -> None:
        """Copy the weights the optimizer is about to change."""
        if self.on:
            self._before = [(p, info.eid, p.detach().clone()) for p, info in self.tracer.registry.tracked_params()]

    def after_step(self, step: int) -> None:
        """The step's update ratios and weight norms (they ride on the next step's host copy)."""
        before, self._before = self._before, None
        if not before:
            return
        ps = [p.detach() for p, _, _ in before]
        d = S.norms(S.differences(ps, [b for _, _, b in before]))
        w = S.norms(ps)
        if not d:
            return
        tr = self.tracer
        eids = [eid for _, eid, _ in before]
        w64 = torch.stack(w).to(torch.float64)
        ratio = torch.stack(d).to(torch.float64) / w64.clamp_min(1e-30)
        tr.buffer.add(torch.cat([ratio, w64]), stats_sink(
            tr.writer, step, [(e, M.UPDATE_RATIO.name) for e in eids] + [(e, M.PARAM_NORM.name) for e in eids]))

    def weights_only(self, step: int) -> None:
        """Weight norms at the end of a sampled step no optimizer stepped (hand-written updates):
        the `param_norm` rows (no update ratio: nothing marks where such an update starts). They
        ride on the next step's host copy, as the optimizer's do."""
        if M.PARAM_NORM not in self.tracer.plan:
            return
        tracked = self.tracer.registry.tracked_params()
        if not tracked:
            return
        tr = self.tracer
        w = torch.stack(S.norms([p.detach() for p, _ in tracked])).to(torch.float64)
        tr.buffer.add(w, stats_sink(tr.writer, step, [(info.eid, M.PARAM_NORM.name) for _, info in tracked]))

    def drop(self) -> None:
        self._before = None
