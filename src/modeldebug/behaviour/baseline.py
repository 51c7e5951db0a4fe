"""Regression: save a baseline (prompts, outputs, scores, versions) and compare a new model with it.

The baseline keeps the probe data and settings it was made with, so `compare_baseline` asks the new
model exactly the same prompts. The comparison lists what flipped (pass to fail and back) and, per
probe group, the pass-rate difference with a 95% interval (Newcombe, treating the two runs as
independent: conservative for the same prompts). A group whose interval lies wholly below zero is a
regression (high); flips that are not significant are reported as medium, so ``--fail-on medium``
makes a CI gate stricter.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import BadInputError
from ..rules.base import Finding, Recommendation
from .attempts import Attempt, BehaviourConfig
from .codes import finding
from .datasets import DirectionalPair, Fact, SafetyPrompt, data_hash
from .safety import Judge
from .stats import newcombe_diff
from .suite import BehaviourResult, probe, rank

__all__ = ["BASELINE_VERSION", "Baseline", "Comparison", "compare_baseline", "compare_results", "load_baseline",
           "save_baseline"]

BASELINE_VERSION = 1
_CONFIG_KEYS = ("temperature", "seed", "max_tokens", "determinism_prompts", "repeats", "robustness_facts", "scoring",
                "mutations")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform(), "modeldebug": __version__}
    for lib in ("torch", "transformers"):
        mod = sys.modules.get(lib)
        if mod is not None:
            out[lib] = str(getattr(mod, "__version__", "?"))
    return out


@dataclass
class Baseline:
    """A saved run: what was asked, what came back, how it scored, and with which versions."""

    model: str
    probes: list[str]
    config: dict[str, Any]
    facts: list[dict[str, Any]]
    pairs: list[dict[str, Any]]
    safety_prompts: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    model_version: str | None = None
    created: str = ""
    data_hash: str = ""
    version: int = BASELINE_VERSION

    def attempt_map(self) -> dict[str, Attempt]:
        return {f"{a['probe']}:{a['id']}": Attempt.from_dict(a) for a in self.attempts}

    def behaviour_config(self) -> BehaviourConfig:
        return BehaviourConfig(**{k: v for k, v in self.config.items() if k in _CONFIG_KEYS})


def _from_result(result: BehaviourResult, model_version: str | None) -> Baseline:
    facts = [asdict(f) for f in result.facts]
    pairs = [asdict(p) for p in result.pairs]
    safety = [asdict(s) for s in result.safety_prompts]
    return Baseline(
        model=result.model, probes=list(result.probes),
        config={k: getattr(result.config, k) for k in _CONFIG_KEYS},
        facts=facts, pairs=pairs, safety_prompts=safety,
        attempts=[a.to_dict() for a in result.attempts], summary=result.summary(), versions=_versions(),
        model_version=model_version, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        data_hash=data_hash(facts, pairs, safety))


def save_baseline(result: BehaviourResult, path: str | Path, *, model_version: str | None = None) -> Baseline:
    """Write `result` as a baseline JSON file and return it."""
    b = _from_result(result, model_version)
    from ..report.model import json_safe

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(json_safe(asdict(b)), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return b


def load_baseline(path: str | Path) -> Baseline:
    """Read a baseline file written by `save_baseline`; a clear `BadInputError` otherwise."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInputError(f"cannot read baseline {str(path)!r}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise BadInputError(f"baseline {str(path)!r} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise BadInputError(f"baseline {str(path)!r}: JSON nested too deeply to read") from None
    if not isinstance(data, dict) or "attempts" not in data or "probes" not in data:
        raise BadInputError(f"{str(path)!r} is not a modeldebug baseline (no 'attempts'/'probes'); "
                            "make one with `modeldebug behaviour baseline`")
    if not isinstance(data.get("version", 0), int):
        raise BadInputError(f"baseline {str(path)!r} has version {data['version']!r}, not a number")
    if data.get("version", 0) > BASELINE_VERSION:
        raise BadInputError(f"baseline {str(path)!r} has version {data['version']}; this modeldebug reads "
                            f"up to {BASELINE_VERSION}: upgrade modeldebug")
    names = Baseline.__dataclass_fields__
    try:
        b = Baseline(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise BadInputError(f"baseline {str(path)!r} is incomplete: {exc}") from exc
    where = f"baseline {str(path)!r}"
    _shape(b, where)
    _probe_data(b, where)  # a damaged record fails here, before any model is loaded
    return b


_AGAIN = "; make the baseline again with `modeldebug behaviour baseline`"
#: The types of the settings a baseline keeps (`_CONFIG_KEYS`), as `save_baseline` writes them.
_CONFIG_TYPES: dict[str, tuple[type, ...]] = {"temperature": (int, float), "seed": (int,), "max_tokens": (int,),
                                              "determinism_prompts": (int,), "repeats": (int,),
                                              "robustness_facts": (int,), "scoring": (str,), "mutations": (list,)}


def _shape(b: Baseline, where: str) -> None:
    """The run settings and attempts of a loaded baseline have the types `save_baseline` writes, or a `BadInputError`."""
    if not isinstance(b.probes, list) or not all(isinstance(p, str) for p in b.probes):
        raise BadInputError(f"{where}: 'probes' must be a list of probe names, got {b.probes!r:.80}{_AGAIN}")
    if not isinstance(b.config, dict):
        raise BadInputError(f"{where}: 'config' must be a mapping of settings, got {type(b.config).__name__}{_AGAIN}")
    for key, types in _CONFIG_TYPES.items():
        value = b.config.get(key)
        if key in b.config and (isinstance(value, bool) or not isinstance(value, types)
                                or (key == "mutations" and not all(isinstance(m, str) for m in value))):
            raise BadInputError(f"{where}: config {key!r} is {value!r:.60}, which is not what a baseline holds "
                                f"(the file was edited or damaged){_AGAIN}")
    if not isinstance(b.attempts, list):
        raise BadInputError(f"{where}: 'attempts' must be a list, got {type(b.attempts).__name__}{_AGAIN}")
    for i, a in enumerate(b.attempts):
        if not isinstance(a, dict) or not isinstance(a.get("probe"), str) or not isinstance(a.get("id"), str):
            raise BadInputError(f"{where}: attempts[{i}] has no 'probe' and 'id' texts (the file was edited or "
                                f"damaged){_AGAIN}")
        if not isinstance(a.get("outputs", []), list) or not isinstance(a.get("prompt", ""), str):
            raise BadInputError(f"{where}: attempts[{i}] has outputs that are not a list or a prompt that is not "
                                f"text (the file was edited or damaged){_AGAIN}")


#: The keys each probe-data record of a baseline needs (as `save_baseline` writes them).
_RECORD_KEYS = {"facts": ("id", "capability", "prompt", "answers"), "pairs": ("source", "target"),
                "safety_prompts": ("id", "prompt")}


def _records(b: Baseline, name: str, where: str) -> list[dict[str, Any]]:
    records = getattr(b, name)
    if not isinstance(records, list):
        raise BadInputError(f"{where}: {name!r} must be a list, got {type(records).__name__}; make the baseline "
                            "again with `modeldebug behaviour baseline`")
    for i, r in enumerate(records):
        lost = [k for k in _RECORD_KEYS[name] if not isinstance(r, dict) or k not in r]
        if lost:
            raise BadInputError(f"{where}: {name}[{i}] has no {', '.join(map(repr, lost))} (the file was edited or "
                                "damaged); make the baseline again with `modeldebug behaviour baseline`")
        bad = ("prompt" in r and not isinstance(r["prompt"], str)) or \
            ("answers" in r and not (isinstance(r["answers"], list) and all(isinstance(x, str) for x in r["answers"])))
        if bad:
            raise BadInputError(f"{where}: {name}[{i}] has a prompt that is not text or answers that are not a list of "
                                "texts; make the baseline again with `modeldebug behaviour baseline`")
    return records


def _probe_data(b: Baseline, where: str) -> tuple[list[Fact], list[DirectionalPair], list[SafetyPrompt]]:
    """The baseline's facts, pairs and safety prompts; a `BadInputError` naming the first damaged record."""
    facts = [Fact(str(f["id"]), str(f["capability"]), f["prompt"], tuple(f["answers"]))
             for f in _records(b, "facts", where)]
    pairs = [DirectionalPair(p["source"], p["target"], p.get("change", "")) for p in _records(b, "pairs", where)]
    safety = [SafetyPrompt(str(s["id"]), s["prompt"], s.get("category"), tuple(s.get("tags") or ()))
              for s in _records(b, "safety_prompts", where)]
    return facts, pairs, safety


@dataclass
class Comparison:
    """A new run against a baseline: per-group deltas with intervals, flips, and the findings."""

    baseline: Baseline
    result: BehaviourResult
    groups: list[dict[str, Any]]
    pass_to_fail: list[dict[str, Any]]
    fail_to_pass: list[str]
    changed_outputs: int
    missing: list[str]
    findings: list[Finding]

    @property
    def regressed(self) -> bool:
        """True when some group's pass rate dropped significantly."""
        return any(f.code == "BEH060" and f.severity == "high" for f in self.findings)

    def run_info(self) -> dict[str, Any]:
        return {"script": f"behaviour compare {self.result.model}", "command": "behaviour compare",
                "model": self.result.model, "baseline_model": self.baseline.model,
                "baseline_created": self.baseline.created, "baseline_versions": self.baseline.versions,
                "versions": _versions(), "groups": self.groups, "flips": {
                    "pass_to_fail": self.pass_to_fail, "fail_to_pass": self.fail_to_pass},
                "changed_outputs": self.changed_outputs, "regressed": self.regressed, "modeldebug": __version__}

    def report(self) -> Any:
        from ..report import Report

        return Report(self.findings, self.run_info())

    def summary_text(self) -> str:
        lines = [f"compare {self.result.model} with baseline {self.baseline.model} ({self.baseline.created})",
                 f"  {'group':<28}{'baseline':>10}{'new':>10}{'delta':>8}  95% CI"]
        for g in self.groups:
            lines.append(f"  {g['group']:<28}{g['base_k']:>4}/{g['base_n']:<5}{g['new_k']:>4}/{g['new_n']:<5}"
                         f"{g['delta']:>+8.0%}  {g['ci_low']:+.0%} to {g['ci_high']:+.0%}"
                         + ("  REGRESSION" if g["regressed"] else ""))
        lines.append(f"  flips: {len(self.pass_to_fail)} pass->fail, {len(self.fail_to_pass)} fail->pass; "
                     f"{self.changed_outputs} outputs changed")
        return "\n".join(lines)


def compare_results(baseline: Baseline, result: BehaviourResult) -> Comparison:
    """Compare a finished run with `baseline`, prompt by prompt and group by group."""
    old = baseline.attempt_map()
    new = {a.key: a for a in result.attempts}
    both = [k for k in old if k in new and old[k].passed is not None and new[k].passed is not None]
    # Perturbed prompts are asked only when the plain one is answered right; their absence is not a mismatch.
    missing = [k for k in old if k not in new and not (old[k].probe == "robustness" and "~" in old[k].id)]
    groups: dict[str, list[str]] = {}
    for k in both:
        groups.setdefault(f"{old[k].probe}/{old[k].group}", []).append(k)
    rows, findings = [], []
    p2f = [{"key": k, "prompt": old[k].prompt, "was": old[k].output[:80], "now": new[k].output[:80]}
           for k in both if old[k].passed and not new[k].passed]
    f2p = [k for k in both if not old[k].passed and new[k].passed]
    for g, keys in sorted(groups.items()):
        k0, k1, n = sum(bool(old[k].passed) for k in keys), sum(bool(new[k].passed) for k in keys), len(keys)
        d, lo, hi = newcombe_diff(k0, n, k1, n)
        row = {"group": g, "base_k": k0, "base_n": n, "new_k": k1, "new_n": n, "delta": round(d, 4),
               "ci_low": round(lo, 4), "ci_high": round(hi, 4), "regressed": hi < 0}
        rows.append(row)
        if hi < 0:
            flipped = [p for p in p2f if p["key"] in keys]
            findings.append(finding(
                "BEH060", severity="high", confidence=0.9, location=g,
                title=f"Regression in {g}: {k0}/{n} -> {k1}/{n} passed ({d:+.0%}, 95% CI {lo:+.0%} to {hi:+.0%})",
                description=f"Compared with the baseline of {baseline.model} ({baseline.created}), {len(flipped)} "
                            f"prompts in {g} went from pass to fail; the drop is larger than chance at 95%.",
                evidence={**row, "flipped": flipped[:8]},
                recommendations=[Recommendation("fix", "Inspect the flipped prompts; compare the training data and "
                                                "checkpoint of the two versions.")]))
    regressed_groups = {r["group"] for r in rows if r["regressed"]}
    quiet = [p for p in p2f if f"{old[p['key']].probe}/{old[p['key']].group}" not in regressed_groups]
    if quiet:
        findings.append(finding(
            "BEH060", severity="medium", confidence=0.5, location="flips",
            title=f"{len(quiet)} prompts flipped from pass to fail ({len(f2p)} the other way), "
                  "not significant on their own",
            description="These prompts passed with the baseline model and fail now; "
                        + ("no group dropped significantly." if not regressed_groups else
                           f"their groups did not drop significantly (apart from {', '.join(sorted(regressed_groups))}, "
                           "reported above, whose flips are not counted here)."),
            evidence={"pass_to_fail": quiet[:10], "fail_to_pass": f2p[:10]},
            recommendations=[Recommendation("best_practice", "Look at the flipped prompts before releasing.")]))
    new_hash = data_hash([asdict(f) for f in result.facts], [asdict(p) for p in result.pairs],
                         [asdict(s) for s in result.safety_prompts])
    if missing or (baseline.data_hash and baseline.data_hash != new_hash):
        findings.append(finding(
            "BEH061", severity="low", confidence=1.0, location="baseline",
            title=f"{len(missing)} baseline prompts were not asked again" if missing
            else "The baseline's probe data differ from this run's",
            description="Only prompts present in both runs are compared.",
            evidence={"missing": missing[:20], "baseline_hash": baseline.data_hash, "hash": new_hash}))
    changed = sum(1 for k in both if old[k].outputs != new[k].outputs)
    return Comparison(baseline, result, rows, p2f, f2p, changed, missing, rank(findings))


def compare_baseline(model: Any, baseline: Baseline | str | Path, *, judge: Judge | None = None,
                     config: BehaviourConfig | None = None) -> Comparison:
    """Run the baseline's probes, on the baseline's prompts and settings, on `model`; compare."""
    b = baseline if isinstance(baseline, Baseline) else load_baseline(baseline)
    facts, pairs, safety = _probe_data(b, f"baseline of {b.model}")
    cfg = config or b.behaviour_config()
    result = probe(model, probes=b.probes, config=cfg, judge=judge, facts=facts or None, pairs=pairs,
                   safety=safety)
    return compare_results(b, result)
