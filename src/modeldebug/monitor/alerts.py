"""Multi-window alerting without alert fatigue (the SRE multi-window, multi-burn-rate pattern).

A rule fires only when its metric's rate is over the threshold in BOTH a short window (it is
happening now) and a long window (it is not a blip), and both windows hold at least `min_volume`
requests (two errors out of three requests at 3 a.m. is not an incident). It resolves as soon as
either window falls back under the threshold, so the short window also makes recovery quick.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import BadInputError
from .windows import METRICS, Window, parse_window

__all__ = ["Alert", "AlertRule", "Alerting", "DEFAULT_RULES", "MONITOR_CODES"]

#: metric -> (finding code, kind, severity)
MONITOR_CODES: dict[str, tuple[str, str, str]] = {
    "error": ("MON001", "error_rate_alert", "high"),
    "refusal": ("MON002", "refusal_rate_alert", "medium"),
    "harmful": ("MON003", "harmful_rate_alert", "high"),
    "empty": ("MON004", "empty_rate_alert", "medium"),
    "slow": ("MON005", "latency_alert", "medium"),
}


@dataclass(frozen=True)
class AlertRule:
    """Fire when `metric`'s rate exceeds `threshold` in the `short` AND the `long` window, with volume.

    Windows are a request count ("50") or a duration ("5m", "1h"); see `parse_window`.
    """

    metric: str
    threshold: float
    short: str = "5m"
    long: str = "1h"
    min_volume: int = 20

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise BadInputError(f"alert metric {self.metric!r}: expected one of {', '.join(METRICS)}")
        if not 0 <= self.threshold < 1:
            raise BadInputError(f"alert threshold for {self.metric} must be a rate in [0, 1), got {self.threshold}")
        if self.min_volume < 1:
            raise BadInputError(f"min_volume must be at least 1, got {self.min_volume}")
        short, long = parse_window(self.short), parse_window(self.long)  # fail early on a bad spec
        if type(short) is type(long) and getattr(short, "size", getattr(short, "seconds", 0)) > \
                getattr(long, "size", getattr(long, "seconds", 0)):
            raise BadInputError(f"the short window {self.short!r} must not be longer than the long window {self.long!r}")


#: Defaults: errors over 5%, refusals over 30%, harmful flags over 1%, empty answers over 5%, and more than
#: 10% of requests slower than the monitor's `slow_s`; each in 5 minutes AND 1 hour, with 20 requests or more.
DEFAULT_RULES = (AlertRule("error", 0.05), AlertRule("refusal", 0.30), AlertRule("harmful", 0.01),
                 AlertRule("empty", 0.05), AlertRule("slow", 0.10))


@dataclass
class Alert:
    """One firing of a rule: when it started and ended, and the rates that made it fire."""

    metric: str
    threshold: float
    short: str
    long: str
    started: float
    short_rate: float
    long_rate: float
    short_n: int
    long_n: int
    ended: float | None = None
    min_volume: int = 0
    peak_short_rate: float = 0.0
    peak_long_rate: float = 0.0
    events: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class Alerting:
    """The windows the rules need (shared by spec) and the rules' alert state."""

    rules: tuple[AlertRule, ...] = DEFAULT_RULES
    windows: dict[str, Window] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    active: dict[AlertRule, Alert] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for r in self.rules:
            for spec in (r.short, r.long):
                self.windows.setdefault(spec, parse_window(spec))

    def add(self, t: float, f: tuple[bool, ...], latency: float | None) -> list[Alert]:
        """Add one event to every window; return the alerts that started with it."""
        for w in self.windows.values():
            w.add(t, f, latency)
        fired = []
        for rule in self.rules:
            s, lw = self.windows[rule.short], self.windows[rule.long]
            sr, lr = s.rate(rule.metric), lw.rate(rule.metric)
            firing = (s.n >= rule.min_volume and lw.n >= rule.min_volume
                      and sr > rule.threshold and lr > rule.threshold)
            alert = self.active.get(rule)
            if firing and alert is None:
                alert = Alert(rule.metric, rule.threshold, rule.short, rule.long, t, sr, lr, s.n, lw.n,
                              min_volume=rule.min_volume, peak_short_rate=sr, peak_long_rate=lr)
                self.active[rule] = alert
                self.alerts.append(alert)
                fired.append(alert)
            elif firing and alert is not None:
                alert.events += 1
                alert.peak_short_rate = max(alert.peak_short_rate, sr)
                alert.peak_long_rate = max(alert.peak_long_rate, lr)
            elif alert is not None:
                alert.ended = t
                del self.active[rule]
        return fired
