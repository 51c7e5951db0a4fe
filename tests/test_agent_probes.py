"""The sanity probes on real models: each fault found, each healthy twin passing."""

from __future__ import annotations

import random

import torch
from torch import nn

import agent_models as am
from modeldebug.agent import probes
from modeldebug.agent.request import DebuggingRequest, Workload


def work(model: nn.Module, batch=None, **kw) -> Workload:  # type: ignore[no-untyped-def]
    return Workload(DebuggingRequest(model=model, batch=batch or am.batch(), loss_fn=nn.CrossEntropyLoss(), **kw))


def test_loss_at_init_compares_with_ln_c() -> None:
    healthy = probes.loss_at_init(work(am.mlp()))
    assert healthy.verdict == "pass" and abs(healthy.data["expected"] - 1.0986) < 1e-3
    hot = am.mlp()
    with torch.no_grad():
        hot[4].weight.mul_(100)  # confident, wrong logits at step 0
    bad = probes.loss_at_init(work(hot))
    assert bad.verdict == "fail" and bad.findings[0].kind == "poor_initialization"
    x, y = am.batch()
    scaled = probes.loss_at_init(work(hot, (x * 100, y)))  # the data's scale, not the init, is to blame
    assert scaled.verdict in ("pass", "warn") and not scaled.findings


def test_overfit_one_batch_verdicts() -> None:
    assert probes.overfit_one_batch(work(am.mlp(), options=am_options(steps=150))).verdict == "pass"
    stuck = probes.overfit_one_batch(work(am.dead_relu()))
    assert stuck.verdict == "fail" and stuck.findings[0].kind == "loss_not_decreasing"
    blown = probes.overfit_one_batch(work(am.mlp(), optimizer_factory=am.sgd(1e4)))
    assert blown.verdict == "fail" and blown.findings[0].kind in ("loss_diverging", "loss_not_decreasing")


def am_options(*, steps: int):  # type: ignore[no-untyped-def]
    from modeldebug.agent import AnalysisOptions

    return AnalysisOptions(probe_steps=steps)


def test_input_independent_baseline() -> None:
    class IgnoresInput(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = am.mlp()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(torch.zeros_like(x))  # the bug: a leftover placeholder replaces the input

    assert probes.input_independent(work(am.mlp())).verdict == "pass"
    bad = probes.input_independent(work(IgnoresInput()))
    assert bad.verdict == "fail" and bad.findings[0].kind == "input_ignored"


def test_batch_mixing_probe() -> None:
    assert probes.batch_mixing_probe(work(am.mlp())).verdict == "pass"
    bad = probes.batch_mixing_probe(work(am.BatchMixing()))
    assert bad.verdict == "fail" and bad.findings[0].kind == "batch_mixing"
    assert bad.data["fraction_mixed"] > 0.1


def test_determinism_probe() -> None:
    class Unseeded(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = am.mlp()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x) * (1 + random.random())  # Python's RNG: not seeded by torch.manual_seed

    assert probes.determinism(work(nn.Sequential(am.mlp(), nn.Dropout(0.3)))).verdict == "pass"
    bad = probes.determinism(work(Unseeded()))
    assert bad.verdict == "warn" and bad.findings[0].kind == "nondeterminism"


def test_lr_range_test() -> None:
    healthy = probes.lr_range_test(work(am.mlp()))
    assert healthy.verdict == "pass"
    assert 1e-4 < healthy.data["suggested_lr"] < 1.0
    assert healthy.data["blowup_lr"] is None or healthy.data["blowup_lr"] > healthy.data["min_loss_lr"]
    high = probes.lr_range_test(work(am.mlp(), optimizer_factory=am.sgd(50.0)))
    assert high.findings[0].kind == "lr_too_high"
    low = probes.lr_range_test(work(am.mlp(), optimizer_factory=am.sgd(1e-7)))
    assert low.findings[0].kind == "lr_too_low"
