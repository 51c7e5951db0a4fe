"""The rule catalogue: one class per problem, grouped by family, run by `analyze`.

Detectors of the training family, one class per code; their specs (kind, docs, options) are in
`modeldebug.catalogue`. `modeldebug rules` lists them; `modeldebug explain CODE` prints the docs.
"""

from __future__ import annotations

import logging

from ..config import DebuggingConfig
from ..errors import RecordCorruptError, UnknownRuleError
from ..record import Record
from . import (  # noqa: F401  (importing a family registers its rules)
    activations, data, dynamics, gradients, labels, loop, loss, lossargs, lossfn, measures, numerics, optimizer, resources,
    runtime, sampling, schedule, unregistered,
)
from ..catalogue import CATALOGUE, FAMILIES
from .base import RULES, SEVERITY_ORDER, Finding, Recommendation, Rule
from .context import Context
from .diagnosis import Diagnosis, diagnose
from ..catalogue.plugins import load_entry_points
from .ranking import rank

__all__ = ["RULES", "Diagnosis", "Finding", "Recommendation", "Rule", "analyze", "diagnose", "find_rule",
           "selected_rules"]

log = logging.getLogger("modeldebug")


def find_rule(selector: str) -> type[Rule]:
    """The training rule named by code (NUM001), kind (nonfinite) or kebab name (non-finite-values)."""
    spec = CATALOGUE.find(selector, family="training")
    if spec.code not in RULES:
        raise UnknownRuleError(f"{spec.code} is not a training rule: it comes from {FAMILIES[spec.family]}")
    return RULES[spec.code]


def selected_rules(config: DebuggingConfig) -> list[type[Rule]]:
    """The training rules `config.select`/`config.ignore` keep; a selector naming nothing is an error."""
    load_entry_points()
    specs = CATALOGUE.select(config.select, config.ignore, family=("training", "plugin"))
    return [RULES[s.code] for s in specs if s.code in RULES]


def analyze(record: Record, config: DebuggingConfig | None = None) -> list[Finding]:
    """Run every selected rule on a record; a rule that crashes is reported, never fatal.

    A rule that could not run gives an INT001 `internal_error` finding (evidence: `rule`, `error`) and the
    other rules still run; `Report.exit_code` makes `--fail-on` fail on it, since its verdict is
    unknown. Damage a rule finds in the record (`RecordCorruptError`) is not the rule's fault: it
    ends the analysis with the record's own one-line error.
    """
    config = config or DebuggingConfig()
    ctx = Context(record, config)
    findings: list[Finding] = []
    for rule_cls in selected_rules(config):
        try:
            findings.extend(rule_cls().check(ctx))
        except RecordCorruptError:
            raise
        except Exception as exc:  # a broken rule must not take the report down
            error = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line, for logs and CI
            log.warning("modeldebug: rule %s could not run: %s", rule_cls.code, error)
            findings.append(CATALOGUE["INT001"].finding(
                confidence=1.0, title=f"Rule {rule_cls.code} could not run, so its verdict is unknown",
                description=f"{error}. The other rules ran. `--fail-on` fails (exit 2) while a rule's verdict "
                            "is unknown. Please report this.",
                evidence={"rule": rule_cls.code, "error": error},
            ))
    return rank(findings, ctx.n_steps)
