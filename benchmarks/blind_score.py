"""Score modeldebug on the blind corpus (benchmarks/blind/).

Each case folder holds ``broken.py`` (a bug reproduced from a public report), ``healthy.py`` (the same script
with the bug fixed) and ``case.json`` (``source``, ``summary``, ``expected_kinds``). Every script runs under
``modeldebug run --json OUT --db DB -q -- SCRIPT`` in its own temporary folder, one thread, with a timeout.

For a broken script the first finding is the diagnosis: ``top`` when its kind is one of ``expected_kinds``,
``found`` when an expected kind appears further down, ``missed`` otherwise (``error`` when no report came
back). For a healthy script any medium or high finding is a false alarm.

Usage: ``python benchmarks/blind_score.py [--only NAME[,NAME...]] [--jobs N] [--timeout S] [--markdown]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CORPUS", "Outcome", "load_cases", "main", "run_script", "score"]

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "blind"
DEFAULT_MODELDEBUG = HERE.parent / ".venv" / "bin" / "modeldebug"
ALARM_SEVERITIES = ("medium", "high")


@dataclass
class Outcome:
    """What one modeldebug run of one script produced."""

    case: str
    variant: str
    exit_code: int | None
    seconds: float
    findings: list[dict] = field(default_factory=list)
    error: str = ""

    @property
    def top(self) -> dict | None:
        return self.findings[0] if self.findings else None

    def alarms(self) -> list[dict]:
        return [f for f in self.findings if f.get("severity") in ALARM_SEVERITIES]


def load_cases(only: list[str] | None = None) -> dict[str, dict]:
    """The corpus as ``{name: case.json contents}``, restricted to ``only`` when given."""
    cases = {p.parent.name: json.loads(p.read_text()) for p in sorted(CORPUS.glob("*/case.json"))}
    if only:
        unknown = [name for name in only if name not in cases]
        if unknown:
            raise KeyError(unknown[0])
        cases = {name: cases[name] for name in only}
    return cases


def run_script(modeldebug: Path, case: str, variant: str, timeout: float) -> Outcome:
    """Run one script of one case under modeldebug, in a fresh temporary folder."""
    script = CORPUS / case / f"{variant}.py"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    with tempfile.TemporaryDirectory(prefix=f"blind-{case}-{variant}-") as tmp:
        out, db = Path(tmp) / "report.json", Path(tmp) / "run.db"
        cmd = [str(modeldebug), "run", "--json", str(out), "--db", str(db), "-q", "--", str(script)]
        start = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return Outcome(case, variant, None, time.monotonic() - start, error=f"timeout after {timeout:.0f}s")
        seconds = time.monotonic() - start
        if not out.exists():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return Outcome(case, variant, proc.returncode, seconds, error=f"no report: {tail}")
        report = json.loads(out.read_text())
    return Outcome(case, variant, proc.returncode, seconds, findings=report.get("findings", []))


def verdict(outcome: Outcome, expected: list[str]) -> str:
    """``top``, ``found``, ``missed`` or ``error`` for a broken script."""
    if outcome.error:
        return "error"
    kinds = [f.get("kind") for f in outcome.findings]
    if kinds and kinds[0] in expected:
        return "top"
    if any(k in expected for k in kinds):
        return "found"
    return "missed"


def score(cases: dict[str, dict], modeldebug: Path, jobs: int, timeout: float) -> list[dict]:
    """Run every broken and healthy script and return one row per case."""
    work = [(name, variant) for name in cases for variant in ("broken", "healthy")]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(lambda cv: run_script(modeldebug, cv[0], cv[1], timeout), work))
    by_key = {(o.case, o.variant): o for o in results}
    rows = []
    for name, case in cases.items():
        broken, healthy = by_key[(name, "broken")], by_key[(name, "healthy")]
        top = broken.top or {}
        alarms = healthy.alarms()
        rows.append(
            {
                "case": name,
                "expected": case["expected_kinds"],
                "top_kind": top.get("kind", "-") if not broken.error else broken.error,
                "top_severity": top.get("severity", "-"),
                "kinds": [f.get("kind") for f in broken.findings],
                "match": verdict(broken, case["expected_kinds"]),
                "false_alarm": bool(alarms) or bool(healthy.error),
                "healthy_alarms": [f"{f.get('kind')}:{f.get('severity')}" for f in alarms]
                or ([healthy.error] if healthy.error else []),
                "seconds": (round(broken.seconds, 1), round(healthy.seconds, 1)),
            }
        )
    return rows


def render(rows: list[dict], markdown: bool) -> str:
    """The table and the totals, as plain text or Markdown."""
    head = ["case", "expected", "broken: top finding", "match", "healthy: medium/high findings", "s (b/h)"]
    body = []
    for r in rows:
        top = r["top_kind"] if r["top_severity"] == "-" else f"{r['top_kind']} ({r['top_severity']})"
        body.append(
            [
                r["case"],
                ", ".join(r["expected"]),
                top,
                r["match"],
                ", ".join(r["healthy_alarms"]) or "none",
                "{}/{}".format(*r["seconds"]),
            ]
        )
    n = len(rows)
    totals = (
        f"top-1 hits: {sum(r['match'] == 'top' for r in rows)} / {n}\n"
        f"found (anywhere): {sum(r['match'] in ('top', 'found') for r in rows)} / {n}\n"
        f"false alarms: {sum(r['false_alarm'] for r in rows)} / {n} healthy"
    )
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
        return "\n".join(lines) + "\n\n" + totals.replace("\n", "  \n")
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in body]
    return "\n".join(lines) + "\n\n" + totals


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    global CORPUS
    parser = argparse.ArgumentParser(description="Score modeldebug on the blind corpus.")
    parser.add_argument("--only", help="comma-separated case names (default: every case)")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="the folder of cases (default: blind/; the second batch is blind2/)")
    parser.add_argument("--jobs", type=int, default=2, help="scripts run at once (default 2)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per script (default 120)")
    parser.add_argument("--modeldebug", type=Path, default=DEFAULT_MODELDEBUG, help="the modeldebug executable")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--save", type=Path, help="also write the rows as JSON to this path")
    args = parser.parse_args(argv)
    if args.corpus is not None:
        if not args.corpus.is_dir():
            print(f"blind_score: no corpus folder at {args.corpus}", file=sys.stderr)
            return 2
        CORPUS = args.corpus.resolve()
    if not args.modeldebug.exists():
        print(f"blind_score: no modeldebug at {args.modeldebug}; pass --modeldebug PATH", file=sys.stderr)
        return 2
    try:
        cases = load_cases([s for s in args.only.split(",") if s] if args.only else None)
    except KeyError as exc:
        print(f"blind_score: no case named {exc.args[0]!r} in {CORPUS}", file=sys.stderr)
        return 2
    rows = score(cases, args.modeldebug, args.jobs, args.timeout)
    print(render(rows, args.markdown))
    if args.save:
        args.save.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
