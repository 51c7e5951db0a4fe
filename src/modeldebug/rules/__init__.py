"""The rule catalogue: one class per problem, grouped by family, run by `analyze`.

Families: numerics (NUM), loss (LOS), gradients (GRD), activations (ACT), optimizer (OPT),
runtime errors (RUN). `modeldebug rules` lists them; `modeldebug explain CODE` prints one's docs.
"""

from __future__ import annotations

import logging

from ..config import DebuggingConfig
from ..errors import UnknownRuleError
from ..record import Record
from . import (  # noqa: F401  (importing a family registers its rules)
    activations, data, dynamics, gradients, labels, loop, loss, lossfn, measures, numerics, optimizer, probes, resources, runtime,
    schedule,
)
from .base import RULES, SEVERITY_ORDER, Finding, Recommendation, Rule
from ..onnx import catalogue_lint, catalogue_run  # noqa: E402,F401  (ONX codes for `rules` and `explain`)
from .context import Context
from .ranking import rank

__all__ = ["RULES", "Finding", "Recommendation", "Rule", "analyze", "find_rule", "selected_rules"]

log = logging.getLogger("modeldebug")


def _matches(rule: type[Rule], selector: str) -> bool:
    s = selector.strip()
    return (rule.code.startswith(s.upper()) or rule.kind == s or rule.name() == s.lower())


def find_rule(selector: str) -> type[Rule]:
    """The rule named by code (NUM001), kind (nonfinite) or kebab name (non-finite-values)."""
    for rule in RULES.values():
        if rule.code == selector.upper() or rule.kind == selector or rule.name() == selector.lower():
            return rule
    known = ", ".join(sorted(RULES))
    raise UnknownRuleError(f"no rule {selector!r}; known codes: {known}")


def selected_rules(config: DebuggingConfig) -> list[type[Rule]]:
    for s in [*config.select, *config.ignore]:
        if not any(_matches(r, s) for r in RULES.values()):
            raise UnknownRuleError(f"no rule matches {s!r} (use a code like GRD001, a prefix like GRD, or a kind)")
    rules = [r for r in RULES.values() if not config.select or any(_matches(r, s) for s in config.select)]
    return [r for r in rules if not any(_matches(r, s) for s in config.ignore)]


def analyze(record: Record, config: DebuggingConfig | None = None) -> list[Finding]:
    """Run every selected rule on a record; a rule that crashes is reported, never fatal."""
    config = config or DebuggingConfig()
    ctx = Context(record, config)
    findings: list[Finding] = []
    for rule_cls in selected_rules(config):
        try:
            findings.extend(rule_cls().check(ctx))
        except Exception as exc:  # a broken rule must not take the report down
            log.warning("modeldebug: rule %s failed: %s: %s", rule_cls.code, type(exc).__name__, exc)
            findings.append(Finding(
                code=rule_cls.code, kind="internal_error", category="runtime", severity="low", confidence=1.0,
                title=f"Rule {rule_cls.code} could not run: {type(exc).__name__}",
                description=f"{type(exc).__name__}: {exc}. Please report this; the other rules ran.",
            ))
    return rank(findings, ctx.n_steps)
