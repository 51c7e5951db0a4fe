"""Review fixes: rates over the requests that measured them, timestamps not in seconds, -q, options with no effect."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from modeldebug.cli import main
from modeldebug.monitor import (
    AlertRule,
    CountWindow,
    Event,
    ProductionMonitor,
    monitor_log,
)

T0 = 1_700_000_000


def write(path: Path, lines: list[dict[str, object]]) -> str:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)


def half_failed(n: int = 400, every_empty: int = 5) -> list[dict[str, object]]:
    """Every other request fails; every fifth answer of the others is empty (20% of the answers)."""
    out: list[dict[str, object]] = []
    for i in range(n):
        if i % 2 == 0:
            out.append({"ts": T0 + i, "latency_s": 0.2, "error": True, "output": None})
        else:
            out.append({"ts": T0 + i, "latency_s": 0.2, "error": False,
                        "output": "" if (i // 2) % every_empty == 0 else "Paris is the capital."})
    return out


def test_failed_requests_do_not_dilute_the_empty_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write(tmp_path / "emptyrate.jsonl", half_failed())
    # It used to print "empty 40/200 20.0%" and fire nothing: the windows divided by 400.
    assert main(["monitor", log, "--max-empty-rate", "0.15", "--max-error-rate", "0.99", "--fail-on", "low"]) == 1
    err = capsys.readouterr().err
    assert "empty         40/200 20.0%" in err and "MON004" in err and "alerts        1 fired" in err
    alert = monitor_log(log, rules=[AlertRule("empty", 0.15)]).alerts[0]
    assert alert.short_rate == pytest.approx(0.2, abs=0.05) and alert.short_n == alert.long_n  # answers, not requests


def test_a_failed_requests_fallback_text_is_not_a_refusal(tmp_path: Path) -> None:
    lines = [{"ts": T0 + i, "latency_s": 0.2, "error": i % 2 == 0,
              "output": "Sorry, something went wrong. Please try again." if i % 2 == 0 else "Paris."} for i in range(600)]
    mon = monitor_log(write(tmp_path / "fallback.jsonl", lines), rules=[AlertRule("refusal", 0.3)])
    assert mon.summary()["rates"]["refusal"]["k"] == 0 and mon.summary()["rates"]["refusal"]["n"] == 300
    assert mon.alerts == []


def test_a_window_rate_is_over_the_requests_that_measured_it() -> None:
    w = CountWindow(10)
    for i in range(10):
        failed = i % 2 == 0
        e = Event(t=i, error="E" if failed else None, empty=None if failed else i == 1)
        w.add(e.t, (failed, False, False, bool(e.empty), False), None, (True, False, False, not failed, False))
    assert w.rate("error") == 0.5 and w.rate("empty") == pytest.approx(1 / 5) and w.rate("harmful") == 0.0
    assert w.measured == [10, 0, 0, 5, 0]


@pytest.mark.parametrize(("scale", "unit", "divide"), [
    (1000, "milliseconds", "1000"), (1_000_000, "microseconds", "1e6"), (1_000_000_000, "nanoseconds", "1e9"),
])
def test_timestamps_that_are_not_seconds_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             scale: int, unit: str, divide: str) -> None:
    log = write(tmp_path / "log_ms.jsonl", [{"ts": (T0 + i) * scale, "latency_ms": 5} for i in range(3)])
    # It used to replay "3 requests over 2000s" with windows that could never fill.
    assert main(["monitor", log]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"modeldebug: log_ms.jsonl line 1: timestamp {T0 * scale} ")
    assert f"it looks like {unit} since the epoch; divide 'ts' by {divide}" in err


def test_seconds_far_beyond_any_unit_and_plain_seconds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", write(tmp_path / "big.jsonl", [{"ts": 1e300, "latency_ms": 5}])]) == 2
    assert "timestamp 1e+300 is not a time in Unix seconds" in capsys.readouterr().err
    assert main(["monitor", write(tmp_path / "ok.jsonl", [{"ts": T0, "latency_ms": 5}]), "-q"]) == 0


def burst(tmp_path: Path) -> str:
    return write(tmp_path / "burst.jsonl", [{"ts": T0 + i, "latency_ms": 5, "error": 1200 <= i < 1500}
                                            for i in range(3600)])


def test_quiet_replay_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     caplog: pytest.LogCaptureFixture) -> None:
    log = burst(tmp_path)
    assert main(["monitor", log, "-q", "--fail-on", "high"]) == 1
    assert capsys.readouterr().err == "" and "ALERT" not in caplog.text  # it printed "ALERT error fast burn ..."
    assert main(["monitor", log]) == 0
    assert "error (fast burn): started" in capsys.readouterr().err and "ALERT" not in caplog.text
    fired: list[object] = []  # the live monitor still warns as alerts fire
    mon = ProductionMonitor(None, on_alert=fired.append)
    for i in range(3600):
        mon.record(Event(t=T0 + i, latency_s=0.005, error="E" if 1200 <= i < 1500 else None))
    assert fired and "ALERT error fast burn" in caplog.text


@pytest.mark.parametrize(("args", "message"), [
    (["--alerting", "threshold", "--error-slo", "0.99"],
     "--error-slo 0.99 has no effect with --alerting threshold"),
    (["--alerting", "threshold", "--latency-slo", "0.99"], "--latency-slo 0.99 has no effect with --alerting"),
    (["--alerting", "threshold", "--fast-burn", "10"], "--fast-burn 10 has no effect with --alerting threshold"),
    (["--max-error-rate", "0.1", "--error-slo", "0.99"],
     "--error-slo 0.99 has no effect with --max-error-rate .*: drop one of them"),
    (["--max-error-rate", "0.1", "--max-slow-rate", "0.1", "--slow-burn", "3"],
     "--slow-burn 3 has no effect when every SLO metric alerts on a threshold"),
])
def test_an_slo_option_that_would_be_ignored_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        args: list[str], message: str) -> None:
    assert main(["monitor", burst(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err


def test_slo_options_that_apply_are_still_taken(tmp_path: Path) -> None:
    log = burst(tmp_path)
    assert main(["monitor", log, "-q", "--error-slo", "0.99", "--fast-burn", "10", "--fail-on", "high"]) == 1
    assert main(["monitor", log, "-q", "--max-error-rate", "0.1", "--latency-slo", "0.99"]) == 0


def test_a_monitor_judge_that_returns_none_measures_nothing_and_warns_sparingly(
        caplog: pytest.LogCaptureFixture) -> None:
    mon = ProductionMonitor(lambda p: "ok answer", judge=lambda p, o: None)
    for _ in range(20):
        mon("hello")
    assert mon.summary()["rates"]["harmful"] == "not measured"  # it used to count every answer as not harmful
    assert mon.judge_failures == 20 and caplog.text.count("judge failed") == 2  # the 1st and the 10th
    assert "returned None instead of a verdict" in caplog.text
