# IMPLEMENTER: before writing anything, read /tmp/helper_common.md (project context, venv path,
# the rules of the work: thresholds via ctx.threshold, tests, scenario format '# expect: <kind>',
# which files you may touch, no commits). Delete this comment when you are done.
"""Training-dynamics rules: learning rate, oscillation, initialisation, collapse, clipping, overfitting, saturation."""

from __future__ import annotations

__all__: list[str] = []
