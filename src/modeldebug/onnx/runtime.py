"""onnxruntime sessions with their failures sorted into codes, and runs with clear input errors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BadInputError, DebuggingError, MissingDependencyError
from .load import LoadedModel

__all__ = ["LEVELS", "RunFailedError", "SessionCreationError", "SessionProblem", "classify_session_error",
           "make_session", "require_ort", "run_session"]

#: onnxruntime graph optimisation levels, lowest first.
LEVELS = ("disable", "basic", "extended", "layout", "all")
_LEVEL_NAMES = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
                "layout": "ORT_ENABLE_LAYOUT", "all": "ORT_ENABLE_ALL"}


def require_ort() -> Any:
    """Import onnxruntime, or say which extra installs it."""
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - the test environment has it
        raise MissingDependencyError("onnxruntime sessions", "onnx") from exc
    return onnxruntime


@dataclass
class SessionProblem:
    """Why onnxruntime refused a model: a catalogue code, a plain title, and the node if named."""

    code: str
    title: str
    message: str
    node: str | None = None


class SessionCreationError(BadInputError):
    """onnxruntime cannot create a session for the model (commands that must run it exit 2)."""

    def __init__(self, problem: SessionProblem, source: str) -> None:
        super().__init__(f"{source}: onnxruntime cannot load it: {problem.title}", details={"code": problem.code})
        self.problem = problem


def classify_session_error(exc: BaseException) -> SessionProblem:
    """Sort an onnxruntime session-creation error into ONX015 / ONX016 / ONX017."""
    msg = str(exc)
    short = msg.strip().splitlines()[-1] if msg.strip() else type(exc).__name__
    ir = re.search(r"Unsupported model IR version: (\d+), max supported IR version: (\d+)", msg)
    if ir:
        return SessionProblem("ONX015", f"IR version {ir[1]} is newer than this onnxruntime supports (max {ir[2]})", msg)
    opset = re.search(r"[Oo]pset (\d+) is under development.*?till opset (\d+)", msg, re.S)
    if opset:
        return SessionProblem("ONX015", f"opset {opset[1]} is newer than this onnxruntime supports "
                                        f"(official support until opset {opset[2]})", msg)
    if re.search(r"(Unsupported|unknown|not supported).{0,40}opset", msg, re.I | re.S):
        return SessionProblem("ONX015", f"an opset this onnxruntime does not support: {short[:200]}", msg)
    kernel = re.search(r"Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'", msg)
    if kernel:
        return SessionProblem("ONX016", f"no onnxruntime kernel for {kernel[1]} (opset {kernel[2]}) with these "
                                        f"input types", msg, kernel[3] or None)
    return SessionProblem("ONX017", short[:300], msg)


_PROTOBUF_LIMIT = 2**31 - 1


def make_session(model: LoadedModel | bytes, *, level: str = "all", providers: list[str] | None = None,
                 threads: int = 1, profile_prefix: str | None = None, from_path: bool = False,
                 source: str | None = None) -> Any:
    """An InferenceSession; raises ``SessionCreationError`` with the classified reason.

    A loaded model is given to onnxruntime from memory (its external data already read), except
    when `from_path` asks for the file as deployed, or the model is too large for one protobuf.
    `source` names serialized bytes in errors (the file they were made from).
    """
    ort = require_ort()
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVEL_NAMES[level])
    so.log_severity_level = 4  # fatal only: failures come back as exceptions and become findings or errors
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    if isinstance(model, LoadedModel):
        on_disk = model.path is not None and (from_path or model.size_bytes > _PROTOBUF_LIMIT)
        src: Any = str(model.path) if on_disk else model.serialized()
        source = model.source
    else:
        src, source = model, source or "<model>"
    try:
        return ort.InferenceSession(src, so, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        raise SessionCreationError(classify_session_error(exc), source) from exc


class RunFailedError(DebuggingError):
    """onnxruntime failed while running a node; `node` names it when onnxruntime did."""

    def __init__(self, message: str, node: str | None, detail: str = "") -> None:
        super().__init__(message, type="analysis", details={"node": node})
        self.node = node
        self.detail = detail  # onnxruntime's own message


def run_session(sess: Any, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
    """Run once. Inputs that do not fit raise ``BadInputError``; a failing node ``RunFailedError``."""
    try:
        return sess.run(outputs, feeds)
    except Exception as exc:
        msg = " ".join(str(exc).split())
        if "INVALID_ARGUMENT" in msg or isinstance(exc, ValueError):
            raise BadInputError(f"inputs do not fit the model: {msg[:300]}") from exc
        node = re.search(r"Name:'([^']*)'", msg)
        shapes = {k: list(v.shape) for k, v in feeds.items()}
        said = msg.split("Status Message:", 1)[-1].strip()
        said = re.sub(r"^\S+\.(h|cc|cpp):\d+ .*? was false\. ", "", said)  # the C++ location and the check
        said = _tail(said, 300)  # onnxruntime's own words, without its C++ location
        raise RunFailedError(f"onnxruntime failed to run the model on inputs {shapes}"
                             f"{f' at node {node[1]}' if node else ''}: {said}", node[1] if node else None,
                             said) from exc


def _tail(text: str, limit: int) -> str:
    """The end of `text` (where onnxruntime says what went wrong), cut at a word, never inside one."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    return "..." + (cut.split(" ", 1)[1] if " " in cut else cut)
