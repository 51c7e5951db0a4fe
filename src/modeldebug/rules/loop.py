"""Training-loop rules: zero_grad, train/eval modes."""

from __future__ import annotations

__all__: list[str] = []
