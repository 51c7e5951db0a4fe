"""diff: two runs side by side. What changed, where they part, which findings differ, causes ranked.

A change is ranked by what it explains. Each category of change explains some families of
effects (`EXPLAINS`: a learning rate explains the loss, the updates, the gradients and the
findings a wrong learning rate makes); a change scores its prior (`PRIOR`: hyperparameters
before code, code before versions) plus one point for each effect it explains (two for the first
parting, and two more when the effect is in a module the change names or shares a word with it:
`--no-zero-grad` and the zero_grad calls that stopped). So a changed learning rate that explains
a diverging loss comes first, and an argument that only differs is listed after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..jsonsafe import json_safe
from .changes import Change, changes, words_in
from .parting import Parting, partings
from .view import RunView

__all__ = ["EXPLAINS", "PRIOR", "RunDiff", "Side", "diff_runs"]

#: What each category of change can explain: parting families and finding kinds.
_TRAINING = {"loss", "gradient", "update", "activation", "weights"}
_LR_KINDS = {"lr_too_high", "lr_too_low", "loss_diverging", "loss_oscillating", "loss_not_decreasing",
             "exploding_gradients", "vanishing_gradients", "nonfinite", "dead_activations", "weight_collapse"}
EXPLAINS: dict[str, tuple[set[str], set[str]]] = {
    "lr": ({"lr", *_TRAINING}, _LR_KINDS),
    "optimizer": (_TRAINING, _LR_KINDS),
    "groups": ({"update", "weights", "loss"}, {"params_not_updating", "loss_not_decreasing"}),
    "batch": ({"input", "loss", "gradient"}, {"loss_oscillating", "batch_mixing"}),
    "data": ({"input", "loss", "activation", "gradient"}, {"input_not_normalized", "channel_order", "label_issue",
                                                            "class_imbalance", "data_leakage", "loss_not_decreasing"}),
    "seed": ({"activation", "weights", "gradient", "input"}, set()),
    "code": ({"lr", "loop", "input", *_TRAINING}, _LR_KINDS | {"missing_zero_grad", "params_not_updating",
                                                               "train_mode_misuse", "poor_initialization"}),
    "args": ({"lr", "loop", "input", *_TRAINING}, _LR_KINDS | {"missing_zero_grad", "params_not_updating",
                                                               "train_mode_misuse", "poor_initialization"}),
    "versions": ({"loss", "gradient"}, {"nonfinite"}),
    "device": ({"loss", "gradient"}, {"nonfinite", "slow_step"}),
    "level": (set(), set()),
    "model": ({"input", *_TRAINING}, _LR_KINDS | {"poor_initialization", "saturated_activations",
                                                  "params_not_updating"}),
}
PRIOR = {"lr": 3.0, "optimizer": 2.5, "groups": 2.5, "model": 2.5, "batch": 2.0, "data": 2.0, "code": 1.5,
         "args": 1.5, "seed": 0.5, "versions": 0.5, "device": 0.5, "level": 0.2}
_WEAK = {"code", "args", "versions", "device"}  # explain anything only a little, unless a word links them


@dataclass
class Side:
    """One run of the two: a label, its facts, its record (when the file is there) and script text."""

    label: str
    facts: dict[str, Any]
    record: Any = None
    source: str | None = None
    entry: Any = None  # its journal entry, when the journal knows it


@dataclass
class RunDiff:
    """The comparison of run A and run B."""

    a: Side
    b: Side
    changes: list[Change]
    partings: list[Parting]
    only_a: list[Any] = field(default_factory=list)
    only_b: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    compared_steps: int | None = None  # the steps both records hold (None: a record is missing)

    @property
    def first_step(self) -> Parting | None:
        return self.partings[0] if self.partings else None

    @property
    def first_module(self) -> Parting | None:
        return next((p for p in self.partings if p.location is not None), None)

    def to_dict(self) -> dict[str, Any]:
        def finding(f: Any) -> dict[str, Any]:
            return {"code": f.code, "kind": f.kind, "severity": f.severity, "title": f.title, "step": f.step,
                    "location": f.location}

        first, module = self.first_step, self.first_module
        # strict JSON: a value that went NaN or Inf is written as the string "NaN"/"Infinity", not a bare token
        return json_safe({"a": self.a.label, "b": self.b.label, "changes": [c.to_dict() for c in self.changes],
                          "first_step": first.step if first else None,
                          "first_module": module.location if module else None,
                          "compared_steps": self.compared_steps, "partings": [p.to_dict() for p in self.partings],
                          "findings": {"only_a": [finding(f) for f in self.only_a],
                                       "only_b": [finding(f) for f in self.only_b]},
                          "notes": self.notes})


def _findings(record: Any) -> list[Any]:
    from ..report import Report

    return list(Report.from_record(record).findings)


def _rank(found: list[Change], parts: list[Parting], only_b: list[Any]) -> list[Change]:
    """Score each change by what it explains (see the module's docstring); best first."""
    for ch in found:
        families, kinds = EXPLAINS.get(ch.category, (set(), set()))
        weak = ch.category in _WEAK
        score, explained = PRIOR.get(ch.category, 0.0), []
        for i, p in enumerate(parts[:12]):
            linked = bool(p.location and p.location in ch.modules) or bool(ch.words & _series_words(p))
            if p.family in families or linked:
                gain = (2.0 if i == 0 else 1.0) * (0.5 if weak and not linked else 1.0) + (2.0 if linked else 0.0)
                score += gain
                explained.append(p.text)
        for f in only_b:
            if f.kind in kinds:
                score += 0.5 if weak else 1.0
                explained.append(f"{f.code} {f.title}")
        ch.score, ch.explains = score, explained[:4]
    return sorted(found, key=lambda c: -c.score)


def _series_words(p: Parting) -> set[str]:
    return words_in(p.series.split(" ", 2)[-1] if p.series.count(" ") >= 2 else p.series) | {p.family}


def _same_run(a: Side, b: Side) -> bool:
    if a.entry is not None and b.entry is not None:
        return bool(a.entry.uid == b.entry.uid)
    paths = [getattr(s.record, "path", None) for s in (a, b)]
    return None not in paths and Path(str(paths[0])).resolve() == Path(str(paths[1])).resolve()


def _structure(view: RunView) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    """(every module's type, the leaf modules' types, every parameter's shape), by name."""
    modules, leaves = {}, {}
    for e in view.record.entities("module"):
        modules[e.name] = str(e.type)
        if e.info.get("leaf", True):
            leaves[e.name] = str(e.type)
    return modules, leaves, {e.name: e.info.get("shape") for e in view.record.entities("param")}


def _listed(items: list[str], most: int = 4) -> str:
    return ", ".join(items[:most]) + (f" and {len(items) - most} more" if len(items) > most else "")


def model_changes(va: RunView, vb: RunView) -> list[Change]:
    """The model's structure, from the records: a module of another type under the same name, a module
    added or removed, a parameter of another shape (a layer inserted renames every module after it)."""
    if not va.n_steps or not vb.n_steps:  # what a run never reached is not a change (as its optimizer, its data)
        return []
    ma, la, pa = _structure(va)
    mb, lb, pb = _structure(vb)
    if not ma or not mb:  # a run that never called its model: nothing known of its structure
        return []
    retyped = [n for n in ma if n in mb and ma[n] != mb[n]]
    removed = [n for n in la if n not in mb]
    added = [n for n in lb if n not in ma]
    reshaped = [n for n in pa if n in pb and pa[n] != pb[n]]
    moved = set(retyped) | set(removed) | set(added)
    params_gone = [n for n in pa if n not in pb and va.module_of("param", n) not in moved]
    params_new = [n for n in pb if n not in pa and vb.module_of("param", n) not in moved]
    parts = [
        ("module", [f"'{n}' {ma[n]} -> {mb[n]}" for n in retyped]),
        ("added", [f"'{n}' ({lb[n]})" for n in added]),
        ("removed", [f"'{n}' ({la[n]})" for n in removed]),
        ("parameter shapes", [f"{n} {pa[n]} -> {pb[n]}" for n in reshaped]),
        ("parameters added", params_new),
        ("parameters removed", params_gone),
    ]
    parts = [(what, items) for what, items in parts if items]
    if not parts:
        return []
    modules = sorted(moved | {m for n in [*reshaped, *params_new, *params_gone]
                              if (m := va.module_of("param", n) or vb.module_of("param", n))})
    return [Change("model", "model structure", [ma[n] for n in retyped], [mb[n] for n in retyped],
                   "model: " + "; ".join(f"{what} {_listed(items)}" for what, items in parts),
                   detail=[f"{what}: {item}" for what, items in parts for item in items][:20]
                   if any(len(items) > 4 for _, items in parts) else [], modules=modules,
                   words={"model", "layer", "module", "architecture"}
                   | words_in(" ".join(mb[n] for n in retyped) + " " + " ".join(lb[n] for n in added)))]


def _without(facts: dict[str, Any], params: set[str]) -> dict[str, Any]:
    """The facts with `params` (parameters only one run's model has) left out of the optimizers' groups:
    a parameter the other model lacks is a change of the model, not of which optimizer holds it."""
    hyper = facts.get("hyperparameters") or {}
    optimizers = [{**o, "groups": [{**g, "params": [p for p in g.get("params", []) if p not in params]}
                                   if isinstance(g, dict) else g for g in o.get("groups", [])]}
                  for o in hyper.get("optimizers", []) if isinstance(o, dict)]
    return {**facts, "hyperparameters": {**hyper, "optimizers": optimizers}}


def diff_runs(a: Side, b: Side) -> RunDiff:
    """Compare run A with run B (B is the one being explained: "what changed from A to B")."""
    facts_a, facts_b = a.facts, b.facts
    structure: list[Change] = []
    if a.record is not None and b.record is not None:
        va, vb = RunView(a.record, a.label), RunView(b.record, b.label)
        structure = model_changes(va, vb)
        pa, pb = set(va.names("param")), set(vb.names("param"))
        if pa and pb and pa != pb:
            facts_a, facts_b = _without(facts_a, pa ^ pb), _without(facts_b, pa ^ pb)
    found = [*structure, *changes(facts_a, facts_b, a.source, b.source)]
    notes = []
    parts: list[Parting] = []
    only_a: list[Any] = []
    only_b: list[Any] = []
    compared = None
    if a.record is not None and b.record is not None:
        seed_a, seed_b = (a.facts.get("seed") or {}).get("torch"), (b.facts.get("seed") or {}).get("torch")
        same_seed = seed_a is not None and seed_a == seed_b
        parts = partings(va, vb, same_seed=same_seed)
        compared = min(va.n_steps, vb.n_steps)
        fa, fb = _findings(a.record), _findings(b.record)
        codes_a, codes_b = {f.code for f in fa}, {f.code for f in fb}
        only_a = [f for f in fa if f.code not in codes_b]
        only_b = [f for f in fb if f.code not in codes_a]
        if not same_seed:
            notes.append("the seeds differ or are unknown: statistics part only beyond a factor of 3 "
                         "(0.25 for fractions)")
    else:
        missing = [s.label for s in (a, b) if s.record is None]
        notes.append(f"no record for {', '.join(missing)}: only the runs' facts are compared")
    if _same_run(a, b):
        notes.insert(0, f"A and B are the same run ({b.label}): nothing can differ; name another run "
                        "(`modeldebug history` lists them)")
    return RunDiff(a, b, _rank(found, parts, only_b), parts, only_a, only_b, notes, compared)
