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

Plain dataclasses checked by hand, not a pydantic model: `modeldebug run` builds one before the
user's script starts, and importing pydantic and building its models took 0.18 s of CPU there, more
than half of what modeldebug added to start-up (docs/overhead.md, fourteenth pass). The pydantic
methods code used (`model_copy`, `model_dump`, `model_validate`, `model_fields`) are kept, and a bad
value still raises a ValueError (a `ConfigError`, which is also modeldebug's `BadInputError`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .errors import BadInputError

__all__ = ["LEVELS", "AnalysisLevel", "ConfigError", "DebuggingConfig", "Monitoring", "Thresholds"]

AnalysisLevel = Literal["basic", "detailed", "comprehensive"]
LEVELS: tuple[AnalysisLevel, ...] = ("basic", "detailed", "comprehensive")


class ConfigError(BadInputError, ValueError):
    """A setting with a bad value or an unknown name; a ValueError too, as pydantic's errors were."""


class _Model:
    """What the configuration classes share: copy, dump and load, with pydantic's method names."""

    model_fields: ClassVar[dict[str, Any]]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.model_fields = {}  # filled by `_fields` once the dataclass is made

    @classmethod
    def model_validate(cls, data: Any) -> Any:
        """An instance from a dict (a stored config), checked as the constructor checks it."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__}: expected a dict of settings, got {type(data).__name__}")
        return cls(**(data if cls is Thresholds else _known(cls, data)))

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Any:
        """A copy with the settings in `update` changed (and checked)."""
        return self._replace(**(update or {}))

    def _replace(self, **update: Any) -> Any:
        raise NotImplementedError

    def model_dump(self, *, mode: str = "python") -> dict[str, Any]:
        """Every setting as plain values (lists, dicts, numbers, strings): what the run record stores."""
        return {name: _dump(getattr(self, name), mode) for name in self.model_fields}


def _dump(value: Any, mode: str) -> Any:
    if isinstance(value, _Model):
        return value.model_dump(mode=mode)
    if isinstance(value, (list, tuple)):
        return [_dump(v, mode) for v in value]
    return value


def _fields(cls: type) -> type:
    cls.model_fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[attr-defined]
    cls._replace = lambda self, **update: dataclasses.replace(self, **_known(type(self), update))  # type: ignore[attr-defined]
    return cls


def _known(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(values) - set(cls.model_fields))  # type: ignore[attr-defined]
    if unknown:
        raise ConfigError(f"{cls.__name__}: no setting {unknown[0]!r}; the settings are "
                          f"{', '.join(cls.model_fields)}")  # type: ignore[attr-defined]
    return values


def _whole(owner: str, name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
        raise ConfigError(f"{owner}.{name} takes a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{owner}.{name} must be {bound}, got {value!r}")
    return int(value)


@_fields
@dataclass
class Monitoring(_Model):
    """Switches for what capture collects. Everything is on by default."""

    layer_outputs: bool = True
    gradients: bool = True
    memory: bool = True
    performance: bool = True

    def __post_init__(self) -> None:
        for name in self.model_fields:
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"Monitoring.{name} is a switch (True or False), got {getattr(self, name)!r}")


class Thresholds(_Model):
    """What the rules judge by: every option the catalogue declares, by name.

    The options are declared once, with their rule (`modeldebug explain CODE` lists them); a plugin's
    options are accepted too once its rules are loaded. An unknown name or a value of the wrong type
    is an error, with a hint. Unset options read as their default.
    """

    def __init__(self, **values: Any) -> None:
        from .catalogue import CATALOGUE

        try:
            checked = CATALOGUE.check_options(values)  # raises on an unknown name or a bad value
        except BadInputError as exc:
            raise ConfigError(exc.message) from None
        self.__dict__["_set"] = checked
        for option, _ in CATALOGUE.options():  # plain attributes: rules and capture read them often
            self.__dict__[option.name] = checked.get(option.name, option.default)
        self.__dict__.update(checked)  # a plugin's option, set by the user

    def __getattr__(self, name: str) -> Any:  # only for names not set above: a plugin loaded later
        if name.startswith("_"):
            raise AttributeError(name)
        from .catalogue import CATALOGUE

        return CATALOGUE.option(name).default  # unknown names raise, with a hint

    def __setattr__(self, name: str, value: Any) -> None:
        checked = Thresholds(**{**self._set, name: value})
        self.__dict__.update(checked.__dict__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Thresholds) and self.model_dump() == other.model_dump()

    def __repr__(self) -> str:
        return f"Thresholds({', '.join(f'{k}={v!r}' for k, v in sorted(self._set.items()))})"

    @property
    def model_extra(self) -> dict[str, Any]:
        """The options set explicitly (pydantic's name for them was `model_extra` for plugin options)."""
        return dict(self._set)

    def _replace(self, **update: Any) -> Thresholds:
        return Thresholds(**{**self._set, **update})

    def model_dump(self, *, mode: str = "python") -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


class _ThresholdNames(dict):  # type: ignore[type-arg]
    """`Thresholds.model_fields`: the catalogue's options, read when asked (plugins add some)."""

    def _names(self) -> dict[str, Any]:
        from .catalogue import CATALOGUE

        return {o.name: o for o, _ in CATALOGUE.options()}

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __getitem__(self, name: str) -> Any:
        return self._names()[name]

    def keys(self):  # type: ignore[no-untyped-def]
        return self._names().keys()


Thresholds.model_fields = _ThresholdNames()


@_fields
@dataclass
class DebuggingConfig(_Model):
    """Everything that steers capture and diagnosis.

    - `analysis_level`: "basic" (default), "detailed" or "comprehensive" (see the module's docs).
    - `monitoring`: `Monitoring` switches (or a dict of them).
    - `thresholds`: `Thresholds` (or a dict of option values).
    - `sample_every`: record activation statistics every N steps (default by level: 50 / 5 / 1;
      unset, `detailed` widens its 5 to 10, 20, 40, ... when its samples would cost more than 5% of
      the average step).
    - `flush_every`: write the record to SQLite every N steps (and at the end).
    - `histogram_bins`: 4 to 256.
    - `bundle_max_mb`: largest repro bundle (MB) saved at the first non-finite value, loss spike or
      crash (`modeldebug replay`); over it, the bundle is saved without the model's state; 0 saves none.
    - `select`, `ignore`: only these rules, or not these (codes, prefixes or kinds).
    """

    analysis_level: AnalysisLevel = "basic"
    monitoring: Monitoring = field(default_factory=Monitoring)
    thresholds: Thresholds = field(default_factory=Thresholds)
    sample_every: int | None = None
    flush_every: int = 20
    histogram_bins: int = 32
    bundle_max_mb: float = 200.0
    select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.analysis_level not in LEVELS:
            raise ConfigError(f"analysis_level {self.analysis_level!r}: not a level (choose from {', '.join(LEVELS)})")
        if isinstance(self.monitoring, dict):
            self.monitoring = Monitoring.model_validate(self.monitoring)
        if isinstance(self.thresholds, dict):
            self.thresholds = Thresholds(**self.thresholds)
        for name, kind in (("monitoring", Monitoring), ("thresholds", Thresholds)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f"DebuggingConfig.{name} takes a {kind.__name__} or a dict, "
                                  f"got {type(getattr(self, name)).__name__}")
        if self.sample_every is not None:
            self.sample_every = _whole("DebuggingConfig", "sample_every", self.sample_every, 1)
        self.flush_every = _whole("DebuggingConfig", "flush_every", self.flush_every, 1)
        self.histogram_bins = _whole("DebuggingConfig", "histogram_bins", self.histogram_bins, 4, 256)
        mb = self.bundle_max_mb
        if isinstance(mb, bool) or not isinstance(mb, (int, float)) or not math.isfinite(mb) or mb < 0:
            raise ConfigError(f"DebuggingConfig.bundle_max_mb is a size in MB (a number >= 0; 0 saves no bundle), "
                              f"got {mb!r}")
        self.bundle_max_mb = float(mb)
        for name in ("select", "ignore"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"DebuggingConfig.{name} takes a list of rule codes, prefixes or kinds, "
                                  f"got {value!r}")
            setattr(self, name, list(value))

    def effective_sample_every(self) -> int:
        """Steps between activation samples at this level."""
        if self.sample_every is not None:
            return self.sample_every
        return {"basic": 50, "detailed": 5, "comprehensive": 1}[self.analysis_level]

    @property
    def histograms(self) -> bool:
        """Activation histograms are captured at the comprehensive level only."""
        return self.analysis_level == "comprehensive"
