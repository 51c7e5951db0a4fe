"""Deferred host copies: an unsampled step's numbers read from the device without waiting for it.

On a CUDA device, reading a value (``.item()``, ``.tolist()``) makes the host wait until the GPU has
run every kernel queued before it. An unsampled step needs no number at once: its row can be written
a few steps later. So its values are concatenated on the device, copied with ``non_blocking=True``
into a pinned host buffer, and a CUDA event is recorded after the copy on the same stream (the current
stream of the values' device, where they were computed and where ``copy_`` enqueues), buffers and
events pooled (`CudaCopier`); the step waits
in a `PendingQueue` until ``event.query()`` says the copy has landed, which the assembler asks at
the next steps' sync points. If the host runs ahead of the GPU, the queue holds at most `bound`
steps: a full queue waits on its oldest event (one wait per `bound` steps at worst). The end of the
run (detach) and any synchronous step read everything still pending first, so rows arrive in step
order.

A copier is a small object: ``start(flat)`` begins the copy of a flat tensor and returns a `Copy`
with ``ready()``, ``wait()`` and ``values()``. `CudaCopier` is the real one (a few lines of torch);
`LaggingCopier` copies at once on the host but reports "not ready" until ``lag`` later copies have
started (a GPU ``lag`` steps behind), so that the queue, the row order, late non-finite values and
the final drain run on a CPU (the tests). The CUDA path is not verified on a GPU yet (benchmarks/cuda_sync_check.py is the check to run there).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from .buffer import Layout

__all__ = ["Copier", "Copy", "CudaCopier", "LaggingCopier", "PendingQueue", "PendingStep"]


class Copy(Protocol):
    def ready(self) -> bool: ...
    def wait(self) -> None: ...
    def values(self) -> list[float]: ...


class Copier(Protocol):
    def start(self, flat: torch.Tensor) -> Copy: ...


class _Slot:
    """A pinned host buffer and the CUDA event recorded after a copy into it, reused step after step."""

    __slots__ = ("event", "host")

    def __init__(self, host: torch.Tensor, event: torch.cuda.Event) -> None:
        self.host, self.event = host, event


class _CudaCopy:
    """One step's copy: ``flat`` (device) into a pooled pinned buffer, an event recorded after it on
    the stream that produced the values (the current stream of ``flat``'s device, the stream that
    ``copy_`` itself uses). ``flat`` is held until the event has completed, so the caching allocator
    cannot give its memory to another tensor while the copy may still read it, whatever stream it was
    allocated on; the pinned buffer goes back to the pool only after its values were read."""

    __slots__ = ("done", "flat", "key", "n", "owner", "slot")

    def __init__(self, owner: CudaCopier, flat: torch.Tensor) -> None:
        key = (flat.device, flat.dtype)
        n = flat.numel()
        slot = owner.take(key, n)
        host = slot.host if slot.host.numel() == n else slot.host[:n]
        host.copy_(flat, non_blocking=True)  # cudaMemcpyAsync on the current stream of flat's device
        slot.event.record(torch.cuda.current_stream(flat.device))  # the same stream, after the copy
        self.owner, self.key, self.n, self.slot, self.flat, self.done = owner, key, n, slot, flat, False

    def ready(self) -> bool:
        if not self.done and self.slot.event.query():  # cudaEventQuery: asks, never waits
            self.done, self.flat = True, None  # type: ignore[assignment]
        return self.done

    def wait(self) -> None:
        if not self.done:
            self.slot.event.synchronize()  # cudaEventSynchronize: the one wait (a full queue, a drain)
            self.done, self.flat = True, None  # type: ignore[assignment]

    def values(self) -> list[float]:
        self.wait()  # no runtime call once ready() or wait() said so
        slot = self.slot
        out = (slot.host if slot.host.numel() == self.n else slot.host[:self.n]).tolist()  # pinned host memory
        self.owner.give(self.key, slot)
        return out


class CudaCopier:
    """Pinned buffer, ``non_blocking`` copy, CUDA event: the real copier.

    Buffers and events are pooled: a step takes a free slot (a pinned buffer at least as large as
    its values, of their dtype and device, and an event) and gives it back once its values were read,
    so after the first steps no pinned memory is allocated and no event created (at most `keep`
    slots per device and dtype are kept: the queue's bound and the step under way)."""

    def __init__(self, keep: int = 10) -> None:
        self.keep = keep
        self.free: dict[tuple[torch.device, torch.dtype], list[_Slot]] = {}
        self.created = 0  # slots made (pinned buffers allocated, events created): a test reads it

    def start(self, flat: torch.Tensor) -> Copy:
        return _CudaCopy(self, flat)

    def take(self, key: tuple[torch.device, torch.dtype], n: int) -> _Slot:
        free = self.free.get(key)
        if free:
            for i in range(len(free) - 1, -1, -1):
                if free[i].host.numel() >= n:
                    return free.pop(i)
        size = 64
        while size < n:
            size *= 2
        # torch's caching host allocator: a pinned block, reused if one is cached; raises where
        # pinned memory cannot be had (the assembler then reads synchronously)
        slot = _Slot(torch.empty(size, dtype=key[1], pin_memory=True), torch.cuda.Event())
        self.created += 1
        return slot

    def give(self, key: tuple[torch.device, torch.dtype], slot: _Slot) -> None:
        free = self.free.setdefault(key, [])
        if len(free) < self.keep:
            free.append(slot)


class _LaggingCopy:
    def __init__(self, owner: LaggingCopier, values: list[float]) -> None:
        self.owner, self._values, self.due = owner, values, owner.started + owner.lag
        self.waited = False

    def ready(self) -> bool:
        self.owner.queries += 1
        return self.waited or self.owner.started > self.due

    def wait(self) -> None:
        self.owner.waits += 1
        self.waited = True

    def values(self) -> list[float]:
        if not self.ready():  # read before it was ready: the queue must never do this
            raise RuntimeError("a deferred copy was read before it was ready")
        return self._values


class LaggingCopier:
    """A host copier that acts like a GPU running `lag` steps behind the host: a copy is "not ready"
    until `lag` later copies have been started (or it is waited for).

    The values are copied at once (``tolist``); only readiness is delayed, so what is exercised is
    the deferral itself: the queue bound, the waits, the order of rows and the end-of-run drain."""

    def __init__(self, lag: int) -> None:
        self.lag = lag
        self.started = 0
        self.queries = 0
        self.waits = 0

    def start(self, flat: torch.Tensor) -> Copy:
        copy = _LaggingCopy(self, flat.tolist())
        self.started += 1
        return copy


@dataclass
class PendingStep:
    """One step whose numbers are on their way to the host."""

    step: int
    layout: Layout  # the step's sinks and where their values sit in the copy
    copy: Copy | None  # None: every value was on the host already
    #: the step row without the copied columns, set when the step ends; None while it is under way
    row: dict[str, Any] | None = None
    dropped: bool = False  # the step was dropped (a GradScaler skipped it): its sinks run, no row
    extra: dict[str, float] = field(default_factory=dict)  # the columns its sinks fill (by reference)
    columns: dict[str, Any] = field(default_factory=dict)  # the collectors' own columns, at the step's end


class PendingQueue:
    """Pending steps in step order, at most `bound` of them."""

    def __init__(self, bound: int = 8) -> None:
        self.bound = bound
        self.items: deque[PendingStep] = deque()

    def __len__(self) -> int:
        return len(self.items)

    def ready(self, finish: Callable[[PendingStep], None]) -> None:
        """Finish, oldest first, every ended step whose copy has landed (asks each copy; never waits)."""
        items = self.items
        while items:
            head = items[0]
            if head.row is None and not head.dropped:
                return  # the step under way: its row is not made yet
            if head.copy is not None and not head.copy.ready():
                return
            items.popleft()
            finish(head)

    def make_room(self, finish: Callable[[PendingStep], None]) -> None:
        """A full queue: wait on the oldest copy and finish it (the host ran `bound` steps ahead)."""
        while len(self.items) >= self.bound:
            head = self.items.popleft()
            if head.copy is not None:
                head.copy.wait()
            finish(head)

    def drain(self, finish: Callable[[PendingStep], None]) -> None:
        """Finish everything, in order, waiting where needed (a synchronous step, the end of the run)."""
        while self.items:
            head = self.items.popleft()
            if head.copy is not None and not head.copy.ready():
                head.copy.wait()
            finish(head)
