"""Invariants and the file that holds them (`modeldebug learn ... -o good.json`).

An invariant is one thing that held in every healthy run, with a plain-words `description`, the
`evidence` it was learned from, and the numbers its check needs (`params`). Its `code` is the
catalogue code a violation is reported under (INV001...). The file is JSON:

```json
{"format": "modeldebug-invariants", "version": 1,
 "learned_from": [{"record": "...", "script": "...", "argv": [...], "steps": 60}],
 "phases": {"early": [0, 20], "middle": [20, 40], "late": [40, null]},
 "invariants": [{"code": "INV003", "rule": "updates", "description": "...", "evidence": {...},
                 "params": {...}}, ...]}
```
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInputError

__all__ = ["FORMAT", "Invariant", "InvariantSet", "against_option", "load_invariants"]

FORMAT = "modeldebug-invariants"
VERSION = 1


@dataclass
class Invariant:
    """One thing that held in the healthy runs."""

    code: str
    rule: str
    description: str
    evidence: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    subject: str | None = None  # the module, parameter or input it is about
    kind: str | None = None  # that entity's kind (module, param, input)
    stat: str | None = None
    phase: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class InvariantSet:
    """Invariants learned from healthy runs, with where they came from."""

    invariants: list[Invariant]
    learned_from: list[dict[str, Any]]
    bounds: tuple[int, int]  # the steps where the middle and late phases start
    path: str | None = None

    @property
    def last_step(self) -> int | None:
        """The last step any healthy run reached (None when the file does not say): an envelope
        learned from them says nothing about the steps after it."""
        steps = [r.get("steps") for r in self.learned_from if isinstance(r, dict)]
        known = [int(s) for s in steps if isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0]
        return max(known) - 1 if known else None

    def phases(self) -> dict[str, list[int | None]]:
        b1, b2 = self.bounds
        return {"early": [0, b1], "middle": [b1, b2], "late": [b2, None]}

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "learned_from": self.learned_from, "phases": self.phases(),
                "invariants": [i.to_dict() for i in self.invariants]}

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    def by_rule(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for inv in self.invariants:
            out[inv.rule] = out.get(inv.rule, 0) + 1
        return out


def load_invariants(path: str | Path, *, where: str | None = None) -> InvariantSet:
    """Read an invariants file; anything else is a one-line BadInputError naming the file and the fault."""
    p = Path(path)
    where = where or f"--against {str(path)!r}"
    if not p.is_file():
        raise BadInputError(f"{where}: no such file (make one with: modeldebug learn RUN.db ... -o {p.name})")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInputError(f"{where} is not an invariants file (not JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadInputError(f"{where} is not an invariants file (no \"format\": \"{FORMAT}\"); "
                            "make one with `modeldebug learn`")
    if data.get("version") != VERSION:
        raise BadInputError(f"{where} has version {data.get('version')!r}; this modeldebug reads version {VERSION}")
    try:
        phases = data["phases"]
        bounds = (int(phases["middle"][0]), int(phases["late"][0]))
        invariants = []
        for i, item in enumerate(data["invariants"]):
            if not isinstance(item, dict):
                raise TypeError(f"invariant {i} is not an object")
            invariants.append(_checked(Invariant(**item), i))
        learned = list(data.get("learned_from", []))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise BadInputError(f"{where} is damaged: {exc}") from None
    from ..catalogue import CATALOGUE

    unknown = sorted({i.code for i in invariants if i.code not in CATALOGUE})
    if unknown:
        raise BadInputError(f"{where} holds unknown codes {', '.join(unknown)}: was it written by a newer modeldebug?")
    return InvariantSet(invariants, learned, bounds, path=str(path))


#: What each rule's check reads from `params` (and the fields an envelope needs): a file edited by hand, or
#: cut short, fails when it is read, not with a KeyError halfway through the check.
_NEEDS: dict[str, tuple[tuple[str, type | tuple[type, ...]], ...]] = {
    "optimizer": (("types", list),), "settings": (("settings", dict),), "lr": (("band", list),),
    "updates": (("params", list),), "zero_grad": (("max_carried_fraction", (int, float)),),
    "loss_progress": (("step", (int, float)), ("window", (int, float)), ("max_ratio", (int, float))),
    "envelope": (("scale", str), ("band", list)), "grad_share": (("scale", str), ("band", list)),
}


def _checked(inv: Invariant, i: int) -> Invariant:
    """`inv` when it holds what its rule's check reads; TypeError naming the invariant and the field otherwise."""
    if not all(isinstance(getattr(inv, f), str) for f in ("code", "rule", "description")):
        raise TypeError(f"invariant {i}: its code, rule and description must be strings")
    what = f"invariant {i} ({inv.code} {inv.rule})"
    if not isinstance(inv.params, dict) or not isinstance(inv.evidence, dict):
        raise TypeError(f"{what}: \"params\" and \"evidence\" must be objects")
    for key, typ in _NEEDS.get(inv.rule, ()):
        if not isinstance(inv.params.get(key), typ) or isinstance(inv.params.get(key), bool):
            raise TypeError(f"{what}: params.{key} is missing or not a {getattr(typ, '__name__', 'number')}")
    if "band" in inv.params:
        band = inv.params["band"]
        if len(band) != 3 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in band):
            raise TypeError(f"{what}: params.band is not [low, high, margin]")
    if inv.rule in ("envelope", "grad_share"):
        if inv.params["scale"] not in ("log", "fraction"):
            raise TypeError(f"{what}: params.scale {inv.params['scale']!r} is not 'log' or 'fraction'")
        if not all(isinstance(getattr(inv, f), str) for f in ("subject", "kind", "stat", "phase")):
            raise TypeError(f"{what}: an envelope needs its subject, kind, stat and phase")
        if not isinstance(inv.params.get("steps", {}), dict):
            raise TypeError(f"{what}: params.steps is not an object")
    if inv.rule == "lr" and not isinstance(inv.phase, str):
        raise TypeError(f"{what}: a learning-rate band needs its phase")
    return inv


def against_option(value: str) -> InvariantSet:
    """The argparse type of `--against`: the file is read while the command line is parsed, so that a
    bad file fails before the training script runs (one line, exit 2)."""
    try:
        return load_invariants(value, where=repr(value))
    except BadInputError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
