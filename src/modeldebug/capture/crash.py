"""What a crash needs for its diagnosis: the exception, where it happened, and in which phase."""

from __future__ import annotations

import linecache
import os
import traceback
from typing import Any

import torch

__all__ = ["caller_line", "exception_event", "is_library_frame"]

_TORCH_DIR = os.path.join(os.path.dirname(torch.__file__), "")
_OWN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "")


def caller_line(frame: Any) -> dict[str, Any]:
    """The line that called into PyTorch: the first frame, from `frame` outwards, outside torch and
    modeldebug (`file`, `line`, `code`; empty when there is none). Prefix tests only: a probe may
    ask on a step's path."""
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith((_TORCH_DIR, _OWN_DIR)):
            return {"file": name, "line": frame.f_lineno, "code": linecache.getline(name, frame.f_lineno).strip()}
        frame = frame.f_back
    return {}


def exception_event(exc: BaseException, module: str | None, phase: str) -> dict[str, Any]:
    """The data of an `exception` event: type, message, module, phase, the user's frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if not is_library_frame(f.filename)]
    # No user frame (an nn.Sequential fails inside torch): name the module, not torch's own file.
    where = user[-1] if user else None
    return {
        "type": type(exc).__name__, "message": str(exc)[:4000], "module": module, "phase": phase,
        "file": where.filename if where else None, "line": where.lineno if where else None,
        "code": where.line if where else None, "torch_frame": _torch_in_traceback(exc),
    }


def _torch_in_traceback(exc: BaseException) -> bool:
    """Did PyTorch's own Python code take part (in this exception or the ones it was raised from)?"""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if any(f.filename.startswith(_TORCH_DIR) for f in traceback.extract_tb(e.__traceback__)):
            return True
        e = e.__cause__ or e.__context__
    return False


def is_library_frame(filename: str) -> bool:
    """Frames of installed packages and of modeldebug itself; our demo scripts count as user code."""
    if "/modeldebug/demos/" in filename:
        return False
    return any(part in filename for part in ("site-packages", "dist-packages", "/modeldebug/", "<frozen"))
