"""`modeldebug monitor LOG.jsonl`: replay a serving log through the production monitor.

Sliding windows of error, refusal, harmful-flag, empty-output rates and slow requests; an alert fires
only when a short AND a long window are over the threshold with enough volume. Prints the summary
and the alerts; exits 1 with ``--fail-on`` when an alert at that severity fired, 2 on a bad log
(one line naming the line number).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from ._output import emit

__all__ = ["add"]

_THRESHOLDS = {"error": 0.05, "refusal": 0.30, "harmful": 0.01, "empty": 0.05, "slow": 0.10}


def add(sub: Any) -> None:
    """Register `modeldebug monitor`."""
    p = sub.add_parser("monitor", help="replay a JSONL serving log: rates, latency, multi-window alerts",
                       description="Replay a JSONL serving log (one request per line: ts, latency_ms, error, "
                                   "output, ...) and report rates, latency and the alerts that would have fired.")
    p.add_argument("log", metavar="LOG.jsonl")
    p.add_argument("--short", default="5m", metavar="W", help="short window: a duration (5m) or a request count (50)")
    p.add_argument("--long", default="1h", metavar="W", help="long window: a duration (1h) or a request count (500)")
    p.add_argument("--min-volume", type=int, default=20, metavar="N",
                   help="requests each window must hold before it can alert (default 20)")
    p.add_argument("--slow", type=float, default=5.0, metavar="S", help="a request slower than S seconds counts as slow (default 5)")
    for metric, default in _THRESHOLDS.items():
        p.add_argument(f"--max-{metric}-rate", type=float, default=default, metavar="R",
                       help=f"alert when the {metric} rate exceeds R (default {default:g})")
    p.add_argument("--json", metavar="P", help="write the JSON report to P ('-' for stdout)")
    p.add_argument("--html", metavar="P", help="write the HTML report to P")
    p.add_argument("--fail-on", choices=["low", "medium", "high"], help="exit 1 if an alert of this severity fired")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the summary and alerts to stderr")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from ..errors import BadInputError
    from ..monitor import AlertRule, monitor_log
    from ..monitor.windows import parse_window

    if not 0 < args.slow < math.inf:
        raise BadInputError(f"--slow {args.slow}: the latency that counts as slow must be a finite number of "
                            "seconds above 0, e.g. --slow 2.5")
    for metric in _THRESHOLDS:
        rate = getattr(args, f"max_{metric}_rate")
        if not 0 <= rate < 1:
            raise BadInputError(f"--max-{metric}-rate {rate} must be a rate in [0, 1), a fraction: e.g. "
                                f"{_THRESHOLDS[metric]:g} for {_THRESHOLDS[metric]:.0%}")
    if args.min_volume < 1:
        raise BadInputError(f"--min-volume {args.min_volume}: a window needs at least 1 request to alert")
    for flag, spec in (("--short", args.short), ("--long", args.long)):
        try:
            parse_window(spec)
        except BadInputError as exc:
            raise BadInputError(f"{flag} {spec!r}: {exc.message}") from None
    rules = [AlertRule(m, getattr(args, f"max_{m}_rate"), short=args.short, long=args.long,
                       min_volume=args.min_volume) for m in _THRESHOLDS]
    mon = monitor_log(args.log, rules=rules, slow_s=args.slow)
    report = mon.report(script=f"monitor {args.log}", log=args.log)
    emit(report, args, mon.summary_text())
    return 1 if args.fail_on and report.fails(args.fail_on) else 0
