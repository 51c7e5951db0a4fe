"""ForwardCollector: what the forward pass shows, on sampled steps and in two per-step counters.

- Module outputs (leaf modules, training forward passes, first call per step): the activation
  statistics the plan asks for on that module type (`measures.ACTIVATION_STATS`), the saturated
  fraction of bounded activations, a histogram at ``comprehensive``, and the ``training`` flag of
  mode-sensitive modules.
- The model's input batch: `measures.INPUT_STATS`.
- Per step: forward passes in eval mode with grad, and in train mode without grad.

Everything stays on the device (the step buffer copies it once); one odd module output (sparse,
meta, nested, complex, integer) switches off that module alone, and says why once.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .. import measures as M
from . import stats as S
from .buffer import stats_sink
from .registry import ModuleInfo

__all__ = ["ForwardCollector"]

_SATURATED = M.SATURATED_FRAC.name
_TRAINING = M.TRAINING_FLAG.name
_EVAL, _NOGRAD = M.FWD_EVAL_MODE.name, M.FWD_TRAIN_MODE_NOGRAD.name
# Outputs of at most this many values are reduced together with the others of their shape.
_BATCH_MAX_NUMEL = 1 << 14
# On the CPU, fewer outputs than this of one shape are reduced one at a time (measured: a batch
# costs ~120 µs however few it holds, one output ~40 µs).
_BATCH_MIN = 4


def _alias_key(t: torch.Tensor) -> tuple[Any, ...]:
    """What makes two tensors hold the same values in the same order while both are alive."""
    return (t.data_ptr(), t.shape, t.stride(), t.dtype, t.device, t._version)


class ForwardCollector:
    """Activation, input and mode measures of one tracer."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        plan = tracer.plan
        self.inputs = plan.any(M.INPUT_STATS)
        self.input_entities = self.inputs or M.MODEL_INPUT in plan
        self.input_names = [m.name if m in plan else None for m in M.INPUT_STATS]
        self.histograms = M.ACTIVATION_HISTOGRAM in plan
        self.bins = tracer.config.histogram_bins
        self._input_eids: dict[str, int] = {}
        self._sampled_modules: set[int] = set()
        self.modes = {_EVAL: 0, _NOGRAD: 0}
        # small outputs waiting for their batched statistics: (shape, dtype, device, names) -> (entity, copy)
        self._pending: dict[tuple[Any, ...], list[tuple[int, torch.Tensor]]] = {}
        # outputs measured (names, values) or copied ("copy", the copy) this step, by storage, layout
        # and version, with the tensor (weakly: it must be alive for its memory not to be reused)
        self._same: dict[tuple[Any, ...], tuple[weakref.ref[torch.Tensor], tuple[str, ...] | str, Any]] = {}

    def flush(self) -> None:
        """The statistics of the small outputs kept this step, one batch per shape (into the step buffer)."""
        pending, self._pending = self._pending, {}
        tr = self.tracer
        for (_, _, _, names), items in pending.items():
            if not items:
                continue
            try:
                if len(items) < _BATCH_MIN and items[0][1].device.type == "cpu":
                    # a few: one at a time (the CPU path's ~40 µs each beats the batch's fixed ~120 µs)
                    done: dict[int, list[float] | torch.Tensor] = {}  # a copy shared by aliases: once
                    for eid, t in items:
                        if id(t) not in done:
                            done[id(t)] = S.activation_values(t, names)
                        self._add(eid, done[id(t)], names)
                    continue
                values = S.activation_stats_batched(torch.stack([t for _, t in items]), names)
            except Exception as exc:  # a tensor subclass the statistics cannot reduce
                tr.skip(f"{len(items)} modules", f"the statistics failed on their outputs ({type(exc).__name__}: {exc})")
                continue
            rows = [(eid, n) for eid, _ in items for n in names]
            tr.buffer.add(values.reshape(-1), stats_sink(tr.writer, tr.step, rows))

    def _add(self, eid: int, values: list[float] | torch.Tensor, names: Sequence[str | None]) -> None:
        """Statistic rows `names` of entity `eid`: floats measured on the CPU, or a device tensor."""
        tr = self.tracer
        sink = stats_sink(tr.writer, tr.step, [(eid, n) for n in names])
        if type(values) is list:
            tr.buffer.add_host(values, sink)
        else:
            tr.buffer.add(values, sink)

    def new_step(self) -> None:
        self._sampled_modules.clear()
        self._same.clear()

    def _measured(self, eid: int, t: torch.Tensor, names: tuple[str, ...]) -> bool:
        """Were these very values measured this step, as another module's output (a Dropout(0.0)
        or an Identity returns its input, the same tensor)? Then that module's numbers are this
        one's: the same data (same storage, layout and version; the tensor is still alive, so its
        memory cannot have been reused), the same statistics."""
        seen = self._same.get(_alias_key(t))
        if seen is None or seen[0]() is None or seen[1] != names:
            return False
        self._add(eid, seen[2], names)
        return True

    def end_step(self) -> dict[str, int]:
        cols = self.modes
        self.modes = dict.fromkeys(cols, 0)
        return cols

    def count_mode(self, module: nn.Module, grad: bool) -> None:
        if grad and not module.training:
            self.modes[_EVAL] += 1
        elif not grad and module.training:
            self.modes[_NOGRAD] += 1

    # -- module outputs ---------------------------------------------------------------------------
    def output(self, module: nn.Module, info: ModuleInfo, output: Any) -> None:
        """A leaf module's output on a sampled step, in a training forward pass."""
        tr = self.tracer
        names, saturated, training = tr.plan.module_plan(info.type, info.params > 0)
        step = tr.step
        if training:
            tr.writer.add_stats(step, [(info.eid, _TRAINING, float(module.training))])
        if id(module) in self._sampled_modules or info.name in tr.skipped:
            return  # a module called several times per step is sampled on its first call
        if not (names or saturated or self.histograms):
            return
        t = S.first_tensor(output)
        if t is None:
            t = S.any_tensor(output)  # no floating-point tensor: say why, if it holds any tensor
            if t is None:
                return
        why = S.unmeasurable(t)
        if why is not None:  # one odd module (sparse, meta, nested, complex, integer): skip it alone
            tr.skip(info.name, f"the output is {why}")
            return
        if t.numel() == 0:
            return
        self._sampled_modules.add(id(module))
        if names and not saturated and not self.histograms and self._measured(info.eid, t, names):
            return
        if names and not saturated and not self.histograms and t.numel() <= _BATCH_MAX_NUMEL:
            # small: the first of its shape this step is measured now (no copy; the kernels are
            # warm from the module before it), the others copied (a later in-place op must not
            # change them) and reduced together at the step's sync point (`flush`)
            key = (tuple(t.shape), t.dtype, t.device, names)
            group = self._pending.get(key)
            if group is not None:
                alias = _alias_key(t)
                kept = self._same.get(alias)
                copy = kept[2] if kept is not None and kept[0]() is not None and kept[1] == "copy" else None
                if copy is None:  # not an alias of one copied this step: copied now
                    copy = t.detach().clone()
                    self._same[alias] = (weakref.ref(t), "copy", copy)
                group.append((info.eid, copy))
                return
            self._pending[key] = []
        try:
            values: list[float] | torch.Tensor = []
            if names:
                values = S.activation_values(t, names)  # floats on the CPU, a tensor on a device
                self._same[_alias_key(t)] = (weakref.ref(t), names, values)
            if saturated:
                sat = S.saturation(t, info.type)
                values = values + sat.tolist() if type(values) is list else torch.cat([values, sat.to(values.dtype)])
                names = (*names, _SATURATED)
            hist = S.histogram(t, self.bins) if self.histograms else None
        except Exception as exc:  # a tensor subclass the statistics cannot reduce
            tr.skip(info.name, f"the statistics failed on its output ({type(exc).__name__}: {exc})")
            return
        if names:
            self._add(info.eid, values, names)
        if hist is not None:
            eid, writer = info.eid, tr.writer
            tr.buffer.add(hist, lambda v: writer.add_histogram(step, eid, v[0], v[1], v[2:]))

    # -- the model's input ------------------------------------------------------------------------------
    def model_input(self, root: nn.Module, info: ModuleInfo | None, x: torch.Tensor | None) -> None:
        """The input batch of a model's first training forward pass of a sampled step."""
        if not self.input_entities or x is None or x.numel() == 0 or info is None:
            return
        tr = self.tracer
        eid = self._input_eids.get(info.name)
        if eid is None:
            eid = tr.writer.entity("input", info.name, type=str(x.dtype).replace("torch.", ""),
                                   info={"shape": list(x.shape)})
            self._input_eids[info.name] = eid
        if self.inputs:
            self._add(eid, S.input_values(x), self.input_names)
