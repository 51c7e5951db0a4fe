"""DebuggingConfig: what to capture, how often, and the thresholds rules judge by.

Levels are ordered by cost, each a plain schedule (see `Schedule`):

- ``basic`` (default): loss, learning rate, timing and one fused per-parameter gradient-norm call
  every step; activation statistics, parameter norms and update ratios on sampled steps (the first
  few steps, then every ``sample_every`` steps).
- ``detailed``: the same, sampled ten times as often, within a time budget: the sampled steps may
  add at most 5% to the average step (a model whose sample costs more is sampled less often, in
  multiples of 5 steps; `capture/sampler.py`). An explicit ``sample_every`` is kept as given.
- ``comprehensive``: everything every step, with activation histograms.

Thresholds are relative to the run's own history wherever the problem allows; each default says
what it is relative to. They are declared once, as options of the catalogue's specs
(`modeldebug explain GRD001` lists a rule's); override any of them:
``DebuggingConfig(thresholds={"grad_growth": 1e4})``. A misspelled name is an error.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

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


class _ThresholdsBase(BaseModel):
    """What the rules judge by: every option the catalogue declares, by name.

    The fields are generated from the catalogue's options (declared once, with their rule); a plugin's
    options are accepted too once its rules are loaded. An unknown name is an error, with a hint.
    """

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _known_extras(self) -> _ThresholdsBase:
        extra = self.model_extra or {}
        if extra:
            from .catalogue import CATALOGUE

            checked = CATALOGUE.check_options(extra)  # raises on an unknown name or a bad value
            for name, value in checked.items():
                setattr(self, name, value)
        return self

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        extra = self.__pydantic_extra__ or {}
        if name in extra:
            return extra[name]
        from .catalogue import CATALOGUE

        return CATALOGUE.option(name).default  # a plugin option not set by the user; unknown names raise


def _threshold_fields() -> dict[str, Any]:
    from .catalogue import CATALOGUE

    return {o.name: (o.type, Field(o.default, description=(f"{CATALOGUE[code].kind}: " if code else "") + o.doc))
            for o, code in CATALOGUE.options()}


Thresholds = create_model("Thresholds", __base__=_ThresholdsBase, **_threshold_fields())  # type: ignore[call-overload]


class DebuggingConfig(BaseModel):
    """Everything that steers capture and diagnosis."""

    model_config = ConfigDict(extra="forbid")

    analysis_level: AnalysisLevel = "basic"
    monitoring: Monitoring = Field(default_factory=Monitoring)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    sample_every: int | None = Field(
        None,
        ge=1,
        description="Record activation statistics every N steps (default by level: 50 / 5 / 1; unset, `detailed` "
        "widens its 5 to 10, 20, 40, ... when its samples would cost more than 5% of the average step).",
    )
    flush_every: int = Field(
        20, ge=1, description="Write the record to SQLite every N steps (and at the end)."
    )
    histogram_bins: int = Field(32, ge=4, le=256)
    bundle_max_mb: float = Field(
        200.0, ge=0, description="Largest repro bundle (MB) saved at the first non-finite value, loss spike or "
        "crash (`modeldebug replay`); over it, the bundle is saved without the model's state; 0 saves none.")
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
