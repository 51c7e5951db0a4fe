"""SLO burn-rate alerting (errors and latency): the rules, their volume guard, the command, and the proof table.

The proof: three-hour logs (one request every 3 s, seeded) with background noise and one incident of
5, 15, 25 or 60 minutes starting at 1h30, replayed through the default burn-rate rules and the old
threshold rules at once. `python tests/test_monitor_slo.py` prints the table that docs/behaviour.md shows.
"""

from __future__ import annotations

import functools
import json
import math
import random
from pathlib import Path

import pytest

from modeldebug.catalogue import CATALOGUE
from modeldebug.cli import main
from modeldebug.errors import BadInputError
from modeldebug.monitor import (DEFAULT_RULES, MONITOR_CODES, THRESHOLD_RULES, BurnRateRule, Event, ProductionMonitor,
                                slo_rules)

T0 = 1_700_000_000.0
EVERY_S = 3.0
START_MIN = 90.0
DURATIONS = (5, 15, 25, 60)
#: incident name -> (metric, what happens to each request during it)
INCIDENTS = {
    "30% of requests take 6-9 s": ("slow", 0.30),
    "10% of requests fail": ("error", 0.10),
    "2% of requests fail": ("error", 0.02),
}
#: The old rules for errors and latency, replayed beside the new ones (the other metrics stay quiet here).
OLD = (THRESHOLD_RULES[0], THRESHOLD_RULES[4])


def three_hours(incident: str | None = None, minutes: float = 0.0, *, seed: int = 7) -> list[Event]:
    """A seeded three-hour log: healthy noise, three blips too small to page, and at most one incident.

    Noise: latency log-normal around 0.8 s (a rare request over 5 s), 0.03% of requests fail. Blips:
    30 s with 20% failures at 0h35, a minute with 20% of requests slower than 5 s at 0h50, and a
    restart (6 s of failures) at 1h00.
    """
    rng = random.Random(seed)
    metric, p = INCIDENTS[incident] if incident else ("", 0.0)
    out = []
    for i in range(int(180 * 60 / EVERY_S)):
        m = i * EVERY_S / 60
        latency = math.exp(rng.gauss(math.log(0.8), 0.35))
        if rng.random() < 0.0002:
            latency = rng.uniform(5.5, 7.0)
        failed = rng.random() < 0.0003
        u = rng.random()
        failed |= (35 <= m < 35.5 and u < 0.2) or 60 <= m < 60.1
        if 50 <= m < 51 and u < 0.2:
            latency = rng.uniform(6.0, 9.0)
        if incident and START_MIN <= m < START_MIN + minutes and rng.random() < p:
            if metric == "slow":
                latency = rng.uniform(6.0, 9.0)
            else:
                failed = True
        out.append(Event(t=T0 + i * EVERY_S, latency_s=latency, error="TimeoutError" if failed else None,
                         refusal=False, harmful=False, empty=False))
    return out


def replay(events: list[Event], rules: tuple = DEFAULT_RULES + OLD) -> ProductionMonitor:  # type: ignore[type-arg]
    mon = ProductionMonitor(None, rules=rules)
    for e in events:
        mon.record(e)
    return mon


def first_alert(mon: ProductionMonitor, metric: str, burn: bool) -> float | None:
    """Minutes after the incident started when the first alert of that kind fired (None: never)."""
    starts = [a.started for a in mon.alerts if a.metric == metric and (a.objective is not None) == burn]
    return None if not starts else (min(starts) - T0) / 60 - START_MIN


@functools.lru_cache(maxsize=1)
def timing_table() -> dict[str, dict[int, tuple[float | None, float | None]]]:
    """incident -> duration -> (minutes to the first burn-rate alert, minutes to the first threshold alert)."""
    table: dict[str, dict[int, tuple[float | None, float | None]]] = {}
    for name, (metric, _) in INCIDENTS.items():
        table[name] = {}
        for d in DURATIONS:
            mon = replay(three_hours(name, d))
            table[name][d] = (first_alert(mon, metric, True), first_alert(mon, metric, False))
    return table


def markdown(table: dict[str, dict[int, tuple[float | None, float | None]]]) -> str:
    def cell(v: float | None) -> str:
        return "never" if v is None else f"{v:.1f} min"

    lines = ["| incident | " + " | ".join(f"{d} min: burn rate / threshold" for d in DURATIONS) + " |",
             "|---|" + "---|" * len(DURATIONS)]
    lines += [f"| {name} | " + " | ".join(f"{cell(b)} / {cell(t)}" for b, t in row.values()) + " |"
              for name, row in table.items()]
    return "\n".join(lines)


# -- the proof ----------------------------------------------------------------------------------------------
def test_noise_alone_never_alerts_under_either_kind_of_rule() -> None:
    mon = replay(three_hours())
    assert mon.alerts == [] and mon.findings() == []
    s = mon.summary()
    assert s["rates"]["error"]["k"] >= 5 and s["rates"]["slow"]["k"] >= 3  # the blips are there, and too small


def test_every_incident_pages_by_burn_rate_and_the_old_rules_miss_or_lag() -> None:
    table = timing_table()
    slow = table["30% of requests take 6-9 s"]
    # The incident: 15 minutes of 30% slow requests never alerted; 25 minutes alerted about 20 in.
    assert slow[15][1] is None and slow[25][1] is not None and slow[25][1] > 15
    for d in DURATIONS:
        burn, old = slow[d]
        assert burn is not None and 0 < burn < 3, (d, burn)  # a 300x burn pages within minutes
        assert old is None or old > burn + 10
    heavy = table["10% of requests fail"]
    assert all(b is not None and 0 < b < 9 for b, _ in heavy.values())  # 100x: the 1h window passes 1.44% by 8.6 min
    assert heavy[25][1] is None or heavy[25][1] > 20  # the old 5% threshold needs the hour at 5%
    mild = table["2% of requests fail"]  # a 20x burn: only the slow burn sees it, and only when it lasts
    assert mild[5][0] is None and mild[15][0] is None
    assert mild[60][0] is not None and 30 < mild[60][0] < 55 and mild[60][1] is None


def test_the_timing_table_in_the_docs_is_the_one_these_logs_give() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "behaviour.md").read_text(encoding="utf-8")
    assert markdown(timing_table()) in doc


# -- the rules -----------------------------------------------------------------------------------------------
def test_slo_rules_are_the_workbook_tiers() -> None:
    fast, slow = slo_rules("error", 0.999)
    assert (fast.name, fast.short, fast.long, fast.burn) == ("fast burn", "5m", "1h", 14.4)
    assert (slow.name, slow.short, slow.long, slow.burn) == ("slow burn", "30m", "6h", 6.0)
    assert fast.threshold == pytest.approx(0.0144) and slow.threshold == pytest.approx(0.006)
    assert fast.volume == 70 and slow.volume == 167  # one bad request alone stays under the limit
    assert {r.metric for r in DEFAULT_RULES if isinstance(r, BurnRateRule)} == {"error", "slow"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"objective": 1.0, "burn": 14.4}, "objective must be a fraction"),
    ({"objective": 0.999, "burn": 0.0}, "burn rate .* above 0"),
    ({"objective": 0.9, "burn": 14.4}, "144% of requests, so it can never fire"),
])
def test_bad_burn_rules_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        BurnRateRule("error", **kwargs)


def test_one_early_failure_does_not_page_but_a_real_burst_does() -> None:
    events = [Event(t=T0 + i, latency_s=0.5, error="E" if i == 5 else None) for i in range(400)]
    assert replay(events, rules=slo_rules("error")).alerts == []  # 1 in 21 is 4.8%, a "48x burn" of nothing
    events = [Event(t=T0 + i, latency_s=0.5, error="E" if 200 <= i < 230 else None) for i in range(400)]
    mon = replay(events, rules=slo_rules("error"))
    assert sorted(a.rule for a in mon.alerts) == ["fast burn", "slow burn"]
    f = mon.findings()[0]
    assert (f.code, f.kind, f.severity) == ("MON001", "error_rate_alert", "high")
    assert "budget burn alert" in f.title and "SLO 99.90%" in f.title
    assert f.evidence["alerts"][0]["objective"] == 0.999 and f.evidence["alerts"][0]["peak_short_burn"] > 14.4


def test_monitor_codes_are_a_view_of_the_catalogue() -> None:
    assert set(MONITOR_CODES) == {"error", "refusal", "harmful", "empty", "slow"}
    for metric, (code, kind, severity) in MONITOR_CODES.items():
        spec = CATALOGUE[code]
        assert spec.family == "monitor" and (spec.kind, spec.severity) == (kind, severity)
        assert spec.extra["metric"] == metric


def test_long_windows_keep_counts_per_second_within_one_second_of_exact() -> None:
    from modeldebug.monitor import TimeWindow, parse_window
    from modeldebug.monitor.windows import flags

    bucketed = parse_window("10m")
    assert isinstance(bucketed, TimeWindow) and bucketed.resolution == 1.0 and parse_window("5m").resolution is None
    rng = random.Random(3)
    events, t = [], T0
    for _ in range(20_000):  # about 30 requests a second for 11 minutes
        t += rng.expovariate(30.0)
        e = Event(t=t, error="E" if rng.random() < 0.05 else None, latency_s=0.1)
        events.append(e)
        bucketed.add(e.t, flags(e, 5.0), e.latency_s)
        if len(events) % 997 == 0:
            exact = [x for x in events if x.t > t - 600]
            wider = [x for x in events if x.t > t - 601]
            assert len(exact) <= bucketed.n <= len(wider)
            errors = bucketed.counts[0]
            assert sum(x.error is not None for x in exact) <= errors <= sum(x.error is not None for x in wider)
    assert len(bucketed._buckets) <= 602  # one per second, not one per request


# -- the command ------------------------------------------------------------------------------------------------
def dump(path: Path, events: list[Event]) -> str:
    path.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in events))
    return str(path)


def test_monitor_command_alerts_by_burn_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = dump(tmp_path / "slow.jsonl", three_hours("30% of requests take 6-9 s", 15))
    assert main(["monitor", log, "--fail-on", "medium", "--json", "r.json"]) == 1
    err = capsys.readouterr().err
    assert "slow budget burn alert" in err and "slow (fast burn): started" in err
    report = json.loads(Path("r.json").read_text())
    assert [f["code"] for f in report["findings"]] == ["MON005"]
    assert {r["rule"] for r in report["run"]["summary"]["rules"]} == {"fast burn", "slow burn", "threshold"}
    assert main(["monitor", log, "--alerting", "threshold", "--fail-on", "low", "-q"]) == 0  # the old miss
    assert main(["monitor", log, "--latency-slo", "0.97", "--fail-on", "low", "-q"]) == 0  # a lax SLO: no page
    assert main(["monitor", log, "--max-slow-rate", "0.05", "--fail-on", "low", "-q"]) == 1  # threshold for slow


@pytest.mark.parametrize(("args", "message"), [
    (["--error-slo", "1.5"], "--error-slo 1.5: the objective is the fraction of good requests"),
    (["--latency-slo", "0"], "--latency-slo 0.0: the objective"),
    (["--fast-burn", "-1"], "--fast-burn -1.0: a burn rate"),
    (["--error-slo", "0.9"], "--error-slo 0.9: fast burn for error: 14.4x .* can never fire"),
    (["--latency-slo", "0.5"], "--latency-slo 0.5: fast burn for slow: 14.4x .* can never fire"),
])
def test_monitor_command_bad_slo_options(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                         message: str) -> None:
    import re

    log = tmp_path / "log.jsonl"
    log.write_text('{"ts": 1}\n')
    assert main(["monitor", str(log), *args]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err


if __name__ == "__main__":
    print(markdown(timing_table()))
