"""GradientCollector: gradient norms, at the rate the rules read them.

Every step, one fused ``_foreach_norm`` over the tracked gradients (per device and dtype) gives each
parameter's norm ON THE DEVICE; reduced there to the step's total (the ``grad_norm`` column, whose
finiteness is the step's non-finite flag) and, when the optimizers have two or more parameter
groups, one norm per group. Only those few numbers go to the host. The per-parameter norms are kept
(``param.grad_norm`` rows) on sampled steps, and on steps where the set of parameters that have a
gradient changes (so "never received a gradient" stays exact). When the total turns non-finite on
another step, the per-parameter norms of that step are copied then, once, to name the parameters.

So the per-step record cost does not grow with depth: a 500-layer model writes one step row, not a
thousand statistic rows, on its unsampled steps.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .. import measures as M
from . import stats as S
from .buffer import stats_sink

__all__ = ["GradientCollector"]

_GRAD = M.PARAM_GRAD_NORM.name


class GradientCollector:
    """Per-step total and group norms; per-parameter norms on sampled steps."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.on = tracer.config.monitoring.gradients
        self.per_param = M.PARAM_GRAD_NORM in tracer.plan
        self.per_group = M.GROUP_GRAD_NORM in tracer.plan
        self._eids: list[int] = []  # the parameters with a gradient at the last measured step
        self._groups: tuple[int, tuple[torch.Tensor, list[int]] | None] | None = None  # (registry version, index)
        self._last: tuple[torch.Tensor, list[int]] | None = None  # this step's norms, for a non-finite total

    def collect(self, step: int, sampled: bool) -> None:
        """Measure the gradients held now (before the optimizer step changes the weights)."""
        self._last = None
        if not self.on:
            return
        tr = self.tracer
        grads, eids = [], []
        for p, info in tr.registry.tracked_params():
            if p.grad is not None:
                grads.append(p.grad.detach())
                eids.append(info.eid)
        if not grads:
            return
        norms = S.stacked_norms(grads)
        changed = eids != self._eids
        self._eids = eids
        self._last = (norms, eids)
        # in float64: the squares of float32 norms above 1.8e19 would overflow
        total = torch.linalg.vector_norm(norms, dtype=torch.float64).reshape(1)
        tr.buffer.add(total, tr.assembler.grad_norm_sink)
        if self.per_group:
            index = self._group_index(eids, changed)
            if index is not None:
                idx, group_eids = index
                squares = torch.zeros(len(group_eids), dtype=torch.float64, device=norms.device)
                group = squares.index_add_(0, idx.to(norms.device), norms.double().square()).sqrt()
                tr.buffer.add(group, stats_sink(tr.writer, step, [(g, _GRAD) for g in group_eids]))
        if self.per_param and (sampled or changed):
            tr.buffer.add(norms, stats_sink(tr.writer, step, [(e, _GRAD) for e in eids]))

    def nonfinite_params(self) -> list[str]:
        """Names of the parameters whose gradient norm is not finite at this step (forward order)."""
        if self._last is None:
            return []
        norms, eids = self._last
        names = self.tracer.registry.param_names()
        return [names.get(e, str(e)) for e, v in zip(eids, norms.tolist()) if not math.isfinite(v)]

    def _group_index(self, eids: list[int], changed: bool) -> tuple[torch.Tensor, list[int]] | None:
        """Each parameter's group (a position in the group list) and the groups' entities; None with
        fewer than two groups. Cached until the parameters or the registry change."""
        version = self.tracer.registry.version
        if changed or self._groups is None or self._groups[0] != version:
            groups = self.tracer.registry.groups()
            built = None
            if len({groups.get(e) for e in eids}) >= 2:
                order: dict[str | None, int] = {}
                index = [order.setdefault(groups.get(e), len(order)) for e in eids]
                reg = self.tracer.registry
                built = (torch.tensor(index), [reg.group_entity(g or "ungrouped") for g in order])
            self._groups = (version, built)
        return self._groups[1]
