"""Severity sweeps: each training fault dialled from mild through typical to extreme, with a healthy twin.

For every rule that claims a fault a user can have a little or a lot of (a learning rate 3x or 100x
too high, a loss that skips `zero_grad` now and then or always, inputs 10x or 1000x off unit
scale...), a tiny seeded PyTorch training is run under `modeldebug.watch` at four settings (the
healthy twin, mild, typical, extreme) and diagnosed. For each it records whether the rule's code
fired (as a root cause, or folded into another cause as its symptom), at what severity, and which
finding came first. It prints one table and can write the results as JSON and the detection ranges
as `src/modeldebug/catalogue/ranges.py` (what `modeldebug explain CODE` and docs/rules.md show).

    python benchmarks/severity_sweep.py [--only GLOB] [--json results.json] [--ranges PATH]

Timing rules (PRF) are left out: a shared machine's load changes them from run to run.
The settings were chosen from what people write (the typical one is the bug as it usually appears),
not to make any rule pass; a typical case that is missed is reported as missed. Exit 0 always.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import modeldebug as md
from modeldebug.testing import Data, classification, healthy_mlp, healthy_regression, train

GRADES = ("healthy", "mild", "typical", "extreme")


@dataclass(frozen=True)
class Setting:
    grade: str  # one of GRADES
    label: str  # what the dial is set to, as a user reads it ("lr x10")
    value: float


@dataclass(frozen=True)
class Sweep:
    code: str
    kind: str
    knob: str  # what is dialled, in words
    settings: tuple[Setting, ...]  # healthy, mild, typical, extreme
    run: Callable[[float], Any]  # trains a fresh seeded model at a setting's value under watch; returns the report

    def setting(self, grade: str) -> Setting:
        return next(s for s in self.settings if s.grade == grade)


@dataclass
class Case:
    code: str
    setup: str  # the sweep's knob: a rule may be swept on several setups
    kind: str
    grade: str
    label: str
    fired: bool
    severity: str | None = None
    where: str | None = None  # "first", "cause #k", "symptom of KIND"
    first: str | None = None  # the first finding's kind
    serious: list[str] = field(default_factory=list)  # medium/high findings, as "kind severity"
    seconds: float = 0.0
    error: str | None = None


# -- one watched training -------------------------------------------------------------------------
#: Timing rules (PRF) judge wall-clock time, which other processes on a shared machine change from run
#: to run; they are out of scope here, so the ranges are the same whenever the sweep is re-run.
_CONFIG = md.DebuggingConfig(ignore=["PRF"])


def _watched(model: nn.Module, fn: Callable[[], object]) -> Any:
    with md.watch(model, db=":memory:") as s:
        fn()
    return s.report(_CONFIG)


def _sgd(model: nn.Module, lr: float, **kw: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr, **kw)


# -- the faults ---------------------------------------------------------------------------------------
def lr_too_high(mult: float) -> Any:
    """Adam on a 3-class MLP; 1e-2 trains well, the bug multiplies it."""
    model, data = healthy_mlp(seed=1)
    return _watched(model, lambda: train(model, data, steps=80, lr=1e-2 * mult))


def lr_too_low(div: float) -> Any:
    """SGD with momentum on a 3-class MLP; 1e-2 trains well, the bug divides it."""
    model, data = healthy_mlp(seed=1)
    return _watched(model, lambda: train(model, data, steps=80, optimizer=_sgd(model, 1e-2 / div, momentum=0.9)))


def lr_too_low_regression(div: float) -> Any:
    """The same on a tanh regression MLP."""
    model, data = healthy_regression(seed=1)
    return _watched(model, lambda: train(model, data, steps=80, optimizer=_sgd(model, 1e-2 / div, momentum=0.9)))


def missing_zero_grad(every: float) -> Any:
    """`zero_grad` reached only every k-th step (k=1 healthy; 0: never), SGD with momentum."""
    model, data = healthy_mlp(seed=1)
    opt = _sgd(model, 0.02, momentum=0.9)
    k = int(every)

    def loop() -> None:
        for step in range(60):
            x, y = data.batch(step, 64)
            if k and step % k == 0:
                opt.zero_grad()
            data.loss_fn(model(x), y).backward()
            opt.step()
    return _watched(model, loop)


def input_not_normalized(scale: float) -> Any:
    """Every feature multiplied by `scale` (unscaled measurements), Adam on an MLP."""
    model, data = healthy_mlp(seed=1)
    scaled = Data(data.x * scale, data.y, data.loss_fn)
    return _watched(model, lambda: train(model, scaled, steps=60, lr=1e-3))


def dead_activations(shift: float) -> Any:
    """The second ReLU layer's bias shifted down by `shift` pre-activation standard deviations."""
    model, data = healthy_mlp(seed=1)
    with torch.no_grad():
        pre = model[2](model[1](model[0](data.x)))
        model[2].bias -= shift * pre.std() if shift else 0.0
    return _watched(model, lambda: train(model, data, steps=60, lr=1e-3))


def dead_units(fraction: float) -> Any:
    """A fraction of the second ReLU layer's units killed by a -10 bias, the rest left healthy."""
    model, data = healthy_mlp(seed=1)
    with torch.no_grad():
        model[2].bias[: round(fraction * model[2].out_features)] = -10.0
    return _watched(model, lambda: train(model, data, steps=60, lr=1e-3))


def vanishing_gradients(depth: float) -> Any:
    """A stack of `depth` Linear+Sigmoid layers, no normalisation (negative: as deep, ReLU and He init)."""
    torch.manual_seed(1)
    act: type[nn.Module] = nn.ReLU if depth < 0 else nn.Sigmoid
    layers: list[nn.Module] = [nn.Linear(20, 64), act()]
    for _ in range(int(abs(depth)) - 1):
        layers += [nn.Linear(64, 64), act()]
    model = nn.Sequential(*layers, nn.Linear(64, 3))
    if depth < 0:
        for m in model:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
    data = classification(seed=1)
    return _watched(model, lambda: train(model, data, steps=60, optimizer=_sgd(model, 0.1, momentum=0.9)))


def exploding_gradients(lr: float) -> Any:
    """Plain SGD on a tanh regression MLP at learning rate `lr` (0.05 trains well): steps overshoot, grads feed back."""
    model, data = healthy_regression(seed=1)
    return _watched(model, lambda: train(model, data, steps=60, optimizer=_sgd(model, lr)))


class _RNN(nn.Module):
    def __init__(self, std: float) -> None:
        super().__init__()
        self.rnn = nn.RNN(4, 32, nonlinearity="relu", batch_first=True)
        self.out = nn.Linear(32, 1)
        if std:
            nn.init.normal_(self.rnn.weight_hh_l0, std=std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)
        return self.out(h[:, -1])


def exploding_rnn(std: float) -> Any:
    """A ReLU RNN over 30 steps (SGD 0.05) whose recurrent weights are drawn with `std` (0: PyTorch's default)."""
    torch.manual_seed(1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(512, 30, 4, generator=g)
    data = Data(x, x[:, -5:, 0].mean(1, keepdim=True), nn.MSELoss())
    model = _RNN(std)
    return _watched(model, lambda: train(model, data, steps=100, batch=32, optimizer=_sgd(model, 0.05)))


def class_imbalance(ratio: float, shift: float = 0.5, lr: float = 1e-3, steps: int = 80) -> Any:
    """Two classes at `ratio`:1 with a weak signal, an unweighted cross-entropy (1: balanced)."""
    torch.manual_seed(1)
    g = torch.Generator().manual_seed(1)
    n = 8192
    x = torch.randn(n, 16, generator=g)
    y = (torch.rand(n, generator=g) < 1.0 / (1.0 + ratio)).long()
    x[y == 1, :2] += shift
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
    return _watched(model, lambda: train(model, Data(x, y, nn.CrossEntropyLoss()), steps=steps, batch=128, lr=lr))


def separable_imbalance(ratio: float) -> Any:
    """A strong signal and Adam 1e-2 for 150 steps: the model learns the minority class up to 100:1.

    Measured without watching: minority recall 0.997 at 10:1, 0.93 at 100:1, 0 at 1000:1 (8 samples).
    """
    return class_imbalance(ratio, shift=4.0, lr=1e-2, steps=150)


def double_softmax(classes: float) -> Any:
    """A Softmax output layer before CrossEntropyLoss over `classes` classes (negative: no Softmax)."""
    torch.manual_seed(1)
    g = torch.Generator().manual_seed(1)
    c = int(abs(classes))
    centers = torch.randn(c, 20, generator=g) * 2
    y = torch.randint(0, c, (2048,), generator=g)
    x = centers[y] + torch.randn(2048, 20, generator=g)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, c))
    if classes > 0:
        model.append(nn.Softmax(dim=1))
    return _watched(model, lambda: train(model, Data(x, y, nn.CrossEntropyLoss()), steps=80,
                                         optimizer=_sgd(model, 0.05)))


def _noisy(n: int, seed: int, noise: float) -> Data:
    d = classification(n=n, seed=seed)
    g = torch.Generator().manual_seed(seed)
    flip = torch.rand(n, generator=g) < noise
    d.y[flip] = torch.randint(0, 3, (int(flip.sum()),), generator=g)
    return d


def overfitting(n: float) -> Any:
    """A wide MLP on `n` training samples with 30% label noise, validated every 10 steps (240 steps of Adam 1e-3)."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 3))
    tr, va = _noisy(int(n), 0, 0.3), _noisy(400, 1, 0.3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)  # 1e-2 kills most of the second layer's units

    def loop() -> None:
        for step in range(240):
            model.train()
            i = (step * 16) % len(tr.x)
            opt.zero_grad()
            tr.loss_fn(model(tr.x[i:i + 16]), tr.y[i:i + 16]).backward()
            opt.step()
            if step % 10 == 9:
                model.eval()
                with torch.no_grad():
                    for j in range(0, 400, 100):
                        va.loss_fn(model(va.x[j:j + 100]), va.y[j:j + 100])
    return _watched(model, loop)


def weight_collapse(wd: float) -> Any:
    """SGD (lr 0.1) with weight decay `wd` on a 3-class MLP (5e-4: healthy)."""
    model, data = healthy_mlp(seed=1)
    return _watched(model, lambda: train(model, data, steps=80, optimizer=_sgd(model, 0.1, weight_decay=wd)))


def decoupled_weight_decay(wd: float) -> Any:
    """AdamW (lr 1e-2) with decoupled weight decay `wd` on a 3-class MLP (1e-2, PyTorch's default: healthy)."""
    model, data = healthy_mlp(seed=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=wd)
    return _watched(model, lambda: train(model, data, steps=80, optimizer=opt))


def excessive_grad_clipping(max_norm: float) -> Any:
    """SGD (lr 0.05) with `clip_grad_norm_(max_norm)` on a 3-class MLP."""
    model, data = healthy_mlp(seed=1)
    opt = _sgd(model, 0.05)

    def loop() -> None:
        for step in range(60):
            x, y = data.batch(step, 64)
            opt.zero_grad()
            data.loss_fn(model(x), y).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=max_norm)
            opt.step()
    return _watched(model, loop)


def poor_initialization(mult: float) -> Any:
    """A 5-layer ReLU MLP whose weights are drawn with `mult` times He's standard deviation."""
    torch.manual_seed(1)
    layers: list[nn.Module] = [nn.Linear(20, 128), nn.ReLU()]
    for _ in range(4):
        layers += [nn.Linear(128, 128), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(128, 3))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=mult * (2.0 / m.in_features) ** 0.5)
            nn.init.zeros_(m.bias)
    data = classification(seed=1)
    return _watched(model, lambda: train(model, data, steps=40, lr=1e-3))


def saturated_activations(bound: float) -> Any:
    """A sigmoid MLP whose weights are drawn uniform(-bound, bound) (0: PyTorch's default init)."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(16, 128), nn.Sigmoid(), nn.Linear(128, 128), nn.Sigmoid(), nn.Linear(128, 1))
    if bound:
        for m in model:
            if isinstance(m, nn.Linear):
                nn.init.uniform_(m.weight, -bound, bound)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2048, 16, generator=g) * 2 - 1
    data = Data(x, torch.cos(2 * x[:, :4]).sum(1, keepdim=True) / 4, nn.MSELoss())
    return _watched(model, lambda: train(model, data, steps=80, optimizer=_sgd(model, 0.05)))


def label_noise(noise: float) -> Any:
    """A linear classifier whose labels are replaced by random ones with probability `noise`."""
    torch.manual_seed(1)
    data = classification(n=2000, seed=1)
    g = torch.Generator().manual_seed(2)
    flip = torch.rand(len(data.y), generator=g) < noise
    data.y[flip] = torch.randint(0, 3, (int(flip.sum()),), generator=g)
    model = nn.Linear(20, 3)
    return _watched(model, lambda: train(model, data, steps=120, optimizer=_sgd(model, 0.05)))


def not_shuffled(keep: float) -> Any:
    """Data sorted by label and read in order; a fraction `1 - keep` of positions shuffled back (keep 0: shuffled)."""
    model, d = healthy_mlp(seed=1)
    order = torch.argsort(d.y, stable=True)
    g = torch.Generator().manual_seed(1)
    moved = torch.nonzero(torch.rand(len(order), generator=g) >= keep).flatten()
    order[moved] = order[moved[torch.randperm(len(moved), generator=g)]]
    xs, ys = d.x[order], d.y[order]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loop() -> None:
        for step in range(64):
            i = (step * 32) % len(xs)
            opt.zero_grad()
            d.loss_fn(model(xs[i:i + 32]), ys[i:i + 32]).backward()
            opt.step()
    return _watched(model, loop)


def _s(*rows: tuple[str, str, float]) -> tuple[Setting, ...]:
    return tuple(Setting(grade, label, value) for grade, label, value in rows)


SWEEPS: tuple[Sweep, ...] = (
    Sweep("LRN001", "lr_too_high", "Adam learning rate, times a good 1e-2", _s(
        ("healthy", "lr x1", 1), ("mild", "lr x3", 3), ("typical", "lr x10", 10), ("extreme", "lr x100", 100)),
        lr_too_high),
    Sweep("LRN002", "lr_too_low", "SGD+momentum learning rate on a 3-class MLP, divided from a good 1e-2", _s(
        ("healthy", "lr /1", 1), ("mild", "lr /10", 10), ("typical", "lr /100", 100), ("extreme", "lr /10000", 1e4)),
        lr_too_low),
    Sweep("LRN002", "lr_too_low", "the same on a tanh regression MLP (80 steps)", _s(
        ("healthy", "lr /1", 1), ("mild", "lr /10", 10), ("typical", "lr /100", 100), ("extreme", "lr /10000", 1e4)),
        lr_too_low_regression),
    Sweep("LOP001", "missing_zero_grad", "zero_grad reached every k-th step", _s(
        ("healthy", "every step", 1), ("mild", "every 2nd step", 2), ("typical", "every 5th step", 5),
        ("extreme", "never", 0)), missing_zero_grad),
    Sweep("DAT001", "input_not_normalized", "every input feature multiplied by", _s(
        ("healthy", "x1", 1), ("mild", "x10", 10), ("typical", "x100", 100), ("extreme", "x1000", 1000)),
        input_not_normalized),
    Sweep("ACT001", "dead_activations", "a ReLU layer's bias shifted down, in pre-activation std", _s(
        ("healthy", "no shift", 0), ("mild", "-1 std", 1), ("typical", "-3 std", 3), ("extreme", "-10 std", 10)),
        dead_activations),
    Sweep("ACT001", "dead_activations", "fraction of a ReLU layer's units killed by a -10 bias", _s(
        ("healthy", "none", 0.0), ("mild", "25% of units", 0.25), ("typical", "50% of units", 0.5),
        ("extreme", "90% of units", 0.9)), dead_units),
    Sweep("GRD002", "vanishing_gradients", "depth of a Linear+Sigmoid stack (SGD+momentum)", _s(
        ("healthy", "8 layers, ReLU + He init", -8), ("mild", "5 sigmoid layers", 5),
        ("typical", "8 sigmoid layers", 8), ("extreme", "13 sigmoid layers", 13)), vanishing_gradients),
    Sweep("GRD001", "exploding_gradients", "plain SGD learning rate on a tanh regression MLP", _s(
        ("healthy", "lr 0.05", 0.05), ("mild", "lr 0.3", 0.3), ("typical", "lr 1", 1.0), ("extreme", "lr 5", 5.0)),
        exploding_gradients),
    Sweep("GRD001", "exploding_gradients", "ReLU RNN over 30 steps, recurrent weight std (default is about 0.1)", _s(
        ("healthy", "default init", 0), ("mild", "std 0.2", 0.2), ("typical", "std 0.25", 0.25),
        ("extreme", "std 0.3", 0.3)), exploding_rnn),
    Sweep("DAT003", "class_imbalance", "majority:minority ratio, weak signal, unweighted loss", _s(
        ("healthy", "1:1", 1), ("mild", "10:1", 10), ("typical", "100:1", 100), ("extreme", "1000:1", 1000)),
        class_imbalance),
    Sweep("DAT003", "class_imbalance", "the same with a strong signal the model learns (minority recall 0.99 at 10:1, 0.93 at 100:1, 0 at 1000:1)", _s(
        ("healthy", "1:1", 1), ("mild", "10:1", 10), ("typical", "100:1", 100), ("extreme", "1000:1", 1000)),
        separable_imbalance),
    Sweep("LSS001", "double_softmax", "Softmax before CrossEntropyLoss, number of classes", _s(
        ("healthy", "10 classes, no Softmax", -10), ("mild", "2 classes", 2), ("typical", "10 classes", 10),
        ("extreme", "100 classes", 100)), double_softmax),
    Sweep("GEN001", "overfitting", "training samples for a 72k-parameter MLP, 240 steps", _s(
        ("healthy", "2048 samples", 2048), ("mild", "256 samples", 256), ("typical", "64 samples", 64),
        ("extreme", "16 samples", 16)), overfitting),
    Sweep("WGT001", "weight_collapse", "SGD weight decay at lr 0.1", _s(
        ("healthy", "wd 5e-4", 5e-4), ("mild", "wd 0.05", 0.05), ("typical", "wd 0.5", 0.5), ("extreme", "wd 5", 5.0)),
        weight_collapse),
    Sweep("WGT001", "weight_collapse", "AdamW decoupled weight decay at lr 1e-2", _s(
        ("healthy", "wd 0.01", 0.01), ("mild", "wd 0.5", 0.5), ("typical", "wd 5", 5.0), ("extreme", "wd 50", 50.0)),
        decoupled_weight_decay),
    Sweep("CLP001", "excessive_grad_clipping", "clip_grad_norm_ max_norm (SGD)", _s(
        ("healthy", "max_norm 1", 1.0), ("mild", "max_norm 0.1", 0.1), ("typical", "max_norm 0.01", 0.01),
        ("extreme", "max_norm 0.001", 0.001)), excessive_grad_clipping),
    Sweep("INI001", "poor_initialization", "5-layer ReLU MLP, init std times He's", _s(
        ("healthy", "std x1", 1), ("mild", "std x2", 2), ("typical", "std x8", 8), ("extreme", "std x30", 30)),
        poor_initialization),
    Sweep("ACT002", "saturated_activations", "sigmoid MLP, weights uniform(-b, b)", _s(
        ("healthy", "default init", 0), ("mild", "b 0.5", 0.5), ("typical", "b 1", 1.0), ("extreme", "b 3", 3.0)),
        saturated_activations),
    Sweep("LOS002", "loss_not_decreasing", "fraction of labels replaced by random ones", _s(
        ("healthy", "0%", 0.0), ("mild", "50%", 0.5), ("typical", "90%", 0.9), ("extreme", "100%", 1.0)),
        label_noise),
    Sweep("LBL001", "label_issue", "data sorted by label and not shuffled, fraction left in order", _s(
        ("healthy", "shuffled", 0.0), ("mild", "50% in order", 0.5), ("typical", "90% in order", 0.9),
        ("extreme", "fully sorted", 1.0)), not_shuffled),
)


# -- judging --------------------------------------------------------------------------------------------
def judge(sweep: Sweep, setting: Setting) -> Case:
    case = Case(sweep.code, sweep.knob, sweep.kind, setting.grade, setting.label, fired=False)
    t0 = time.perf_counter()
    try:
        report = sweep.run(setting.value)
    except Exception as exc:  # noqa: BLE001 - a sweep that crashes is a result too
        case.error = f"{type(exc).__name__}: {exc}"[:160]
        case.seconds = round(time.perf_counter() - t0, 2)
        return case
    case.seconds = round(time.perf_counter() - t0, 2)
    findings = report.findings
    case.first = findings[0].kind if findings else None
    case.serious = [f"{f.kind} {f.severity}" for f in findings if f.severity in ("medium", "high")]
    for i, f in enumerate(findings):
        if f.code == sweep.code:
            case.fired, case.severity = True, f.severity
            case.where = "first" if i == 0 else f"cause #{i + 1}"
            return case
        for sym in f.evidence.get("symptoms", []):
            if sym.get("code") == sweep.code:
                case.fired, case.severity, case.where = True, sym.get("severity"), f"symptom of {f.kind}"
                return case
    return case


def range_text(cases: list[Case]) -> str:
    """One rule's detection range in words, from its four cases."""
    by = {c.grade: c for c in cases}
    faults = [by[g] for g in GRADES[1:] if g in by]
    hit = [c for c in faults if c.fired]
    parts = []
    if hit:
        lo, hi = hit[0], hit[-1]
        parts.append(f"found from {lo.label} ({lo.severity}) to {hi.label} ({hi.severity})" if lo is not hi
                     else f"found at {lo.label} ({lo.severity})")
    missed = [c for c in faults if not c.fired]
    if missed:
        parts.append("; ".join(f"{c.label} not found{' (the typical case: a miss)' if c.grade == 'typical' else ''}"
                               + (f" ({c.error})" if c.error else f" (first finding: {c.first})" if c.first else "")
                               for c in missed))
    twin = by.get("healthy")
    if twin is not None:
        parts.append("healthy twin clean" if not twin.fired and twin.error is None else
                     f"healthy twin: fired ({twin.severity})" if twin.fired else f"healthy twin: {twin.error}")
        others = [k for k in twin.serious if not k.startswith(f"{twin.kind} ")]
        if others:
            parts[-1] += f" of this rule (other findings on it: {', '.join(others)})"
    return "; ".join(parts)


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
                             cwd=Path(__file__).resolve().parent, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _q(text: str) -> str:
    """`text` as a double-quoted Python string literal."""
    return json.dumps(text, ensure_ascii=False)


def write_ranges(path: Path, sweeps: list[Sweep], cases: list[Case]) -> None:
    """The measured ranges as the data module the catalogue renders (src/modeldebug/catalogue/ranges.py)."""
    measured = f"{_dt.date.today().isoformat()}, commit {_commit()}, torch {torch.__version__} on CPU"
    rows = []
    for code in dict.fromkeys(s.code for s in sweeps):
        rows.append(f"    {_q(code)}: (")
        for s in (s for s in sweeps if s.code == code):
            text = range_text([c for c in cases if c.code == s.code and c.setup == s.knob])
            rows.append(f"        Range({_q(s.knob)},\n              {_q(text)}),")
        rows.append("    ),")
    path.write_text(
        '"""Each swept rule\'s detection range, as measured by benchmarks/severity_sweep.py.\n\n'
        "Data, written by `python benchmarks/severity_sweep.py --ranges src/modeldebug/catalogue/ranges.py`:\n"
        "do not edit by hand; re-run the sweep after a rule changes. Rendered by `modeldebug explain CODE`\n"
        'and docs/rules.md under "Detection range".\n"""\n\n'
        "from __future__ import annotations\n\nfrom typing import NamedTuple\n\n"
        '__all__ = ["MEASURED", "RANGES", "Range"]\n\n\n'
        "class Range(NamedTuple):\n"
        '    """What was dialled on one setup, and where the rule fired (mild, typical, extreme, healthy twin)."""\n\n'
        "    knob: str\n    text: str\n\n\n"
        f"#: When and on what the ranges were measured.\nMEASURED = {_q(measured)}\n\n"
        "#: Rule code -> its measured detection range on each setup it was swept on.\n"
        "RANGES: dict[str, tuple[Range, ...]] = {\n" + "\n".join(rows) + "\n}\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="*", help="glob over codes or kinds, e.g. 'LRN*' or 'dead_*'")
    ap.add_argument("--json", metavar="P", help="also write every case as JSON")
    ap.add_argument("--ranges", metavar="PATH", type=Path, help="write the measured ranges as a Python data module")
    args = ap.parse_args()
    sweeps = [s for s in SWEEPS if fnmatch.fnmatch(s.code, args.only) or fnmatch.fnmatch(s.kind, args.only)]
    if args.ranges and len(sweeps) != len(SWEEPS):
        print("--ranges writes every rule's range: run it without --only", file=sys.stderr)
        return 2
    if not sweeps:
        print(f"no sweep matches {args.only!r}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)  # the same kernels on a busy machine as on a quiet one
    t0 = time.perf_counter()
    cases: list[Case] = []
    print(f"{'code':7} {'kind':24} {'grade':8} {'setting':22} {'fired':6} {'severity':8} {'where':28} "
          f"{'first finding':24} {'secs':>5}")
    for s in sweeps:
        for setting in s.settings:
            c = judge(s, setting)
            cases.append(c)
            print(f"{c.code:7} {c.kind:24} {c.grade:8} {c.label:22} {'yes' if c.fired else 'no':6} "
                  f"{c.severity or '-':8} {(c.where or c.error or '-')[:28]:28} {c.first or '-':24} {c.seconds:5.1f}",
                  flush=True)
    typical = [c for c in cases if c.grade == "typical"]
    twins = [c for c in cases if c.grade == "healthy"]
    print(f"\nsummary: {len(sweeps)} setups of {len({s.code for s in sweeps})} rules: typical case found in "
          f"{sum(c.fired for c in typical)}/{len(typical)}; "
          f"healthy twins clean of their rule {sum(not c.fired for c in twins)}/{len(twins)}, "
          f"without any medium/high finding {sum(not c.serious for c in twins)}/{len(twins)}; "
          f"{time.perf_counter() - t0:.0f} s")
    print("\nranges:")
    for s in sweeps:
        print(f"  {s.code} {s.kind} ({s.knob}): "
              f"{range_text([c for c in cases if c.code == s.code and c.setup == s.knob])}")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(c) for c in cases], indent=2))
    if args.ranges:
        write_ranges(args.ranges, sweeps, cases)
        print(f"wrote {args.ranges}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
