"""Production monitoring of a generative model: sliding windows, multi-window alerts, a summary report.

```python
from modeldebug.monitor import ProductionMonitor, monitor_log
monitor = ProductionMonitor(my_generate)     # wraps serving: fallback on errors, statistics only
answer = monitor("Hello")
monitor_log("serve.jsonl").report().print()  # the same analysis over a recorded JSONL log
```
Findings use the category ``behaviour`` and the codes MON001-MON005 (one per alerting metric).
"""

from __future__ import annotations

from .alerts import DEFAULT_RULES, MONITOR_CODES, Alert, AlertRule, Alerting
from .events import Event, LogLineError, parse_time
from .logfile import monitor_log, read_log
from .monitor import ProductionMonitor
from .windows import METRICS, CountWindow, TimeWindow, parse_window

__all__ = ["Alert", "AlertRule", "Alerting", "CountWindow", "DEFAULT_RULES", "Event", "LogLineError", "METRICS",
           "MONITOR_CODES", "ProductionMonitor", "TimeWindow", "monitor_log", "parse_time", "parse_window",
           "read_log"]
