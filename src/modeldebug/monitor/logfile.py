"""Reading a JSONL serving log (one JSON object per line) and replaying it through the monitor.

Blank lines are skipped; any other line that is not a JSON object, or has a field of the wrong type,
stops the read with a `LogLineError` naming the file and the line number. Events are replayed in
time order (a log written by several workers can be slightly out of order).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..behaviour.refusal import is_refusal
from ..errors import BadInputError
from .alerts import DEFAULT_RULES, BurnRateRule, Rule
from .events import Event, LogLineError
from .monitor import ProductionMonitor
from .windows import TimeWindow, parse_window

__all__ = ["monitor_log", "read_log"]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open(encoding="utf-8") as fh:
            yield from enumerate(fh, 1)
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path} is not UTF-8 text ({exc.reason}); is it a JSONL log?") from exc


def read_log(path: str | Path, *, detect_refusals: bool = True) -> list[Event]:
    """Every event of the log at `path`, in time order (line order when there are no timestamps)."""
    return _read(path, detect_refusals)[0]


def _read(path: str | Path, detect_refusals: bool) -> tuple[list[Event], bool]:
    p = Path(path)
    if p.is_dir():
        raise BadInputError(f"{str(path)!r} is a folder: give the JSONL log file in it (one request per line)")
    if not p.is_file():
        raise BadInputError(f"no log file {str(path)!r}")
    events: list[Event] = []
    stamped = None
    for no, line in _lines(p):
        if not line.strip():
            continue
        try:
            data: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LogLineError(f"{p.name} line {no}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
        except ValueError as exc:  # e.g. an integer longer than Python converts (4300 digits)
            raise LogLineError(f"{p.name} line {no}: not readable JSON ({str(exc).split(':')[0]})") from exc
        except RecursionError:
            raise LogLineError(f"{p.name} line {no}: JSON nested too deeply to read (a log line is one flat "
                               "object per request)") from None
        try:
            ev = Event.from_dict(data, line=no, where=p.name, detect_refusal=is_refusal if detect_refusals else None)
        except OverflowError as exc:  # an integer too large for a float, where a number of seconds is expected
            raise LogLineError(f"{p.name} line {no}: a number is too large ({exc})") from exc
        has_t = not math.isnan(ev.t)
        if stamped is None:
            stamped = has_t
        elif has_t != stamped:
            raise LogLineError(f"{p.name} line {no}: {'has' if has_t else 'has no'} timestamp ('ts') while earlier "
                               "lines " + ("do not" if has_t else "do") + "; give every line a 'ts' or none")
        if not has_t:
            ev.t = float(len(events))  # the request's position stands in for its time
        events.append(ev)
    if stamped:
        events.sort(key=lambda e: e.t)  # stable: ties keep their line order
    return events, bool(stamped)


def monitor_log(path: str | Path, *, rules: Iterable[Rule] = DEFAULT_RULES, slow_s: float = 5.0,
                detect_refusals: bool = True) -> ProductionMonitor:
    """Replay the log at `path` through a `ProductionMonitor` and return it (alerts, summary, report)."""
    events, stamped = _read(path, detect_refusals)
    rules = tuple(rules)
    if events and not stamped:
        timed = sorted({spec for r in rules for spec in (r.short, r.long)
                        if isinstance(parse_window(spec), TimeWindow)})
        if timed:
            burn = any(isinstance(r, BurnRateRule) for r in rules)
            raise BadInputError(f"{Path(path).name} has no timestamps ('ts'), so time windows ({', '.join(timed)}) "
                                "cannot be used; add 'ts' to each line or use request counts ("
                                + ("--alerting threshold " if burn else "") + "--short 50 --long 500)")
    mon = ProductionMonitor(None, rules=rules, slow_s=slow_s, log_alerts=False)  # the report lists the alerts
    for ev in events:
        mon.record(ev)
    return mon

