"""Calibration of the findings' confidence on the fault scenario suite.

Runs every script of benchmarks/scenarios/ through `modeldebug run --json` (as score_scenarios.py
does) and judges each top-level finding:
- on a fault scenario it is RIGHT when its kind is the planted bug's kind (the script's
  `# expect:` line) or an accepted alternative (ACCEPTED below: the same fault named from its
  other side, e.g. `loss_diverging` for a learning rate that is too high), WRONG otherwise;
- on a healthy twin every medium or high finding is WRONG (low ones are not counted).
It prints, per confidence bucket, how many findings were stated at that confidence and how often
they were right, then the suite's score line (found / top / clean) as score_scenarios.py prints it.

    python benchmarks/calibration.py [--jobs 2] [--only PATTERN] [--keep DIR] [--reuse DIR] [--json P]

`--keep DIR` keeps each run's record (DIR/<scenario>.db); `--reuse DIR` re-analyses those records
with `modeldebug report` instead of running the scripts again (the rules change, the runs do not).
Exit 0 always: it reports.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from score_scenarios import HERE, expectation

#: Kinds that name the planted fault from another side; a finding of one of them is right too.
ACCEPTED: dict[str, set[str]] = {
    "lr_too_high": {"loss_diverging", "exploding_gradients"},
    "loss_diverging": {"lr_too_high"},
    "exploding_gradients": {"lr_too_high", "loss_diverging"},
    "nonfinite": {"loss_diverging", "exploding_gradients"},
    "vanishing_gradients": {"saturated_activations", "poor_initialization"},
    "saturated_activations": {"vanishing_gradients"},
    "dead_activations": {"vanishing_gradients"},
    "poor_initialization": {"saturated_activations", "vanishing_gradients", "dead_activations"},
    "loss_not_decreasing": {"lr_too_low"},
    "lr_too_low": {"loss_not_decreasing"},
    "out_of_memory": {"memory_growth"},
    "memory_growth": {"out_of_memory"},
}
#: Confidence buckets: [low, high).
BUCKETS = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01))


@dataclass
class Judged:
    scenario: str
    expect: str
    findings: list[dict] = field(default_factory=list)  # kind, severity, confidence, right (None: not counted)
    error: str | None = None


def _report(path: Path, timeout: float, keep: Path | None, reuse: Path | None) -> tuple[dict | None, str | None]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        db = (keep or reuse or Path(tmp)) / f"{path.stem}.db"
        if reuse is not None and db.exists():
            cmd = [sys.executable, "-m", "modeldebug", "report", str(db), "--json", str(out)]
        else:
            if db.exists():
                db.unlink()
            cmd = [sys.executable, "-m", "modeldebug", "run", "-q", "--json", str(out), "--db", str(db), "--", str(path)]
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, "timed out"
        if not out.exists():
            return None, ((proc.stderr.strip().splitlines() or ["no output"])[-1])[:120]
        return json.loads(out.read_text()), None


def judge(path: Path, timeout: float, keep: Path | None, reuse: Path | None) -> Judged:
    expect = expectation(path)
    report, error = _report(path, timeout, keep, reuse)
    j = Judged(path.stem, expect, error=error)
    for f in (report or {}).get("findings", []):
        if expect == "clean":
            right = False if f["severity"] in ("medium", "high") else None
        else:
            right = f["kind"] == expect or f["kind"] in ACCEPTED.get(expect, set())
        j.findings.append({"kind": f["kind"], "severity": f["severity"], "confidence": float(f["confidence"]),
                           "right": right, "symptoms": [s["kind"] for s in f.get("evidence", {}).get("symptoms", [])]})
    return j


def table(judged: list[Judged]) -> list[tuple[str, int, int, float | None]]:
    """(bucket, findings, right, rate) per confidence bucket."""
    rows = []
    for lo, hi in BUCKETS:
        counted = [f for j in judged for f in j.findings if f["right"] is not None and lo <= f["confidence"] < hi]
        right = sum(f["right"] for f in counted)
        rows.append((f"{lo:.0%}-{min(hi, 1.0):.0%}", len(counted), right, right / len(counted) if counted else None))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="scenarios run in parallel (default 2)")
    ap.add_argument("--only", default="*", help="glob over scenario names, e.g. 'healthy_*'")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per scenario")
    ap.add_argument("--keep", type=Path, help="keep each run's record in this folder")
    ap.add_argument("--reuse", type=Path, help="re-analyse the records kept in this folder")
    ap.add_argument("--json", metavar="P", help="also write every judged finding as JSON")
    args = ap.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    if args.reuse and not args.reuse.is_dir():
        print(f"--reuse {args.reuse}: no such folder (make one with --keep)", file=sys.stderr)
        return 2
    paths = sorted(p for p in HERE.glob("*.py") if fnmatch.fnmatch(p.stem, args.only))
    if not paths:
        print(f"no scenario matches {args.only!r} in {HERE}", file=sys.stderr)
        return 2
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        judged = list(pool.map(lambda p: judge(p, args.timeout, args.keep, args.reuse), paths))

    print(f"{'scenario':28} {'expect':24} findings (kind severity confidence right)")
    for j in judged:
        shown = "; ".join(f"{f['kind']} {f['severity']} {f['confidence']:.2f} "
                          f"{'-' if f['right'] is None else 'R' if f['right'] else 'W'}" for f in j.findings)
        print(f"{j.scenario:28} {j.expect:24} {j.error or shown or '(none)'}")
    print("\nconfidence   findings  right  rate")
    for bucket, n, right, rate in table(judged):
        print(f"{bucket:12} {n:8} {right:6}  {'-' if rate is None else f'{rate:.0%}'}")
    faults = [j for j in judged if j.expect != "clean"]
    healthy = [j for j in judged if j.expect == "clean"]
    found = sum(any(j.expect in (f["kind"], *f["symptoms"]) for f in j.findings) for j in faults)
    top = sum(bool(j.findings) and j.findings[0]["kind"] == j.expect for j in faults)
    clean = sum(not any(f["right"] is False for f in j.findings) and j.error is None for j in healthy)
    print(f"summary: {len(faults)} fault scenarios: expected kind found in {found}, top finding in {top}; "
          f"{len(healthy)} healthy twins: {clean} clean, {len(healthy) - clean} with false alarms or errors")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(j) for j in judged], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
