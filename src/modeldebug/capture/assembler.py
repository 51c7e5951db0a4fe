"""StepAssembler: one step's numbers, gathered from the collectors and written as one step row.

It owns the step counter, the step buffer and the per-step state the hooks fill in (losses,
backward passes, phase timers, learning rate). `sync` copies everything the step measured to the
host at once (the loss first, so that a non-finite loss is traced before non-finite gradients are
blamed) and hands each number to the sink its collector chose; `end` writes the step row with the
columns of every collector, tells the listeners (the live progress line), and starts the next step.

On a CUDA device an unsampled step is deferred instead (deferred.py, docs/overhead.md "CUDA"): `sync`
starts an asynchronous copy, `end` keeps the row without its copied columns, and the row is written
when the copy has landed, at a later step's sync point (or when the queue is full, a synchronous step
comes, or the run ends), always in step order. CPU steps take the synchronous path.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import torch

from .. import measures as M
from .buffer import Entry, StepBuffer, pack, read_host, unpack
from .deferred import Copier, CudaCopier, PendingQueue, PendingStep
from .progress import Progress, StepInfo
from .resources import RssReader, cuda_memory_mb

__all__ = ["SPIKE_SYNC_STEPS", "StepAssembler", "lr_of"]

# A CPU-only build of torch never has CUDA memory to read (no call a step to ask; is_built() does
# not touch the driver, so a fork stays safe).
_CUDA_BUILT = torch.backends.cuda.is_built()

log = logging.getLogger("modeldebug")

#: steps read synchronously after a loss spike found late, while a repro bundle is still armed
SPIKE_SYNC_STEPS = 100

# the step columns, by name once (one attribute lookup less per column per step)
_LOSS, _LR, _N_BACKWARD, _GRAD_NORM, _T_STEP = M.LOSS.name, M.LR.name, M.N_BACKWARD.name, M.GRAD_NORM.name, M.T_STEP.name
_RSS_MB, _CUDA_MB, _SAMPLED = M.RSS_MB.name, M.CUDA_MB.name, M.SAMPLED.name
_T_DATA, _T_FORWARD, _T_BACKWARD, _T_OPTIMIZER, _T_CPU = (M.T_DATA.name, M.T_FORWARD.name, M.T_BACKWARD.name,
                                                         M.T_OPTIMIZER.name, M.T_CPU.name)
_T_INFERENCE = M.T_INFERENCE.name


class StepAssembler:
    """The step being measured, and how it becomes a record row."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.writer = tracer.writer
        self.config = tracer.config
        self._mem = self.config.monitoring.memory
        self._perf = self.config.monitoring.performance
        self.step = 0
        self.buffer = StepBuffer()
        #: called with a StepInfo at each step boundary (the live progress line of `modeldebug run`)
        self.listeners: list[Callable[[StepInfo], None]] = []
        self._rss = RssReader()
        self.t_start = time.perf_counter()
        self.t_last_end = self.t_start
        #: when the first step ended (the tracer's clock: when the user's code ran again)
        self.t_first_end: float | None = None
        #: the last finished step's time from its first forward pass to its end (the sampler's time budget)
        self.t_busy: float | None = None
        #: the steps' gaps (end of a step to the next forward pass) so far, seconds (the gap profiler's);
        #: not the first step's, which holds everything the script did before training
        self.gap_total = 0.0
        self.cpu_last_end = time.process_time()
        #: the copier of deferred steps: None picks `CudaCopier` for CUDA values; a test sets a
        #: `LaggingCopier`, which defers every step that has work, on any device
        self.copier: Copier | None = None
        self._cuda_copier: CudaCopier | None = None
        self.pending = PendingQueue()
        self._open: PendingStep | None = None  # this step's deferred copy, before its row is made
        self._late: int | None = None  # the step whose late numbers the sinks are given now
        self.sync_only = False  # after a late non-finite value: every later step synchronous
        #: why deferred copies were switched off (a copy that could not be started), else None
        self.deferral_failed: str | None = None
        self._sync_until = 0  # after a late loss spike: steps before this one synchronous (see _finish)
        self.reset()

    def reset(self) -> None:
        """Fresh per-step state."""
        self.losses: list[torch.Tensor] = []
        self.n_backward = 0
        self.t_fwd: float | None = None
        #: when the first forward pass without gradients of the gap before `t_fwd` started (a teacher's or
        #: a target network's inference, an evaluation), else None
        self.t_infer: float | None = None
        #: when the first eval-mode pass with autograd on taken for an evaluation started, and its model's id
        #: (tracer `_evaluating`), else None
        self.t_eval: float | None = None
        self.eval_model: Any = None
        self.t_bwd_first: float | None = None
        self.t_bwd = 0.0
        self.t_opt_start: float | None = None
        self.t_opt = 0.0
        self.lr: float | None = None
        self.synced = False
        self.loss: float | None = None
        self.grad_norm: float | None = None
        self.extra: dict[str, float] = {}  # columns that collectors' sinks fill (carried norm, clipping)
        if self._open is not None:  # a deferred step dropped without a row (a GradScaler skipped it)
            self._open.dropped, self._open = True, None

    def has_work(self) -> bool:
        return self.n_backward > 0 or self.t_opt_start is not None

    # -- the one host copy --------------------------------------------------------------------------
    def sync(self) -> None:
        """Copy everything the step measured to the host at once and store it."""
        self.synced = True
        losses, self.losses = self.losses, []
        first = None
        if losses:  # 0-d or 1-element tensors, as the backward passes saw them
            first = (losses[0] if len(losses) == 1 else torch.stack([t.reshape(()) for t in losses]), self._loss_sink)
        buffer = self.buffer
        entries, buffer.entries = buffer.entries, []
        if first is not None:
            entries.insert(0, first)
        pending = self.pending.items
        if self.copier is None and not pending:
            host = read_host(entries)  # the CPU's case: no deferral to decide
            if host is not None:
                for sink, values in host:
                    sink(values)
                return
        if pending:  # earlier steps whose copies have landed (asked, never waited for)
            self.pending.ready(self._finish)
        chosen = self._copier(entries)
        if chosen is not None:
            self.pending.make_room(self._finish)  # the host ran `bound` steps ahead: wait on the oldest
            copier, device = chosen
            try:
                flat, layout = pack(entries, device)
                copy = copier.start(flat) if flat is not None else None
            except Exception as exc:  # noqa: BLE001 - e.g. no pinned memory: read synchronously from now on
                self._no_deferral(exc)
            else:
                self._open = PendingStep(self.step, layout, copy, extra=self.extra)
                self.pending.items.append(self._open)
                return
        if pending:  # every earlier step's numbers first: rows in step order
            self.pending.drain(self._finish)
        for sink, values in StepBuffer.read(entries):
            sink(values)

    def _no_deferral(self, exc: Exception) -> None:
        """A deferred copy could not be started: this step and every later one are read synchronously
        (the user's training goes on as before), said once."""
        self.deferral_failed = f"{type(exc).__name__}: {exc}"
        log.warning("modeldebug: deferred device-to-host copies are off, every step is read synchronously "
                    "(%s)", self.deferral_failed)

    def _copier(self, entries: list[Entry]) -> tuple[Copier, torch.device | None] | None:
        """The copier that defers this step and the device whose values it copies, or None for the
        synchronous path: a CPU step, a sampled step, a second sync in one step, a step without work
        (the end of the run), after late trouble or a failed deferred copy, or with a listener that
        must see each step at once (a breakpoint)."""
        if (self._open is not None or self.sync_only or self.deferral_failed is not None
                or self.step < self._sync_until or not self.has_work()):
            return None
        copier = self.copier
        device = None
        if copier is None:
            for t, _ in entries:  # the CPU's case: a few attribute reads
                if type(t) is not list and t.device.type != "cpu":
                    if device is not None and t.device != device:
                        return None  # values on two devices: read synchronously
                    device = t.device
            if device is None or device.type != "cuda":
                return None
            copier = self._cuda_copier = self._cuda_copier or CudaCopier()
        if self.tracer.sampled() or any(not isinstance(getattr(f, "__self__", None), Progress)
                                        for f in self.listeners):
            return None
        return copier, device

    def _finish(self, rec: PendingStep) -> None:
        """A deferred step's numbers have landed: hand them to its sinks, then write its row."""
        values = unpack(rec.layout, rec.copy.values() if rec.copy is not None else [])
        if rec is self._open:  # the step under way (read synchronously after all): its own state
            self._open = None
            for sink, v in values:
                sink(v)
            return
        live = (self.loss, self.grad_norm)
        self.loss = self.grad_norm = None
        self._late = rec.step
        try:
            for sink, v in values:
                sink(v)
            loss, grad_norm = self.loss, self.grad_norm
        finally:
            self.loss, self.grad_norm = live
            self._late = None
        # The bundle saves the state BEFORE a bad step's update, gone for a late step: after a
        # non-finite value every step is synchronous (the sinks above), after a loss spike the next
        # SPIKE_SYNC_STEPS steps, so that the next bad step is caught in time (docs/overhead.md).
        bundle = self.tracer.bundle
        if bundle is not None and not bundle.done and not self.sync_only and bundle.spikes.spike(loss) is not None:
            self._sync_until = self.step + SPIKE_SYNC_STEPS
        if rec.row is not None:
            self._write(rec.step, {**rec.row, _LOSS: loss, _GRAD_NORM: grad_norm}, rec.extra, rec.columns)

    def _loss_sink(self, values: list[float]) -> None:
        self.loss = sum(values) / len(values)
        if not math.isfinite(self.loss) and not all(math.isfinite(v) for v in values):
            self.tracer.nonfinite.loss(values, self._late)
            self.sync_only = self.sync_only or self._late is not None

    def grad_norm_sink(self, values: list[float]) -> None:
        """The step's total gradient norm (the gradient collector's entry)."""
        self.grad_norm = values[0]
        if not math.isfinite(values[0]):
            self.tracer.nonfinite.gradient(self._late)
            self.sync_only = self.sync_only or self._late is not None

    def scaled_grad_norm_sink(self, values: list[float]) -> None:
        """The total of gradients a GradScaler still scaled: a non-finite one is the scaler's to
        skip (it lowers its scale), not a fault, and has no norm."""
        self.grad_norm = values[0] if math.isfinite(values[0]) else None

    # -- the step row ------------------------------------------------------------------------------------
    def _write(self, step: int, row: dict[str, Any], extra: dict[str, float], columns: dict[str, Any]) -> None:
        """Write a step row (`row`, then the sinks' `extra` columns, then the collectors' own) and tell
        the listeners."""
        if extra:
            row.update(extra)
        row.update(columns)
        self.writer.add_step_row(step, row)
        if self.listeners:  # host numbers only: a listener never causes a device sync
            info = StepInfo(step, row[_LOSS], row[_GRAD_NORM], row[_T_STEP], row[_RSS_MB], row[_LR])
            for listener in self.listeners:
                self.tracer.call("listener", listener, info)

    def end(self, sampled: bool, columns: dict[str, Any]) -> None:
        """Write the step row (`columns` are the collectors' own), tell the listeners, start the next step."""
        if not self.synced:
            self.sync()
        # What the optimizer post-hook measured (update ratios) rides on the next step's copy.
        now = time.perf_counter()
        t_fwd = self.t_fwd if self.t_fwd is not None else self.t_last_end
        bwd_first = self.t_bwd_first if self.t_bwd_first is not None else now
        mem, perf = self._mem, self._perf
        t_step = now - self.t_last_end if perf else None
        self.t_busy = now - t_fwd if perf else None
        cpu = time.process_time() if perf else 0.0
        rss_mb = self._rss.read() if mem else None
        row: dict[str, Any] = {
            _LOSS: self.loss, _LR: self.lr, _N_BACKWARD: self.n_backward, _GRAD_NORM: self.grad_norm,
            _T_STEP: t_step, _RSS_MB: rss_mb, _CUDA_MB: cuda_memory_mb() if mem and _CUDA_BUILT else None, _SAMPLED: sampled,
        }
        if perf:
            row[_T_DATA] = gap = max(t_fwd - self.t_last_end, 0.0)
            row[_T_INFERENCE] = max(t_fwd - self.t_infer, 0.0) if self.t_infer is not None and self.t_fwd is not None else 0.0
            if self.step:
                self.gap_total += gap
            row[_T_FORWARD] = max(bwd_first - t_fwd, 0.0)
            row[_T_BACKWARD] = self.t_bwd
            row[_T_OPTIMIZER] = self.t_opt
            row[_T_CPU] = cpu - self.cpu_last_end
        if self._open is not None:  # deferred: written when its numbers land
            self._open.row, self._open.columns, self._open = row, columns, None
        else:
            self._write(self.step, row, self.extra, columns)
        self.t_last_end, self.cpu_last_end = now, cpu
        self.step += 1
        self.reset()
        if self.step % self.config.flush_every == 0:
            self.writer.flush()


def lr_of(opt: torch.optim.Optimizer) -> float | None:
    """The learning rate of an optimizer's first parameter group (None when it has none)."""
    try:
        lr = opt.param_groups[0].get("lr")
        return float(lr) if lr is not None else None
    except (TypeError, ValueError, IndexError):
        return None
