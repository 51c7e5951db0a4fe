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
    chance_margin: float = Field(
        0.03, description="loss_not_decreasing: a classifier's final loss within this fraction of chance "
        "(the entropy of its labels) has learned nothing from its inputs.")
    # -- training dynamics ------------------------------------------------------------------------
    lr_high_update_ratio: float = Field(0.05, description='lr_too_high: update/weight ratio on the sampled steps before trouble began that counts as large (~1e-3 is healthy).')
    lr_jump_factor: float = Field(2.0, description='lr_too_high: a loss above this multiple of its first value counts as a jump.')
    lr_low_update_ratio: float = Field(0.0001, description='lr_too_low: median update/weight ratio below this counts as tiny.')
    lr_low_improvement: float = Field(0.05, description='lr_too_low: the loss moving less than this fraction counts as flat.')
    lr_low_min_grad: float = Field(0.01, description='lr_too_low: relative gradient |g|/|w| at or above this means there is signal to follow.')
    osc_amplitude: float = Field(0.25, description="loss_oscillating: smoothed swing as a fraction of the loss's scale.")
    osc_reversals: int = Field(4, description='loss_oscillating: reversals of the smoothed loss needed (two full cycles).')
    clip_fraction: float = Field(0.5, description='excessive_grad_clipping: fraction of steps that were clipped.')
    clip_factor: float = Field(10.0, description='excessive_grad_clipping: median factor by which clipping shrank the gradient.')
    weight_collapse_shrink: float = Field(0.1, description='weight_collapse: median final/initial weight norm at or below this.')
    saturated_fraction: float = Field(0.5, description='saturated_activations: fraction of outputs within 1% of a bound.')
    init_loss_factor: float = Field(2.0, description='poor_initialization: first loss as a multiple of the loss of a uniform prediction (ln C).')
    init_std_ratio: float = Field(1000.0, description='poor_initialization: growth or shrink of activation std across depth at step 0.')
    init_input_scale: float = Field(10.0, description="poor_initialization: input std above this means a high first loss is the data's fault.")
    overfit_rise: float = Field(0.1, description='overfitting: validation loss this fraction above its best.')
    overfit_train_drop: float = Field(0.05, description='overfitting: training loss must have fallen by this fraction meanwhile.')
    overfit_min_evals: int = Field(4, description='overfitting: validation passes needed to judge.')
    # -- data and loss ---------------------------------------------------------------------------
    input_scale: float = Field(
        10.0, description="input_not_normalized: input RMS at or above this multiple of unit scale (or "
        "at or below 1/this**2 with peak at most 1/this).")
    bgr_gap: float = Field(
        0.5, description="channel_order: (ch2 mean - ch0 mean) / channel std on every sampled step that "
        "reads as BGR images normalised with RGB constants.")
    leakage_fraction: float = Field(
        0.1, description="data_leakage: share of validation samples also seen in training (at least 5).")
    mixing_fraction: float = Field(
        0.0, description="batch_mixing: share of other samples reached by one sample's gradient in eval mode.")
    class_imbalance_ratio: float = Field(
        10.0, description="class_imbalance: count of the majority class over the rarest class.")
    prior_loss_fraction: float = Field(
        0.9, description="class_imbalance: a final loss at or above this multiple of the label entropy means "
        "the model only predicts the class frequencies.")
    probability_rowsum: float = Field(
        1e-3, description="double_softmax: |row sum - 1| at or below this means the loss input already is "
        "a probability distribution.")
    # -- training loop and resources ----------------------------------------------------------------
    carried_grad_fraction: float = Field(
        0.01, description="missing_zero_grad: gradient norm still present at a step's first backward pass, "
        "as a fraction of the previous step's, that counts as not cleared.")
    missing_zero_grad_fraction: float = Field(
        0.2, description="missing_zero_grad: share of optimizer steps that must start with old gradients.")
    train_mode_persistence: float = Field(
        0.5, description="train_mode_misuse: share of steps since the first eval-mode training pass that "
        "must also be in eval mode.")
    memory_growth: float = Field(
        0.1, description="memory_growth: steady growth as a fraction of the run's early memory level, "
        "flagged without a known cause.")
    memory_growth_with_cause: float = Field(
        0.002, description="memory_growth: the same, when kept loss tensors or eval passes with autograd on "
        "are seen.")
    dataloader_share: float = Field(
        0.5, description="dataloader_bottleneck: share of step time spent waiting for the next batch.")
    dataloader_min_wait_ms: float = Field(
        1.0, description="dataloader_bottleneck: median wait per step below which waiting is not judged.")
    slow_step_growth: float = Field(
        2.0, description="slow_step: last-quarter over first-quarter median step time.")
    slow_step_spike: float = Field(5.0, description="slow_step: a step this many times the median is a stall.")
    slow_step_spike_share: float = Field(
        0.3, description="slow_step: share of step time that periodic stalls must cost.")
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
