"""One served request as the monitor stores it: numbers and flags, the text only when asked.

The JSONL log format (one object per line; unknown keys are ignored):

| key | type | meaning |
|---|---|---|
| ``ts`` (or ``timestamp``, ``time``) | number (Unix seconds) or ISO-8601 string | when the request finished |
| ``latency_s`` or ``latency_ms`` | number | how long it took |
| ``error`` | bool, string or null | the request failed (a string names the error) |
| ``output`` (or ``response``) | string | the answer; empty and refusal are derived from it |
| ``prompt`` | string | the request (only its length is kept unless text is stored) |
| ``refusal``, ``harmful``, ``empty`` | bool | flags computed elsewhere (override the derived ones) |
| ``category`` | string | the hazard category a judge gave |
| ``prompt_chars``, ``output_chars`` | int | lengths, as the monitor's own log writes them |
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from ..errors import BadInputError

__all__ = ["Event", "LogLineError", "parse_time"]


class LogLineError(BadInputError):
    """A line of a monitoring log that cannot be read; the message names the line."""


#: Unix seconds at or above this (the year 5138) are not seconds: a log in ms, us or ns since the epoch.
MAX_UNIX_SECONDS = 1e11
_SMALLER_UNITS = ((1e3, "milliseconds", "1000"), (1e6, "microseconds", "1e6"), (1e9, "nanoseconds", "1e9"))


def _seconds(value: float) -> float:
    """`value` as Unix seconds; a ValueError naming the unit it looks like when it is too large to be seconds."""
    seconds = float(value)
    if abs(seconds) < MAX_UNIX_SECONDS:
        return seconds
    for scale, unit, divide in _SMALLER_UNITS:
        if abs(seconds) / scale < MAX_UNIX_SECONDS:
            raise ValueError(f"timestamp {value!r} would be the year {1970 + seconds / 31_556_952:,.0f} in Unix "
                             f"seconds: it looks like {unit} since the epoch; divide 'ts' by {divide}")
    raise ValueError(f"timestamp {value!r} is not a time in Unix seconds (it is past any date, even in nanoseconds)")


def parse_time(value: Any) -> float:
    """Unix seconds from a number or an ISO-8601 string (a trailing Z means UTC).

    A number too large to be seconds (from the year 5138 on) is refused, naming the unit it looks
    like (milliseconds, microseconds or nanoseconds since the epoch): windows measured in such units
    would hold one request each, and no alert could fire.
    """
    if isinstance(value, bool):
        raise ValueError(f"a timestamp cannot be {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"a timestamp cannot be {value!r}")
        return _seconds(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
        if dt.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no time zone (add Z or +00:00)")
        return dt.timestamp()
    raise ValueError(f"a timestamp must be a number or an ISO-8601 string, got {type(value).__name__}")


@dataclass
class Event:
    """One request: when, how long, whether it failed, refused, was flagged harmful or empty.

    `refusal` and `harmful` are None when unknown (no text and no flag in the log, or no judge).
    """

    t: float
    latency_s: float | None = None
    error: str | None = None
    refusal: bool | None = None
    harmful: bool | None = None
    empty: bool | None = None
    category: str | None = None
    prompt_chars: int | None = None
    output_chars: int | None = None
    prompt: str | None = None
    output: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The event as a log line (None fields left out)."""
        d = {k: v for k, v in asdict(self).items() if v is not None}
        d["ts"] = d.pop("t")
        return d

    @classmethod
    def from_dict(cls, data: Any, *, line: int, where: str, detect_refusal: Any = None) -> Event:
        """Parse one log object; `LogLineError` naming `where` and `line` when a field is unusable."""
        def bad(msg: str) -> LogLineError:
            return LogLineError(f"{where} line {line}: {msg}")

        if not isinstance(data, dict):
            raise bad(f"expected a JSON object, got {type(data).__name__}")
        ts = next((data[k] for k in ("ts", "timestamp", "time") if k in data), None)
        try:
            t = parse_time(ts) if ts is not None else float("nan")
        except ValueError as exc:
            raise bad(str(exc)) from exc
        latency = None
        for key, scale in (("latency_s", 1.0), ("latency_ms", 1e-3)):
            if data.get(key) is not None:
                v = data[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                    raise bad(f"{key!r} must be a non-negative number, got {v!r}")
                latency = float(v) * scale
        err = data.get("error")
        if err is not None and not isinstance(err, (bool, str)):
            raise bad(f"'error' must be true/false, a string or null, got {err!r}")
        error = (err or None) if isinstance(err, str) else ("error" if err else None)
        text = {}
        for key, alt in (("output", "response"), ("prompt", None)):
            v = data.get(key, data.get(alt) if alt else None)
            if v is not None and not isinstance(v, str):
                raise bad(f"{key!r} must be a string, got {type(v).__name__}")
            text[key] = v
        flags: dict[str, bool | None] = {}
        for key in ("refusal", "harmful", "empty"):
            v = data.get(key)
            if v is not None and not isinstance(v, bool):
                raise bad(f"{key!r} must be true or false, got {v!r}")
            flags[key] = v
        chars: dict[str, int | None] = {}
        for key in ("prompt_chars", "output_chars"):
            v = data.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise bad(f"{key!r} must be a non-negative integer, got {v!r}")
            chars[key] = v
        out, prompt = text["output"], text["prompt"]
        if out is not None:
            chars["output_chars"] = len(out)
        # A failed request's output (nothing, or a fallback such as "Sorry, ...") is no answer: it is the error,
        # already counted, and neither empty nor a refusal: one incident, one page, and no rate diluted.
        if out is not None and error is None:
            if flags["empty"] is None:
                flags["empty"] = not out.strip()
            if flags["refusal"] is None and detect_refusal is not None:
                flags["refusal"] = bool(detect_refusal(out))
        elif flags["empty"] is None and chars["output_chars"] is not None and error is None:
            flags["empty"] = chars["output_chars"] == 0
        if prompt is not None:
            chars["prompt_chars"] = len(prompt)
        cat = data.get("category")
        return cls(t=t, latency_s=latency, error=error, refusal=flags["refusal"], harmful=flags["harmful"],
                   empty=flags["empty"], category=str(cat) if cat else None, prompt_chars=chars["prompt_chars"],
                   output_chars=chars["output_chars"], prompt=prompt, output=out)
