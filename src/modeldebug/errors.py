"""modeldebug's exceptions.

DebuggingError(message, type=..., details=...)   every error modeldebug raises on purpose
 +-- BadInputError          the user gave something we cannot use (CLI exits 2 with one line)
 |    +-- RecordCorruptError    a run record that is not a modeldebug SQLite file, or is damaged
 |    +-- RecordBusyError       another live run is writing the record at that path
 |    +-- ScriptNotFoundError   `modeldebug run` was pointed at a file that does not exist
 |    +-- UnknownRuleError      `modeldebug explain` or a selection names no known rule
 +-- MissingDependencyError an optional feature needs an extra: the message says which pip install
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = [
    "BadInputError",
    "DebuggingError",
    "MissingDependencyError",
    "RecordBusyError",
    "RecordCorruptError",
    "ScriptNotFoundError",
    "UnknownRuleError",
]

ErrorType = Literal["analysis", "profiling", "monitoring", "input"]


class DebuggingError(Exception):
    """Root of modeldebug's errors: a message, what kind of work failed, and details."""

    def __init__(
        self, message: str, *, type: ErrorType = "analysis", details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.details = details or {}


class BadInputError(DebuggingError):
    """Input we cannot use. The message names the bad value and the likely cause."""

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, type="input", details=details)


class RecordCorruptError(BadInputError):
    """A run record that is not a modeldebug record, or is damaged."""


class RecordBusyError(BadInputError):
    """Another live modeldebug run is writing the record at that path."""


class ScriptNotFoundError(BadInputError):
    """`modeldebug run` was given a script path that does not exist."""


class UnknownRuleError(BadInputError):
    """A rule code, kind or name that is not in the catalogue."""


class MissingDependencyError(DebuggingError):
    """An optional feature needs an extra; the message carries the pip command."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs an optional dependency: pip install 'modeldebug[{extra}]'",
            type="analysis",
            details={"extra": extra},
        )
