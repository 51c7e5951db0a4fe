"""Production monitoring of a generative model: sliding windows, multi-window alerts, a summary report.

```python
from modeldebug.monitor import ProductionMonitor, monitor_log
monitor = ProductionMonitor(my_generate)     # wraps serving: fallback on errors, statistics only
answer = monitor("Hello")
monitor_log("serve.jsonl").report().print()  # the same analysis over a recorded JSONL log
```
Errors and latency alert on a 99.9% SLO by burn rate (fast: 14.4x over 5m and 1h; slow: 6x over 30m
and 6h); refusals, harmful flags and empty answers on thresholds (`THRESHOLD_RULES` for the old
behaviour everywhere). Findings use the category ``behaviour`` and the codes MON001-MON005 (one per
alerting metric), declared in the catalogue.
"""

from __future__ import annotations

from .alerts import (DEFAULT_OBJECTIVE, DEFAULT_RULES, MONITOR_CODES, SRE_TIERS, THRESHOLD_RULES, Alert, AlertRule,
                     Alerting, BurnRateRule, Rule, slo_rules)
from .events import Event, LogLineError, parse_time
from .logfile import monitor_log, read_log
from .monitor import ProductionMonitor
from .windows import METRICS, CountWindow, TimeWindow, parse_window

__all__ = ["Alert", "AlertRule", "Alerting", "BurnRateRule", "CountWindow", "DEFAULT_OBJECTIVE", "DEFAULT_RULES", "Event",
           "LogLineError", "METRICS", "MONITOR_CODES", "ProductionMonitor", "Rule", "SRE_TIERS", "THRESHOLD_RULES",
           "TimeWindow", "monitor_log", "parse_time", "parse_window", "read_log", "slo_rules"]
