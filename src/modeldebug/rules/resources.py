"""Resource rules: memory growth, data-loader bottlenecks, slow steps."""

from __future__ import annotations

__all__: list[str] = []
