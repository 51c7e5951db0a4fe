"""DebuggingConfig: what to capture, how often, and the thresholds rules judge by.

Levels are ordered by cost, each a plain schedule (see `Schedule`):

- ``basic`` (default): loss, learning rate, timing and one fused per-parameter gradient-norm call
  every step; activation statistics, parameter norms and update ratios on sampled steps (the first
  few steps, then every ``sample_every`` steps).
- ``detailed``: the same, sampled ten times as often.
- ``comprehensive``: everything every step, with activation histograms.

Thresholds are relative to the run's own history wherever the problem allows; each default says
what it is relative to. Override any of them: ``DebuggingConfig(thresholds={"grad_growth": 1e4})``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AnalysisLevel", "DebuggingConfig", "Monitoring", "Thresholds", "LEVELS"]

AnalysisLevel = Literal["basic", "detailed", "comprehensive"]
LEVELS: tuple[AnalysisLevel, ...] = ("basic", "detailed", "comprehensive")


class Monitoring(BaseModel):
    """Switches for what capture collects. Everything is on by default."""

    model_config = ConfigDict(extra="forbid")

    layer_outputs: bool = True
    gradients: bool = True
    memory: bool = True
    performance: bool = True


class Thresholds(BaseModel):
    """What the rules judge by. Each is relative to something the run itself shows."""

    model_config = ConfigDict(extra="forbid")

    grad_growth: float = Field(
        100.0,
        description="exploding_gradients: total gradient norm above this multiple of its median over "
        "the run's first steps (the run's own baseline).",
    )
    vanishing_ratio: float = Field(
        1e-3,
        description="vanishing_gradients: a layer's relative gradient (grad norm / weight norm) below "
        "this fraction of the median layer's, sustained over the run.",
    )
    dead_fraction: float = Field(
        0.5,
        description="dead_activations: fraction of an activation layer's units that output zero for "
        "every sample in the batch, on at least half of the sampled steps after warm-up.",
    )
    loss_divergence: float = Field(
        2.0,
        description="loss_diverging: final loss above this multiple of the best loss the run reached "
        "and above its own starting loss.",
    )
    min_improvement: float = Field(
        0.01,
        description="loss_not_decreasing: best smoothed loss must improve on the starting loss by at "
        "least this fraction, and by more than the loss's own step-to-step noise.",
    )
    min_steps: int = Field(
        20, description="Rules about trends stay silent on runs shorter than this many steps."
    )
    update_ratio_floor: float = Field(
        1e-10,
        description="params_not_updating: update-to-weight ratio at or below this counts as no update "
        "(float32 rounding of a real update is ~1e-7).",
    )
    memory_mb: float | None = Field(
        None, description="Live alert: process memory above this many MiB (None: no alert)."
    )
    grad_norm_alert: float | None = Field(
        None, description="Live alert: total gradient norm above this value (None: no alert)."
    )
    loss_alert: float | None = Field(
        None, description="Live alert: loss above this value (None: no alert)."
    )


class DebuggingConfig(BaseModel):
    """Everything that steers capture and diagnosis."""

    model_config = ConfigDict(extra="forbid")

    analysis_level: AnalysisLevel = "basic"
    monitoring: Monitoring = Field(default_factory=Monitoring)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    sample_every: int | None = Field(
        None,
        ge=1,
        description="Record activation statistics every N steps (default by level: 50 / 5 / 1).",
    )
    flush_every: int = Field(
        20, ge=1, description="Write the record to SQLite every N steps (and at the end)."
    )
    histogram_bins: int = Field(32, ge=4, le=256)
    select: list[str] = Field(default_factory=list, description="Only these rules (code/prefix/kind).")
    ignore: list[str] = Field(default_factory=list, description="Skip these rules (code/prefix/kind).")

    def effective_sample_every(self) -> int:
        """Steps between activation samples at this level."""
        if self.sample_every is not None:
            return self.sample_every
        return {"basic": 50, "detailed": 5, "comprehensive": 1}[self.analysis_level]

    @property
    def histograms(self) -> bool:
        """Activation histograms are captured at the comprehensive level only."""
        return self.analysis_level == "comprehensive"
