"""Small assertions shared by the tests."""

from __future__ import annotations

from torch import nn

import modeldebug as md


def kinds(report) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.kind for f in report.findings]


def serious(report) -> list[str]:  # type: ignore[no-untyped-def]
    """Findings a healthy run must not have: medium or high severity."""
    return [f"{f.kind}: {f.title}" for f in report.findings if f.severity in ("medium", "high")]


def watched(model: nn.Module, fn, level: str = "basic"):  # type: ignore[no-untyped-def]
    with md.watch(model, db=":memory:", level=level) as s:
        fn()
    return s.report()


def found(report, kind: str):  # type: ignore[no-untyped-def]
    """The finding of `kind`, top-level or folded into its cause as a symptom."""
    for f in report.findings:
        if f.kind == kind:
            return f
        for sym in f.evidence.get("symptoms", []):
            if sym["kind"] == kind:
                return f
    return None
