"""GapProfiler: where the time between steps goes, when most of a run's time goes there.

The step row times the gap between the end of a step and the next forward pass (`t_data`), but not
what ran in it: a batch being prepared, a plot drawn, a log written, a checkpoint saved. When the
gaps hold at least `ARM_SHARE` of the time over at least `ARM_MIN_STEPS` steps (judged at sampled
steps), a daemon thread samples the training thread's Python stack every `INTERVAL_S` on average
while a gap is open (the tracer opens it at a step's end and closes it at the next forward pass),
and counts the innermost line of the user's own code (not Python's library, site-packages, torch or
modeldebug) with the library function that line called. It stops after `MAX_SAMPLES` samples or
`MAX_STEPS` steps and records one `gap_profile` event: the lines, their shares of the samples, and
the steps covered. Once per run.

Nothing of this runs in a run whose steps are not mostly gaps: the assembler adds each step's gap
to `gap_total` (from the second step on: the first step's gap holds the script's set-up, which armed the
profiler in nearly every short run), and a sampled step subtracts and compares, over windows that
start at the first step's end. While it runs, the thread sleeps between samples and takes the GIL for
one `sys._current_frames()` call and a walk of the stack (~20-50 µs, ~1% of a gap), and the
interpreter's switch interval is 1 ms instead of 5 (a thread waiting for the GIL gets it from busy
Python code at the next interval: the samples of a gap spent in Python would otherwise land on the
line after it).
"""

from __future__ import annotations

import io
import linecache
import os
import random
import sys
import sysconfig
import threading
import time
import tokenize
from collections import Counter
from typing import Any

from .. import measures as M
from .crash import is_library_frame

__all__ = ["GapProfiler"]

#: The gaps' share of the time (over a window of sampled steps) that starts the profiler.
ARM_SHARE = 0.3
#: ... with at least this many steps and seconds of gaps in that window (a real amount of time).
ARM_MIN_STEPS, ARM_MIN_GAP_S = 10, 0.05
INTERVAL_S = 0.005
#: The interpreter's switch interval while sampling (restored after).
SWITCH_S = 0.001
MAX_SAMPLES = 400
MAX_STEPS = 500
#: Lines kept in the event.
TOP = 5

_OWN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "")  # modeldebug's own files
_STDLIB = tuple({os.path.join(os.path.realpath(sysconfig.get_paths()[k]), "") for k in ("stdlib", "platstdlib")})


def _is_user(filename: str, cache: dict[str, bool]) -> bool:
    """Is `filename` the user's own code? Not if crash attribution calls it a library's
    (`is_library_frame`: installed packages, modeldebug; our demos are user code), nor the standard
    library's (`time`, `threading`, `queue`: where waiting happens, never what waits). Of code
    without a file, a notebook's cells (`<ipython-input-...>`) and `<stdin>` are the user's;
    `<string>` is mostly generated code (a dataclass's `__init__`) and `<frozen ...>` the interpreter's."""
    known = cache.get(filename)
    if known is None:
        if filename.startswith("<"):
            known = filename.startswith(("<ipython-input", "<stdin>"))
        else:
            known = not is_library_frame(filename) and not os.path.realpath(filename).startswith(_STDLIB)
        cache[filename] = known
    return known


def _without_comment(code: str) -> str:
    """A source line without its trailing comment (as the tokenizer reads it; unchanged if it cannot)."""
    if "#" not in code:
        return code
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code + "\n").readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return code
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            return code[:tok.start[1]].rstrip()
    return code


class GapProfiler:
    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.on = M.GAP_PROFILE in tracer.plan and tracer.config.monitoring.performance
        self.running = False  # the thread samples (the tracer opens and closes gaps only then)
        self.done = False
        # at the last check: the assembler's total of gaps, its clock and its step
        self._gaps0, self._t0, self._step0 = 0.0, time.perf_counter(), 0
        self._open = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._main = threading.get_ident()
        self._counts: Counter[tuple[str, int, str, str]] = Counter()
        self._samples = 0
        self._first_step = self._last_step = 0
        self._files: dict[str, bool] = {}
        self._interval = sys.getswitchinterval()

    # -- the tracer's calls -----------------------------------------------------------------------
    def check(self, assembler: Any) -> None:
        """At a sampled step's end: start sampling when the gaps took `ARM_SHARE` of the time since
        the last check (the assembler sums them: `gap_total`); while sampling, stop when enough was seen."""
        step = assembler.step
        if self.running:
            if self._samples >= MAX_SAMPLES or step - self._first_step >= MAX_STEPS:
                self.finish()
            return
        now, gaps = assembler.t_last_end, assembler.gap_total
        if not self._step0:  # the first window starts at the first step's end: before it, the script set up
            self._t0, self._step0 = assembler.t_first_end or now, 1
        gap, total, steps = gaps - self._gaps0, now - self._t0, step - self._step0
        if self.done or not self.on or steps < ARM_MIN_STEPS:
            return  # (a window of at least ARM_MIN_STEPS steps, however often steps are sampled)
        self._gaps0, self._t0, self._step0 = gaps, now, step
        if gap < ARM_MIN_GAP_S or gap < ARM_SHARE * total:
            return
        self.running = True
        self._first_step = self._last_step = step
        self._main = threading.get_ident()  # the thread that trains (steps end in it), main or not
        # A thread gets the GIL from busy Python code only every switch interval (5 ms): samples of a
        # gap spent in Python would land where it next let go (the line after). 1 ms while sampling.
        self._interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._interval, SWITCH_S))
        self._thread = threading.Thread(target=self._run, name="modeldebug-gaps", daemon=True)
        self._thread.start()

    def open(self, step: int) -> None:
        """A step ended: the gap before the next forward pass begins (none after `MAX_STEPS` steps:
        the thread idles until the next sampled step's check stops it)."""
        if step - self._first_step >= MAX_STEPS:
            return
        self._last_step = step
        self._open.set()

    def close(self) -> None:
        """The next forward pass began."""
        self._open.clear()

    def finish(self) -> None:
        """Stop sampling and record what was seen (once; also at the session's end)."""
        if not self.running:
            return
        self.running = False
        self.done = True
        self._stop.set()
        self._open.set()  # wake the thread to see the stop
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        self._open.clear()
        if sys.getswitchinterval() == min(self._interval, SWITCH_S):  # (unless the user changed it meanwhile)
            sys.setswitchinterval(self._interval)
        if self._samples:
            self.tracer.writer.add_event(self._first_step, M.GAP_PROFILE.name, self.summary())

    def summary(self) -> dict[str, Any]:
        n = self._samples
        lines = []
        for (file, line, func, inside), count in self._counts.most_common(TOP):
            code = _without_comment(linecache.getline(file, line).strip()) if file and line else ""
            lines.append({"file": file, "line": line, "function": func, "code": code[:160], "inside": inside,
                          "share": count / n})
        return {"samples": n, "interval_s": INTERVAL_S, "first_step": self._first_step, "last_step": self._last_step,
                "lines": lines}

    # -- the thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        # Sleeps drawn from an exponential distribution: while a gap is open the samples are a
        # Poisson process, so each gap gets samples in proportion to its length however short it is
        # and wherever the step's rhythm falls (a fixed interval from the gap's start would see the
        # same moment of every gap).
        stop, opened, rng = self._stop, self._open, random.Random(0)
        while not stop.is_set():
            opened.wait()
            time.sleep(rng.expovariate(1 / INTERVAL_S))
            if stop.is_set() or not opened.is_set():
                continue
            frame = sys._current_frames().get(self._main)  # the one way to see another thread's stack
            if frame is None:
                continue
            where = self._where(frame)
            # let the frame go now: held while the thread waits for the next gap, it would keep the
            # user's function's locals (a batch, a whole stack of them) alive after it returned
            frame = None
            self._counts[where] += 1
            self._samples += 1
            if self._samples >= MAX_SAMPLES:
                return
        return

    def _where(self, frame: Any) -> tuple[str, int, str, str]:
        """(file, line, function) of the innermost frame of the user's code, and the library
        function that line called ("" when the user's own line was running, or a C function such
        as `time.sleep`)."""
        callee = None
        while frame is not None:
            code = frame.f_code
            if _is_user(code.co_filename, self._files):
                inside = ""
                if callee is not None:
                    module = callee.f_globals.get("__name__", "")
                    name = getattr(callee.f_code, "co_qualname", callee.f_code.co_name)
                    inside = f"{module}.{name}" if module else name
                return code.co_filename, frame.f_lineno, code.co_name, inside
            if not code.co_filename.startswith(_OWN):  # our own wrappers (a patched `__next__`) are not named
                callee = frame
            frame = frame.f_back
        return "", 0, "", ""
