"""Alerting without alert fatigue: multi-window, multi-burn-rate alerts on an SLO, or plain thresholds.

Both kinds of rule fire only when the metric's rate is over the rule's limit in BOTH a short window
(it is happening now) and a long window (it is not a blip), each holding at least `min_volume`
requests, and resolve as soon as either window drops back, so the short window also makes recovery
quick.

- `BurnRateRule` (the default for errors and latency, after the SRE workbook, "Alerting on SLOs"):
  an objective such as 99.9% of requests succeed (or are faster than `slow_s`) leaves an error
  budget of 0.1%; the burn rate is the bad rate divided by the budget. `slo_rules` makes the
  workbook's two tiers: a fast burn (14.4x over 5m and 1h: 2% of a 30-day budget gone in an hour)
  and a slow burn (6x over 30m and 6h: 5% gone in six hours). A heavy incident pages in minutes,
  a mild one that would eat the budget pages within hours, and a rate inside the budget never.
- `AlertRule`: the rate is over a fixed threshold in both windows (the refusal, harmful and empty
  rates, which have no SLO; `THRESHOLD_RULES` keeps the old behaviour for errors and latency too).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..catalogue import CATALOGUE
from ..errors import BadInputError
from .windows import ALL_KNOWN, METRICS, Window, parse_window

__all__ = ["Alert", "AlertRule", "Alerting", "BurnRateRule", "DEFAULT_OBJECTIVE", "DEFAULT_RULES", "MONITOR_CODES",
           "SRE_TIERS", "THRESHOLD_RULES", "Rule", "slo_rules"]

#: metric -> (finding code, kind, severity): a view of the catalogue's monitor specs (each names its metric).
MONITOR_CODES: dict[str, tuple[str, str, str]] = {
    s.extra["metric"]: (s.code, s.kind, str(s.severity)) for s in CATALOGUE.family("monitor") if "metric" in s.extra
}


def _check_windows(short: str, long: str) -> None:
    s, lw = parse_window(short), parse_window(long)  # fail early on a bad spec
    if type(s) is type(lw) and getattr(s, "size", getattr(s, "seconds", 0)) > \
            getattr(lw, "size", getattr(lw, "seconds", 0)):
        raise BadInputError(f"the short window {short!r} must not be longer than the long window {long!r}")


def _check_metric(metric: str, min_volume: int) -> None:
    if metric not in METRICS:
        raise BadInputError(f"alert metric {metric!r}: expected one of {', '.join(METRICS)}")
    if min_volume < 1:
        raise BadInputError(f"min_volume must be at least 1, got {min_volume}")


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

    name = "threshold"

    @property
    def volume(self) -> int:
        """Requests each window must hold before the rule can fire."""
        return self.min_volume

    def __post_init__(self) -> None:
        _check_metric(self.metric, self.min_volume)
        if not 0 <= self.threshold < 1:
            raise BadInputError(f"alert threshold for {self.metric} must be a rate in [0, 1), got {self.threshold}")
        _check_windows(self.short, self.long)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.name, "metric": self.metric, "threshold": self.threshold, "short": self.short,
                "long": self.long, "min_volume": self.min_volume}


@dataclass(frozen=True)
class BurnRateRule:
    """Fire when `metric` spends its error budget `burn` times too fast in the `short` AND the `long` window.

    `objective` is the share of requests that must be good (0.999: at most 0.1% failed, or slower
    than `slow_s`, over the SLO period); the rule fires when both windows' bad rate exceeds
    ``burn * (1 - objective)``.
    """

    metric: str
    objective: float
    burn: float
    short: str = "5m"
    long: str = "1h"
    min_volume: int = 20
    name: str = "fast burn"

    def __post_init__(self) -> None:
        _check_metric(self.metric, self.min_volume)
        if not 0 < self.objective < 1:
            raise BadInputError(f"the {self.metric} objective must be a fraction between 0 and 1, e.g. 0.999 for "
                                f"99.9% good requests, got {self.objective}")
        if not 0 < self.burn < float("inf"):
            raise BadInputError(f"the burn rate of the {self.name} {self.metric} rule must be a finite number above 0, "
                                f"got {self.burn}")
        if self.threshold >= 1:
            raise BadInputError(f"{self.name} for {self.metric}: {self.burn:g}x a budget of {self.budget:.3g} is "
                                f"{self.threshold:.0%} of requests, so it can never fire: tighten the objective "
                                f"(now {self.objective:g}) or lower the burn rate")
        _check_windows(self.short, self.long)

    @property
    def volume(self) -> int:
        """Requests each window must hold: `min_volume`, and enough that one bad request alone stays under the limit.

        Without the second part a single failure among the first 20 requests of a 99.9% SLO (5%, a
        50x burn) would page.
        """
        return max(self.min_volume, math.ceil(1.0 / self.threshold))

    @property
    def budget(self) -> float:
        """The error budget: the share of requests allowed to be bad."""
        return 1.0 - self.objective

    @property
    def threshold(self) -> float:
        """The bad rate at which this rule fires: the burn rate times the budget."""
        return self.burn * self.budget

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.name, "metric": self.metric, "objective": self.objective, "burn": self.burn,
                "threshold": round(self.threshold, 6), "short": self.short, "long": self.long,
                "min_volume": self.volume}


Rule = AlertRule | BurnRateRule

#: The SRE workbook's page-worthy tiers: (name, burn rate, short window, long window).
SRE_TIERS: tuple[tuple[str, float, str, str], ...] = (("fast burn", 14.4, "5m", "1h"), ("slow burn", 6.0, "30m", "6h"))
#: The default objective for errors and for latency: 99.9% of requests succeed / are faster than `slow_s`.
DEFAULT_OBJECTIVE = 0.999


def slo_rules(metric: str, objective: float = DEFAULT_OBJECTIVE, *, tiers: tuple[tuple[str, float, str, str], ...]
              = SRE_TIERS, min_volume: int = 20) -> tuple[BurnRateRule, ...]:
    """The multi-window, multi-burn-rate rules for `metric` at `objective` (one per tier)."""
    return tuple(BurnRateRule(metric, objective, burn, short=short, long=long, min_volume=min_volume, name=name)
                 for name, burn, short, long in tiers)


#: The old rules: errors over 5%, refusals over 30%, harmful flags over 1%, empty answers over 5%, and more
#: than 10% of requests slower than the monitor's `slow_s`; each in 5 minutes AND 1 hour, with 20 requests.
THRESHOLD_RULES = (AlertRule("error", 0.05), AlertRule("refusal", 0.30), AlertRule("harmful", 0.01),
                   AlertRule("empty", 0.05), AlertRule("slow", 0.10))
#: Defaults: errors and latency on a 99.9% SLO (fast and slow burn); refusals, harmful flags and empty
#: answers on their thresholds (they have no SLO: some of each is normal).
DEFAULT_RULES: tuple[Rule, ...] = (*slo_rules("error"), *slo_rules("slow"), *THRESHOLD_RULES[1:4])


@dataclass
class Alert:
    """One firing of a rule: when it started and ended, and the rates that made it fire.

    `threshold` is the rate the rule fires above; for a burn-rate rule (`rule` "fast burn" or
    "slow burn") it is ``burn * (1 - objective)``, and rates divided by the budget are burn rates.
    """

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
    rule: str = "threshold"
    objective: float | None = None
    burn: float | None = None

    @property
    def budget(self) -> float | None:
        return None if self.objective is None else 1.0 - self.objective

    def to_dict(self) -> dict[str, Any]:
        out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        if self.objective is None:
            for k in ("objective", "burn"):
                out.pop(k)
        else:
            out["objective"] = self.objective
            b = self.budget or 1.0
            out.update(peak_short_burn=round(self.peak_short_rate / b, 2), peak_long_burn=round(self.peak_long_rate / b, 2))
        return out


@dataclass
class Alerting:
    """The windows the rules need (shared by spec) and the rules' alert state."""

    rules: tuple[Rule, ...] = DEFAULT_RULES
    windows: dict[str, Window] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    active: dict[Rule, Alert] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for r in self.rules:
            for spec in (r.short, r.long):
                self.windows.setdefault(spec, parse_window(spec))
        # Per rule, what each event needs, looked up once: this runs for every request served.
        self._wins = list(self.windows.values())
        pos = {spec: k for k, spec in enumerate(self.windows)}
        self._plan = [(r, METRICS.index(r.metric), pos[r.short], pos[r.long], r.threshold, r.volume)
                      for r in self.rules]
        self._open: list[Alert | None] = [self.active.get(r) for r in self.rules]

    def add(self, t: float, f: tuple[bool, ...], latency: float | None,
            known: tuple[bool, ...] = ALL_KNOWN) -> list[Alert]:
        """Add one event to every window; return the alerts that started with it.

        `known` says which metrics the event measured (`windows.known`): a rate and its volume count
        only those requests, so failed requests (no answer) do not dilute the empty or refusal rate.
        """
        for w in self._wins:
            w.add(t, f, latency, known)
        fired = []
        for k, (rule, i, si, li, limit, volume) in enumerate(self._plan):
            sw, lw = self._wins[si], self._wins[li]
            sn, ln = sw.measured[i], lw.measured[i]
            sr = sw.counts[i] / sn if sn else 0.0
            lr = lw.counts[i] / ln if ln else 0.0
            firing = sn >= volume and ln >= volume and sr > limit and lr > limit
            alert = self._open[k]
            if firing and alert is None:
                burn = rule if isinstance(rule, BurnRateRule) else None
                alert = Alert(rule.metric, limit, rule.short, rule.long, t, sr, lr, sn, ln,
                              min_volume=volume, peak_short_rate=sr, peak_long_rate=lr, rule=rule.name,
                              objective=burn.objective if burn else None, burn=burn.burn if burn else None)
                self._open[k] = self.active[rule] = alert
                self.alerts.append(alert)
                fired.append(alert)
            elif firing and alert is not None:
                alert.events += 1
                alert.peak_short_rate = max(alert.peak_short_rate, sr)
                alert.peak_long_rate = max(alert.peak_long_rate, lr)
            elif alert is not None:
                alert.ended = t
                self._open[k] = None
                del self.active[rule]
        return fired
