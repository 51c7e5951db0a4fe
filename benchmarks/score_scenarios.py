"""Score modeldebug's diagnosis on the fault scenario suite.

Every script in benchmarks/scenarios/ is a plain PyTorch training script whose first line says
what it should be diagnosed with: `# expect: <kind>` (a bug was planted) or `# expect: clean` (a
healthy twin). Each is run through `modeldebug run --json` exactly as a user would, and scored:
- found: the expected kind is among the findings (top level, or folded into a cause as a symptom);
- top: the expected kind is the FIRST finding (the root cause the user reads first);
- clean: a healthy twin has no finding of medium or high severity.

    python benchmarks/score_scenarios.py [--jobs 2] [--only PATTERN] [--json results.json]

It prints one line per scenario and ends with one summary line. Exit 0 always: it reports.
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

HERE = Path(__file__).resolve().parent / "scenarios"


@dataclass
class Result:
    scenario: str
    expect: str
    exit_code: int
    seconds: float
    top: str | None = None
    kinds: list[str] = field(default_factory=list)
    serious: list[str] = field(default_factory=list)
    found: bool = False
    first: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.first if self.expect != "clean" else not self.serious


def expectation(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    if not first.startswith("# expect:"):
        raise SystemExit(f"{path.name}: the first line must be '# expect: <kind>' or '# expect: clean'")
    return first.split(":", 1)[1].strip()


def run_one(path: Path, timeout: float) -> Result:
    expect = expectation(path)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "modeldebug", "run", "-q", "--json", str(out), "--db", str(Path(tmp) / "run.db"),
               "--", str(path)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Result(path.stem, expect, -1, timeout, error="timed out")
        seconds = time.perf_counter() - t0
        if not out.exists():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return Result(path.stem, expect, proc.returncode, seconds, error=tail[:120])
        report = json.loads(out.read_text())
    findings = report["findings"]
    kinds = [f["kind"] for f in findings]
    symptoms = [s["kind"] for f in findings for s in f.get("evidence", {}).get("symptoms", [])]
    r = Result(path.stem, expect, proc.returncode, seconds, top=kinds[0] if kinds else None, kinds=kinds,
               serious=[f["kind"] for f in findings if f["severity"] in ("medium", "high")])
    r.found = expect in kinds or expect in symptoms
    r.first = bool(kinds) and kinds[0] == expect
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="scenarios run in parallel (default 2)")
    ap.add_argument("--only", default="*", help="glob over scenario names, e.g. 'healthy_*'")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per scenario")
    ap.add_argument("--json", metavar="P", help="also write the results as JSON")
    args = ap.parse_args()

    paths = sorted(p for p in HERE.glob("*.py") if fnmatch.fnmatch(p.stem, args.only))
    if not paths:
        print(f"no scenario matches {args.only!r} in {HERE}", file=sys.stderr)
        return 2
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda p: run_one(p, args.timeout), paths))

    print(f"{'scenario':28} {'expect':24} {'found':6} {'top':5} {'first finding':24} {'secs':>6}")
    for r in results:
        if r.expect == "clean":
            verdict = "clean" if not r.serious else "FALSE ALARM: " + ", ".join(r.serious)
            print(f"{r.scenario:28} {'clean':24} {'':6} {'':5} {verdict:24} {r.seconds:6.1f}")
        else:
            print(f"{r.scenario:28} {r.expect:24} {'yes' if r.found else 'NO':6} {'yes' if r.first else 'no':5} "
                  f"{(r.error or r.top or '-'):24} {r.seconds:6.1f}")
    faults = [r for r in results if r.expect != "clean"]
    healthy = [r for r in results if r.expect == "clean"]
    found = sum(r.found for r in faults)
    first = sum(r.first for r in faults)
    clean = sum(not r.serious for r in healthy)
    pct = (100.0 * first / len(faults)) if faults else 0.0
    print(f"summary: {len(faults)} fault scenarios: expected kind found in {found}, top finding in {first} "
          f"({pct:.0f}%); {len(healthy)} healthy twins: {clean} clean, {len(healthy) - clean} with false alarms")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
