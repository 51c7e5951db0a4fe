"""Semantic breakpoints: stop the user's program, in the user's own frame, when a condition first holds.

`modeldebug run --break-on nonfinite,loss_spike,GRD001 -- train.py` and
`watch(model, break_on="nonfinite")` add one listener to the tracer's step boundary (nothing at all
is added without them). It judges each step from numbers the tracer already holds on the host (the
loss, the total gradient norm, the gradient norm carried over from the last step): no device sync,
no extra measure. When a condition first holds it prints what fired and why (code, step, value,
module), then stops in the frame of the training loop that called ``optimizer.step()`` (or
``backward()``), at its next line, through ``sys.breakpointhook`` (pdb by default; PYTHONBREAKPOINT
picks another debugger, ``PYTHONBREAKPOINT=0`` prints and goes on).

Only the codes whose evidence exists at every step can be judged while the run goes (`ONLINE`);
the others are judged from the whole run and are refused with one line.

`StopAfter` (`run --max-steps N`, used by `modeldebug bisect`) ends the script at the same place
after N steps, as if it had called ``sys.exit(0)`` there.
"""

from __future__ import annotations

import math
import os
import sqlite3
import statistics
import sys
import sysconfig
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO

import torch

from ..commands._breakon import ALIASES, parse_break_on, unique
from ..errors import DebuggingError
from .crash import is_library_frame
from .progress import StepInfo

__all__ = ["Breakpoints", "Fired", "StopAfter", "at_next_line", "attach_breakpoints", "user_frame"]

_WINDOW = 8  # steps of the trailing median that loss_spike and LOS001 compare with
_HEAD = 5  # first finite gradient norms that make GRD001's baseline


# -- where to stop --------------------------------------------------------------------------------------
_STDLIB = tuple(os.path.realpath(sysconfig.get_paths()[k]) + os.sep for k in ("stdlib", "platstdlib"))
_OWN = (os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
        os.path.dirname(os.path.abspath(torch.__file__)) + os.sep)


def _core(filename: str) -> bool:
    """modeldebug's, PyTorch's or the standard library's code: never where a training loop is."""
    if "/modeldebug/demos/" in filename:
        return False
    path = os.path.realpath(filename) if not filename.startswith("<") else filename
    stdlib = path.startswith(_STDLIB) and "-packages" not in path  # a system Python keeps site-packages there
    return filename.startswith("<frozen") or stdlib or os.path.abspath(filename).startswith(_OWN) or \
        path.startswith(_OWN)


def user_frame(start: FrameType | None = None) -> FrameType | None:
    """The frame of the loop that called ``optimizer.step()`` / ``backward()``: the innermost frame
    that is not modeldebug's, PyTorch's or the standard library's. That is the user's code, or the
    loop of an installed trainer library (Lightning, accelerate) that made the call for it."""
    frame = start or sys._getframe(1)
    while frame is not None and _core(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


def at_next_line(frame: FrameType, action: Callable[[], None]) -> None:
    """Run `action` from `frame`'s next line event (or its return), in a trace function called from
    that frame: a debugger `action` starts stops there (the event is passed on to the trace function
    it installs, so it stops before that line runs), an exception it raises is raised there.

    Nothing else is traced: every other call is refused at its first event, and the trace function
    is removed before `action` runs.
    """
    previous = sys.gettrace()

    def local(f: FrameType, event: str, arg: Any) -> Any:
        if f is not frame or event not in ("line", "return"):
            return local
        f.f_trace = None
        sys.settrace(previous)
        action()
        tracer = f.f_trace  # what a debugger started by `action` put there (None: nothing traces on)
        if tracer is not None and event == "line":
            tracer = tracer(f, event, arg)  # it sees this line: it stops here, before the line runs
        return tracer

    def refuse(f: FrameType, event: str, arg: Any) -> None:
        return None

    frame.f_trace = local
    frame.f_trace_lines = True
    sys.settrace(previous or refuse)


# -- the conditions ---------------------------------------------------------------------------------------
@dataclass
class Fired:
    """A condition that held: what, at which step, the value, where."""

    condition: str
    code: str
    step: int
    value: float | None
    why: str
    module: str | None = None

    def line(self) -> str:
        name = self.condition if self.condition == self.code else f"{self.code} ({self.condition})"
        where = f" in {self.module}" if self.module else ""
        value = f"{self.value:.6g}" if self.value is not None else "-"
        return f"break at step {self.step}: {name}{where}: {self.why} (value {value})"


def _fmt(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else str(x)


class Breakpoints:
    """The step listener of `--break-on`: judges each step, fires each condition once."""

    def __init__(self, tracer: Any, conditions: tuple[str, ...], *, stream: TextIO | None = None) -> None:
        self.tracer = tracer
        self.conditions = conditions
        self.stream = stream
        t = tracer.config.thresholds
        self.jump, self.growth, self.divergence = t.lr_jump_factor, t.grad_growth, t.loss_divergence
        self.fired: list[Fired] = []
        self._done: set[str] = set()
        self._losses: deque[float] = deque(maxlen=2 * _WINDOW)  # the last finite losses
        self._start: float | None = None  # the first finite loss
        self._n_losses = 0
        self._smooth_best: float | None = None
        self._smooth_start: float | None = None
        self._grad_head: list[float] = []
        self._prev_grad: float | None = None
        self._prev_stepped = False
        self._carried = 0

    def on_step(self, info: StepInfo) -> None:
        hits = [f for c in self.conditions if c not in self._done for f in [self._judge(c, info)] if f is not None]
        self._remember(info)
        if not hits:
            return
        for f in hits:
            self._done.add(f.condition)
        self.fired += hits
        self._stop(hits)

    # -- one condition, one step ----------------------------------------------------------------------
    def _judge(self, cond: str, info: StepInfo) -> Fired | None:
        code = ALIASES.get(cond, cond)
        loss, grad = info.loss, info.grad_norm
        if code == "NUM001":
            if loss is not None and not math.isfinite(loss):
                return Fired(cond, code, info.step, loss, f"the loss is {loss}", self._origin())
            if grad is not None and not math.isfinite(grad):
                return Fired(cond, code, info.step, grad, f"the total gradient norm is {grad}", self._origin())
            return None
        if code == "loss_spike":
            return self._spike(cond, info)
        if code == "LOS001":
            return self._diverging(cond, info)
        if code == "GRD001":
            if grad is None or not math.isfinite(grad) or len(self._grad_head) < _HEAD:
                return None
            base = statistics.median(self._grad_head)
            if base > 0 and grad > self.growth * base:
                return Fired(cond, code, info.step, grad, f"the gradient norm {_fmt(grad)} is {_fmt(grad / base)}x "
                             f"its median {_fmt(base)} over the first {_HEAD} steps (grad_growth {_fmt(self.growth)})")
            return None
        if code == "LOP001":
            return self._carried_over(cond, info)
        return None

    def _spike(self, cond: str, info: StepInfo) -> Fired | None:
        loss, seen = info.loss, list(self._losses)
        if loss is None or not seen or self._start is None:
            return None
        if not math.isfinite(loss):
            return Fired(cond, cond, info.step, loss, f"the loss is {loss} after {_fmt(seen[-1])} at the step before",
                         self._origin())
        if self._n_losses < 3:
            return None
        start, level = self._start, statistics.median(seen[-_WINDOW:])
        if 0 < level < start and loss >= self.jump * level and loss - level >= 0.5 * (start - level):
            return Fired(cond, cond, info.step, loss, f"the loss jumped to {_fmt(loss)} from a median of {_fmt(level)} "
                         f"over the last {min(len(seen), _WINDOW)} steps (it started at {_fmt(start)}): more than half "
                         "of the progress made is undone")
        return None

    def _diverging(self, cond: str, info: StepInfo) -> Fired | None:
        loss = info.loss
        if loss is None or not math.isfinite(loss) or self._n_losses < 2 * _WINDOW - 1:
            return None
        smooth = statistics.median([*list(self._losses)[-(_WINDOW - 1):], loss])
        best, start = self._smooth_best, self._smooth_start
        if best is None or start is None:
            return None
        if smooth > best + (self.divergence - 1) * (abs(best) + 1e-12) and smooth > best + 0.5 * max(start - best, 0.0):
            return Fired(cond, "LOS001", info.step, smooth, f"the smoothed loss rose to {_fmt(smooth)}, above "
                         f"{_fmt(self.divergence)}x its best {_fmt(best)} (it started at {_fmt(start)})")
        return None

    def _carried_over(self, cond: str, info: StepInfo) -> Fired | None:
        from .. import measures as M

        carried = self.tracer.assembler.extra.get(M.CARRIED_GRAD_NORM.name)
        prev = self._prev_grad
        if carried is None or not self._prev_stepped or not math.isfinite(carried) or carried <= 0:
            return None
        if prev is not None and math.isfinite(prev) and prev > 0 and carried < 0.01 * prev:
            return None
        self._carried += 1
        if self._carried < 2:
            return None
        return Fired(cond, "LOP001", info.step, carried, f"gradients of norm {_fmt(carried)} were left from the last "
                     f"optimizer step at this step's first backward pass (no zero_grad), {self._carried} steps so far")

    def _remember(self, info: StepInfo) -> None:
        loss, grad = info.loss, info.grad_norm
        if loss is not None and math.isfinite(loss):
            self._losses.append(loss)
            self._n_losses += 1
            if self._start is None:
                self._start = loss
            if self._n_losses >= _WINDOW:
                smooth = statistics.median(list(self._losses)[-_WINDOW:])
                if self._smooth_start is None:
                    self._smooth_start = smooth
                self._smooth_best = smooth if self._smooth_best is None else min(self._smooth_best, smooth)
        if grad is not None and math.isfinite(grad) and len(self._grad_head) < _HEAD:
            self._grad_head.append(grad)
        self._prev_grad = grad
        self._prev_stepped = info.lr is not None

    def _origin(self) -> str | None:
        """Where the nonfinite event says the value was born (the tracer replays the step to find it):
        a module, the model's input or the loss computation; None when it does not say."""
        try:
            from ..record import Record

            self.tracer.writer.flush()
            events = Record(self.tracer.writer.conn).events("nonfinite")
        except (sqlite3.Error, DebuggingError, ValueError, KeyError):  # a record we cannot read: no module
            return None
        origin = events[-1].data.get("origin") if events else None
        if not isinstance(origin, dict):
            return None
        if origin.get("module"):
            return str(origin["module"])
        return {"input": "the model's input", "loss": "the loss computation"}.get(str(origin.get("where")))

    # -- stopping ----------------------------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(f"modeldebug: {text}\n")
        stream.flush()

    def _stop(self, hits: list[Fired]) -> None:
        for f in hits:
            self._say(f.line())
        frame = user_frame()
        hook = sys.breakpointhook
        default = hook is sys.__breakpointhook__
        env = os.environ.get("PYTHONBREAKPOINT", "")
        if default and env == "0":
            self._say("not stopping: PYTHONBREAKPOINT=0")
            return
        if default and env in ("", "pdb.set_trace") and not _is_tty(sys.stdin):
            self._say("not stopping: pdb needs a terminal on stdin (set PYTHONBREAKPOINT to use another debugger)")
            return
        rank = os.environ.get("RANK")
        if rank not in (None, "", "0"):
            self._say(f"not stopping on rank {rank}: only rank 0 stops (the others wait for it)")
            return
        if not self.tracer.attached:
            self._say("not stopping: the run has ended")
            return
        if frame is None:
            self._say("not stopping: no frame of your code is on the stack")
            return
        where = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno} ({frame.f_code.co_name})"
        if is_library_frame(frame.f_code.co_filename):
            where += ", the loop of an installed package that called it (`up` reaches your code)"
        self._say(f"stopping in {where}, after this step; `c` goes on, `q` ends the run")
        at_next_line(frame, hook)


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class StopAfter:
    """Ends the script after `steps` steps, at its next line in the user's frame, as `sys.exit(0)` would."""

    def __init__(self, tracer: Any, steps: int) -> None:
        self.tracer = tracer
        self.steps = steps
        self.stopped = False

    def on_step(self, info: StepInfo) -> None:
        if self.stopped or info.step + 1 < self.steps or not self.tracer.attached:
            return
        self.stopped = True
        frame = user_frame()
        if frame is not None:
            at_next_line(frame, _exit)


def _exit() -> None:
    raise SystemExit(0)


def attach_breakpoints(tracer: Any, break_on: tuple[str, ...] | str | None,
                       max_steps: int | None = None) -> Breakpoints | None:
    """Add the listeners of `break_on` and `max_steps` to `tracer` (nothing when neither is given)."""
    if max_steps is not None:
        tracer.writer.set_meta(max_steps=max_steps)
        tracer.listeners.append(StopAfter(tracer, max_steps).on_step)
    # a string is parsed; a sequence (`--break-on` repeated) is already parsed: each condition once
    conditions = parse_break_on(break_on) if isinstance(break_on, str) else unique(tuple(break_on or ()))
    if not conditions:
        return None
    tracer.writer.set_meta(break_on=list(conditions))
    bp = Breakpoints(tracer, conditions)
    tracer.listeners.append(bp.on_step)
    return bp

