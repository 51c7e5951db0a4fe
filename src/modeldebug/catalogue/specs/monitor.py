"""Catalogue entries: monitor."""

from __future__ import annotations

from ..spec import Spec

SPECS = (
    Spec(
        code='MON001', kind='error_rate_alert', category='behaviour', family='monitor', name='error-rate-alert',
        summary='Requests fail faster than the error budget allows (or over a threshold), in a short and a long window',
        severity='high',
        extra={'metric': 'error'},
        doc="""
## What it detects
The share of requests that failed: under `ProductionMonitor` the serving function raised or
returned something that is not a `str` (the fallback was served); in a log (`modeldebug monitor
LOG.jsonl`) the line has `"error": true` or an error name. By default it is judged against an SLO
(`--error-slo`, default 0.999: at most 0.1% of requests may fail, the error budget) with the SRE
workbook's multi-window, multi-burn-rate alerts: a fast burn fires when the failure rate is over
14.4 times the budget (1.44%) in both the last 5 minutes and the last hour, a slow burn when it is
over 6 times (0.6%) in both the last 30 minutes and the last 6 hours (`--fast-burn`,
`--slow-burn`). Each window must hold at least `min_volume` requests (default 20) and enough that
one failure alone stays under the limit (70 for the fast burn at 99.9%, 167 for the slow burn).
With `--alerting threshold` (or `--max-error-rate R`) the old rule applies instead: over R
(default 5%) in both `--short` (5m) and `--long` (1h). An alert ends as soon as either window is
back under its limit. All firings make one finding, severity high, confidence 0.9: the title gives
the peak burn rates (or rates), the evidence each alert (rule, start, end, peak rates and burn
rates, windows), the overall rate with its 95% interval, the error types and the fallbacks served.

## Why is this bad?
Users get the fallback instead of an answer. A burst of errors usually starts with a deploy,
a dependency or an exhausted resource (GPU memory, a rate limit upstream). Burn rates page for what
threatens the SLO: a heavy outage within minutes, a mild one that would eat the month's budget
within hours, and a rate the budget allows never.

## Example
```
{"ts": 1714534392, "latency_ms": 900, "error": "OutOfMemoryError"}
{"ts": 1714534398, "latency_ms": 900, "output": "Paris is the capital of France."}
{"ts": 1714534404, "latency_ms": 900, "error": "OutOfMemoryError"}

$ modeldebug monitor serve.jsonl
MON001 error budget burn alert (fast burn, slow burn) fired 2 times: 120.0x the budget over 5m and
15.3x over 1h (SLO 99.90%, fires above 14.4x)
```

## Recommended fix
Look at the error types in the evidence; roll back the last deploy if the burst started with it;
add capacity or back-pressure when the errors are resource exhaustion. If the alert fires on a rate
your users accept, the objective is too strict for this service: set `--error-slo` to the one you
promise.

## Known problems
In the first hours of a log or a process the long windows hold less than their length (the 6h
window holds everything so far), so an early burst has less "not a blip" protection: a minute with
20% failures 40 minutes in can fire the slow burn. Windows are evaluated only when a request
arrives: an alert stays open while traffic stops, and an outage that stops the requests being
logged at all fires nothing. A quiet service (fewer than 70 requests per 5 minutes at 99.9%) cannot
fire the fast burn and needs a laxer objective or threshold alerting over request counts
(`--alerting threshold --short 50 --long 500`). An alert near its limit can end and fire again
several times (no hysteresis). An error answered as ordinary text (an HTTP 200 carrying an error
message) is not an error here.
""",
    ),
    Spec(
        code='MON002', kind='refusal_rate_alert', category='behaviour', family='monitor', name='refusal-rate-alert',
        summary='Too many answers are refusals, in both the short and the long window',
        severity='medium',
        extra={'metric': 'refusal'},
        doc="""
## What it detects
The share of requests whose answer opens with a refusal, over the threshold (default 30%,
`--max-refusal-rate`) in both the short and the long window with enough volume (see MON001 for
the windows, `min_volume` and when an alert ends). Refusals are found by the behaviour probes'
detector (the opening sentence, or the second after an empathetic opener, must hold a refusal
phrase such as "I can't help with" or "I'm sorry, but"), or taken from `"refusal": true` in the
log. Failed requests are not checked. Severity medium, confidence 0.9.

## Why is this bad?
Users are turned away. A sudden rise usually follows a new system prompt, a new safety filter or a
model update that over-refuses.

## Example
```
{"ts": "2024-05-01T09:00:03Z", "latency_ms": 420, "output": "I'm sorry, but I can't help with that."}
{"ts": "2024-05-01T09:00:04Z", "latency_ms": 380, "output": "Sure! Here is the summary: ..."}

MON002 refusal rate alert fired 1 time: peak 46% over 5m and 38% over 1h (threshold 30%)
```

## Recommended fix
Compare refused prompts with the week before: a new system prompt or safety filter is the usual
cause. `ProductionMonitor(..., store_text=True)` keeps the text to compare (mind privacy).

## Known problems
The detector is an English heuristic on the opening only: a refusal in another language, or one
that starts otherwise ("Hmm. I can't do that."), is missed, while a helpful answer that opens
"No, I would ..." or "I'm afraid that ..." counts. Requests whose refusal is unknown (a log line
with neither output text nor a `refusal` flag) count as not refused but stay in the windows,
diluting the rate. The 30% default suits a general assistant; a service whose job includes many
refusals needs its own threshold.
""",
    ),
    Spec(
        code='MON003', kind='harmful_rate_alert', category='behaviour', family='monitor', name='harmful-rate-alert',
        summary='Too many answers are flagged harmful, in both the short and the long window',
        severity='high',
        extra={'metric': 'harmful'},
        doc="""
## What it detects
The share of answers flagged harmful, by the `judge` given to `ProductionMonitor` (`judge(prompt,
output) -> (harmful, category)`) or by `"harmful": true` in the log (with an optional
`"category"`), over the threshold (default 1%, `--max-harmful-rate`) in both the short and the
long window with enough volume (see MON001). Severity high, confidence 0.9; the evidence counts
the flagged answers per hazard category. With the defaults one flagged answer is enough while the
windows hold fewer than 100 requests (1 in 20 to 99 is over 1%).

## Why is this bad?
Harmful content is reaching users: a jailbreak campaign, a guard that stopped working, or a model
update that lost its safety tuning.

## Example
```python
monitor = ProductionMonitor(generate, judge=guard_judge)   # guard_judge(prompt, output) -> (bool, "S2")
for prompt in traffic:
    monitor(prompt)
# MON003 harmful rate alert fired 1 time: peak 3% over 5m and 3% over 1h (threshold 1%)
```

## Recommended fix
Route flagged traffic to a guard model and review the flagged answers by category.

## Known problems
Nothing is measured without a judge or flags: `modeldebug monitor` on a log has no judge of its
own, and a live monitor without `judge=` never sets the flag, so this alert cannot fire (the
summary shows "not measured"). Answers without a verdict stay in the windows and dilute the rate.
The alert is only as good as the judge; a judge that raises is logged and the answer counts as
not harmful. At low traffic a single false flag pages someone.
""",
    ),
    Spec(
        code='MON004', kind='empty_rate_alert', category='behaviour', family='monitor', name='empty-rate-alert',
        summary='Too many answers are empty, in both the short and the long window',
        severity='medium',
        extra={'metric': 'empty'},
        doc="""
## What it detects
The share of requests answered with nothing (empty or only whitespace; in a log also
`"empty": true` or `"output_chars": 0`), over the threshold (default 5%, `--max-empty-rate`) in
both the short and the long window with enough volume (see MON001). A failed request is not also
counted as empty: one incident, one alert. Severity medium, confidence 0.9.

## Why is this bad?
Users get a blank reply with a success status, which no error monitor sees. It usually follows a
change of `max_tokens`, stop sequences or chat template in the serving stack.

## Example
```
{"ts": "2024-05-01T14:20:11Z", "latency_ms": 95, "output": ""}
{"ts": "2024-05-01T14:20:12Z", "latency_ms": 88, "output": "  "}

MON004 empty rate alert fired 1 time: peak 22% over 5m and 9% over 1h (threshold 5%)
```

## Recommended fix
Check max_tokens, stop sequences and the chat template of the serving stack.

## Known problems
Only literally empty answers count: a lone special token left in the text ("</s>") or a line of
punctuation is not empty. Log lines with neither output text nor `output_chars` count as not
empty but stay in the windows, diluting the rate. The windows, volume and start-up caveats of
MON001 apply.
""",
    ),
    Spec(
        code='MON005', kind='latency_alert', category='behaviour', family='monitor', name='latency-alert',
        summary='Requests slower than the limit burn the latency budget too fast (or pass a threshold), in a short and a long window',
        severity='medium',
        extra={'metric': 'slow'},
        doc="""
## What it detects
The share of requests slower than `slow_s` (default 5 s, `--slow`), judged like MON001's errors:
by default against a latency SLO (`--latency-slo`, default 0.999: 99.9% of requests faster than
`slow_s`) with a fast burn (over 14.4 times the budget, 1.44% slow, in both the last 5 minutes and
the last hour) and a slow burn (over 6 times, 0.6%, in both the last 30 minutes and 6 hours); with
`--alerting threshold` (or `--max-slow-rate R`) over R (default 10%) in both `--short` and
`--long`. Latency is turned into a rate of slow requests, the SRE way; the p50, p95 and p99 in the
summary are not used for alerting. The live monitor times the serving call itself; a log gives
`latency_s` or `latency_ms`. Severity medium, confidence 0.9.

## Why is this bad?
Slow answers lose interactive users and turn into timeouts, then errors, upstream. A rise usually
means load beyond capacity, queueing, or longer generations. An incident in which 30% of requests
take 6-9 s burns a 99.9% budget 300 times too fast: it pages in about a minute, where the old 10%
threshold over an hour never fired for 15 minutes of it and took 18 minutes for 25.

## Example
```
{"ts": 1714557600, "latency_ms": 7400, "output": "..."}
{"ts": 1714557601, "latency_ms": 6900, "output": "..."}

$ modeldebug monitor serve.jsonl --slow 5
MON005 slow budget burn alert (fast burn, slow burn) fired 2 times: 300.0x the budget over 5m and
25.0x over 1h (SLO 99.90%, fires above 14.4x)
```

## Recommended fix
Check load and queueing; cap max_tokens; scale out. If long generations are slow by design, set
`--slow` above them or `--latency-slo` to the share of fast answers you promise.

## Known problems
Requests without a latency count as fast but stay in the windows, diluting the rate. One limit
applies to every request, so long generations (large `max_tokens`) are slow by design; time per
token is not measured. In the live monitor a failed request's time includes the fallback. The
windows, volume, start-up and flapping caveats of MON001 apply.
""",
    ),
)
