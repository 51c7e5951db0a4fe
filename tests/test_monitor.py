"""Production monitoring: windows, multi-window alerts on recorded streams, the serving wrapper, JSONL logs, CLI."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modeldebug.cli import main
from modeldebug.errors import BadInputError
from modeldebug.monitor import (THRESHOLD_RULES, AlertRule, CountWindow, Event, LogLineError, ProductionMonitor,
                                TimeWindow, monitor_log, parse_window, read_log)
from modeldebug.monitor.windows import METRICS, flags

T0 = 1_700_000_000.0


def stream(seconds: int, *, error_p: float = 0.01, bursts: tuple[tuple[int, int, float], ...] = (),
           slow: tuple[int, int] | None = None, seed: int = 0) -> list[Event]:
    """One request a second; errors at `error_p`, or at p inside each (start, end, p) burst; seeded."""
    rng = random.Random(seed)
    out = []
    for i in range(seconds):
        p = next((bp for a, b, bp in bursts if a <= i < b), error_p)
        err = rng.random() < p
        latency = 8.0 if slow and slow[0] <= i < slow[1] else 0.2 + 0.1 * rng.random()
        out.append(Event(t=T0 + i, latency_s=latency, error="TimeoutError" if err else None, refusal=False,
                         harmful=False, empty=False))
    return out


def replay(events: list[Event], **kw: object) -> ProductionMonitor:
    mon = ProductionMonitor(None, **kw)  # type: ignore[arg-type]
    for e in events:
        mon.record(e)
    return mon


# -- threshold alerting on recorded streams (the old rules, kept as an option; burn rates: test_monitor_slo.py) ----
def test_a_burst_of_errors_fires_one_alert_that_resolves_after_it() -> None:
    mon = replay(stream(3 * 3600, bursts=((3600, 4200, 0.5),)), rules=THRESHOLD_RULES)
    assert [a.metric for a in mon.alerts] == ["error"]
    a = mon.alerts[0]
    assert T0 + 3600 < a.started < T0 + 4000  # once the long window is over 5% too
    assert a.ended is not None and T0 + 4200 < a.ended < T0 + 4600  # the short window recovers fast
    assert a.peak_short_rate > 0.4 and a.peak_long_rate > 0.05
    f = mon.findings()
    assert [(x.code, x.kind, x.severity) for x in f] == [("MON001", "error_rate_alert", "high")]
    assert f[0].evidence["error_types"] == {"TimeoutError": mon.counts["error"]}


def test_sparse_noise_never_alerts() -> None:
    mon = replay(stream(3 * 3600, error_p=0.02), rules=THRESHOLD_RULES)
    assert mon.alerts == [] and mon.findings() == []
    assert 0.01 < mon.summary()["rates"]["error"]["rate"] < 0.03


def test_a_short_spike_needs_the_long_window_too() -> None:
    events = stream(2 * 3600, bursts=((5000, 5040, 1.0),))
    assert replay(events, rules=THRESHOLD_RULES).alerts == []  # 40 errors in 40 s: short window over 5%, the hour is not
    short_only = (AlertRule("error", 0.05, short="5m", long="5m"),)
    assert [a.metric for a in replay(events, rules=short_only).alerts] == ["error"]  # a single window would page


def test_too_little_traffic_does_not_alert() -> None:
    events = [Event(t=T0 + 60 * i, error="E" if i % 2 else None) for i in range(10)]  # 50% errors, 10 requests
    assert replay(events).alerts == []
    assert replay(events, rules=(AlertRule("error", 0.05, min_volume=5),)).alerts


def test_count_windows_and_latency_alerts() -> None:
    rules = (AlertRule("error", 0.05, short="50", long="500"), AlertRule("slow", 0.1, short="50", long="500"))
    mon = replay(stream(3000, bursts=((1000, 1200, 0.6),), slow=(2000, 2300)), rules=rules, slow_s=5.0)
    assert [a.metric for a in mon.alerts] == ["error", "slow"]
    assert [f.code for f in mon.findings()] == ["MON001", "MON005"]
    assert mon.summary()["latency_s"]["max"] == 8.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5), st.booleans(), st.booleans()), min_size=1, max_size=80),
       st.integers(1, 30), st.floats(0.5, 40))
def test_window_rates_equal_a_direct_computation(steps: list[tuple[float, bool, bool]], size: int,
                                                 seconds: float) -> None:
    cw, tw = CountWindow(size), TimeWindow(seconds)
    t, events = 0.0, []
    for dt, err, empty in steps:
        t += dt
        e = Event(t=t, error="E" if err else None, empty=empty, latency_s=dt)
        events.append(e)
        for w in (cw, tw):
            w.add(t, flags(e, 1.0), e.latency_s)
        last = events[-size:]
        recent = [x for x in events if x.t > t - seconds]
        for m in METRICS:
            i = METRICS.index(m)
            assert cw.rate(m) == pytest.approx(sum(flags(x, 1.0)[i] for x in last) / len(last))
            assert tw.rate(m) == pytest.approx(sum(flags(x, 1.0)[i] for x in recent) / len(recent))
            assert 0.0 <= cw.rate(m) <= 1.0
        assert cw.n == len(last) and tw.n == len(recent)


def test_window_specs() -> None:
    assert isinstance(parse_window("50"), CountWindow)
    assert parse_window("5m").seconds == 300 and parse_window("1h").spec == "1h"  # type: ignore[attr-defined]
    for bad in ("5 minutes", "-3", "0", "1w"):
        with pytest.raises(BadInputError):
            parse_window(bad)
    with pytest.raises(BadInputError, match="alert metric 'latency'"):
        AlertRule("latency", 0.1)


# -- the serving wrapper ---------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def test_wrapper_serves_a_fallback_and_keeps_statistics_not_text(tmp_path: Path) -> None:
    clock = Clock()

    def serve(prompt: str) -> str:
        clock.t += 0.5  # the model takes half a second
        if "boom" in prompt:
            raise ValueError("model server crashed")
        return "I can't help with that." if "hack" in prompt else f"Answer to {prompt}"

    with ProductionMonitor(serve, clock=clock, timer=clock, log_path=tmp_path / "serve.jsonl",
                           fallback="Sorry, try again.") as mon:
        assert mon("hello") == "Answer to hello"
        assert mon("boom now") == "Sorry, try again."  # never raises
        assert mon("hack the bank") == "I can't help with that."
    s = mon.summary()
    assert s["requests"] == 3 and s["fallbacks"] == 1 and s["error_types"] == {"ValueError": 1}
    assert s["rates"]["refusal"]["k"] == 1 and s["latency_s"]["p50"] == pytest.approx(0.5)
    assert s["rates"]["harmful"] == "not measured" and s["text_stored"] is False
    lines = (tmp_path / "serve.jsonl").read_text().splitlines()
    assert len(lines) == 3 and not any("hello" in line or "hack" in line for line in lines)
    assert json.loads(lines[0])["prompt_chars"] == 5


def test_text_is_stored_only_when_asked_and_a_judge_flags_harm(tmp_path: Path) -> None:
    def judge(prompt: str, output: str) -> tuple[bool, str | None]:
        return ("[harmful]" in output, "S2" if "[harmful]" in output else None)

    mon = ProductionMonitor(lambda p: "[harmful] sure" if "steal" in p else "ok", judge=judge, store_text=True,
                            log_path=tmp_path / "t.jsonl", fallback=lambda p, exc: f"fallback for {type(exc).__name__}")
    mon("how to steal a car")
    mon("hi")
    mon.close()
    first = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[0])
    assert first["prompt"] == "how to steal a car" and first["harmful"] is True and first["category"] == "S2"
    assert mon.summary()["harmful_categories"] == {"S2": 1}
    bad = ProductionMonitor(lambda p: 42, fallback=lambda p, exc: f"fallback for {type(exc).__name__}")  # type: ignore[arg-type, return-value]
    assert bad("x") == "fallback for TypeError"


def test_live_burst_through_the_wrapper_calls_on_alert_once() -> None:
    clock, fired = Clock(), []
    broken = {"on": False}

    def serve(prompt: str) -> str:
        if broken["on"]:
            raise TimeoutError("upstream timeout")
        return "fine"

    mon = ProductionMonitor(serve, clock=clock, on_alert=fired.append,
                            rules=(AlertRule("error", 0.05, short="1m", long="10m"),))
    for i in range(1800):
        clock.t += 1.0
        broken["on"] = 900 <= i < 1100
        mon("q")
    assert len(fired) == 1 and fired[0].metric == "error" and fired[0].ended is not None


def test_own_log_replays_to_the_same_summary(tmp_path: Path) -> None:
    live = replay(stream(4000, bursts=((1000, 1500, 0.5),)), log_path=tmp_path / "x.jsonl")
    live.close()
    again = monitor_log(tmp_path / "x.jsonl")
    assert again.counts == live.counts and again.n == live.n
    assert [a.to_dict() for a in again.alerts] == [a.to_dict() for a in live.alerts]


# -- reading logs ----------------------------------------------------------------------------------------------
def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_log_fields_are_read_and_derived(tmp_path: Path) -> None:
    log = write(tmp_path / "log.jsonl", [
        '{"ts": "2024-05-01T10:00:02Z", "latency_ms": 250, "output": "Sorry, I cannot help with that."}',
        "",
        '{"ts": "2024-05-01T10:00:01+00:00", "latency_s": 1.5, "output": "  ", "prompt": "hi"}',
        '{"ts": 1714557603, "error": "RateLimitError", "refusal": false}',
    ])
    first, second, third = read_log(log)  # sorted by time, blank line skipped
    assert second.refusal is True and second.latency_s == pytest.approx(0.25) and second.empty is False
    assert first.empty is True and first.prompt_chars == 2 and first.latency_s == 1.5
    assert third.error == "RateLimitError" and third.t == 1714557603.0


@pytest.mark.parametrize(("lines", "message"), [
    (['{"ts": 1}', '{"ts": 2}', "{not json"], "log.jsonl line 3: not valid JSON"),
    (['{"ts": 1, "latency_ms": "fast"}'], "line 1: 'latency_ms' must be a non-negative number, got 'fast'"),
    (['[1, 2]'], "line 1: expected a JSON object, got list"),
    (['{"ts": 1}', '{"latency_s": 1}'], "line 2: has no timestamp"),
    (['{"ts": "yesterday"}'], "line 1: Invalid isoformat string"),
    (['{"ts": "2024-05-01T10:00:00"}'], "line 1: timestamp .* has no time zone"),
    (['{"ts": 1, "refusal": "yes"}'], "line 1: 'refusal' must be true or false"),
])
def test_bad_lines_name_the_line(tmp_path: Path, lines: list[str], message: str) -> None:
    with pytest.raises(LogLineError, match=message):
        read_log(write(tmp_path / "log.jsonl", lines))


def test_logs_without_timestamps_need_count_windows(tmp_path: Path) -> None:
    log = write(tmp_path / "log.jsonl", ['{"error": true}'] * 30 + ['{"error": false}'] * 5)
    with pytest.raises(BadInputError, match="no timestamps .* use request counts"):
        monitor_log(log)
    mon = monitor_log(log, rules=(AlertRule("error", 0.05, short="10", long="30", min_volume=10),))
    assert [a.metric for a in mon.alerts] == ["error"]


# -- the command -------------------------------------------------------------------------------------------------
def dump(path: Path, events: list[Event]) -> str:
    path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in events))
    return str(path)


def test_monitor_command_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    burst = dump(tmp_path / "burst.jsonl", stream(3 * 3600, bursts=((3600, 4200, 0.5),)))
    noise = dump(tmp_path / "noise.jsonl", stream(3 * 3600, error_p=0.02))
    assert main(["monitor", burst, "--alerting", "threshold", "--fail-on", "high", "--json", "b.json"]) == 1
    err = capsys.readouterr().err
    assert "error rate alert fired 1 time" in err and "requests over" in err
    report = json.loads(Path("b.json").read_text())
    assert [f["code"] for f in report["findings"]] == ["MON001"] and report["run"]["summary"]["requests"] == 10800
    assert main(["monitor", noise, "--alerting", "threshold", "--fail-on", "low", "-q"]) == 0
    assert main(["monitor", noise, "--fail-on", "low", "-q"]) == 1  # 2% errors burn a 99.9% SLO's budget 20x
    assert main(["monitor", noise, "--error-slo", "0.99", "--fail-on", "low", "-q"]) == 0  # inside a 99% SLO
    assert main(["monitor", burst, "-q"]) == 0  # alerts alone do not fail without --fail-on
    assert main(["monitor", burst, "-q", "--fail-on", "high", "--max-error-rate", "0.6"]) == 0


@pytest.mark.parametrize(("content", "args", "message"), [
    ('{"ts": 1}\n{"ts": 2, "error": 5}\n', [], "line 2: 'error' must be true/false"),
    ('{"ts": 1}\n', ["--short", "5 minutes"], "window '5 minutes'"),
    ('{"ts": 1}\n', ["--max-error-rate", "2"], "must be a rate in"),
    (None, [], "no log file"),
])
def test_monitor_command_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None,
                                   args: list[str], message: str) -> None:
    import re

    log = tmp_path / "log.jsonl"
    if content is not None:
        log.write_text(content)
    assert main(["monitor", str(log), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err


@pytest.mark.slow
def test_monitor_entry_point_in_a_subprocess(tmp_path: Path) -> None:
    burst = dump(tmp_path / "burst.jsonl", stream(7200, bursts=((3600, 4200, 0.5),)))
    proc = subprocess.run([sys.executable, "-m", "modeldebug", "monitor", burst, "--json", "-", "-q", "--alerting", "threshold",
                           "--fail-on", "high"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["findings"][0]["kind"] == "error_rate_alert"


def test_swapped_windows_and_failed_empty_answers() -> None:
    from modeldebug.errors import BadInputError
    from modeldebug.monitor.alerts import AlertRule
    from modeldebug.monitor.events import Event

    with pytest.raises(BadInputError, match="short window '1h' must not be longer than the long window '5m'"):
        AlertRule("error", 0.05, short="1h", long="5m")
    failed = Event.from_dict({"ts": 0, "latency_s": 0.1, "error": "timeout", "output": ""}, line=1, where="log")
    assert failed.error and not failed.empty  # counted once, as an error
    assert Event.from_dict({"ts": 0, "latency_s": 0.1, "output": " "}, line=2, where="log").empty
