"""LoopWatch: the training loop's hygiene, seen through three more narrow patches.

- ``Optimizer.zero_grad`` / ``Module.zero_grad``: were gradients cleared between optimizer steps?
  At the first backward pass of a step with no zero_grad call since the last step, the norm of the
  gradients still present is measured (on the device): non-zero means they were carried over.
- ``torch.nn.utils.clip_grad_norm_``: the total norm before clipping and the limit, per step.
- ``torch.utils.data`` iterators' ``__next__``: time spent waiting for the data loader, and, once per
  data set, the loader's settings (worker processes, batch size) and whether the data set holds its
  samples as tensors in memory; and, at the start of each epoch, whether such a data set's arrays
  changed since the last one (`dataset_drift.py`: augmentation written into a cache).
It also keeps weak references to recent loss tensors (a loss still alive steps later is being kept,
usually with its whole graph), and fingerprints input samples for a train/validation overlap check.
"""

from __future__ import annotations

import functools
import gc
import itertools
import operator
import sys
import time
import weakref
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from .. import measures as M
from . import stats as S
from .crash import caller_line
from .dataset_drift import DatasetDrift, weak
from .patches import Probe

__all__ = ["LoopWatch"]


_FINGERPRINT_BUDGET = {"train": 50_000, "val": 10_000}
#: samples whose axis 1 is at least this long are also read as windows of a series (`LoopWatch._windows`)
_MIN_WINDOW = 8
#: Where fingerprinted samples came from: a DataLoader's data set (its id), a tensor's storage
#: (its address and size) for a batch sliced from a larger tensor, or None (unknown).
_Source = int | tuple[int, int] | None
_LIVE_WINDOW = 8
_deref = weakref.ref.__call__
_is_alive = functools.partial(operator.is_not, None)


_LATE_ZERO_GRAD_EVENTS = _LATE_CLIP_EVENTS = 10
#: Training batches after which `_count_fresh` decides whether each came from a new iterator.
_FRESH_WINDOW = 20


def _any_nonzero(grads: list[torch.Tensor]) -> bool | None:
    """Is any gradient value non-zero? (Read at most ten times a run; sparse and per-device gradients
    one at a time.) None when it cannot be told."""
    try:
        for g in grads:
            values = g.coalesce().values() if g.is_sparse else g
            if bool(values.detach().ne(0).any()):
                return True
    except (RuntimeError, NotImplementedError):  # a layout that cannot be read so: unknown
        return None
    return False


def _in_memory(dataset: Any, n: int | None) -> bool:
    """Does the data set hold its samples as rows of arrays in memory (a feature matrix with one row
    per sample), so that making a batch is indexing them? A `Subset` is judged by what it selects
    from; arrays of labels or indices alone (samples read from files) do not count."""
    while hasattr(dataset, "dataset") and hasattr(dataset, "indices"):  # torch.utils.data.Subset
        dataset = dataset.dataset
        try:
            n = len(dataset)
        except Exception:  # noqa: BLE001 - as in `_describe_loader`
            return False
    tensors = getattr(dataset, "tensors", None)
    values = tensors if isinstance(tensors, tuple) else list(getattr(dataset, "__dict__", {}).values())
    held = [v for v in values if isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim >= 1 and len(v) == n]
    return n is not None and any(v.ndim >= 2 for v in held)


def _perf_counter(args: tuple[Any, ...], kwargs: dict[str, Any]) -> float:
    return time.perf_counter()


def _scheduler_summary(kind: str, state: dict[str, Any]) -> dict[str, Any] | None:
    """A scheduler's `lr_scheduler` event from its attributes (its `__dict__`, alive or just collected)."""
    try:
        out = {"type": kind, "base_lrs": [float(v) for v in state.get("base_lrs") or []],
               "last_lrs": [float(v) for v in state.get("_last_lr") or []],
               "scheduler_steps": int(state.get("last_epoch", -1)), "optimizer_id": id(state.get("optimizer"))}
        # A cyclic schedule starts BELOW the rate it is built for: OneCycleLR's base rate is max_lr / 25, and
        # the max_lr it climbs to is kept in the optimizer's groups; CyclicLR keeps its own `max_lrs`.
        groups = getattr(state.get("optimizer"), "param_groups", None) or []
        peaks = state.get("max_lrs") or [g["max_lr"] for g in groups if "max_lr" in g]
        if peaks:
            out["peak_lrs"] = [float(v) for v in peaks]
        if state.get("total_steps") is not None:
            out["total_steps"] = int(state["total_steps"])
        return out
    except (TypeError, ValueError, KeyError):
        return None


def _lrs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[float] | None:
    """The learning rates of the optimizer a ReduceLROnPlateau (``args[0]``) drives."""
    opt = getattr(args[0], "optimizer", None) if args else None
    try:
        return [float(g["lr"]) for g in opt.param_groups]  # type: ignore[union-attr]
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


class LoopWatch:
    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.zero_grad_calls = 0
        self.schedulers: list[weakref.ref[Any]] = []  # learning-rate schedulers built while watching
        self._finalizers: list[weakref.finalize] = []  # (theirs, to describe one collected before the end)
        self._gone_schedulers: list[dict[str, Any]] = []
        self.t_loader = 0.0
        #: weak references to the last loss tensors (the tracer's backward probe appends them)
        self.recent_losses: deque[weakref.ref[torch.Tensor]] = deque(maxlen=_LIVE_WINDOW)
        self._fp_vectors: dict[tuple[int, torch.device], torch.Tensor] = {}
        # Fingerprints by (phase, data set): the data set is the one the last DataLoader batch came
        # from, so evaluating the TRAINING set under no_grad is not leakage. Without a DataLoader, batches
        # sliced from one tensor (x[i:i + 32]) are keyed by that tensor's storage, with the rows they
        # span (`spans`): a pass without gradients over every row trained on is the training tensor
        # evaluated (training accuracy), not a validation set.
        self.fingerprints: dict[tuple[str, _Source], set[float]] = {}
        self.spans: dict[tuple[str, _Source], tuple[int, int]] = {}
        self.current_dataset: int | None = None
        # data sets a DataLoader has served (ids): a TensorDataset? With the data set, weakly: an id is
        # reused once its object is freed (a validation set built anew each epoch)
        self._loader_sets: dict[int, tuple[bool, Any]] = {}
        #: [training batches read, of which an iterator's first] until `_FRESH_WINDOW` batches (then None)
        self._fresh_batches: list[int] | None = [0, 0]
        self._fresh_sums: set[float] = set()  # (the sums of those that began an iterator)
        self.trained_storages: set[tuple[int, int]] = set()  # the memory of TensorDatasets trained from
        self._fp_budget = dict(_FINGERPRINT_BUDGET)
        #: fingerprints of each sample without its last step ("head") and without its first ("tail"), by
        #: (phase, data set, end): windows of a series moved by one step (`_windows`)
        self.window_ends: dict[tuple[str, _Source, str], set[float]] = {}
        self.window_length = 0
        self.clip: torch.Tensor | None = None
        # a zero_grad called after this step's backward pass (its line), until the next backward refills
        # the gradients or an optimizer steps on what is left
        self.cleared: dict[str, Any] | None = None
        self._late_zero_grads = 0
        self._late_clips = 0  # clip_grad_norm_ calls after the step they should have bounded
        # a clipping after an optimizer step, before any backward: (its numbers, its line, max_norm)
        self.pending_clip: tuple[torch.Tensor, dict[str, Any], float] | None = None
        self._clip_seen = False  # the first clipping described; its iterator, if it got one, kept for the second
        self._clip_iterator: Any = None
        self.fingerprints_on = M.DATA_OVERLAP in tracer.plan
        self.drift = DatasetDrift(self._dataset_changed) if M.DATASET_CHANGED in tracer.plan else None

    # -- probes ----------------------------------------------------------------------------------
    def probes(self) -> dict[str, Probe]:
        return {"zero_grad": Probe(self._zero_grad), "loader_next": Probe(_perf_counter, self._loader_next),
                "clip_grad_norm": Probe(None, self._clipped),
                **({"plateau_step": Probe(_lrs, self._plateau)} if M.PLATEAU_STEP in self.tracer.plan else {}),
                **({"scheduler_init": Probe(None, self._scheduler_created)} if M.LR_SCHEDULER in self.tracer.plan else {})}

    def _scheduler_created(self, token: None, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
                           exc: BaseException | None) -> None:
        """A learning-rate scheduler was built (once each): remembered weakly, described at the end, or
        when it is collected before the end (a scheduler local to the script's `main()` is gone by the
        time `modeldebug run` detaches): its finalizer holds its `__dict__`, which dies with it."""
        if exc is None and args and self.tracer.active("loop") and not any(r() is args[0] for r in self.schedulers):
            sched = args[0]
            self.schedulers.append(weakref.ref(sched))
            try:
                fin = weakref.finalize(sched, self._scheduler_gone, type(sched).__name__, vars(sched))
            except TypeError:  # (no __dict__, no weak reference: described only while alive)
                return
            fin.atexit = False
            self._finalizers.append(fin)

    def _scheduler_gone(self, kind: str, state: dict[str, Any]) -> None:
        summary = _scheduler_summary(kind, state)
        if summary is not None:
            self._gone_schedulers.append(summary)

    def describe_schedulers(self) -> None:
        """At the end of the run: each scheduler of a watched optimizer, as an `lr_scheduler` event
        (what it was built for, how often it was stepped against the optimizer's steps, where it left
        the rates): those still alive, and those collected earlier (`_scheduler_gone`). Schedulers
        built before watching began (`watch()` entered after them) are found among the live objects,
        by the watched optimizer they hold: one pass of `gc.get_objects()` at the end (~40 ms among a
        million objects; `gc.get_referrers` would miss a scheduler whose `__dict__` was read, by
        `state_dict()` for one), made only when a watched optimizer's `step` was wrapped by one."""
        for fin in self._finalizers:
            fin.detach()  # (collected from now on: no longer ours to describe)
        self._finalizers.clear()
        opts = [o for o in (r() for r in self.tracer.registry.optimizers) if o is not None]
        watched = {id(o) for o in opts} | set(self.tracer._stepped_at)  # (every optimizer that stepped, alive or not)
        summaries = [summary for s in (r() for r in self.schedulers) if s is not None
                     for summary in [_scheduler_summary(type(s).__name__, vars(s))] if summary is not None]
        summaries += self._gone_schedulers
        # (the scan only when a watched optimizer has a scheduler at all: an LRScheduler marks the
        # `step` it wraps; a test suite or a sweep watches thousands of runs without one)
        scheduled = any(hasattr(getattr(o, "step", None), "_wrapped_by_lr_sched") for o in opts)
        if not summaries and scheduled:
            kind = torch.optim.lr_scheduler.LRScheduler
            summaries = [summary for o in gc.get_objects() if issubclass(type(o), kind)  # (type(): no object's own __class__)
                         for summary in [_scheduler_summary(type(o).__name__, vars(o))] if summary is not None]
        for summary in summaries:
            # (only schedulers of watched optimizers: another optimizer's says nothing of these rates)
            if summary.pop("optimizer_id") in watched:
                self.tracer.writer.add_event(None, M.LR_SCHEDULER.name, summary | {"optimizer_steps": int(self.tracer.step)})

    def _zero_grad(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        tr = self.tracer
        if tr.active("loop"):
            self.zero_grad_calls += 1
            if tr.assembler.n_backward and self.cleared is None:  # after this step's backward: the rare case
                self.cleared = caller_line(sys._getframe(1))

    def before_step(self, opt: torch.optim.Optimizer) -> None:
        """An optimizer steps with gradients a zero_grad cleared after the last backward pass (the
        tracer calls this only then): recorded, the first few times, with the zero_grad's line."""
        where, self.cleared = self.cleared, None
        if self._late_zero_grads >= _LATE_ZERO_GRAD_EVENTS:
            return
        self._late_zero_grads += 1
        held = [p for g in opt.param_groups for p in g["params"]]
        grads = [p.grad for p in held if p.grad is not None]
        self.tracer.writer.add_event(self.tracer.step, M.ZERO_GRAD_BEFORE_STEP.name, {
            **(where or {}), "optimizer_params": len(held), "params_with_grad": len(grads),
            "any_grad_left": _any_nonzero(grads)})

    def _loader_next(self, t0: float, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
                     exc: BaseException | None) -> None:
        self.t_loader += time.perf_counter() - t0
        dataset = getattr(args[0], "_dataset", None) if args else None
        self.current_dataset = id(dataset) if dataset is not None else None
        if dataset is None:
            return
        known = self._loader_sets.get(id(dataset))
        if known is None or known[1]() is not dataset:
            self._loader_sets[id(dataset)] = known = (self._tensor_dataset(dataset), weak(dataset))
            self._describe_loader(args[0], dataset)
        if self.drift is not None and exc is None:
            self.drift.next_batch(args[0], dataset, torch.is_grad_enabled())
        if self._fresh_batches is not None and exc is None and torch.is_grad_enabled():
            self._count_fresh(args[0], result)
        if exc is not None and known[0]:
            # A TensorDataset's loop is over (StopIteration): what runs next is judged by its own memory,
            # so a validation tensor evaluated after the loop is judged on its own. (Another data set's
            # memory is unknown: the passes after its loop stay filed under it, as training-set evaluation.)
            self.current_dataset = None

    def _count_fresh(self, it: Any, batch: Any) -> None:
        """Of the first `_FRESH_WINDOW` training batches, how many were an iterator's first (its
        `_num_yielded` is 1 after it): all of them when the loop calls next(iter(loader)) every step,
        which starts (and, with workers, stops) the loader's worker processes for each batch. A loader
        whose epoch is one batch, or has no length, is not counted. Each such first batch's first
        tensor is summed (its first 4,096 values): the same sum every time is the same batch every step."""
        counts = self._fresh_batches
        try:
            per_epoch = len(it)
        except Exception:  # noqa: BLE001 - no length (an IterableDataset, a batch sampler that raises): not counted
            per_epoch = 0
        if per_epoch < 2:  # an epoch of one batch (full-batch training) starts an iterator per batch by design
            self._fresh_batches = None
            return
        counts[0] += 1  # type: ignore[index]
        if getattr(it, "_num_yielded", 0) == 1:
            counts[1] += 1  # type: ignore[index]
            x = S.first_tensor((batch,))
            if x is not None and x.numel():
                self._fresh_sums.add(float(x.detach().reshape(-1)[:4096].double().sum()))
        if counts[0] < _FRESH_WINDOW:  # type: ignore[index]
            return
        self._fresh_batches = None  # (decided: no more counting)
        if counts[1] >= 0.9 * counts[0] and self.tracer.active("loop"):  # type: ignore[index]
            sampler = getattr(it, "_index_sampler", None)
            self.tracer.writer.add_event(self.tracer.step, M.LOADER_ITERATOR_PER_BATCH.name, {
                **caller_line(sys._getframe(2)), "batches": counts[0], "new_iterators": counts[1],  # type: ignore[index]
                "same_batch": len(self._fresh_sums) == 1,
                "dataset": type(getattr(it, "_dataset", None)).__name__,
                "num_workers": int(getattr(it, "_num_workers", 0) or 0),
                "persistent_workers": bool(getattr(it, "_persistent_workers", False)),
                **_sampler_of(getattr(sampler, "sampler", sampler))})

    def _dataset_changed(self, data: dict[str, Any]) -> None:
        if self.tracer.active("loop"):
            self.tracer.writer.add_event(self.tracer.step, M.DATASET_CHANGED.name, data)

    def _describe_loader(self, it: Any, dataset: Any) -> None:
        """Once per data set: how its loader is set up, so that advice on waiting for data can start
        from what the user already has (worker processes that cost more than they save, say), and
        whether it was first read with autograd on (a training loader) or off (a validation loop)."""
        if not self.tracer.active("loop"):
            return
        try:
            n = len(dataset)
        except Exception:  # noqa: BLE001 - an IterableDataset without a length (TypeError, NotImplementedError)
            n = None
        sampler = getattr(it, "_index_sampler", None)
        self.tracer.writer.add_event(self.tracer.step, M.DATALOADER.name, {
            "dataset": type(dataset).__name__, "length": n,
            "num_workers": int(getattr(it, "_num_workers", 0) or 0),
            "persistent_workers": bool(getattr(it, "_persistent_workers", False)),
            "batch_size": getattr(sampler, "batch_size", None) if getattr(it, "_auto_collation", False) else None,
            "grad_enabled": torch.is_grad_enabled(), "in_memory": _in_memory(dataset, n),
            **_sampler_of(getattr(sampler, "sampler", sampler))})

    def _tensor_dataset(self, dataset: Any) -> bool:
        """A `TensorDataset` trained from is its tensors' memory: evaluating the first of them whole
        after the loop (training accuracy) is not validation; a slice or a copy of it is judged."""
        tensors = getattr(dataset, "tensors", None)
        x = tensors[0] if isinstance(tensors, tuple) and tensors and isinstance(tensors[0], torch.Tensor) else None
        if x is None:
            return False
        key = _storage_key(x)
        if key is None:
            return False
        self.trained_storages.add(key)
        lo, hi = self.spans.get(("train", key), (key[1], 0))
        self.spans[("train", key)] = (min(lo, 0), max(hi, key[1]))
        return True

    def _clipped(self, token: None, args: tuple[Any, ...], kwargs: dict[str, Any], total: Any,
                 exc: BaseException | None) -> None:
        if exc is not None or not isinstance(total, torch.Tensor) or not self.tracer.active("loop"):
            return
        max_norm = args[1] if len(args) > 1 else kwargs.get("max_norm")
        if max_norm is None:
            return
        if not self._clip_seen or self._clip_iterator is not None:
            self._describe_clip(args[0] if args else kwargs.get("parameters"), float(max_norm))
        # the limit filled ON the device (`torch.tensor(x, device=cuda)` is a host-to-device copy that
        # waits for the stream: a synchronisation every clipped step)
        clip = torch.stack([total.detach().reshape(()).to(torch.float64),
                            torch.full((), float(max_norm), dtype=torch.float64, device=total.device)])
        tr = self.tracer
        if not tr.assembler.n_backward and tr.registry.optimizers and tr._optimizer_mode():
            # after an optimizer step, before any backward pass: if an optimizer steps next (two optimizers
            # over one backward, each clipping its own part), this was its clipping; if a backward pass
            # comes first, the step before used these gradients unclipped (`late_clip`)
            self.pending_clip = (clip, caller_line(sys._getframe(1)), float(max_norm))
            return
        self.clip = clip

    def _describe_clip(self, params: Any, max_norm: float) -> None:
        """The run's first clipping, once (`clip_call`: its line, and what it was given); and, if that was
        an iterator (a `filter`, a generator), whether the second call is given the same object: an
        iterator yields its parameters once, so from then on the clipping sees none (it returns 0). The
        first iterator is held (strongly: a `filter` takes no weak reference) until that second call only."""
        tr = self.tracer
        iterator = isinstance(params, Iterator)
        if not self._clip_seen:
            self._clip_seen = True
            self._clip_iterator = params if iterator else None
            tr.writer.add_event(tr.step, M.CLIP_CALL.name, {
                **caller_line(sys._getframe(2)), "max_norm": max_norm, "parameters": type(params).__name__,
                "iterator": iterator})
            return
        first, self._clip_iterator = self._clip_iterator, None
        if first is params:
            tr.writer.add_event(tr.step, M.CLIP_CALL.name, {
                **caller_line(sys._getframe(2)), "max_norm": max_norm, "parameters": type(params).__name__,
                "iterator": True, "same_iterator_again": True})

    def clip_before_step(self) -> None:
        """An optimizer steps after a clipping made since the last step: it was this step's."""
        self.clip, self.pending_clip = self.pending_clip[0], None  # type: ignore[index]

    def late_clip(self) -> None:
        """A backward pass after a clipping that came after an optimizer step, with no step between:
        the clipped gradients were never used (recorded, the first few times, with the line)."""
        clip, where, max_norm = self.pending_clip  # type: ignore[misc]
        self.pending_clip = None
        if self._late_clips < _LATE_CLIP_EVENTS:
            self._late_clips += 1
            self.tracer.writer.add_event(self.tracer.step, M.CLIP_AFTER_STEP.name, {
                **where, "max_norm": max_norm, "norm": float(clip[0])})  # rare: a read

    def _plateau(self, before: list[float] | None, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
                 exc: BaseException | None) -> None:
        """A ReduceLROnPlateau step (once an epoch, typically): its metric, mode and what it did to the rates."""
        if exc is not None or before is None or not self.tracer.active("loop"):
            return
        metric = args[1] if len(args) > 1 else kwargs.get("metrics")
        try:
            value = float(metric)  # a tensor: one read, once an epoch
        except (TypeError, ValueError, RuntimeError):
            return
        sched = args[0]
        self.tracer.writer.add_event(self.tracer.step, M.PLATEAU_STEP.name, {
            "metric": value, "mode": str(getattr(sched, "mode", "")), "factor": float(getattr(sched, "factor", 0.0)),
            "scheduler": id(sched) & 0xFFFFFFFF,
            "lr_before": before, "lr_after": _lrs(args, kwargs) or []})

    # -- per step -------------------------------------------------------------------------------------
    def first_backward(self, params: list[torch.Tensor]) -> None:
        """Before the step's first backward: were the gradients of the last step cleared?"""
        tr = self.tracer
        if tr.step == 0 or self.zero_grad_calls:
            return
        carried = [p.grad.detach() for p in params if p.grad is not None]
        if carried:
            extra = tr.assembler.extra
            tr.buffer.add(torch.stack(S.norms(carried)).norm().reshape(1),
                          lambda v: extra.__setitem__(M.CARRIED_GRAD_NORM.name, v[0]))

    def before_sync(self) -> None:
        """Put what clipping measured into the step's one host copy."""
        if self.clip is not None:
            extra = self.tracer.assembler.extra
            self.tracer.buffer.add(self.clip, lambda v: extra.update({M.CLIP_NORM.name: v[0], M.CLIP_MAX.name: v[1]}))
            self.clip = None

    def end_step(self) -> dict[str, Any]:
        # live losses: how many loss tensors of earlier steps (not this one) something still holds
        # (C-level maps: every step runs this)
        recent = self.recent_losses
        n = len(recent) - 1
        live = sum(map(_is_alive, map(_deref, itertools.islice(recent, n)))) if n > 0 else 0
        cols = {M.ZERO_GRAD_CALLS.name: self.zero_grad_calls, M.T_LOADER.name: self.t_loader, M.LIVE_LOSSES.name: live}
        self.zero_grad_calls = 0
        self.t_loader = 0.0
        return cols

    # -- data fingerprints --------------------------------------------------------------------------------
    def fingerprint(self, x: torch.Tensor, phase: str) -> None:
        """One number per sample (a fixed random projection) while the budget lasts."""
        if not self.fingerprints_on or self._fp_budget[phase] <= 0 or x.dim() < 2:
            return
        flat = x.detach()[:256].flatten(1)
        if not flat.is_floating_point() or flat.shape[1] < _MIN_FEATURES:
            return  # (one or two values a sample: a grid point or a reading shared by many samples, not an identity)
        v = self._vector(flat.shape[1], flat.device)
        self._fp_budget[phase] -= flat.shape[0]
        dataset = self.current_dataset if self.current_dataset is not None else self._storage(x, phase)
        self.tracer.buffer.add(_project(flat.float(), v), lambda values: self.add_fingerprints(phase, dataset, values))
        if x.dim() in (2, 3) and x.shape[1] >= _MIN_WINDOW:
            self._windows(x, phase, dataset)

    def _vector(self, size: int, device: torch.device) -> torch.Tensor:
        """The fixed random projection for samples of `size` values (a private generator: the global
        RNG is never touched)."""
        key = (size, device)
        v = self._fp_vectors.get(key)
        if v is None:
            v = self._fp_vectors[key] = torch.randn(size, generator=torch.Generator().manual_seed(12345)).to(device)
        return v

    def _windows(self, x: torch.Tensor, phase: str, dataset: _Source) -> None:
        """Each sample without its first step and without its last (axis 1: a window of a series, or
        lag features): a validation window that is a training window moved by one step has its head
        equal to that one's tail. Constant windows (padding, a flat sensor) are left out."""
        w = x.detach()[:256].float()
        head, tail = w[:, :-1].flatten(1), w[:, 1:].flatten(1)
        varies = head.amax(1) > head.amin(1)
        v = self._vector(head.shape[1], head.device)
        nan = torch.full((), float("nan"), device=head.device)
        both = torch.where(varies, torch.stack([_project(head, v), _project(tail, v)]), nan)  # (no boolean indexing: no device sync)
        self.window_length = max(self.window_length, int(x.shape[1]))
        self.tracer.buffer.add(both.flatten(), lambda values: self._add_windows(phase, dataset, values))

    def _add_windows(self, phase: str, dataset: _Source, values: list[float]) -> None:
        v = np.asarray(values, dtype=np.float32)
        n = len(v) // 2
        head, tail = v[:n], v[n:]
        self.window_ends.setdefault((phase, dataset, "head"), set()).update(head[np.isfinite(head)].tolist())
        self.window_ends.setdefault((phase, dataset, "tail"), set()).update(tail[np.isfinite(tail)].tolist())

    def _storage(self, x: torch.Tensor, phase: str) -> tuple[int, int] | None:
        """The storage a batch without a DataLoader was read from, its byte span noted; None if unknown.

        A training batch counts only when it is a slice of a larger tensor (a batch that owns its
        memory may be freed and its address reused by a later, unrelated tensor)."""
        key = _storage_key(x)
        if key is None:
            return None
        try:
            start = x.storage_offset() * x.element_size()
        except (RuntimeError, NotImplementedError):
            return None
        end = start + x.numel() * x.element_size()
        if not x.is_contiguous() or (phase == "train" and end - start >= key[1]):
            return None
        lo, hi = self.spans.get((phase, key), (start, end))
        self.spans[(phase, key)] = (min(lo, start), max(hi, end))
        return key

    def add_fingerprints(self, phase: str, dataset: _Source, values: list[float]) -> None:
        # float32 projections of identical samples are identical; rounding to float32 drops the
        # float64 widening the host copy added.
        self.fingerprints.setdefault((phase, dataset), set()).update(np.asarray(values, dtype=np.float32).tolist())

    def overlap(self) -> dict[str, Any] | None:
        """Validation samples also seen in training, counting only data sets never trained on."""
        trained_on = {d for (phase, d) in self.fingerprints if phase == "train" and d is not None} | self.trained_storages
        train = set().union(*(v for (phase, _), v in self.fingerprints.items() if phase == "train"))
        val = set().union(*(v for (phase, d), v in self.fingerprints.items()
                            if phase == "val" and not self._trained_on(d, trained_on)))
        if not train or not val:
            return None
        shared = train & val
        out = {"train_samples": len(train), "val_samples": len(val), "overlap": len(shared),
               "fraction_of_val": len(shared) / len(val)}
        return out | self._shifted(trained_on)

    def _shifted(self, trained_on: set[_Source]) -> dict[str, Any]:
        """Validation windows that are training windows moved by one step (the end of one is the other's
        start): a series cut into overlapping windows and shuffled before the split."""
        def ends(phase: str, end: str) -> set[float]:
            return set().union(*(v for (p, d, e), v in self.window_ends.items()
                                 if p == phase and e == end and (phase == "train" or not self._trained_on(d, trained_on))))

        val_head, val_tail = ends("val", "head"), ends("val", "tail")
        if not val_head:
            return {}
        # a validation window one step after a training one: its head is that one's tail; one step before:
        # its tail is that one's head
        moved = len(val_head & ends("train", "tail")) + len(val_tail & ends("train", "head"))
        return {"shifted_overlap": min(moved, len(val_head)), "window_length": self.window_length,
                "shifted_fraction_of_val": min(moved, len(val_head)) / len(val_head)}

    def _trained_on(self, source: _Source, trained_on: set[_Source]) -> bool:
        """A data set trained on; or the tensor training batches were sliced from, evaluated over all
        the rows they spanned (a validation slice of it that leaves training rows out is not)."""
        if source is None or source not in trained_on:
            return False
        if not isinstance(source, tuple):
            return True
        t_lo, t_hi = self.spans.get(("train", source), (0, 0))
        v_lo, v_hi = self.spans.get(("val", source), (0, 0))
        return v_lo <= t_lo and t_hi <= v_hi


#: Samples of fewer values are not fingerprinted: equal inputs (x on a linspace grid, one sensor reading)
#: come up in any split of such data without being the same sample.
_MIN_FEATURES = 3


def _project(rows: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Each row's projection on `v`, in float32 whatever autocast region the user's forward pass runs in. A
    matmul there runs in bfloat16 or float16, and its 8 bits of mantissa made distinct samples share a
    fingerprint: 62% of a healthy regressor's validation rows read as training rows (blind7). A matmul,
    not a product and a sum: that would hold a copy of the batch (150 MB for 256 ImageNet images)."""
    device = rows.device.type
    try:
        lowered = torch.is_autocast_enabled(device)
    except (RuntimeError, TypeError):  # a device type autocast does not know
        lowered = False
    if not lowered:
        return rows @ v
    with torch.autocast(device_type=device, enabled=False):
        return rows @ v


def _storage_key(x: torch.Tensor) -> tuple[int, int] | None:
    """(address, bytes) of the memory `x` views; None without a plain storage (a sparse tensor, a subclass)."""
    try:
        storage = x.untyped_storage()
        return storage.data_ptr(), storage.nbytes()
    except (RuntimeError, NotImplementedError):
        return None


def _sampler_of(sampler: Any) -> dict[str, Any]:
    """The index sampler, as the rules read it: its type, and for a `WeightedRandomSampler` how many
    weights it was given (it draws indices below that count only), how many samples it draws, and
    whether it draws with replacement."""
    if sampler is None:
        return {}
    out: dict[str, Any] = {"sampler": type(sampler).__name__}
    weights = getattr(sampler, "weights", None)
    if isinstance(sampler, torch.utils.data.WeightedRandomSampler) and isinstance(weights, torch.Tensor):
        out["sampler_weights"] = int(weights.numel())
        out["sampler_num_samples"] = int(getattr(sampler, "num_samples", 0) or 0)
        head = weights.detach()[:100_000]
        out["sampler_distinct_weights"] = int(torch.unique(head).numel())
        out["sampler_distinct_nonzero"] = int(torch.unique(head[head > 0]).numel())  # 0/1 weights: a subset, not a balance
        out["sampler_replacement"] = bool(getattr(sampler, "replacement", True))
    return out

