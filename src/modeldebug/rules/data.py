"""Data-and-loss rules: input scale and channels, labels, class balance, loss wiring, batch mixing, leakage."""

from __future__ import annotations

__all__: list[str] = []
