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

#: The first values of a model's input kept to tell a reused batch from one refilled in place.
_REUSE_VALUES = 4096

__all__ = ["ForwardCollector"]

_SATURATED = M.SATURATED_FRAC.name
_TRAINING = M.TRAINING_FLAG.name
_EVAL, _NOGRAD = M.FWD_EVAL_MODE.name, M.FWD_TRAIN_MODE_NOGRAD.name
# Outputs of at most this many values are reduced together with the others of their shape.
_BATCH_MAX_NUMEL = 1 << 14
# On the CPU, fewer outputs than this of one shape are reduced one at a time (measured: a batch
# costs ~120 µs however few it holds, one output ~40 µs).
_BATCH_MIN = 4


_STRIDED = torch.strided
# CPU row buffers of the small outputs are kept between sampled steps up to this many bytes in all.
_KEEP_MAX_BYTES = 1 << 24


def _alias_key(t: torch.Tensor) -> tuple[Any, ...]:
    """What makes two tensors hold the same values in the same order while both are alive."""
    return (t.data_ptr(), t.shape, t.stride(), t.dtype, t.device, t._version)


class _Rows:
    """The small outputs of one shape, dtype, device and statistic set waiting for `flush`: copied
    into the rows of one buffer as they come (``buf[i] = t``: no tensor object kept per module, and
    no ``torch.stack`` of a thousand copies at the sync point), with their entities in order."""

    __slots__ = ("alias", "buf", "eids", "rows")

    def __init__(self, buf: torch.Tensor | None) -> None:
        self.buf = buf  # capacity rows; None until the second output of the key
        self.eids: list[int] = []  # the entity of each row
        # modules whose output was the very tensor of a row (an Identity after it): (entity, row)
        self.alias: list[tuple[int, int]] = []
        # the last flush's statistic rows, reused while the entities are the same
        self.rows: tuple[list[int], list[tuple[int, str | None]]] | None = None

    def add(self, eid: int, t: torch.Tensor) -> int:
        """Copy `t` into the next row (the buffer grows as needed); its index."""
        n, buf = len(self.eids), self.buf
        if buf is None or n == buf.shape[0]:  # (grows by doubling: the first sampled step only)
            grown = torch.empty((max(8, 2 * n), *t.shape), dtype=t.dtype, device=t.device)
            if n:
                grown[:n] = buf[:n]  # type: ignore[index]
            self.buf = buf = grown
        buf[n] = t.detach()  # a copy into row n (detached: the buffer stays out of autograd)
        self.eids.append(eid)
        return n


class ForwardCollector:
    """Activation, input and mode measures of one tracer."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        plan = tracer.plan
        self.inputs = plan.any(M.INPUT_STATS)
        self.reuse = M.INPUT_REUSED in plan
        self.input_entities = self.inputs or self.reuse or M.MODEL_INPUT in plan
        #: each model's input at the last sampled step, and its version (`INPUT_REUSED`)
        self._last_input: dict[str, tuple[weakref.ref[torch.Tensor], int, torch.Tensor | None]] = {}
        self.input_names = [m.name if m in plan else None for m in M.INPUT_STATS]
        self.histograms = M.ACTIVATION_HISTOGRAM in plan
        self.bins = tracer.config.histogram_bins
        self._input_eids: dict[str, int] = {}
        self._sampled_modules: set[int] = set()
        self.modes = {_EVAL: 0, _NOGRAD: 0}
        # small outputs waiting for their batched statistics, by (shape, dtype, device, names); a key
        # holds no rows while only its first output (measured at once) came this step
        self._pending: dict[tuple[Any, ...], _Rows] = {}
        # the keys' row groups kept between sampled steps (their CPU buffers: no fresh pages each time)
        self._groups: dict[tuple[Any, ...], _Rows] = {}
        # outputs measured this step (names, values), by storage, layout and version, with the tensor
        # (weakly: it must be alive for its memory not to be reused); `_ptrs`: their data pointers
        self._same: dict[tuple[Any, ...], tuple[weakref.ref[torch.Tensor], tuple[str, ...], Any]] = {}
        self._ptrs: set[int] = set()
        # the output copied last: (its group, data pointer, the tensor, its version then, its row); an
        # Identity or Dropout(0.0) after that module returns it again: the row is shared, not copied
        self._last: tuple[_Rows, int, torch.Tensor, int, int] | None = None
        # the `training` flag rows of this step's module outputs, written at `flush` in one call
        self._flags: list[tuple[int, str, float]] = []
        self._flags_step = -1
        # each leaf module's (statistics, saturated?, training flag?, batched?), by entity
        self._plans: dict[int, tuple[tuple[str, ...], bool, bool, bool]] = {}

    def flush(self) -> None:
        """The statistics of the small outputs kept this step, one batch per shape (into the step
        buffer), and the step's `training` flags."""
        tr = self.tracer
        if self._flags:
            flags, self._flags = self._flags, []
            tr.writer.add_stats(self._flags_step, flags)
        pending, self._pending = self._pending, {}
        self._last = None
        kept = 0  # bytes of CPU buffers kept
        for key, group in pending.items():
            eids, names = group.eids, key[3]
            if not eids:
                continue
            n = len(eids)
            buf = group.buf
            assert buf is not None
            try:
                if n < _BATCH_MIN and buf.device.type == "cpu":
                    # a few: one at a time (the CPU path's ~40 µs each beats the batch's fixed ~120 µs)
                    each = [S.activation_values(buf[i], names) for i in range(n)]
                    for i, eid in enumerate(eids):
                        self._add(eid, each[i], names)
                    for eid, i in group.alias:
                        self._add(eid, each[i], names)
                    values = None
                else:
                    values = S.activation_stats_batched(buf[:n], names)
                    for eid, i in group.alias:
                        self._add(eid, values[i], names)
            except Exception as exc:  # a tensor subclass the statistics cannot reduce
                tr.skip(f"{n} modules", f"the statistics failed on their outputs ({type(exc).__name__}: {exc})")
                values = None
            if values is not None:
                cached = group.rows
                if cached is not None and cached[0] == eids:
                    rows = cached[1]
                else:
                    rows = [(eid, name) for eid in eids for name in names]
                    group.rows = (eids, rows)
                tr.buffer.add(values.reshape(-1), stats_sink(tr.writer, tr.step, rows))
            group.eids, group.alias = [], []
            if buf.device.type == "cpu":
                kept += buf.numel() * buf.element_size()
                if kept <= _KEEP_MAX_BYTES:
                    continue
            group.buf = None  # (an accelerator's caching allocator reuses the memory itself)
        if pending:  # what is kept for the next sampled step: this step's CPU buffers, up to 16 MiB
            self._groups = {k: g for k, g in pending.items() if g.buf is not None}

    def _add(self, eid: int, values: list[float] | torch.Tensor, names: Sequence[str | None]) -> None:
        """Statistic rows `names` of entity `eid`: floats measured on the CPU, or a device tensor."""
        tr = self.tracer
        sink = stats_sink(tr.writer, tr.step, [(eid, n) for n in names])
        if type(values) is list:
            tr.buffer.add_host(values, sink)
        else:
            tr.buffer.add(values, sink)

    def new_step(self) -> None:
        if self._flags:  # a step dropped before its sync point: its flags, as they were measured
            flags, self._flags = self._flags, []
            self.tracer.writer.add_stats(self._flags_step, flags)
        self._sampled_modules.clear()
        self._same.clear()
        self._ptrs.clear()
        self._last = None

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
        """A leaf module's output on a sampled step, in a training forward pass.

        (Runs once per leaf module of a sampled step: a 500-layer model calls it a thousand times
        a step, so the usual case takes the fewest calls: the plan cached by entity, a plain
        floating-point tensor checked inline, the copy written into a buffer row.)"""
        tr = self.tracer
        eid = info.eid
        plan = self._plans.get(eid)
        if plan is None:
            names, saturated, training = tr.plan.module_plan(info.type, info.params > 0)
            plan = self._plans[eid] = (names, saturated, training,
                                       bool(names) and not saturated and not self.histograms)
        names, saturated, training, batched = plan
        if training:
            flags = self._flags
            if not flags:  # (written at the sync point, or at `new_step`: before the step moves on)
                self._flags_step = tr.step
            flags.append((eid, _TRAINING, float(module.training)))
        if id(module) in self._sampled_modules or info.name in tr.skipped:
            return  # a module called several times per step is sampled on its first call
        if not (names or saturated or self.histograms):
            return
        if type(output) is torch.Tensor and output.is_floating_point() and output.layout is _STRIDED \
                and not output.is_nested and not output.is_meta:
            t = output  # the usual output: a plain strided floating-point tensor, measurable
        else:
            t = S.first_tensor(output)
            if t is None:
                t = S.any_tensor(output)  # no floating-point tensor: say why, if it holds any tensor
                if t is None:
                    return
            why = S.unmeasurable(t)
            if why is not None:  # one odd module (sparse, meta, nested, complex, integer): skip it alone
                tr.skip(info.name, f"the output is {why}")
                return
        numel = t.numel()
        if numel == 0:
            return
        self._sampled_modules.add(id(module))
        if batched:
            ptr = t.data_ptr()
            if ptr in self._ptrs and self._measured(eid, t, names):
                return
            if numel <= _BATCH_MAX_NUMEL:
                # small: the first of its shape this step is measured now (no copy; the kernels are
                # warm from the module before it), the others copied into a buffer row (a later
                # in-place op must not change them) and reduced together at the sync point (`flush`)
                key = (t.shape, t.dtype, t.device, names)
                group = self._pending.get(key)
                if group is not None:
                    last = self._last
                    if last is not None and last[1] == ptr and last[0] is group and t._version == last[3] \
                            and t.stride() == last[2].stride():
                        group.alias.append((eid, last[4]))  # the output copied last, unchanged since
                        return
                    row = group.add(eid, t)
                    self._last = (group, ptr, t, t._version, row)
                    return
                group = self._groups.get(key)
                if group is None:
                    group = self._groups[key] = _Rows(None)
                self._pending[key] = group
        try:
            values: list[float] | torch.Tensor = []
            if names:
                values = S.activation_values(t, names)  # floats on the CPU, a tensor on a device
                self._same[_alias_key(t)] = (weakref.ref(t), names, values)
                self._ptrs.add(t.data_ptr())
            if saturated:
                sat = S.saturation(t, info.type)
                values = values + sat.tolist() if type(values) is list else torch.cat([values, sat.to(values.dtype)])
                names = (*names, _SATURATED)
            hist = S.histogram(t, self.bins) if self.histograms else None
        except Exception as exc:  # a tensor subclass the statistics cannot reduce
            tr.skip(info.name, f"the statistics failed on its output ({type(exc).__name__}: {exc})")
            return
        if names:
            self._add(eid, values, names)
        if hist is not None:
            step, writer = tr.step, tr.writer
            tr.buffer.add(hist, lambda v: writer.add_histogram(step, eid, v[0], v[1], v[2:]))

    # -- the model's input ------------------------------------------------------------------------------
    def model_input(self, root: nn.Module, info: ModuleInfo | None, x: torch.Tensor | None, others: int = 0) -> None:
        """The input batch of a model's first training forward pass of a sampled step (`others`: how many
        more tensors the call was given: a graph's edges, a mask, lengths)."""
        if not self.input_entities or x is None or x.numel() == 0 or info is None:
            return
        tr = self.tracer
        eid = self._input_eids.get(info.name)
        if eid is None:
            eid = tr.writer.entity("input", info.name, type=str(x.dtype).replace("torch.", ""),
                                   info={"shape": list(x.shape), "other_tensors": others})
            self._input_eids[info.name] = eid
        if self.inputs:
            self._add(eid, S.input_values(x), self.input_names)
        if self.reuse:
            self._reused(eid, info.name, x)

    def _reused(self, eid: int, name: str, x: torch.Tensor) -> None:
        """`input.reused`: is `x` the very tensor of the last sampled step, not written since? Its
        object and version say so unless it was written around autograd (through NumPy, or `.data`):
        so its first values, kept from then, must be equal too (compared on its device, read with the
        step's other numbers)."""
        last = self._last_input.get(name)
        head = x.detach().view(-1)[:_REUSE_VALUES].clone() if x.is_contiguous() else None
        self._last_input[name] = (weakref.ref(x), x._version, head)
        if last is None:
            return
        ref, version, before = last
        if ref() is not x or version != x._version:
            self._add(eid, [0.0], [M.INPUT_REUSED.name])  # another tensor, or written in place: a new batch
        elif head is None or before is None:
            self._add(eid, [1.0], [M.INPUT_REUSED.name])
        else:
            self._add(eid, (head == before).all().reshape(1).double(),
                      [M.INPUT_REUSED.name])
