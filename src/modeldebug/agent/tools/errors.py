"""ErrorDiagnoser: why a forward/backward/step fails, in plain words, with the module and the fix.

It shares the crash rules with `modeldebug run` (rules/runtime.py, rules/data.py): one place knows
what a shape, dtype, device, out-of-memory, in-place or loss-target error means. A training step is
run on a copy under the tracer, which names the module whose forward was running; an in-place error
(raised in backward, where no module is running) is re-run with autograd's anomaly mode to find the
forward line that made the overwritten tensor.
"""

from __future__ import annotations

import re
import traceback
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from ...capture.tracer import is_library_frame
from ...config import DebuggingConfig
from ...record import Record, RunWriter
from ...rules.base import Finding
from ..request import Workload, call_model
from ..trainer import short_run
from .base import Tool, ToolResult

__all__ = ["ErrorDiagnosis", "ErrorDiagnoser", "diagnose_exception"]

_CRASH_CATEGORIES = ("runtime", "data", "loss")


@dataclass
class ErrorDiagnosis(ToolResult):
    """The exception (if any), where it happened, and what it means."""

    failed: bool = False
    exception: str | None = None
    message: str | None = None
    module: str | None = None
    phase: str | None = None
    forward_origin: str | None = None

    def lines(self) -> list[str]:
        if not self.failed:
            return ["forward, backward and optimizer step ran without error"]
        out = [f"{self.exception} in {self.phase or '?'}{f' of {self.module}' if self.module else ''}: "
               f"{(self.message or '').splitlines()[0][:300]}"]
        if self.forward_origin:
            out.append(f"the overwritten tensor was made at {self.forward_origin}")
        return out


def diagnose_exception(exc: BaseException, *, module: str | None = None, phase: str | None = None,
                       config: DebuggingConfig | None = None) -> list[Finding]:
    """Findings for an exception, from the same rules that explain a crashed `modeldebug run`.

    `config` selects and tunes those rules as it does for a run (default: the defaults).
    """
    from ..measure import judge

    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if not is_library_frame(f.filename)]
    where = user[-1] if user else None
    writer = RunWriter(":memory:")
    writer.add_event(0, "exception", {
        "type": type(exc).__name__, "message": str(exc)[:4000], "module": module, "phase": phase,
        "file": where.filename if where else None, "line": where.lineno if where else None,
        "code": where.line if where else None})
    writer.set_meta(steps=0, status="crashed")
    writer.flush()
    return [f for f in judge(Record(writer.conn), config or DebuggingConfig()) if f.category in _CRASH_CATEGORIES]


def _module_at(model: torch.nn.Module, origin: str) -> str | None:
    """The module whose forward() contains `origin` ('"file", line N, in forward')."""
    m = re.match(r'"?(?P<file>[^"]+)"?, line (?P<line>\d+)', origin)
    if not m:
        return None
    file, line = m["file"], int(m["line"])
    best: tuple[int, str] | None = None
    for name, mod in model.named_modules():
        code = getattr(type(mod).forward, "__code__", None)
        if code is None or code.co_filename != file or code.co_firstlineno > line:
            continue
        if best is None or code.co_firstlineno > best[0]:
            best = (code.co_firstlineno, name or type(mod).__name__)
    return best[1] if best else None


def _anomaly_origin(work: Workload) -> str | None:
    """Re-run one step with anomaly detection: the forward line that created the tensor backward needed."""
    model = work.clone()
    model.train()
    with warnings.catch_warnings(record=True) as caught, torch.random.fork_rng(devices=[]):
        warnings.simplefilter("always")
        try:
            with torch.autograd.detect_anomaly(check_nan=False):
                loss = work.loss_of(call_model(model, work.inputs()), work.batch[1])
                loss.backward()
        except RuntimeError:
            pass
    for w in caught:
        text = str(w.message)
        if "Traceback of forward call" not in text:
            continue
        lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("File ")]
        user = [ln for ln in lines if "site-packages" not in ln and "/modeldebug/" not in ln]
        if user:
            return user[-1].replace("File ", "", 1)
    return None


class ErrorDiagnoser(Tool):
    """Runs one training step on a copy; if it fails, says why, where, and how to fix it."""

    name = "error_diagnoser"
    description = ("Runs forward, loss, backward and an optimizer step on a copy of the model. If anything raises, "
                   "classifies it (shape, dtype, device, out of memory, in-place modification, loss target format, "
                   "BatchNorm with one sample, ...), names the module that was running, and gives the fix.")
    category = "runtime"

    def analyze(self, work: Workload) -> ErrorDiagnosis:
        run = short_run(work, steps=1, watch_level="basic")
        if run.error is None:
            return ErrorDiagnosis(tool=self.name, summary="no error", failed=False)
        exc = run.error
        events = [e.data for e in run.report.record.events("exception")] if run.report is not None else []
        data: dict[str, Any] = events[-1] if events else {}
        findings = [f for f in run.report.findings if f.category in _CRASH_CATEGORIES] if run.report else []
        if not findings:
            findings = diagnose_exception(exc, module=data.get("module"), phase=data.get("phase"), config=work.config)
        origin = None
        if any(f.kind == "inplace_modification" for f in findings):
            origin = _anomaly_origin(work)
            module = _module_at(work.model, origin) if origin else None
            for f in findings:
                if f.kind == "inplace_modification" and origin:
                    f.evidence["forward_origin"] = origin
                    f.evidence["module"] = module
                    f.description += f" The overwritten tensor was created at {origin}."
                    f.location = module or origin
                    f.title = f"In-place modification broke backward{f' in {module}' if module else ''}"
        return ErrorDiagnosis(
            tool=self.name, summary=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
            findings=findings, failed=True, exception=type(exc).__name__, message=str(exc)[:2000],
            module=data.get("module"), phase=data.get("phase"), forward_origin=origin)
