"""Plan: which measures capture takes for one configuration.

Work follows selection: the measures the selected rules `require` (a rule that declares nothing
requires everything), the `always` ones (the step row, the optimizer and crash events), and what
the level adds for people to read (``detailed``: every activation statistic on every leaf module;
``comprehensive``: activation histograms too). The `Monitoring` switches take whole families out
(``layer_outputs``: module statistics; ``gradients``: gradient norms).
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import measures as M
from ..config import LEVELS, DebuggingConfig

__all__ = ["Plan", "plan_for", "required_by_rules"]


def required_by_rules(config: DebuggingConfig) -> frozenset[str] | None:
    """Ids of the measures the rules `config` selects require; None when one of them needs everything."""
    from ..rules import selected_rules  # rules import no torch and nothing of capture

    needed: set[str] = set()
    for rule in selected_rules(config):
        requires = getattr(rule, "requires", None)
        if requires is None:
            return None
        needed.update(M.resolve(m).id for m in requires)
    return frozenset(needed)


class Plan:
    """The set of measure ids to take, with the questions collectors ask of it."""

    def __init__(self, wanted: Iterable[str], *, every_module: bool = False) -> None:
        self.ids = frozenset(wanted)
        #: at `detailed` and up, module statistics are taken on every leaf module, not only where
        #: the rules read them
        self.every_module = every_module
        self._modules: dict[tuple[str | None, bool], tuple[tuple[str, ...], bool, bool]] = {}

    def __contains__(self, m: M.Measure | str) -> bool:
        return (m.id if isinstance(m, M.Measure) else m) in self.ids

    def any(self, measures: Iterable[M.Measure]) -> bool:
        return any(m.id in self.ids for m in measures)

    def producer(self, producer: str) -> bool:
        """Does any wanted measure come from `producer`?"""
        return any(M.MEASURES[i].producer == producer for i in self.ids)

    def activation_names(self, module_type: str | None, has_params: bool) -> tuple[str, ...]:
        """The activation statistics (stored names, `ACTIVATION_STATS` order) to take on one leaf module."""
        return self.module_plan(module_type, has_params)[0]

    def module_plan(self, module_type: str | None, has_params: bool) -> tuple[tuple[str, ...], bool, bool]:
        """(activation statistics, saturated fraction?, training flag?) of one leaf module type; cached,
        since the forward hook asks on every module call of a sampled step."""
        key = (module_type, has_params)
        got = self._modules.get(key)
        if got is None:
            names = tuple(m.name for m in M.ACTIVATION_STATS if self.module_wants(m, module_type, has_params))
            saturated = self.module_wants(M.SATURATED_FRAC, module_type, has_params) and module_type in M.SATURATING
            got = self._modules[key] = (names, saturated, self.module_wants(M.TRAINING_FLAG, module_type, has_params))
        return got

    def module_wants(self, m: M.Measure, module_type: str | None, has_params: bool) -> bool:
        """Is the module statistic `m` taken on a leaf module of this type?"""
        return m.id in self.ids and (self.every_module or m.applies(module_type, has_params))

    def rows_per_sample(self, modules: Iterable[tuple[str | None, bool]], params: int, models: int) -> int:
        """Statistic rows one sampled step writes for these leaf modules (type, has parameters),
        `params` tracked parameters and `models` model inputs (what the sampler budgets)."""
        n = sum(len(names) + saturated + training for names, saturated, training in
                (self.module_plan(t, p) for t, p in modules))
        per_param = sum(m in self for m in (M.PARAM_GRAD_NORM, M.UPDATE_RATIO, M.PARAM_NORM))
        return n + per_param * params + sum(m in self for m in M.INPUT_STATS) * models


def plan_for(config: DebuggingConfig) -> Plan:
    """What to measure under `config` (its level, rule selection and monitoring switches)."""
    required = required_by_rules(config)
    rank = LEVELS.index(config.analysis_level)
    by_level = {m.id for m in M.MEASURES.values() if m.level is not None and LEVELS.index(m.level) <= rank}
    above_level = {m.id for m in M.MEASURES.values() if m.level is not None and LEVELS.index(m.level) > rank}
    if required is None:  # a rule that declares nothing: everything this level records
        wanted = set(M.MEASURES) - above_level
    else:
        wanted = set(required) | set(M.ALWAYS) | by_level
    mon = config.monitoring
    if not mon.layer_outputs:
        wanted -= {m.id for m in (*M.ACTIVATION_STATS, M.SATURATED_FRAC, M.ACTIVATION_HISTOGRAM)}
    if not mon.gradients:
        wanted -= {M.PARAM_GRAD_NORM.id, M.GROUP_GRAD_NORM.id}
    return Plan(wanted, every_module=rank >= LEVELS.index("detailed"))
