"""What a new user's first runs showed: each fault as they wrote it, in a tiny seeded model, and a healthy twin.

1. A class skew the model collapses on only because dead units cut its input off is a symptom of the dead units.
2. Evaluating the training tensor itself (training accuracy) is not a validation set that leaks.
3. A learning-rate fix keeps the optimizer's other settings (momentum, betas, weight decay).
4. The spike a finding cites and the step of the repro bundle: the same, or the difference said.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from helpers import found, serious
from torch import nn

import modeldebug as md


# -- 1. a collapse onto the prior that dead units explain ------------------------------------------------------
def _three_classes(*, dead: bool, signal: bool = True, steps: int = 150) -> md.Report:  # type: ignore[name-defined]
    """The demo's classifier: a 4.4:1 skew over 3 classes; `dead` starts the 2nd ReLU's bias at -10."""
    torch.manual_seed(0)
    x = torch.randn(512, 20)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    if not signal:  # the same labels on inputs that say nothing about them
        x = torch.randn(512, 20, generator=torch.Generator().manual_seed(1))
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    if dead:
        nn.init.constant_(model[2].bias, -10.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with md.watch(model, db=":memory:") as s:
        for _ in range(steps):
            idx = torch.randint(0, len(x), (64,))
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return s.report()


def test_a_mild_skew_the_model_collapses_on_because_its_units_are_dead_is_a_symptom_of_the_dead_units() -> None:
    report = _three_classes(dead=True)
    assert [f.code for f in report.findings] == ["ACT001"], [f.title for f in report.findings]
    symptoms = {s["code"] for s in report.findings[0].evidence.get("symptoms", [])}
    assert "DAT003" in symptoms  # listed under its cause, not a second problem


def test_the_same_skew_on_inputs_that_carry_nothing_is_still_class_imbalance_on_its_own() -> None:
    report = _three_classes(dead=False, signal=False)
    f = next((f for f in report.findings if f.code == "DAT003"), None)
    assert f is not None and f.evidence["predicts_prior"] and f.severity == "high"
    assert f.evidence["rests_on"] == ["input_ignored", "loss_not_decreasing"]
    assert found(report, "dead_activations") is None


def test_the_healthy_twin_learns_through_the_skew() -> None:
    report = _three_classes(dead=False)
    assert not serious(report), serious(report)


# -- 2. the training tensor evaluated is not a leaking validation set --------------------------------------------
def _epochs(*, back_to_train: bool, evaluate) -> md.Report:  # type: ignore[no-untyped-def,name-defined]
    """8 epochs over x[i:i + 32], each followed by a pass without gradients over `evaluate(x)`."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 20, generator=g)
    y = (x @ torch.randn(20, 4, generator=g)).argmax(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 4))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    with md.watch(model, db=":memory:") as s:
        for _ in range(8):
            if back_to_train:
                model.train()
            for i in range(0, 512, 32):
                opt.zero_grad()
                F.cross_entropy(model(x[i:i + 32]), y[i:i + 32]).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                parts = evaluate(x)
                for part in parts if isinstance(parts, list) else [parts]:
                    model(part)
    return s.report()


def test_training_left_in_eval_mode_is_train_mode_misuse_and_not_data_leakage() -> None:
    report = _epochs(back_to_train=False, evaluate=lambda x: x)  # training accuracy; never back to train()
    assert found(report, "train_mode_misuse") is not None
    assert found(report, "data_leakage") is None, [f.title for f in report.findings]


def test_the_training_tensor_evaluated_for_training_accuracy_is_no_finding() -> None:
    report = _epochs(back_to_train=True, evaluate=lambda x: x)
    assert not serious(report) and found(report, "data_leakage") is None, serious(report)
    chunks = _epochs(back_to_train=True, evaluate=lambda x: [x[i:i + 128] for i in range(0, 512, 128)])
    assert found(chunks, "data_leakage") is None  # the same, in chunks


def test_validation_sets_that_share_training_samples_are_still_leakage() -> None:
    copied = _epochs(back_to_train=True, evaluate=lambda x: x[:128].clone())  # a copy of trained rows
    assert found(copied, "data_leakage") is not None
    sliced = _epochs(back_to_train=True, evaluate=lambda x: x[:128])  # a view of the training tensor, trained rows
    assert found(sliced, "data_leakage") is not None                  # left out of it: a split that overlaps


# -- 3. a fix's optimizer keeps the run's settings -------------------------------------------------------------
def _sgd_run(**settings) -> md.Report:  # type: ignore[no-untyped-def,name-defined]
    """bug_lr_sgd.py: an MLP on 4 classes, 8 epochs of 32-sample batches, SGD(**settings)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 20, generator=g)
    y = (x @ torch.randn(20, 4, generator=g)).argmax(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.SGD(model.parameters(), **settings)
    with md.watch(model, db=":memory:") as s:
        for _ in range(8):
            perm = torch.randperm(512)
            for i in range(0, 512, 32):
                idx = perm[i:i + 32]
                opt.zero_grad()
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
    return s.report()


def test_a_lower_learning_rate_for_sgd_with_momentum_keeps_the_momentum() -> None:
    report = _sgd_run(lr=0.5, momentum=0.9, nesterov=True, weight_decay=1e-4)
    f = found(report, "lr_too_high")
    assert f is not None and f.kind == "lr_too_high", [x.title for x in report.findings]
    code = f.recommendations[0].implementation or ""
    ctor = next(line for line in code.splitlines() if line.startswith("optimizer = "))
    assert ctor.startswith("optimizer = torch.optim.SGD(model.parameters(), lr=")
    assert "momentum=0.9" in ctor and "nesterov=True" in ctor and "weight_decay=0.0001" in ctor, ctor
    lr = float(ctor.split("lr=")[1].split(",")[0])
    assert lr < 0.5 and "# was 0.5" in ctor


def test_the_healthy_twin_has_no_learning_rate_finding() -> None:
    report = _sgd_run(lr=0.05, momentum=0.9)
    assert found(report, "lr_too_high") is None and not serious(report), serious(report)


def test_the_constructor_is_the_runs_own_with_what_the_fix_changes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from modeldebug.record import Record
    from modeldebug.rules.context import Context
    from modeldebug.rules.fixcode import optimizer_ctor

    def ctor(make, **changed) -> str:  # type: ignore[no-untyped-def]
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        opt = make(model)
        db = tmp_path / f"run{len(list(tmp_path.iterdir()))}.db"
        with md.watch(model, db=str(db)):
            for _ in range(3):
                opt.zero_grad()
                model(torch.randn(16, 4)).sum().backward()
                opt.step()
        return optimizer_ctor(Context(Record.open(db)), **changed)

    adam = ctor(lambda m: torch.optim.Adam(m.parameters(), lr=3e-4, betas=(0.8, 0.99), amsgrad=True), lr=3e-5)
    assert adam == "optimizer = torch.optim.Adam(model.parameters(), lr=3e-05, betas=(0.8, 0.99), amsgrad=True)", adam
    plain = ctor(lambda m: torch.optim.SGD(m.parameters(), lr=0.1))  # defaults are not written out
    assert plain == "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)", plain
    decayed = ctor(lambda m: torch.optim.Adam(m.parameters(), eps=1e-6), name="AdamW", weight_decay=0.05)
    assert decayed == "optimizer = torch.optim.AdamW(model.parameters(), lr=0.001, eps=1e-06, weight_decay=0.05)", decayed
    groups = ctor(lambda m: torch.optim.SGD([{"params": m[0].parameters(), "lr": 0.1}, {"params": m[2].parameters()}],
                                            lr=0.01, momentum=0.9), lr=0.001)
    assert groups.startswith("optimizer = torch.optim.SGD(param_groups, lr=0.001, momentum=0.9)   # param_groups: the 2")


# -- 4. the spike a finding cites and the repro bundle's step ----------------------------------------------------
def _adam_at(lr: float, db: str) -> md.Report:  # type: ignore[name-defined]
    """bug_lr.py: Adam at `lr` over x[i:i + 32] for 8 epochs, its record (and repro bundle) in a file."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 20, generator=g)
    y = (x @ torch.randn(20, 4, generator=g)).argmax(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.Adam(model.parameters(), lr)
    with md.watch(model, db=db) as s:
        for _ in range(8):
            for i in range(0, 512, 32):
                opt.zero_grad()
                F.cross_entropy(model(x[i:i + 32]), y[i:i + 32]).backward()
                opt.step()
    return s.report()


def test_a_spike_before_the_live_check_starts_says_which_step_the_bundle_holds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    report = _adam_at(0.1, str(tmp_path / "run.db"))
    f = found(report, "lr_too_high")
    assert f is not None and f.kind == "lr_too_high"
    bundle = report.diagnosis.record.meta.get("bundle") or {}
    assert bundle.get("trigger") == "loss_spike" and bundle["step"] == 33, bundle
    assert "at step 16" in f.title and f.evidence["bundle_step"] == 33  # step 16: before the live check's 20 losses
    assert "The repro bundle holds step 33" in f.description and "after 20 losses" in f.description


def test_when_the_bundle_holds_the_spike_cited_nothing_more_is_said(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # bug_lr_sgd.py: SGD(lr=0.5, momentum=0.9) over a shuffled DataLoader; the spike at step 29 is the bundle's
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 20, generator=g)
    y = (x @ torch.randn(20, 4, generator=g)).argmax(1)
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.SGD(model.parameters(), 0.5, momentum=0.9)
    with md.watch(model, db=str(tmp_path / "run.db")) as s:
        for _ in range(8):
            for xb, yb in loader:
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
    report = s.report()
    f = found(report, "lr_too_high")
    bundle = report.diagnosis.record.meta.get("bundle") or {}
    assert f is not None and bundle.get("trigger") == "loss_spike" and bundle["step"] == 29, bundle
    assert "at step 29" in f.description and "bundle_step" not in f.evidence and "repro bundle" not in f.description


def test_a_run_without_a_spike_bundle_says_nothing_of_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    report = _adam_at(1e-3, str(tmp_path / "run.db"))
    assert found(report, "lr_too_high") is None and not serious(report), serious(report)
    assert all("repro bundle" not in f.description for f in report.findings)
