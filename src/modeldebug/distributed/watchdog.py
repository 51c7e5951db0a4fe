"""The hang watchdog: one thread per rank that notices when no step completes, and says where it waits.

When no optimizer step has finished for `factor` x the median step time (and at least `min_s`
seconds), it writes to stderr, once per stall: the rank, how long it has waited, the collective
the main thread is in (or the last one it entered) with the line that called it, and the main
thread's Python stack. It never interrupts the job: a collective with a timeout still raises,
one without still waits. The stall is kept and written to the record when the watch ends.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = ["Collective", "HangSettings", "Progress", "Watchdog"]


@dataclass(frozen=True)
class HangSettings:
    """When the watchdog speaks: `factor` x the median step time, and never before `min_s` seconds."""

    factor: float = 10.0
    min_s: float = 10.0
    poll_s: float = 0.25

    @classmethod
    def from_env(cls) -> HangSettings:
        """MODELDEBUG_HANG_FACTOR and MODELDEBUG_HANG_MIN_S override the defaults (bad values are ignored)."""
        def num(name: str, default: float) -> float:
            try:
                value = float(os.environ.get(name, default))
            except ValueError:
                return default
            return value if value > 0 else default

        min_s = num("MODELDEBUG_HANG_MIN_S", cls.min_s)
        return cls(factor=num("MODELDEBUG_HANG_FACTOR", cls.factor), min_s=min_s, poll_s=min(0.25, min_s / 4))


@dataclass
class Collective:
    """One call of a torch.distributed collective."""

    op: str
    call: int  # how many calls of this op this rank had made, this one included
    step: int  # optimizer steps completed before it
    where: str  # file:line of the caller outside torch
    entered: float  # time.monotonic()

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "call": self.call, "step": self.step, "where": self.where}


@dataclass
class Progress:
    """What the training thread tells the watchdog: plain attribute writes, no lock needed."""

    steps: int = 0
    last_step: float = field(default_factory=time.monotonic)
    durations: list[float] = field(default_factory=list)
    current: Collective | None = None
    last: Collective | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def step_done(self, now: float) -> None:
        self.durations.append(now - self.last_step)
        if len(self.durations) > 200:
            del self.durations[:100]
        self.steps += 1
        self.last_step = now


class Watchdog(threading.Thread):
    """Prints where the main thread waits when steps stop; see the module docstring."""

    def __init__(self, progress: Progress, settings: HangSettings, *, rank: int, stream: TextIO | None = None) -> None:
        super().__init__(name="modeldebug-hang-watchdog", daemon=True)
        self.progress = progress
        self.settings = settings
        self.rank = rank
        self.stream = stream
        self.stalls: list[dict[str, Any]] = []
        self._stop_event = threading.Event()
        self._main = threading.main_thread()

    def threshold(self) -> float:
        """Seconds without a step that count as a stall now."""
        d = self.progress.durations[-50:]
        if len(d) < 2:
            return self.settings.min_s * 6  # no step time known yet: be patient (loading, compiling)
        return max(self.settings.factor * statistics.median(d), self.settings.min_s)

    def run(self) -> None:
        reported_at = -1
        while not self._stop_event.wait(self.settings.poll_s):
            p = self.progress
            waited = time.monotonic() - p.last_step
            if p.steps == reported_at or waited < self.threshold():
                continue
            reported_at = p.steps
            self._report(waited)

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=2)

    def _report(self, waited: float) -> None:
        p = self.progress
        inside, last = p.current, p.last
        frame = sys._current_frames().get(self._main.ident or -1)
        stack = traceback.format_stack(frame)[-12:] if frame is not None else []
        med = statistics.median(p.durations[-50:]) if p.durations else None
        phase = _phase(frame) if inside is None else None
        stall = {"rank": self.rank, "waited_s": round(waited, 3), "step": p.steps, "phase": phase,
                 "median_step_s": None if med is None else round(med, 6),
                 "in_collective": inside.to_dict() if inside else None,
                 "last_collective": last.to_dict() if last else None,
                 "collective_counts": dict(p.counts), "stack": [s.rstrip() for s in stack]}
        self.stalls.append(stall)
        if inside is not None:
            where = (f"waiting in torch.distributed.{inside.op} (call {inside.call} of {inside.op} on this rank, "
                     f"entered after step {inside.step} at {inside.where}, {time.monotonic() - inside.entered:.1f} s ago)")
        elif phase is not None:
            where = f"{_PHASE_WORDS[phase]}, not in a Python collective"
        elif last is not None:
            where = f"not in a collective; the last one it entered was {last.op} (call {last.call}) at {last.where}"
        else:
            where = "no torch.distributed collective entered yet"
        base = f"{med:.3g} s" if med is not None else "unknown"
        lines = [(f"modeldebug [rank {self.rank}]: no training step finished for {waited:.1f} s "
                  f"(median step {base}) after step {p.steps}: {where}."),
                 (f"modeldebug [rank {self.rank}]: collectives entered so far: "
                  + (", ".join(f"{k} x{v}" for k, v in sorted(p.counts.items())) or "none")
                  + ". A rank that entered fewer calls of an op than the others skipped one."),
                 f"modeldebug [rank {self.rank}]: main thread stack (most recent call last):"]
        text = "\n".join(lines) + "\n" + "".join(stack)
        stream = self.stream or sys.stderr
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):  # a closed stream must not kill the thread's job silently... or the job
            pass


#: where DistributedDataParallel communicates from C++, which the collective probes do not see
_PHASE_WORDS = {
    "backward": "inside backward(), where DistributedDataParallel all-reduces the gradients (in C++)",
    "ddp_forward": "inside DistributedDataParallel's forward(), where it broadcasts buffers and syncs (in C++)",
}


def _phase(frame: Any) -> str | None:
    """"backward" or "ddp_forward" when the main thread waits there (DDP's own collectives), else None."""
    while frame is not None:
        code = frame.f_code
        path = code.co_filename.replace("\\", "/")
        if path.endswith(("torch/autograd/graph.py", "torch/autograd/__init__.py")) and \
                code.co_name in ("_engine_run_backward", "backward"):
            return "backward"
        if path.endswith("torch/nn/parallel/distributed.py") and code.co_name in ("forward", "_pre_forward",
                                                                                   "_post_forward"):
            return "ddp_forward"
        frame = frame.f_back
    return None
