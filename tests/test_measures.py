"""Typed measures: declared once, required by rules, computed only when a selected rule needs them,
and per-layer rows kept to the sampled steps."""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any
from pathlib import Path

import pytest
import torch
from torch import nn

import modeldebug as md
from modeldebug import measures as M
from modeldebug.capture import stats as S
from modeldebug.capture.plan import plan_for
from modeldebug.capture.sampler import ROWS_PER_STEP, Sampler
from modeldebug.config import DebuggingConfig
from modeldebug.record import schema
from modeldebug.rules import RULES
from modeldebug.rules.context import RELU_LIKE
from modeldebug.testing import healthy_mlp, train

CAPTURE = str(Path(md.__file__).parent / "capture")


def test_every_rule_requires_declared_measures() -> None:
    for code, rule in RULES.items():
        requires = getattr(rule, "requires", None)
        assert requires, f"{code} declares no `requires`: capture would have to take everything for it"
        for m in requires:
            assert M.resolve(m) is M.MEASURES[M.resolve(m).id], code


def test_an_unknown_measure_id_is_an_error_that_names_it() -> None:
    assert M.resolve("module.dead_frac") is M.DEAD_FRAC
    with pytest.raises(KeyError, match="module.dead_fraction"):
        M.resolve("module.dead_fraction")


def test_declarations_match_the_record_layout_and_the_rules_sets() -> None:
    steps = [c.name for c in schema.TABLES["steps"] if c.name != "step"]
    assert [m.name for m in M.STEP_COLUMNS] == steps
    assert S.ACTIVATION_STATS == ("mean", "std", "min", "max", "zero_frac", "nonfinite", "dead_frac", "inactive_frac")
    assert set(RELU_LIKE) == M.RELU_LIKE
    for m in M.MEASURES.values():
        assert m.doc and m.producer and m.id.count(".") == 1


def test_activation_statistics_of_a_subset_equal_the_full_computation() -> None:
    torch.manual_seed(0)
    x = torch.relu(torch.randn(16, 8, 5))
    full = dict(zip(S.ACTIVATION_STATS, S.activation_stats(x).tolist()))
    for names in (("mean",), ("std",), ("dead_frac",), ("min", "zero_frac"), ("mean", "std", "dead_frac"),
                  ("inactive_frac",), ("zero_frac", "inactive_frac")):
        part = S.activation_stats(x, names).tolist()
        assert part == pytest.approx([full[n] for n in S.ACTIVATION_STATS if n in names], rel=1e-6), names
    assert full["mean"] == pytest.approx(float(x.mean()), rel=1e-6)
    assert full["dead_frac"] == pytest.approx(float((x.amax(dim=(0, 2)) == 0).float().mean()))


def test_a_narrow_selection_plans_only_what_its_rules_read() -> None:
    act = plan_for(DebuggingConfig(select=["ACT"]))
    assert M.DEAD_FRAC in act and M.SATURATED_FRAC in act and M.MODULE_STD in act
    assert not act.any(M.LOSS_IO_STATS) and not act.any(M.INPUT_STATS) and M.LABEL_COUNTS not in act
    assert M.UPDATE_RATIO not in act and M.PARAM_GRAD_NORM not in act and M.BATCH_MIXING_PROBE not in act
    assert M.LOSS in act and M.GRAD_NORM in act  # the step row stays whole
    every = plan_for(DebuggingConfig())
    assert every.any(M.LOSS_IO_STATS) and M.UPDATE_RATIO in every and M.NONFINITE in every
    assert M.MEASURES["module.min"] not in every  # read by no rule: taken from `detailed` on
    assert M.MEASURES["module.min"] in plan_for(DebuggingConfig(analysis_level="detailed"))


def _calls_while(fn: Callable[[], object], names: set[str]) -> Counter[str]:
    """How often each capture function in `names` actually ran during `fn()` (sys.setprofile)."""
    seen: Counter[str] = Counter()

    def profile(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code.co_name in names and frame.f_code.co_filename.startswith(CAPTURE):
            seen[frame.f_code.co_name] += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return seen


def _stats_by_name(record: md.Record) -> Counter[str]:
    return Counter(stat for (stat,) in record.conn.execute("SELECT stat FROM stats"))


@pytest.mark.parametrize("select", [["ACT"], []])
def test_select_act_pays_for_no_loss_input_input_or_update_statistics(select: list[str]) -> None:
    model, data = healthy_mlp()
    cross_entropy = nn.functional.cross_entropy
    box: dict[str, object] = {}

    def run() -> None:
        with md.watch(model, db=":memory:", config=DebuggingConfig(select=select)) as session:
            box["patched"] = nn.functional.cross_entropy is not cross_entropy
            train(model, data, steps=12)
        box["session"] = session

    kernels = {"loss_io_values", "label_values", "input_values", "batch_mixing", "activation_values",
               "activation_stats_batched", "_weight_copies"}
    calls = _calls_while(run, kernels)
    record = box["session"].record  # type: ignore[attr-defined]
    stored = _stats_by_name(record)
    if select:
        assert box["patched"] is False  # no loss function is even wrapped
        assert calls["loss_io_values"] == calls["label_values"] == calls["input_values"] == 0
        assert calls["batch_mixing"] == 0 and calls["_weight_copies"] == 0  # no weight copy, no update
        assert not [e for e in record.entities("loss") if "phase" in e.info]  # no loss call was described
        assert not record.entities("input")
        read = {M.resolve(m).name for r in RULES.values() if r.code.startswith("ACT") for m in r.requires
                if M.resolve(m).where == "module"}
        assert {"mean", "std", "dead_frac"} <= set(stored) <= read  # what the ACT rules read, nothing else
    else:
        assert box["patched"] is True
        assert calls["loss_io_values"] >= 5 and calls["input_values"] >= 5 and calls["batch_mixing"] == 1
        assert calls["_weight_copies"] >= 5
        assert {"in_rowsum_dev", "update_ratio", "param_norm", "grad_norm", "const_frac"} <= set(stored)
    # 5 sampled steps, each reducing its small outputs a shape at a time (a module at a time for large ones)
    assert calls["activation_values"] + calls["activation_stats_batched"] >= 5
    assert stored["mean"] >= 5 * 2 and stored["dead_frac"] >= 5 * 2  # per module: 2 Linear, 2 ReLU at least
    assert len(record.column("loss").finite()) == 12 and len(record.column("grad_norm").finite()) == 12


def _deep(depth: int, width: int = 8) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 2))


def test_unsampled_steps_write_no_per_layer_rows() -> None:
    model = _deep(12)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(16, 8), torch.randint(0, 2, (16,))
    norms = []
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for _ in range(30):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            norms.append(math.sqrt(sum(float(p.grad.norm()) ** 2 for p in model.parameters())))
            opt.step()
    rec = session.record
    rows = Counter(step for (step,) in rec.conn.execute("SELECT step FROM stats"))
    sampled = [s for s in range(30) if s in (0, 1, 2, 5, 10, 20)]
    assert sorted(rows) == sampled
    assert rec.column("grad_norm").values.tolist() == pytest.approx(norms, rel=1e-5)
    assert rec.series("0.weight", "grad_norm").steps.tolist() == sampled


def test_two_parameter_groups_get_a_norm_each_on_every_step() -> None:
    model = _deep(2)
    groups = [{"params": model[0].parameters()}, {"params": [p for m in list(model)[1:] for p in m.parameters()]}]
    opt = torch.optim.SGD(groups, lr=0.01)
    x, y = torch.randn(16, 8), torch.randint(0, 2, (16,))
    first = []
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for _ in range(8):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            first.append(math.sqrt(sum(float(p.grad.norm()) ** 2 for p in model[0].parameters())))
            opt.step()
    rec = session.record
    g0 = rec.series("optimizer0.group0", "grad_norm", kind="group")
    assert g0.steps.tolist() == list(range(8))
    assert g0.values.tolist() == pytest.approx(first, rel=1e-5)
    assert len(rec.series("optimizer0.group1", "grad_norm", kind="group")) == 8


def test_a_nonfinite_gradient_on_an_unsampled_step_still_names_its_parameter() -> None:
    model = _deep(3)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    x, y = torch.randn(16, 8), torch.randint(0, 2, (16,))
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for step in range(8):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            if step == 7:  # not a sampled step
                model[2].weight.grad[0, 0] = float("inf")
            opt.step()
    (event,) = session.record.events("nonfinite")
    assert event.step == 7 and event.data["params"] == ["2.weight"]
    assert event.data["origin"]["module"] == "2"


def test_a_parameter_that_first_gets_a_gradient_on_an_unsampled_step_is_recorded_then() -> None:
    torch.manual_seed(0)
    a, b = nn.Linear(4, 4), nn.Linear(4, 1)
    model = nn.Sequential(a, b)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(8, 4)
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for step in range(8):
            opt.zero_grad(set_to_none=True)
            h = a(x) if step >= 3 else a(x).detach()  # `a` learns from step 3 on
            b(h).pow(2).mean().backward()
            opt.step()
    assert session.record.series("0.weight", "grad_norm").steps.tolist() == [3, 5]


def test_a_deep_model_is_sampled_within_the_row_budget() -> None:
    config = DebuggingConfig()
    sampler = Sampler(config)
    sampler.sized(60)
    assert sampler.every == 50
    sampler.sized(4 * ROWS_PER_STEP * 50)
    assert sampler.every == 200 and sampler.sampled(200) and not sampler.sampled(50) and sampler.sampled(20)
    explicit = Sampler(DebuggingConfig(sample_every=7))
    explicit.sized(10**6)
    assert explicit.every == 7  # the user's interval is kept
    detailed = Sampler(DebuggingConfig(analysis_level="detailed"))
    detailed.sized(10**6)
    assert detailed.every == 5


class _ReadLog:
    """A real record that notes which measures a rule reads (step columns, statistics, events,
    histograms, loss and input entities)."""

    def __init__(self, record: md.Record) -> None:
        self._record = record
        self.reads: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._record, name)
        log = getattr(self, f"_{name}", None)
        if log is None:
            return attr

        def logged(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)  # a read that fails (a column capture never writes) reads nothing
            self.reads.update(log(*args, **kwargs))
            return result

        return logged

    def _kind_of(self, name: str, kind: str | None) -> str | None:
        e = self._record.entity(name, kind)
        return kind or (e.kind if e is not None else None)

    def _column(self, name: str) -> list[str]:
        return [f"step.{name}"]

    def _stat(self, stat: str, *, kind: str | None = None) -> list[str]:
        return [f"{kind}.{stat}"] if kind else [i for i in M.MEASURES if i.split(".")[1] == stat]

    _frame = _stat

    def _series(self, name: str, stat: str, *, kind: str | None = None) -> list[str]:
        return [f"{self._kind_of(name, kind)}.{stat}"]

    def _events(self, kind: str | None = None) -> list[str]:
        return [f"event.{kind}"] if kind else [m.id for m in M.EVENTS]

    def _histograms(self, name: str, *, kind: str | None = None) -> list[str]:
        return [M.LABEL_COUNTS.id if self._kind_of(name, kind) == "loss" else M.ACTIVATION_HISTOGRAM.id]

    def _entities(self, kind: str | None = None) -> list[str]:
        return {"loss": [M.LOSS_CALLS.id], "input": [M.MODEL_INPUT.id]}.get(kind or "", [])


def _busy_run() -> md.Record:
    """A run that gives most rules something to read: dropout, validation calls, clipping, a dead layer."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))
    with torch.no_grad():
        model[0].bias.fill_(-10.0)  # a dead ReLU, so ACT001 reads the layer feeding it
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for step in range(24):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[:32]), y[:32]).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
            opt.step()
            if step % 6 == 5:
                with torch.no_grad():
                    nn.functional.cross_entropy(model(x[32:]), y[32:])
    return session.record


def test_every_rule_reads_only_what_it_requires() -> None:
    """The `requires` of each rule covers what it reads, so a narrow selection never starves it."""
    from modeldebug.rules.context import Context

    record = _busy_run()
    free = {m.id for m in M.MEASURES.values() if m.always}
    for code, rule in RULES.items():
        log = _ReadLog(record)
        list(rule().check(Context(log, DebuggingConfig())))  # type: ignore[arg-type]
        declared = {M.resolve(m).id for m in rule.requires}
        unknown = {r for r in log.reads if r not in M.MEASURES}
        assert not unknown, f"{code} reads {sorted(unknown)}, which no measure declares"
        missing = log.reads - declared - free
        assert not missing, f"{code} reads {sorted(missing)} but does not require them"
