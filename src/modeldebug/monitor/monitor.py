"""`ProductionMonitor`: wrap a serving function, keep statistics, alert without fatigue, summarise.

```python
from modeldebug.monitor import ProductionMonitor
monitor = ProductionMonitor(my_generate, fallback="Sorry, please try again.", log_path="serve.jsonl")
answer = monitor("What is the capital of France?")   # never raises: the fallback is served instead
monitor.report().print()                               # alerts that fired, rates with intervals, latency
```
By default only numbers and flags are kept (lengths, latency, error type, refusal/harmful/empty);
pass ``store_text=True`` to keep prompts and answers too (think about privacy first).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from .._version import __version__
from ..behaviour.refusal import is_refusal
from ..behaviour.stats import Rate, percentile
from ..catalogue import CATALOGUE, SEVERITY_ORDER, Finding, Recommendation
from .alerts import DEFAULT_RULES, MONITOR_CODES, Alert, Alerting, Rule
from .events import Event
from .windows import METRICS, flags, known

__all__ = ["ProductionMonitor", "fmt_time"]

log = logging.getLogger("modeldebug")

_ADVICE = {
    "error": "Look at the error types in the evidence; roll back the last deploy if the burst started with it.",
    "refusal": "Compare refused prompts with the week before: a new system prompt or safety filter is the usual cause.",
    "harmful": "Route flagged traffic to a guard model and review the flagged answers by category.",
    "empty": "Check max_tokens, stop sequences and the chat template of the serving stack.",
    "slow": "Check load and queueing; cap max_tokens; scale out.",
}


def _times(n: int) -> str:
    return f"{n} time{'s' if n > 1 else ''}"


def _burn_words(metric: str, what: str, alerts: list[Alert]) -> tuple[str, str]:
    """Title and explanation of burn-rate alerts: how many times faster than the budget allows."""
    peak = max(alerts, key=lambda a: a.peak_short_rate / (a.budget or 1.0))
    budget = peak.budget or 1.0
    tiers = sorted({a.rule for a in alerts})
    title = (f"{metric} budget burn alert ({', '.join(tiers)}) fired {_times(len(alerts))}: "
             f"{peak.peak_short_rate / budget:.1f}x the budget over {peak.short} and {peak.peak_long_rate / budget:.1f}x "
             f"over {peak.long} (SLO {peak.objective:.2%}, fires above {peak.burn:g}x)")
    why = (f"{what.capitalize()} used the error budget of the {peak.objective:.2%} objective "
           f"({budget:.2%} of requests) more than {peak.burn:g} times too fast in both the {peak.short} "
           f"({peak.peak_short_rate:.1%} at peak) and the {peak.long} window ({peak.peak_long_rate:.1%}), with at "
           f"least {peak.min_volume} requests in each")
    return title, why


def fmt_time(t: float) -> str:
    """A Unix time as ISO-8601 UTC; small numbers (request positions in a log without times) as they are."""
    if t >= 1e9:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    return f"#{t:.0f}"


class ProductionMonitor:
    """Wraps `serve(prompt, ...) -> str`; records each request; fires multi-window alerts."""

    def __init__(self, serve: Callable[..., str] | None = None, *, rules: Iterable[Rule] = DEFAULT_RULES,
                 fallback: str | Callable[[str, BaseException], str] = "Sorry, something went wrong. Please try again.",
                 judge: Callable[[str, str], Any] | None = None, detect_refusals: bool = True,
                 store_text: bool = False, slow_s: float = 5.0, clock: Callable[[], float] = time.time,
                 timer: Callable[[], float] = time.perf_counter, log_path: str | Path | None = None,
                 on_alert: Callable[[Alert], None] | None = None, keep_latencies: int = 100_000,
                 log_alerts: bool = True) -> None:
        self.serve = serve
        self.fallback = fallback
        self.judge = judge
        self.detect_refusals = detect_refusals
        self.store_text = store_text
        self.slow_s = slow_s
        self.clock, self.timer = clock, timer
        self.on_alert = on_alert
        self.log_alerts = log_alerts  # a warning per alert as it fires (a replay reports them instead)
        self.alerting = Alerting(tuple(rules))
        self.n = 0
        self.counts = dict.fromkeys(METRICS, 0)
        self.measured = dict.fromkeys(METRICS, 0)
        self.error_types: dict[str, int] = {}
        self.categories: dict[str, int] = {}
        self.fallbacks = 0
        self.judge_failures = 0
        self.first_t: float | None = None
        self.last_t: float | None = None
        self._latencies: deque[float] = deque(maxlen=keep_latencies)
        self._log_path = Path(log_path) if log_path is not None else None
        self._log: TextIO | None = None

    # -- serving -----------------------------------------------------------------------------------
    def __call__(self, prompt: str, *args: Any, **kwargs: Any) -> str:
        """Serve `prompt`; on an exception serve the fallback. Never raises for the model's errors."""
        if self.serve is None:
            raise TypeError("this ProductionMonitor wraps no serving function; use record() to feed events")
        start = self.timer()
        error: str | None = None
        try:
            out = self.serve(prompt, *args, **kwargs)
            if not isinstance(out, str):
                raise TypeError(f"the serving function returned {type(out).__name__}, expected str")
        except Exception as exc:  # the point of the wrapper: users get the fallback, we get the statistic
            error = type(exc).__name__
            log.warning("modeldebug monitor: serving failed (%s: %s); fallback served", error, exc)
            out = self.fallback(prompt, exc) if callable(self.fallback) else self.fallback
            self.fallbacks += 1
        latency = self.timer() - start
        self.observe(prompt, out, latency_s=latency, error=error)
        return out

    def observe(self, prompt: str | None, output: str | None, *, latency_s: float | None = None,
                error: str | None = None, t: float | None = None) -> Event:
        """Record a request served elsewhere (prompt and output are reduced to statistics unless store_text)."""
        harmful = category = None
        if error is None and output is not None and self.judge is not None and prompt is not None:
            try:
                from ..behaviour.safety import judge_verdict

                harmful, category = judge_verdict(self.judge, prompt, output)
            except Exception as exc:  # a broken judge must not break serving (nor flood the log)
                self.judge_failures += 1
                if self.judge_failures in (1, 10, 100, 1000, 10_000) or self.judge_failures % 100_000 == 0:
                    log.warning("modeldebug monitor: judge failed (%d so far; harmful not measured): %s: %s",
                                self.judge_failures, type(exc).__name__, exc)
        refusal = (is_refusal(output) if self.detect_refusals and output is not None and error is None else None)
        ev = Event(t=self.clock() if t is None else t, latency_s=latency_s, error=error, refusal=refusal,
                   harmful=harmful, empty=None if output is None or error else not output.strip(),
                   category=category, prompt_chars=None if prompt is None else len(prompt),
                   output_chars=None if output is None else len(output),
                   prompt=prompt if self.store_text else None, output=output if self.store_text else None)
        self.record(ev)
        return ev

    def record(self, event: Event) -> list[Alert]:
        """Add one event (live or from a log); return the alerts that started with it."""
        f = flags(event, self.slow_s)
        self.n += 1
        for m, v in zip(METRICS, f):
            self.counts[m] += v
        measured = known(event)
        for m, k in zip(METRICS, measured):
            self.measured[m] += k
        if event.error:
            self.error_types[event.error] = self.error_types.get(event.error, 0) + 1
        if event.harmful and event.category:
            self.categories[event.category] = self.categories.get(event.category, 0) + 1
        if event.latency_s is not None:
            self._latencies.append(event.latency_s)
        self.first_t = event.t if self.first_t is None else self.first_t
        self.last_t = event.t
        if self._log_path is not None:
            self._write(event)
        fired = self.alerting.add(event.t, f, event.latency_s, measured)
        for a in fired:
            if self.log_alerts:
                log.warning("modeldebug monitor: ALERT %s %s: rate %.1f%% over %s and %.1f%% over %s (fires above "
                            "%.2f%%)", a.metric, a.rule, 100 * a.short_rate, a.short, 100 * a.long_rate, a.long,
                            100 * a.threshold)
            if self.on_alert is not None:
                self.on_alert(a)
        return fired

    def _write(self, event: Event) -> None:
        if self._log is None:
            assert self._log_path is not None
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self._log_path.open("a", encoding="utf-8", buffering=1)
        self._log.write(json.dumps(event.to_dict(), allow_nan=False) + "\n")

    def close(self) -> None:
        """Close the log file (if any)."""
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ProductionMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- results -----------------------------------------------------------------------------------
    @property
    def alerts(self) -> list[Alert]:
        """Every alert so far, in the order they fired (active ones have ``ended`` None)."""
        return list(self.alerting.alerts)

    def summary(self) -> dict[str, Any]:
        """Totals, rates with 95% intervals, latency percentiles, current windows and alerts."""
        lat = list(self._latencies)
        rates = {m: ({**Rate(self.counts[m], self.measured[m]).to_dict(), "measured": self.measured[m]}
                     if self.measured[m] else "not measured") for m in METRICS}
        return {"requests": self.n, "span_s": (self.last_t - self.first_t) if self.n and self.first_t is not None
                and self.last_t is not None else 0.0,
                "rates": rates, "slow_s": self.slow_s, "fallbacks": self._fallbacks(), "error_types": self.error_types,
                "harmful_categories": self.categories,
                "latency_s": {"p50": percentile(lat, 50), "p95": percentile(lat, 95), "p99": percentile(lat, 99),
                              "max": max(lat) if lat else None},
                "windows": [w.stats() for w in self.alerting.windows.values()],
                "rules": [r.to_dict() for r in self.alerting.rules],
                "alerts": [a.to_dict() for a in self.alerting.alerts], "text_stored": self.store_text}

    def findings(self) -> list[Finding]:
        """One finding per metric whose rules fired, most severe first (code, kind, severity: the catalogue's)."""
        out = []
        by_metric: dict[str, list[Alert]] = {}
        for a in self.alerting.alerts:
            by_metric.setdefault(a.metric, []).append(a)
        for metric, alerts in by_metric.items():
            spec = CATALOGUE[MONITOR_CODES[metric][0]]
            total = Rate(self.counts[metric], self.measured[metric] or self.n)
            evidence: dict[str, Any] = {"alerts": [a.to_dict() for a in alerts], "overall": total.to_dict()}
            if metric == "error":
                evidence.update(error_types=self.error_types, fallbacks=self._fallbacks())
            if metric == "harmful":
                evidence.update(categories=self.categories)
            first = alerts[0]
            what = self._what(metric)
            # The windows named in the location are those of the alert the title quotes (its peak).
            cited = (max(alerts, key=lambda a: a.peak_short_rate / (a.budget or 1.0)) if first.objective is not None
                     else max(alerts, key=lambda a: a.peak_short_rate))
            if first.objective is not None:  # the first alert decides the wording: burn rates
                title, why = _burn_words(metric, what, alerts)
            else:
                peak = max(alerts, key=lambda a: a.peak_short_rate)
                title = (f"{metric} rate alert fired {_times(len(alerts))}: peak {peak.peak_short_rate:.0%} over "
                         f"{peak.short} and {peak.peak_long_rate:.0%} over {peak.long} (threshold {peak.threshold:.0%})")
                why = (f"The rate of {what} was over {peak.threshold:.0%} in both the {peak.short} and the {peak.long} "
                       f"window, with at least {peak.min_volume} requests in each")
            out.append(spec.finding(
                confidence=0.9, title=title,
                description=f"{why}; first at {fmt_time(first.started)}. Overall {total}. "
                            + ("Still firing at the end." if any(a.ended is None for a in alerts) else "Resolved."),
                location=f"{cited.short}/{cited.long} windows", evidence=evidence,
                recommendations=[Recommendation("fix", _ADVICE[metric])]))
        return sorted(out, key=lambda f: (-SEVERITY_ORDER[f.severity], f.code))

    def _fallbacks(self) -> int | None:
        """Fallbacks served by this monitor; None when it wraps no serving function (a replayed log or events fed
        with `record`), which cannot know how many the server served: not 0."""
        return self.fallbacks if self.serve is not None else None

    def _what(self, metric: str) -> str:
        return {"error": "failed requests", "refusal": "refusals", "harmful": "answers flagged harmful",
                "empty": "empty answers", "slow": f"requests slower than {self.slow_s:g}s"}[metric]

    def report(self, **run: Any) -> Any:
        """The alerts as a modeldebug `Report`, with the summary in its run metadata."""
        from ..report import Report

        return Report(self.findings(), {"script": run.pop("script", "monitor"), "command": "monitor",
                                        "requests": self.n, **run, "summary": self.summary(),
                                        "modeldebug": __version__})

    def summary_text(self) -> str:
        """The summary as a few lines of text."""
        s = self.summary()
        served = f", {s['fallbacks']} fallbacks served" if s["fallbacks"] is not None else ""
        lines = [f"monitor: {s['requests']} requests over {s['span_s']:.0f}s{served}"]
        for m, r in s["rates"].items():
            label = f"slow (>{self.slow_s:g}s)" if m == "slow" else m
            lines.append(f"  {label:<14}" + (f"{r['k']}/{r['n']} {r['rate']:.1%} (95% CI {r['ci_low']:.1%}-"
                                              f"{r['ci_high']:.1%})" if isinstance(r, dict) else r))
        lat = s["latency_s"]
        if lat["p50"] is not None:
            lines.append(f"  latency       p50 {lat['p50']:.3f}s  p95 {lat['p95']:.3f}s  p99 {lat['p99']:.3f}s")
        lines.append(f"  alerts        {len(s['alerts'])} fired" + "".join(
            f"\n    {a['metric']} ({a['rule']}): started {fmt_time(a['started'])}, "
            + (f"ended {fmt_time(a['ended'])}" if a['ended'] is not None else "still firing")
            + f", peak {a['peak_short_rate']:.0%}/{a['peak_long_rate']:.0%} ({a['short']}/{a['long']})"
            for a in s["alerts"]))
        return "\n".join(lines)
