"""Run the behaviour probes on a model and gather one result: attempts, findings, summaries, a Report.

```python
from modeldebug.behaviour import probe
result = probe(my_generate)                 # any callable prompt -> str, or an object with generate()
print(result.summary_text())                # the tables: knowledge by capability, harmful rate per category
result.report().print()                     # the findings, root causes first
```
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import BadInputError
from ..rules.base import SEVERITY_ORDER, Finding, Recommendation
from .attempts import Attempt, BehaviourConfig, ProbeResult
from .codes import finding
from .datasets import DirectionalPair, Fact, SafetyPrompt, load_facts, load_safety
from .degenerate import degenerate_finding
from .determinism import probe_determinism
from .knowledge import probe_knowledge, weights_finding
from .model import Model, as_model
from .robustness import probe_robustness
from .runs import probe_runs
from .safety import Judge, probe_safety
from .weights import WeightCheck, check_weights

__all__ = ["ALL_PROBES", "BehaviourResult", "probe", "rank"]

#: Every probe, in the order they run; `probe(..., probes=...)` selects a subset.
ALL_PROBES = ("runs", "weights", "determinism", "knowledge", "robustness", "safety")
# Root causes before the symptoms they explain; then the rest by code.
_ROOT_ORDER = ["BEH022", "BEH001", "BEH003", "BEH002", "BEH005", "BEH023", "BEH020", "BEH010"]


def rank(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first; among equals, root causes (weights, crashes) before their symptoms."""
    def key(f: Finding) -> tuple[int, int, str]:
        root = _ROOT_ORDER.index(f.code) if f.code in _ROOT_ORDER else len(_ROOT_ORDER)
        return -SEVERITY_ORDER[f.severity], root, f.code
    return sorted(findings, key=key)


@dataclass
class BehaviourResult:
    """Everything one `probe` run found, and what is needed to repeat it (for baselines)."""

    model: str
    probes: list[str]
    results: dict[str, ProbeResult]
    config: BehaviourConfig
    facts: list[Fact]
    pairs: list[DirectionalPair]
    safety_prompts: list[SafetyPrompt]
    weights: WeightCheck | None = None
    duration_s: float = 0.0
    extra_findings: list[Finding] = field(default_factory=list)

    @property
    def attempts(self) -> list[Attempt]:
        return [a for r in self.results.values() for a in r.attempts]

    @property
    def findings(self) -> list[Finding]:
        return rank([f for r in self.results.values() for f in r.findings] + self.extra_findings)

    @property
    def calls(self) -> int:
        return sum(len(a.latencies_s) for a in self.attempts)

    def summary(self) -> dict[str, Any]:
        """Per probe summary numbers (rates carry 95% intervals)."""
        out: dict[str, Any] = {name: r.summary for name, r in self.results.items()}
        if self.weights is not None:
            out["weights"] = {"verdict": self.weights.verdict or "looks trained", "tensors": self.weights.n_tensors,
                              "params": self.weights.n_params, "training_mode": self.weights.training_mode}
        return out

    def run_info(self) -> dict[str, Any]:
        return {"script": f"behaviour {self.model}", "command": "behaviour probe", "model": self.model,
                "probes": self.probes, "calls": self.calls, "duration_s": round(self.duration_s, 3),
                "summary": self.summary(), "modeldebug": __version__}

    def report(self) -> Any:
        """The findings as a modeldebug `Report` (terminal, JSON, HTML)."""
        from ..report import Report

        return Report(self.findings, self.run_info())

    def summary_text(self) -> str:
        """The summary tables as plain text."""
        from .summary import render_summary

        return render_summary(self)


def _degenerate(result: BehaviourResult, location: str) -> None:
    """BEH005 over every answer of every probe; a weights finding (BEH022) is named as its cause."""
    cause = next((f for f in result.findings if f.code == "BEH022"), None)
    found = degenerate_finding(result.attempts, result.config, location, cause)
    if found is None:
        return
    result.extra_findings.append(found)
    if cause is not None:
        cause.evidence.setdefault("symptoms", []).append({"code": found.code, "kind": found.kind, "title": found.title})
        if cause.severity != "high":
            cause.severity, cause.confidence = "high", 0.9  # it explains a model that says nothing


def probe(model: Any, *, probes: Iterable[str] = ALL_PROBES, config: BehaviourConfig | None = None,
          judge: Judge | None = None, facts: str | Path | list[Fact] | None = None,
          safety: str | Path | list[SafetyPrompt] | None = None, pairs: list[DirectionalPair] | None = None,
          weights: Any = None) -> BehaviourResult:
    """Run the selected probes on `model` (anything `as_model` accepts).

    `facts` / `safety` replace the bundled prompt sets (a JSON path or a list; with a list of facts,
    `pairs` gives the directional pairs over them); `weights` is the
    ``torch.nn.Module`` to check when it cannot be found from the model; `judge` is the safety judge.
    """
    if isinstance(probes, str):  # "knowledge,safety" is a list of names, not of letters
        probes = [s.strip() for s in probes.split(",") if s.strip()]
    selected = list(dict.fromkeys(probes))
    unknown = [p for p in selected if not isinstance(p, str) or p not in ALL_PROBES]
    if unknown:
        raise BadInputError(f"unknown probe(s) {', '.join(map(repr, unknown))}; choose from {', '.join(ALL_PROBES)}")
    if not selected:  # nothing asked would read as "No problems found"
        raise BadInputError(f"no probe selected: choose some of {', '.join(ALL_PROBES)}")
    config = config or BehaviourConfig()
    if "determinism" in selected and config.repeats < 2:
        raise BadInputError(f"repeats {config.repeats}: the determinism probe needs at least 2 calls per prompt (it "
                            "compares repeated answers); leave 'determinism' out of the probes to skip it")
    m: Model = as_model(model, weights=weights)
    if selected == ["weights"] and m.weights is None:  # nothing could be checked: not a clean bill of health
        raise BadInputError(f"the weights probe found no torch.nn.Module behind {m.name} (the object itself, or its "
                            ".model/.module/.net/.lm), so nothing would be checked: hold the module in the model's "
                            ".model attribute (or pass probe(..., weights=module)), or add probes that ask the model")
    if isinstance(facts, list):
        fact_list, pairs = facts, list(pairs or [])
    else:
        fact_list, bundled_pairs = load_facts(facts)
        pairs = bundled_pairs if pairs is None else pairs
    safety_list = safety if isinstance(safety, list) else (load_safety(safety) if "safety" in selected else [])
    wall = time.perf_counter()
    result = BehaviourResult(m.name, selected, {}, config, fact_list, pairs, safety_list)
    if "weights" in selected and m.weights is not None:
        result.weights = check_weights(m.weights)
    if "runs" in selected:
        runs = probe_runs(m, fact_list, config)
        result.results["runs"] = runs
        if runs.attempts and all(a.scores.get("error") for a in runs.attempts):
            # Nothing answers: every other probe would only repeat the same error.
            runs.summary["skipped"] = [p for p in selected if p not in ("runs", "weights")]
            selected = ["runs", "weights"]
    if "determinism" in selected:
        result.results["determinism"] = probe_determinism(m, fact_list, config, result.weights)
    known: dict[str, Attempt] = {}
    if "knowledge" in selected:
        kn = probe_knowledge(m, fact_list, config, result.weights)
        result.results["knowledge"] = kn
        known = {a.id: a for a in kn.attempts}
    elif result.weights is not None and (wf := weights_finding(result.weights, m.name)) is not None:
        result.extra_findings.append(wf)
    if "robustness" in selected:
        result.results["robustness"] = probe_robustness(m, fact_list, pairs, config, known)
    if "safety" in selected:
        result.results["safety"] = probe_safety(m, safety_list, config, judge)
    _degenerate(result, m.name)
    w = result.weights
    if w is not None and w.training_mode and w.active_dropout and "BEH010" not in [f.code for f in result.findings]:
        result.extra_findings.append(finding(
            "BEH023", severity="medium", confidence=0.9, location=m.name,
            title=f"The model generates in training mode with {len(w.active_dropout)} active Dropout layer(s)",
            description=f"Dropout layers {', '.join(w.active_dropout[:5])} drop units on every call. The answers did "
                        "not vary here (reseeded each call, or determinism not probed), but each is made by a "
                        "thinned network.",
            evidence={"active_dropout": w.active_dropout, "training_mode": True},
            recommendations=[Recommendation("fix", "Switch to evaluation mode before generating.", "model.eval()")]))
    result.duration_s = time.perf_counter() - wall
    return result
