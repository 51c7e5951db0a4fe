"""The one smoothing window of a series, shared by the rules and the online spike test of the capture (which
must not import the rules at start-up: they cost ~0.1 s before the user's script runs)."""

from __future__ import annotations

__all__ = ["window"]


def window(n: int) -> int:
    """Smoothing window for a series of n points: 5% of it, at least 3, at most 50."""
    return int(min(50, max(3, n // 20)))
