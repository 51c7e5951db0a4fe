"""Progress: the live status line `modeldebug run` draws on stderr while the script trains.

    modeldebug | step 120 | loss 0.4321 | 12.3 ms/step | grad norm 1.2 | 1 alert

It is fed at each step boundary with numbers the tracer already holds on the host (`StepInfo`), so it
adds no device synchronisation; it redraws at most `1 / interval` times a second. Alerts (a
non-finite loss or gradient, a gradient norm `grad_growth` times its early median, and the optional
`loss_alert`, `grad_norm_alert` and `memory_mb` thresholds of `DebuggingConfig`) are printed once each,
as their own line, when they fire.

It stays out of the way of the script's own output: while it is on, the script's `sys.stdout` and
`sys.stderr` (those that are terminals) are wrapped so that the status line is erased before the
script writes, and it is not redrawn while the script's last output line is unfinished (a prompt,
the script's own progress bar). It is off when its stream is not a terminal.
"""

from __future__ import annotations

import io
import logging
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from ..config import DebuggingConfig

__all__ = ["Progress", "StepInfo", "attach_progress", "is_terminal"]

_BASELINE_STEPS = 5  # finite gradient norms that make the early baseline of the growth alert


def _fmt(x: float) -> str:
    """3 significant digits, scientific when tiny or huge (as the rules write numbers)."""
    if not math.isfinite(x):
        return str(x)
    return f"{x:.2e}" if x and not 1e-3 <= abs(x) < 1e5 else f"{x:.3g}"


@dataclass(frozen=True)
class StepInfo:
    """What the tracer knows, on the host, when a step ends."""

    step: int
    loss: float | None = None
    grad_norm: float | None = None
    t_step: float | None = None
    rss_mb: float | None = None
    lr: float | None = None


def is_terminal(stream: Any) -> bool:
    """True when `stream` is an interactive terminal (never raises)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    """The stream handlers of every logger that exists now."""
    loggers = [logging.getLogger(), *(x for x in logging.Logger.manager.loggerDict.values()
                                      if isinstance(x, logging.Logger))]
    return [h for lg in loggers for h in lg.handlers if isinstance(h, logging.StreamHandler)]


class _Guarded:
    """A stream of the script's that erases the status line before anything is written to it."""

    def __init__(self, wrapped: TextIO, progress: Progress) -> None:
        self._wrapped = wrapped
        self._progress = progress

    def write(self, text: str) -> int:
        with self._progress.lock:
            self._progress.erase()
            n = self._wrapped.write(text)
            if text:
                self._progress.line_open = not text.endswith("\n")
            return n

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


class Progress:
    """A one-line live status on a terminal stream (stderr by default); inert when it is not one."""

    INTERVAL = 0.25  # seconds between redraws (alerts redraw at once)

    def __init__(self, stream: TextIO | None = None, *, config: DebuggingConfig | None = None,
                 interval: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self.enabled = is_terminal(self.stream)
        self.thresholds = (config or DebuggingConfig()).thresholds
        self.interval = self.INTERVAL if interval is None else interval
        self.clock = clock
        self.lock = threading.RLock()
        self.alerts: list[tuple[int, str, str]] = []  # (step, kind, message)
        self.line_open = False  # the script's last output did not end its line
        self.redraws = 0
        self._fired: set[str] = set()
        self._shown = ""
        self._last_draw = -math.inf
        self._last: StepInfo | None = None
        self._t_sum, self._t_n = 0.0, 0
        self._grad_head: list[float] = []
        self._grad_base: float | None = None
        self._wrapped: list[tuple[str, _Guarded, TextIO]] = []
        self._handlers: list[tuple[logging.StreamHandler[Any], _Guarded, TextIO]] = []
        self.closed = False

    # -- lifecycle -----------------------------------------------------------------------------------
    def install(self) -> Progress:
        """Wrap the script's terminal streams (sys.stdout, sys.stderr) so its output erases the line."""
        if not self.enabled:
            return self
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if current is self.stream or is_terminal(current):
                guard = _Guarded(current, self)
                setattr(sys, name, guard)
                self._wrapped.append((name, guard, current))
                # log handlers made earlier (logging.basicConfig) hold the stream itself
                for handler in _stream_handlers():
                    if handler.stream is current:
                        handler.setStream(guard)  # type: ignore[arg-type]
                        self._handlers.append((handler, guard, current))
        return self

    def close(self) -> None:
        """Erase the line and give the script's streams back (those it has not replaced itself)."""
        with self.lock:
            self.erase()
            self.closed = True
            for name, guard, original in self._wrapped:
                if getattr(sys, name) is guard:
                    setattr(sys, name, original)
            for handler, guard, original in self._handlers:
                if handler.stream is guard:
                    handler.setStream(original)
            self._wrapped.clear()
            self._handlers.clear()

    # -- per step --------------------------------------------------------------------------------------
    def on_step(self, info: StepInfo) -> None:
        """Called by the tracer at each step boundary: check the alerts, redraw when due."""
        if not self.enabled or self.closed:
            return
        self._last = info
        if info.t_step is not None:
            self._t_sum += info.t_step
            self._t_n += 1
        for kind, message in self._check(info):
            self._alert(info.step, kind, message)
        now = self.clock()
        if now - self._last_draw >= self.interval:
            self._last_draw = now
            self.draw()

    def _check(self, info: StepInfo) -> list[tuple[str, str]]:
        """The alerts this step crosses that have not fired yet (plain float comparisons)."""
        t, out = self.thresholds, []
        loss, grad = info.loss, info.grad_norm
        if loss is not None and not math.isfinite(loss):
            out.append(("nonfinite_loss", f"the loss is {loss}"))
        if grad is not None and not math.isfinite(grad):
            out.append(("nonfinite_grad", f"the gradient norm is {grad}"))
        elif grad is not None:
            if self._grad_base is None:
                self._grad_head.append(grad)
                if len(self._grad_head) == _BASELINE_STEPS:
                    self._grad_base = statistics.median(self._grad_head)
            elif self._grad_base > 0 and grad > t.grad_growth * self._grad_base:
                out.append(("grad_growth",
                            f"gradient norm {_fmt(grad)} is {_fmt(grad / self._grad_base)}x its median over the "
                            f"first {_BASELINE_STEPS} steps (grad_growth {_fmt(t.grad_growth)})"))
            if t.grad_norm_alert is not None and grad > t.grad_norm_alert:
                out.append(("grad_norm_alert",
                            f"gradient norm {_fmt(grad)} is above grad_norm_alert {_fmt(t.grad_norm_alert)}"))
        if t.loss_alert is not None and loss is not None and loss > t.loss_alert:
            out.append(("loss_alert", f"loss {_fmt(loss)} is above loss_alert {_fmt(t.loss_alert)}"))
        if t.memory_mb is not None and info.rss_mb is not None and info.rss_mb > t.memory_mb:
            out.append(("memory_mb", f"process memory {info.rss_mb:.0f} MiB is above memory_mb {_fmt(t.memory_mb)}"))
        return [(k, m) for k, m in out if k not in self._fired]

    def _alert(self, step: int, kind: str, message: str) -> None:
        self._fired.add(kind)
        self.alerts.append((step, kind, message))
        with self.lock:
            self.erase()
            self.stream.write(f"modeldebug: alert at step {step}: {message}\n")
            self.stream.flush()
            self.line_open = False
            self._last_draw = -math.inf  # show the new count at once

    # -- drawing ----------------------------------------------------------------------------------------
    def status(self) -> str:
        """The status text for the last step seen."""
        info = self._last
        if info is None:
            return "modeldebug | waiting for the first step"
        parts = [f"modeldebug | step {info.step}"]
        if info.loss is not None:
            parts.append(f"loss {_fmt(info.loss)}")
        if self._t_n:
            parts.append(f"{self._t_sum / self._t_n * 1e3:.3g} ms/step")
            self._t_sum, self._t_n = 0.0, 0
        if info.grad_norm is not None:
            parts.append(f"grad norm {_fmt(info.grad_norm)}")
        if self.alerts:
            parts.append(f"{len(self.alerts)} alert{'s' if len(self.alerts) > 1 else ''}")
        return " | ".join(parts)

    def _width(self) -> int:
        """The terminal's width; COLUMNS or 80 where it does not say (a new pseudo-terminal says 0)."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            columns = 0
        if columns > 0:
            return columns
        try:
            return int(os.environ.get("COLUMNS", "80")) or 80
        except ValueError:
            return 80

    def draw(self) -> None:
        """Redraw the line in place (not while the script's own output line is unfinished)."""
        with self.lock:
            if self.closed or self.line_open:
                return
            for _, guard, _ in self._wrapped:
                guard._wrapped.flush()  # the script's buffered text lands before our line
            text = self.status()[: max(self._width() - 1, 10)]
            self.erase()
            self.stream.write("\r" + text)
            self.stream.flush()
            self._shown = text
            self.redraws += 1

    def erase(self) -> None:
        """Blank the drawn line and return the cursor to its start (plain spaces: no terminal codes)."""
        if self._shown:
            self.stream.write("\r" + " " * len(self._shown) + "\r")
            self.stream.flush()
            self._shown = ""


def attach_progress(tracer: Any, progress: bool | TextIO, config: DebuggingConfig) -> Progress | None:
    """A live line for `tracer` on stderr (True) or the given stream; None when off or not a terminal."""
    if progress is False:
        return None
    live = Progress(sys.stderr if progress is True else progress, config=config)
    if not live.enabled:
        return None
    tracer.listeners.append(live.on_step)
    return live
