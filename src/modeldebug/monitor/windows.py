"""Sliding windows over served requests, by count (the last N) or by time (the last T seconds).

Counts are kept incrementally (add on entry, subtract on exit), so a window costs O(1) per event
whatever its size. Latency alerts use the rate of slow requests (latency above a limit), the SRE
way of turning latency into a rate; percentiles are computed only for summaries. A rate is over the
requests where the metric was measured (`known`): a failed request has no answer, so it is neither
empty nor a refusal, and does not dilute those rates.
"""

from __future__ import annotations

import math
import re
from collections import deque
from typing import Any

from ..errors import BadInputError
from .events import Event

__all__ = ["ALL_KNOWN", "METRICS", "CountWindow", "TimeWindow", "Window", "flags", "known", "parse_window"]

#: The rates a window tracks, in this order.
METRICS = ("error", "refusal", "harmful", "empty", "slow")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_MAX_SPEC_DIGITS = 18
#: Time windows this long or longer keep per-second counts, not every event (see `TimeWindow`).
_BUCKET_FROM_S = 600.0


def flags(event: Event, slow_s: float) -> tuple[bool, ...]:
    """The event's metric flags in `METRICS` order (unknown counts as not flagged)."""
    return (event.error is not None, bool(event.refusal), bool(event.harmful), bool(event.empty),
            event.latency_s is not None and event.latency_s > slow_s)


#: Every metric measured: what `Window.add` assumes when it is not told.
ALL_KNOWN = (True,) * len(METRICS)


def known(event: Event) -> tuple[bool, ...]:
    """Which metrics the event measures, in `METRICS` order (errors always; the others when their flag is known)."""
    return (True, event.refusal is not None, event.harmful is not None, event.empty is not None,
            event.latency_s is not None)


class Window:
    """Base class: events in the window, their flag counts and, per metric, how many measured it."""

    spec: str

    def __init__(self) -> None:
        self._items: deque[tuple[float, tuple[bool, ...], float | None, tuple[bool, ...]]] = deque()
        self.counts = [0] * len(METRICS)
        self.measured = [0] * len(METRICS)

    def add(self, t: float, f: tuple[bool, ...], latency: float | None, k: tuple[bool, ...] = ALL_KNOWN) -> None:
        """Add an event's flags `f`; `k` says which metrics it measured (default all)."""
        self._items.append((t, f, latency, k))
        self._count(self.counts, f, 1)
        self._count(self.measured, k, 1)
        self._evict(t)

    @staticmethod
    def _count(into: list[int], values: tuple[bool, ...], sign: int) -> None:
        if any(values):  # most requests have no flag: nothing to count
            for i, v in enumerate(values):
                into[i] += sign * v

    def _pop(self) -> None:
        _, f, _, k = self._items.popleft()
        self._count(self.counts, f, -1)
        self._count(self.measured, k, -1)

    def _evict(self, now: float) -> None:
        raise NotImplementedError

    @property
    def n(self) -> int:
        return len(self._items)

    def rate(self, metric: str) -> float:
        """The metric's rate over the window's requests that measured it (0 when none did)."""
        i = METRICS.index(metric)
        return self.counts[i] / self.measured[i] if self.measured[i] else 0.0

    def latencies(self) -> list[float]:
        return [lat for _, _, lat, _ in self._items if lat is not None]

    def stats(self) -> dict[str, Any]:
        return {"window": self.spec, "n": self.n, **{f"{m}_rate": round(self.rate(m), 4) for m in METRICS}}


class CountWindow(Window):
    """The last `size` events."""

    def __init__(self, size: int) -> None:
        super().__init__()
        if size < 1:
            raise BadInputError(f"a count window needs at least 1 event, got {size}")
        self.size = size
        self.spec = str(size)

    def _evict(self, now: float) -> None:
        while len(self._items) > self.size:
            self._pop()


class TimeWindow(Window):
    """The events of the last `seconds` (by event time, so a replayed log behaves like the live system).

    With a `resolution` (seconds) the window keeps one count per time bucket instead of every
    event, so a 6-hour window at 1,000 requests a second holds 21,600 buckets, not 21.6 million
    events; an event then leaves the window up to one `resolution` late. `parse_window` buckets
    windows of 10 minutes or more by the second.
    """

    def __init__(self, seconds: float, *, resolution: float | None = None) -> None:
        super().__init__()
        if not 0 < seconds < math.inf:
            raise BadInputError(f"a time window must be a finite time longer than 0 s, got {seconds}")
        self.seconds = seconds
        self.spec = _fmt(seconds)
        self.resolution = resolution
        self._buckets: deque[list[Any]] = deque()  # [bucket index, counts, events, measured]
        self._n = 0

    def add(self, t: float, f: tuple[bool, ...], latency: float | None, k: tuple[bool, ...] = ALL_KNOWN) -> None:
        if self.resolution is None:
            super().add(t, f, latency, k)
            return
        b = math.floor(t / self.resolution)
        if self._buckets and self._buckets[-1][0] == b:
            entry = self._buckets[-1]
        else:
            entry = [b, [0] * len(METRICS), 0, [0] * len(METRICS)]
            self._buckets.append(entry)
        entry[2] += 1
        self._n += 1
        for into in (entry[1], self.counts):
            self._count(into, f, 1)
        for into in (entry[3], self.measured):
            self._count(into, k, 1)
        self._evict(t)

    def _evict(self, now: float) -> None:
        if self.resolution is None:
            while self._items and self._items[0][0] <= now - self.seconds:
                self._pop()
            return
        while self._buckets and (self._buckets[0][0] + 1) * self.resolution <= now - self.seconds:
            _, counts, n, measured = self._buckets.popleft()
            self._n -= n
            for i, v in enumerate(counts):
                self.counts[i] -= v
            for i, v in enumerate(measured):
                self.measured[i] -= v

    @property
    def n(self) -> int:
        return self._n if self.resolution is not None else len(self._items)

    def latencies(self) -> list[float]:
        """The latencies in the window (a bucketed window keeps none)."""
        return super().latencies() if self.resolution is None else []


def _fmt(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_window(spec: str | int) -> Window:
    """'50' -> the last 50 requests; '30s', '5m', '1h', '1d' -> the last so much time (by the second from 10m)."""
    text = str(spec).strip().lower()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text)
    if not (m or re.fullmatch(r"\d+", text)):
        raise BadInputError(f"window {spec!r}: expected a request count (50) or a duration (30s, 5m, 1h, 1d)")
    if len(text) > _MAX_SPEC_DIGITS:  # beyond any log, and past what int() and float() take
        raise BadInputError(f"window {text[:20]}...: {len(text)} characters is too long; a window is a request "
                            f"count or a duration of at most {_MAX_SPEC_DIGITS} characters")
    if not m:
        return CountWindow(int(text))
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    return TimeWindow(seconds, resolution=1.0 if seconds >= _BUCKET_FROM_S else None)
