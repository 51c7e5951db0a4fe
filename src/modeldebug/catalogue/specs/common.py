"""Options shared by many rules (not owned by one code)."""

from __future__ import annotations

from ..spec import Option

OPTIONS = (
    Option("min_steps", 20, "Rules about trends stay silent on runs shorter than this many steps.", type=int),
    Option("memory_mb", None, "Live alert: process memory above this many MiB (None: no alert).", type=float | None),
    Option("grad_norm_alert", None, "Live alert: total gradient norm above this value (None: no alert).",
           type=float | None),
    Option("loss_alert", None, "Live alert: loss above this value (None: no alert).", type=float | None),
)
