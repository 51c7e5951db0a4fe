"""Score an LLM-backed analysis on the fault scenario suite, next to the rules alone.

Each script in benchmarks/scenarios/ is run through `modeldebug run` (as score_scenarios.py does),
its stored run is explained by a language model, and three rankings are scored with the same
metric as the rules (the right root cause FIRST; healthy twins without medium/high findings):
- rules:   the rule report's order;
- LLM:     the order the model asked for on its own (before the guard);
- guarded: the order after the guard (what modeldebug shows). It must never score below the rules.
It also counts the model's own hypotheses of medium/high severity on healthy twins (its false
alarms; shown apart, never findings), fallbacks, tokens and seconds.

    python benchmarks/llm_eval.py --lm echo              # offline: a fake model that agrees with the rules
    python benchmarks/llm_eval.py --lm contrarian        # offline: a fake model that contradicts them
    python benchmarks/llm_eval.py --lm ollama_chat/llama3.2 [--llm-base-url URL] [--runs DIR] [--only 'loss_*']

`--runs DIR` keeps the stored runs, so a second model is scored without re-running the scripts.
Exit 0 always: it reports.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from score_scenarios import expectation  # noqa: E402

SCENARIOS = HERE / "scenarios"


@dataclass
class Scored:
    scenario: str
    expect: str
    rules_top: str | None = None
    llm_top: str | None = None
    guarded_top: str | None = None
    serious: list[str] = field(default_factory=list)
    llm_alarms: list[str] = field(default_factory=list)
    fallback: str | None = None
    tokens: int = 0
    seconds: float = 0.0
    error: str | None = None

    def first(self, which: str) -> bool:
        return getattr(self, f"{which}_top") == self.expect


def record_run(path: Path, runs: Path, timeout: float) -> tuple[Path, str | None]:
    """The scenario's stored run (made with `modeldebug run` unless `runs` already holds it)."""
    db = runs / f"{path.stem}.db"
    if db.exists():
        return db, None
    with tempfile.TemporaryDirectory() as cwd:
        cmd = [sys.executable, "-m", "modeldebug", "run", "-q", "--db", str(db), "--", str(path)]
        try:
            proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return db, "timed out"
    if not db.exists():
        return db, ((proc.stderr.strip().splitlines() or ["no record"])[-1])[:120]
    return db, None


def make_model(spec: str, base_url: str | None, timeout: float):  # type: ignore[no-untyped-def]
    from modeldebug.llm import make_lm
    from modeldebug.llm.testing import contrarian_analyst, echo_analyst, fake_lm

    fakes = {"echo": echo_analyst, "contrarian": contrarian_analyst}
    if spec in fakes:
        return lambda: fake_lm(fakes[spec], model=f"fake/{spec}")
    lm = make_lm(spec, base_url=base_url, timeout=timeout)
    return lambda: lm


def score(path: Path, db: Path, new_lm, question: str | None, llm_timeout: float) -> Scored:  # type: ignore[no-untyped-def]
    from modeldebug.config import DebuggingConfig
    from modeldebug.llm import explain_report
    from modeldebug.record import Record
    from modeldebug.report import Report

    s = Scored(path.stem, expectation(path))
    report = Report.from_record(Record.open(db), DebuggingConfig(analysis_level="basic"))  # as `modeldebug run`
    kinds = [f.kind for f in report.findings]
    s.rules_top = kinds[0] if kinds else None
    s.serious = [f.kind for f in report.findings if f.severity in ("medium", "high")]
    e = explain_report(report, new_lm(), question, timeout=llm_timeout)
    s.fallback, s.tokens, s.seconds = e.fallback_reason, e.tokens.total_tokens, e.seconds
    by_id = {f"F{i}": k for i, k in enumerate(kinds, 1)}
    s.llm_top = by_id.get(e.llm_order[0]) if e.llm_order else None
    s.guarded_top = e.findings[0].kind if e.findings else None
    s.llm_alarms = [f"{h.type}: {h.description[:40]}" for h in e.hypotheses if h.severity in ("medium", "high")]
    return s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lm", default="echo", help="echo | contrarian (offline fakes) | a model string (default echo)")
    ap.add_argument("--llm-base-url", metavar="URL", help="the model server (Ollama, llama.cpp, vLLM, ...)")
    ap.add_argument("--ask", default=None, help="a question to ask about every run (runs the tool loop)")
    ap.add_argument("--only", default="*", help="glob over scenario names, e.g. 'healthy_*'")
    ap.add_argument("--jobs", type=int, default=2, help="scenario scripts run in parallel (default 2)")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per scenario script")
    ap.add_argument("--llm-timeout", type=float, default=120.0, help="seconds per explanation")
    ap.add_argument("--runs", metavar="DIR", help="keep (and reuse) the stored runs here")
    ap.add_argument("--json", metavar="P", help="also write the results as JSON")
    args = ap.parse_args()

    paths = sorted(p for p in SCENARIOS.glob("*.py") if fnmatch.fnmatch(p.stem, args.only))
    if not paths:
        print(f"no scenario matches {args.only!r} in {SCENARIOS}", file=sys.stderr)
        return 2
    new_lm = make_model(args.lm, args.llm_base_url, args.llm_timeout)
    tmp = None if args.runs else tempfile.TemporaryDirectory()
    runs = Path(args.runs or tmp.name)  # type: ignore[union-attr]
    runs.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        recorded = list(pool.map(lambda p: record_run(p, runs, args.timeout), paths))
    results: list[Scored] = []
    for path, (db, error) in zip(paths, recorded):
        if error is not None:
            results.append(Scored(path.stem, expectation(path), error=error))
            continue
        results.append(score(path, db, new_lm, args.ask, args.llm_timeout))

    print(f"{'scenario':28} {'expect':24} {'rules':6} {'llm':6} {'guard':6} {'tokens':>7} {'secs':>6}  note")
    mark = lambda ok: "yes" if ok else "no"  # noqa: E731
    for r in results:
        if r.error:
            print(f"{r.scenario:28} {r.expect:24} {'':6} {'':6} {'':6} {'':>7} {'':>6}  ERROR {r.error}")
            continue
        if r.expect == "clean":
            verdict = "clean" if not r.serious else "ALARM"  # severities are the rules' in both
            cols = [verdict, "hyp" if r.llm_alarms else "-", verdict]
            note = ("LLM hypotheses: " + "; ".join(r.llm_alarms)) if r.llm_alarms else ""
        else:
            cols = [mark(r.first("rules")), mark(r.first("llm")), mark(r.first("guarded"))]
            note = "" if r.first("guarded") else f"top: {r.guarded_top}"
        note = f"FALLBACK {r.fallback}" if r.fallback else note
        print(f"{r.scenario:28} {r.expect:24} {cols[0]:6} {cols[1]:6} {cols[2]:6} {r.tokens:7d} {r.seconds:6.1f}  {note}")
    faults = [r for r in results if r.expect != "clean" and not r.error]
    healthy = [r for r in results if r.expect == "clean" and not r.error]
    n = len(faults)
    counts = {w: sum(r.first(w) for r in faults) for w in ("rules", "llm", "guarded")}
    worse = [r.scenario for r in faults if r.first("rules") and not r.first("guarded")]
    print(f"summary ({args.lm}): {n} fault scenarios, right root cause first: rules {counts['rules']}, "
          f"LLM alone {counts['llm']}, guarded {counts['guarded']}; guarded below the rules on "
          f"{len(worse)} ({', '.join(worse) or 'none'}); {len(healthy)} healthy twins: "
          f"{sum(not r.serious for r in healthy)} clean, LLM hypotheses of medium/high severity on "
          f"{sum(bool(r.llm_alarms) for r in healthy)}; fallbacks {sum(bool(r.fallback) for r in results)}; "
          f"{sum(r.tokens for r in results)} tokens; {time.perf_counter() - t0:.0f} s in all")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
