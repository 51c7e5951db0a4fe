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
}
PRIOR = {"lr": 3.0, "optimizer": 2.5, "groups": 2.5, "batch": 2.0, "data": 2.0, "code": 1.5, "args": 1.5,
         "seed": 0.5, "versions": 0.5, "device": 0.5, "level": 0.2}
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
        return {"a": self.a.label, "b": self.b.label, "changes": [c.to_dict() for c in self.changes],
                "first_step": first.step if first else None, "first_module": module.location if module else None,
                "partings": [p.to_dict() for p in self.partings],
                "findings": {"only_a": [finding(f) for f in self.only_a], "only_b": [finding(f) for f in self.only_b]},
                "notes": self.notes}


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


def diff_runs(a: Side, b: Side) -> RunDiff:
    """Compare run A with run B (B is the one being explained: "what changed from A to B")."""
    found = changes(a.facts, b.facts, a.source, b.source)
    notes = []
    parts: list[Parting] = []
    only_a: list[Any] = []
    only_b: list[Any] = []
    if a.record is not None and b.record is not None:
        seed_a, seed_b = (a.facts.get("seed") or {}).get("torch"), (b.facts.get("seed") or {}).get("torch")
        same_seed = seed_a is not None and seed_a == seed_b
        parts = partings(RunView(a.record, a.label), RunView(b.record, b.label), same_seed=same_seed)
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
    return RunDiff(a, b, _rank(found, parts, only_b), parts, only_a, only_b, notes)
