"""`modeldebug monitor LOG.jsonl`: replay a serving log through the production monitor.

Errors and slow requests alert by burn rate against an SLO (`--error-slo`, `--latency-slo`, default
99.9%): a fast burn (14.4x the budget over 5m and 1h) and a slow burn (6x over 30m and 6h), after
the SRE workbook. Refusal, harmful-flag and empty-output rates alert on a threshold in a short AND a
long window. `--alerting threshold` (or a `--max-error-rate` / `--max-slow-rate` given for that
metric) brings back the threshold rules for errors and latency. Prints the summary and the alerts;
exits 1 with ``--fail-on`` when an alert at that severity fired, 2 on a bad log (one line naming
the line number) or a bad option.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from ._output import emit

__all__ = ["add"]

_THRESHOLDS = {"error": 0.05, "refusal": 0.30, "harmful": 0.01, "empty": 0.05, "slow": 0.10}
_SLO_METRICS = {"error": "error_slo", "slow": "latency_slo"}
#: The burn-rate options' defaults; None on the command line means "not given", so a given one that
#: has no effect (threshold alerting) can be refused instead of ignored.
_BURN_DEFAULTS = {"error_slo": 0.999, "latency_slo": 0.999, "fast_burn": 14.4, "slow_burn": 6.0}


def add(sub: Any) -> None:
    """Register `modeldebug monitor`."""
    p = sub.add_parser("monitor", help="replay a JSONL serving log: rates, latency, SLO burn-rate alerts",
                       description="Replay a JSONL serving log (one request per line: ts, latency_ms, error, "
                                   "output, ...) and report rates, latency and the alerts that would have fired.")
    p.add_argument("log", metavar="LOG.jsonl")
    p.add_argument("--alerting", choices=["burn", "threshold"], default="burn",
                   help="errors and latency: burn rate against the SLO (default) or the old fixed thresholds")
    p.add_argument("--error-slo", type=float, default=None, metavar="R",
                   help="share of requests that must succeed (default 0.999: an error budget of 0.1%%)")
    p.add_argument("--latency-slo", type=float, default=None, metavar="R",
                   help="share of requests that must be faster than --slow (default 0.999)")
    p.add_argument("--fast-burn", type=float, default=None, metavar="X",
                   help="fast-burn alert: X times the budget rate over 5m and 1h (default 14.4)")
    p.add_argument("--slow-burn", type=float, default=None, metavar="X",
                   help="slow-burn alert: X times the budget rate over 30m and 6h (default 6)")
    p.add_argument("--short", default="5m", metavar="W",
                   help="threshold rules' short window: a duration (5m) or a request count (50)")
    p.add_argument("--long", default="1h", metavar="W",
                   help="threshold rules' long window: a duration (1h) or a request count (500)")
    p.add_argument("--min-volume", type=int, default=20, metavar="N",
                   help="requests each window must hold before it can alert (default 20)")
    p.add_argument("--slow", type=float, default=5.0, metavar="S", help="a request slower than S seconds counts as slow (default 5)")
    for metric, default in _THRESHOLDS.items():
        extra = " (errors and latency: with --alerting threshold, or this flag, instead of the SLO)" \
            if metric in _SLO_METRICS else ""
        p.add_argument(f"--max-{metric}-rate", type=float, default=None, metavar="R",
                       help=f"alert when the {metric} rate exceeds R (default {default:g}){extra}")
    p.add_argument("--json", metavar="P", help="write the JSON report to P ('-' for stdout)")
    p.add_argument("--html", metavar="P", help="write the HTML report to P")
    p.add_argument("--fail-on", choices=["low", "medium", "high"], help="exit 1 if an alert of this severity fired")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the summary and alerts to stderr")
    p.set_defaults(handler=_handle)


def _unused_burn_options(args: argparse.Namespace) -> None:
    """A burn-rate option given for a metric that alerts on a threshold would be silently ignored: refuse it."""
    from ..errors import BadInputError

    burning = [m for m in _SLO_METRICS if args.alerting == "burn" and getattr(args, f"max_{m}_rate") is None]
    flags = [_SLO_METRICS[m] for m in _SLO_METRICS if m not in burning] + ([] if burning else ["fast_burn", "slow_burn"])
    for flag in flags:
        value = getattr(args, flag)
        if value is None:
            continue
        metric = next((m for m, f in _SLO_METRICS.items() if f == flag), None)
        name = f"--{flag.replace('_', '-')} {value:g}"
        if args.alerting == "threshold":
            raise BadInputError(f"{name} has no effect with --alerting threshold (errors and latency then alert on "
                                "--max-error-rate and --max-slow-rate): drop it, or use --alerting burn")
        if metric is None:
            raise BadInputError(f"{name} has no effect when every SLO metric alerts on a threshold "
                                "(--max-error-rate and --max-slow-rate given): drop it or them")
        raise BadInputError(f"{name} has no effect with --max-{metric}-rate (that metric then alerts on the "
                            "threshold): drop one of them")
    for flag, default in _BURN_DEFAULTS.items():
        if getattr(args, flag) is None:
            setattr(args, flag, default)


def _rules(args: argparse.Namespace) -> list[Any]:
    from ..errors import BadInputError
    from ..monitor import AlertRule, slo_rules
    from ..monitor.windows import parse_window

    _unused_burn_options(args)

    if not 0 < args.slow < math.inf:
        raise BadInputError(f"--slow {args.slow}: the latency that counts as slow must be a finite number of "
                            "seconds above 0, e.g. --slow 2.5")
    for metric in _THRESHOLDS:
        rate = getattr(args, f"max_{metric}_rate")
        if rate is not None and not 0 <= rate < 1:
            raise BadInputError(f"--max-{metric}-rate {rate} must be a rate in [0, 1), a fraction: e.g. "
                                f"{_THRESHOLDS[metric]:g} for {_THRESHOLDS[metric]:.0%}")
    for flag in ("error_slo", "latency_slo"):
        value = getattr(args, flag)
        if not 0 < value < 1:
            raise BadInputError(f"--{flag.replace('_', '-')} {value}: the objective is the fraction of good "
                                "requests, above 0 and below 1, e.g. 0.999 for 99.9%")
    for flag in ("fast_burn", "slow_burn"):
        value = getattr(args, flag)
        if not 0 < value < math.inf:
            raise BadInputError(f"--{flag.replace('_', '-')} {value}: a burn rate is a finite multiple of the "
                                "budget rate above 0, e.g. 14.4")
    if args.min_volume < 1:
        raise BadInputError(f"--min-volume {args.min_volume}: a window needs at least 1 request to alert")
    for flag, spec in (("--short", args.short), ("--long", args.long)):
        try:
            parse_window(spec)
        except BadInputError as exc:
            raise BadInputError(f"{flag} {spec!r}: {exc.message}") from None
    tiers = (("fast burn", args.fast_burn, "5m", "1h"), ("slow burn", args.slow_burn, "30m", "6h"))
    rules: list[Any] = []
    for metric, default in _THRESHOLDS.items():
        rate = getattr(args, f"max_{metric}_rate")
        if metric in _SLO_METRICS and args.alerting == "burn" and rate is None:
            objective = getattr(args, _SLO_METRICS[metric])
            try:
                rules += slo_rules(metric, objective, tiers=tiers, min_volume=args.min_volume)
            except BadInputError as exc:
                raise BadInputError(f"--{_SLO_METRICS[metric].replace('_', '-')} {objective:g}: {exc.message}") from None
        else:
            rules.append(AlertRule(metric, default if rate is None else rate, short=args.short, long=args.long,
                                   min_volume=args.min_volume))
    return rules


def _handle(args: argparse.Namespace) -> int:
    from ..monitor import monitor_log

    mon = monitor_log(args.log, rules=_rules(args), slow_s=args.slow)
    if mon.n == 0:  # "No problems found" would be a clean bill of health for a log that holds nothing
        from ..errors import BadInputError

        raise BadInputError(f"{args.log} holds no request (it is empty or has only blank lines), so there is "
                            "nothing to monitor: is it the right log, and is the server writing to it?")
    report = mon.report(script=f"monitor {args.log}", log=args.log)
    emit(report, args, mon.summary_text())
    return 1 if args.fail_on and report.fails(args.fail_on) else 0
