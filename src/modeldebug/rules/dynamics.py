"""Training-dynamics rules: learning rate, oscillation, initialisation, collapse, clipping, overfitting, saturation."""

from __future__ import annotations

__all__: list[str] = []
