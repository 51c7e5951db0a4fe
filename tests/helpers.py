"""Small assertions shared by the tests."""

from __future__ import annotations


def kinds(report) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.kind for f in report.findings]


def serious(report) -> list[str]:  # type: ignore[no-untyped-def]
    """Findings a healthy run must not have: medium or high severity."""
    return [f"{f.kind}: {f.title}" for f in report.findings if f.severity in ("medium", "high")]
