"""Training-loop and resource rules: each fault built the way people write it, and a healthy twin.

Timing rules are tested with large effects (5x and more) so that a busy machine cannot flip them;
their thresholds' edges are tested on hand-written records.
"""

from __future__ import annotations

import ctypes
import gc
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import modeldebug as md
from modeldebug.record import Record, RunWriter
from modeldebug.rules import analyze
from modeldebug.testing import classification, healthy_cnn, healthy_mlp, healthy_transformer, train

from helpers import found, serious, watched


def record_of(n: int, **columns: list[float] | np.ndarray) -> Record:
    """A run record with the given per-step columns, written through the real store."""
    w = RunWriter(":memory:")
    for i in range(n):
        w.add_step(i, **{c: (None if v[i] is None else float(v[i])) for c, v in columns.items()})
    w.set_meta(steps=n)
    w.flush()
    return Record(w.conn)


def kinds_of(record: Record) -> dict[str, md.Finding]:  # type: ignore[name-defined]
    return {f.kind: f for f in analyze(record)}


# -- missing_zero_grad ---------------------------------------------------------------------------
def test_a_loop_without_zero_grad_is_the_root_cause_of_what_follows() -> None:
    model, data = healthy_mlp()
    report = watched(model, lambda: train(model, data, steps=60, zero_grad=False,
                                          optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)))
    top = report.findings[0]
    assert top.kind == "missing_zero_grad" and top.severity == "high"
    assert top.evidence["fraction"] == 1.0 and top.step == 1
    assert 0.9 < top.evidence["carried_to_previous_grad_norm"] < 1.1  # the previous gradient, untouched
    assert any("zero_grad(set_to_none=True)" in (r.implementation or "") for r in top.recommendations)
    for other in report.findings[1:]:  # whatever else fired is a symptom of it, not a rival cause
        assert other.kind not in ("exploding_gradients", "loss_diverging", "nonfinite", "lr_too_high")


def test_zero_grad_skipped_on_some_steps_is_found() -> None:
    model, data = healthy_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loop() -> None:
        for step in range(60):
            x, y = data.batch(step, 64)
            if step % 3 == 0:  # misplaced under a logging condition
                opt.zero_grad()
            data.loss_fn(model(x), y).backward()
            opt.step()

    f = found(watched(model, loop), "missing_zero_grad")
    assert f is not None and 0.6 < f.evidence["fraction"] < 0.7


def _accumulate(model: nn.Module, data: md.testing.Data, opt: torch.optim.Optimizer, clear: str) -> None:
    for i in range(80):
        x, y = data.batch(i, 32)
        (data.loss_fn(model(x), y) / 4).backward()
        if (i + 1) % 4 == 0:
            opt.step()
            if clear == "zero_grad":
                opt.zero_grad()
            else:
                for p in model.parameters():
                    p.grad = None


@pytest.mark.parametrize("clear", ["zero_grad", "set_to_none_by_hand"])
def test_gradient_accumulation_and_clearing_by_hand_are_healthy(clear: str) -> None:
    model, data = healthy_mlp()
    # Built before watching and not passed in: the first steps are closed per backward pass
    # until the optimizer is seen stepping.
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    report = watched(model, lambda: _accumulate(model, data, opt, clear))
    assert found(report, "missing_zero_grad") is None
    assert report.record.column("n_backward").values[-1] == 4


@pytest.mark.parametrize("clears", [False, True])
def test_a_hand_written_update_loop_that_never_clears_gradients(clears: bool) -> None:
    model, data = healthy_regression_mlp()

    def loop() -> None:
        for step in range(40):
            x, y = data.batch(step, 64)
            data.loss_fn(model(x), y).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.01 * p.grad
                    if clears:
                        p.grad.zero_()

    f = found(watched(model, loop), "missing_zero_grad")
    assert (f is not None) == (not clears)


def healthy_regression_mlp() -> tuple[nn.Module, md.testing.Data]:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1)), md.testing.regression()


# -- train_mode_misuse ---------------------------------------------------------------------------
def _epochs(model: nn.Module, data: md.testing.Data, *, train_each_epoch: bool, eval_for_val: bool = True,
            epochs: int = 4, steps: int = 10) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for epoch in range(epochs):
        if train_each_epoch:
            model.train()
        for i in range(steps):
            x, y = data.batch(epoch * steps + i, 32)
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        if eval_for_val:
            model.eval()
        with torch.no_grad():
            F.cross_entropy(model(data.x[:64]), data.y[:64])


def test_training_on_in_eval_mode_after_validation_is_found_at_the_right_step() -> None:
    model, data = healthy_cnn()
    f = found(watched(model, lambda: _epochs(model, data, train_each_epoch=False), level="detailed"),
              "train_mode_misuse")
    assert f is not None and f.severity == "high" and f.step == 10
    assert set(f.evidence["layers"]) == {"1", "5"} and f.evidence["per_layer_flags_sampled"]
    assert f.evidence["validation_steps"] == [10]
    assert any("model.train()" in (r.implementation or "") for r in f.recommendations)


def test_calling_model_train_every_epoch_is_healthy() -> None:
    model, data = healthy_cnn()
    report = watched(model, lambda: _epochs(model, data, train_each_epoch=True))
    assert found(report, "train_mode_misuse") is None


def test_eval_mode_does_not_matter_without_dropout_or_batchnorm() -> None:
    model, data = healthy_mlp()
    report = watched(model, lambda: _epochs(model, data, train_each_epoch=False))
    assert report.record.column("fwd_eval_mode").values[-1] == 1  # the fault is there ...
    assert found(report, "train_mode_misuse") is None              # ... and changes nothing


def test_validation_in_train_mode_is_found() -> None:
    model, data = healthy_cnn()
    report = watched(model, lambda: _epochs(model, data, train_each_epoch=True, eval_for_val=False))
    f = found(report, "train_mode_misuse")
    assert f is not None and "no_grad" in f.title and f.evidence["validation_loss_recorded"]
    assert any("model.eval()" in (r.implementation or "") for r in f.recommendations)


def test_a_frozen_teacher_in_eval_mode_is_not_training_in_eval_mode() -> None:
    teacher, data = healthy_cnn(seed=1)
    student, _ = healthy_cnn(seed=2)
    teacher.eval()
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)

    def distil() -> None:
        student.train()
        for i in range(30):
            x, _ = data.batch(i, 32)
            target = teacher(x).softmax(1)  # autograd left on: wasteful, not a mode bug
            opt.zero_grad()
            F.cross_entropy(student(x), target).backward()
            opt.step()

    with md.watch(student, teacher, optimizer=opt, db=":memory:") as s:
        distil()
    assert found(s.report(), "train_mode_misuse") is None


# -- memory_growth -------------------------------------------------------------------------------
@pytest.fixture
def fresh_heap() -> None:
    """Give back to the OS what earlier tests freed, so that RSS growth measures this test alone
    (a leak first fills the allocator's free pages, invisible to RSS)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pytest.skip("needs glibc's malloc_trim")


@pytest.mark.usefixtures("fresh_heap")
def test_validation_with_autograd_kept_in_a_running_total_leaks_memory() -> None:
    model, data = healthy_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loop() -> None:
        val_total = 0.0
        for i in range(150):
            x, y = data.batch(i, 64)
            model.train()
            opt.zero_grad()
            data.loss_fn(model(x), y).backward()
            opt.step()
            model.eval()
            val_total = val_total + data.loss_fn(model(data.x[:128]), data.y[:128])  # no torch.no_grad()

    report = watched(model, loop)
    f = found(report, "memory_growth")
    assert f is not None and f.severity in ("medium", "high") and f.evidence["series"] == "rss_mb"
    # one evaluation pass a step: the passes counted are those from the step the growth began
    assert f.evidence["growth_fraction"] > 0.05 and f.evidence["eval_mode_grad_passes"] == 150 - f.evidence["since_step"]
    assert any("torch.no_grad()" in (r.implementation or "") for r in f.recommendations)
    assert found(report, "train_mode_misuse") is None  # eval passes beside training passes


@pytest.mark.usefixtures("fresh_heap")
@pytest.mark.parametrize("keep", ["tensor", "item"])
def test_a_history_of_loss_tensors_grows_memory_and_item_does_not(keep: str) -> None:
    model, data = healthy_transformer()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    history: list = []

    def loop() -> None:
        for i in range(150):
            x, y = data.batch(i, 16)
            opt.zero_grad()
            loss = data.loss_fn(model(x), y)
            loss.backward()
            opt.step()
            history.append(loss if keep == "tensor" else loss.item())

    f = found(watched(model, loop), "memory_growth")
    if keep == "item":
        assert f is None
        return
    assert f is not None and f.evidence["kept_losses"]["median_live_losses"] == 7
    assert f.severity in ("medium", "high")
    assert any("loss.item()" in (r.implementation or "") for r in f.recommendations)


def test_memory_thresholds_on_recorded_runs() -> None:
    n = 200
    steps = np.arange(n)
    warmup_then_flat = 330 + 8 * (1 - np.exp(-steps / 10)) + 0.01 * (steps % 3)
    assert "memory_growth" not in kinds_of(record_of(n, rss_mb=warmup_then_flat))
    one_jump = np.where(steps < 120, 330.0, 360.0)  # a buffer allocated once, not a leak
    assert "memory_growth" not in kinds_of(record_of(n, rss_mb=one_jump))
    cuda_leak = 50 + 0.05 * steps  # +20% over the run on the GPU
    f = kinds_of(record_of(n, rss_mb=np.full(n, 900.0), cuda_mb=cuda_leak))["memory_growth"]
    assert f.evidence["series"] == "cuda_mb" and f.severity == "medium"
    assert f.evidence["slope_mb_per_step"] == pytest.approx(0.05, rel=0.01)
    small = 330 + 0.0005 * steps  # 0.03%: noise-sized, with no cause shown
    assert "memory_growth" not in kinds_of(record_of(n, rss_mb=small))
    kept = kinds_of(record_of(n, rss_mb=np.full(n, 330.0), live_losses=np.full(n, 7)))["memory_growth"]
    assert kept.severity == "low"


def _epoch_then_eval_record(trains_in_train_mode: bool, evals_every: int = 0) -> Record:
    """Two epochs of 40 steps as a beginner's script runs them: an evaluation pass with autograd on
    after epoch 1 lifts RSS by 60 MiB once, then RSS drifts 2% (the allocator). Without
    `model.train()` after that evaluation, epoch 2's training passes run in eval mode: one
    eval-mode pass with autograd a step, and the sampled modules' training flag is 0."""
    n = 80
    steps = np.arange(n)
    rss = np.where(steps < 40, 346.0, 405.0 + 8.0 * (steps - 40) / 40)
    evals = np.where(steps == 40, 10, np.where(steps > 40, 0 if trains_in_train_mode else 1, 0))
    if evals_every:  # evaluation passes with autograd on through epoch 2 as well
        evals = evals + ((steps > 40) & (steps % evals_every == 0))
    w = RunWriter(":memory:")
    lstm = w.entity("module", "lstm", type="LSTM", info={"leaf": True, "params": 4})
    for i in range(n):
        w.add_step(i, loss=1.0 / (1 + i), rss_mb=float(rss[i]), fwd_eval_mode=int(evals[i]), n_backward=1)
        if i % 10 == 0:
            w.add_stats(i, [(lstm, "training", 1.0 if (i < 40 or trains_in_train_mode) else 0.0)])
    w.set_meta(steps=n)
    w.flush()
    return Record(w.conn)


def test_one_jump_at_an_evaluation_then_allocator_drift_is_not_a_leak() -> None:
    """pytorch-beginner's LSTM lesson: RSS jumps once at the evaluation after epoch 1 and drifts 2% in
    epoch 2, which trains in eval mode (no `model.train()`). Was reported as a leak of 734 MiB per
    1,000 steps, caused by "evaluation passes with autograd on" (those passes were the training)."""
    assert "memory_growth" not in kinds_of(_epoch_then_eval_record(trains_in_train_mode=False))
    # the same memory with the trained modules in train mode and no evaluation after the jump: the 2%
    # drift has no cause and is far under the 10% needed without one
    assert "memory_growth" not in kinds_of(_epoch_then_eval_record(trains_in_train_mode=True))
    # and with evaluation passes through the drift (MorvanZhou's BatchNorm lesson: +0.26% after the
    # jump): kept graphs would have raised memory at every evaluation, not once
    assert "memory_growth" not in kinds_of(_epoch_then_eval_record(trains_in_train_mode=True, evals_every=10))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_leak_that_starts_late_ramps_and_is_not_taken_for_a_jump(seed: int) -> None:
    """Review: +1 MiB a step from step 250 of 400 puts most of the rise in one quarter; read as one jump
    the rest was too short to judge, and 3 seeds in 20 were missed (the code before found them all)."""
    n = 400
    steps = np.arange(n)
    rss = 1000 + np.random.default_rng(seed).normal(0, 0.5, n) + np.where(steps >= 250, steps - 250, 0)
    f = kinds_of(record_of(n, rss_mb=rss))["memory_growth"]
    assert f.evidence["after_jump"] is False and f.evidence["since_step"] >= 250


def test_a_leak_after_a_jump_is_still_a_leak() -> None:
    n = 200
    steps = np.arange(n)
    # a buffer of 300 MiB allocated once at step 60 (most of the rise), and a leak of 0.8 MiB a step after it
    rss = np.where(steps < 60, 330.0, 630.0 + 0.8 * (steps - 60))
    f = kinds_of(record_of(n, rss_mb=rss))["memory_growth"]
    assert f.evidence["since_step"] >= 60 and f.evidence["slope_mb_per_step"] == pytest.approx(0.8, rel=0.05)
    assert f.evidence["level_mb"] >= 630  # judged from the level after the jump: the jump is not growth


# -- dataloader_bottleneck -------------------------------------------------------------------------
class _Decoded(Dataset):
    """Each sample is 'decoded' in Python: slow, and in the training process."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        # ~90% of the step waits here, so that a busy machine slowing the compute more than the
        # decoding cannot bring the share below what the test asserts (it did at 8000: ~78%)
        acc = sum(math.sin(k * 0.001) for k in range(30000))
        return self.x[i] + 0 * acc, self.y[i]


@pytest.mark.timing
@pytest.mark.parametrize("slow", [True, False])
def test_a_dataloader_with_heavy_getitem_is_a_bottleneck(slow: bool) -> None:
    model, data = healthy_cnn()
    ds = _Decoded(data.x, data.y) if slow else TensorDataset(data.x, data.y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loop() -> None:
        for _ in range(2):
            for x, y in DataLoader(ds, batch_size=16, shuffle=True):
                opt.zero_grad()
                data.loss_fn(model(x), y).backward()
                opt.step()

    report = watched(model, loop)
    f = found(report, "dataloader_bottleneck")
    if not slow:
        assert f is None
        return
    assert f is not None and f.evidence["uses_dataloader"] and f.evidence["wait_share"] > 0.7
    assert any("num_workers" in (r.implementation or "") for r in f.recommendations)


class _Rows(Dataset):
    """A table held in memory, as most tutorials write it: a sample is a few tensor rows."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(n, 8, generator=g), torch.rand(n, 1, generator=g).round()
        self.weight = torch.ones(n, 1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        # each tensor of a batch crosses from a worker on its own (~0.4 ms): four make the wait clear
        return {"x": self.x[i], "y": self.y[i], "weight": self.weight[i], "index": torch.tensor(i)}



@pytest.mark.parametrize("fresh", [True, False, "full-batch"])
def test_a_new_loader_iterator_for_every_batch_is_recorded(fresh: bool | str) -> None:
    """blind9's `next(iter(train_loader))` inside the step loop: every batch starts an iterator (with
    workers, their processes start and stop each step). Its twins read the batches from one iterator,
    and read a loader whose epoch is one batch (full-batch training: an iterator per batch by design)."""
    model, data = healthy_mlp()
    ds = TensorDataset(*data.batch(0, 640))
    loader = DataLoader(ds, batch_size=640 if fresh == "full-batch" else 16, shuffle=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def loop() -> None:
        batches = iter(loader)
        for _ in range(30):
            x, y = next(iter(loader)) if fresh else next(batches)
            opt.zero_grad()
            data.loss_fn(model(x), y).backward()
            opt.step()

    with md.watch(model, db=":memory:") as session:
        loop()
    events = session.record.events("loader_iterator_per_batch")
    if fresh is not True:
        assert events == []
        return
    [ev] = events
    assert ev.data["new_iterators"] == ev.data["batches"] == 20 and ev.data["line"] > 0
    assert "next(iter(loader))" in ev.data["code"] and ev.data["sampler"] == "RandomSampler"
    assert found(session.report(), "sampler_misuse") is None  # shuffled: another batch each time


class _Drawn(Dataset):
    """A data set that draws a fresh sample whatever the index (procedural data, random crops)."""

    def __init__(self, data) -> None:  # type: ignore[no-untyped-def]
        self.data, self.g = data, torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        return 640

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        x, y = self.data.batch(int(torch.randint(0, 10_000, (1,), generator=self.g)), 1)
        return x[0], y[0]


@pytest.mark.parametrize("drawn", [False, True])
def test_a_new_iterator_per_batch_over_an_unshuffled_loader_trains_on_the_first_batch_only(drawn: bool) -> None:
    """Its twin draws its samples itself (the index is ignored): each new iterator's first batch differs."""
    model, data = healthy_mlp()
    loader = DataLoader(_Drawn(data) if drawn else TensorDataset(*data.batch(0, 640)), batch_size=16)  # shuffle=False
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def loop() -> None:
        for _ in range(30):
            x, y = next(iter(loader))
            opt.zero_grad()
            data.loss_fn(model(x), y).backward()
            opt.step()

    f = found(watched(model, loop), "sampler_misuse")
    if drawn:
        assert f is None
        return
    assert f is not None and f.severity == "high" and "same first batch" in f.title
    assert f.evidence["share_drawn_from"] == pytest.approx(16 / 640)


@pytest.mark.parametrize("evaluate", ["every-step", "every-epoch", "teacher"])
def test_a_validation_pass_inside_the_batch_loop_is_found(evaluate: str) -> None:
    """blind9's `validate()` indented into the batch loop: a whole validation pass (here 12 batches, a
    loss each, without gradients, in eval mode) after every training step. Its twins: the same pass once
    an epoch, and targets from the model's own passes without gradients on every step (self-distillation,
    as a DQN's target from its online network): as much time without gradients, but no loss of its own."""
    model, data = healthy_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    xv, yv = data.batch(10_000, 12 * 128)

    def validate() -> None:
        model.eval()
        with torch.no_grad():
            for i in range(0, len(xv), 128):
                data.loss_fn(model(xv[i:i + 128]), yv[i:i + 128]).item()
        model.train()

    def loop() -> None:
        for i in range(80):
            x, y = data.batch(i, 32)
            opt.zero_grad()
            if evaluate == "teacher":  # (before the step's forward pass, in the time between steps)
                with torch.no_grad():  # (and the teacher's own loss on the training batch, as HF's teacher(**inputs))
                    soft = torch.stack([model(x + 0.1 * torch.randn_like(x)) for _ in range(12)]).mean(0)
                    data.loss_fn(soft, y).item()
                    soft = soft.softmax(-1)
            out = model(x)
            loss = data.loss_fn(out, y)
            if evaluate == "teacher":
                loss = loss + F.kl_div(out.log_softmax(-1), soft, reduction="batchmean")
            loss.backward()
            opt.step()
            if evaluate == "every-step" or (evaluate == "every-epoch" and i % 40 == 39):
                validate()

    report = watched(model, loop)
    f = next((f for f in report.findings if f.kind == "slow_step" and "validation pass" in f.title), None)
    if evaluate != "every-step":
        assert f is None
        return
    assert f is not None and f.severity == "medium" and f.evidence["steps_with_evaluation"] >= 0.8
    assert "after the batch loop" in (f.recommendations[0].implementation or "")


def _fresh_record(event: bool) -> Record:
    """Steps of 10 ms whose loader's __next__ takes 1 ms and whose gap before the forward pass 8 ms
    (the iterator's start and its workers' stop run outside __next__), with or without the event."""
    w = RunWriter(":memory:")
    for step in range(30):
        w.add_step(step, t_step=0.010, t_loader=0.001, t_data=0.008, lr=0.01)
    if event:
        w.add_event(19, "loader_iterator_per_batch", {
            "file": "/x/train.py", "line": 89, "code": "x, y = next(iter(train_loader))", "batches": 20,
            "new_iterators": 20, "dataset": "Days", "num_workers": 2, "persistent_workers": False,
            "sampler": "RandomSampler"})
    w.set_meta(steps=30)
    w.flush()
    return Record(w.conn)


@pytest.mark.parametrize("event", [True, False])
def test_a_new_iterator_per_batch_counts_the_gap_as_waiting_for_data(event: bool) -> None:
    f = kinds_of(_fresh_record(event)).get("dataloader_bottleneck")
    if not event:  # 10% of the step inside __next__: the gap is not the loader's without the event
        assert f is None
        return
    assert f is not None and "new DataLoader iterator for every batch" in f.title and "train.py:89" in f.title
    assert "2 worker processes" in f.title and f.evidence["wait_share"] == pytest.approx(0.8)
    assert f.recommendations[0].implementation.startswith("for x, y in train_loader:")


@pytest.mark.parametrize("workers", [2, 0])
def test_worker_processes_for_rows_in_memory_are_the_bottleneck_and_the_fix_is_none(workers: int) -> None:
    """A tiny model fed from a table in memory through two worker processes (PyTorchZeroToAll's
    DataLoader lesson): each batch costs more to receive from a worker than to index here, so the
    loop waits, and the advice is num_workers=0, not more workers. Its twin loads in-process."""
    model = nn.Sequential(nn.Linear(8, 4), nn.Sigmoid(), nn.Linear(4, 1), nn.Sigmoid())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def loop() -> None:
        for batch in DataLoader(_Rows(960), batch_size=16, shuffle=True, num_workers=workers):
            loss = F.binary_cross_entropy(model(batch["x"]), batch["y"], weight=batch["weight"])
            opt.zero_grad()
            loss.backward()
            opt.step()

    report = watched(model, loop)
    f = found(report, "dataloader_bottleneck")
    if not workers:
        assert f is None
        return
    (event,) = report.record.events("dataloader")
    assert event.data == {"dataset": "_Rows", "length": 960, "num_workers": 2, "persistent_workers": False,
                          "batch_size": 16, "grad_enabled": True, "in_memory": True,
                          "sampler": "RandomSampler"}
    if f is None:
        # On a machine busy with other work the workers can stay ahead of this loop (its own steps are
        # slowed as much as they are), and then it did not wait: the rule must agree with what the run
        # measured (CI once ran beside two other jobs and saw this)
        wait = np.nan_to_num(report.record.column("t_loader").values[1:])
        step = report.record.column("t_step").values[1:]
        share, median_share = wait.sum() / step.sum(), float(np.median(np.minimum(wait / step, 1.0)))
        assert max(share, median_share) < 0.5 or min(share, median_share) < 0.25 or np.median(wait) < 1e-3
        return
    assert f.evidence["loader"] == event.data
    assert "already runs 2 worker processes" in f.description
    if f.evidence["median_wait_ms"] <= 2.0:  # a worker's hand-off (on a busy machine the wait can grow past it)
        assert f.recommendations[0].implementation.endswith("num_workers=0)")
    else:
        assert "persistent_workers=True" in f.recommendations[0].implementation


@pytest.mark.parametrize("fresh", [True, False, "one-hot"],
                         ids=["a-batch-prepared-each-step", "one-batch-built-once", "one-hot-batches"])
def test_slow_batch_preparation_without_a_dataloader(fresh: bool | str) -> None:
    """The same slow work between steps: preparing each step's batch is waiting for data; beside
    training on tensors built once (a plot drawn each step, say), it is not, and PRF001 says nothing.
    One-hot batches all have the same mean, spread and range: still new batches."""
    model, data = healthy_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x0, y = data.batch(0, 64)

    def batch(i: int) -> torch.Tensor:
        if fresh == "one-hot":
            ids = torch.randint(0, x0.shape[1], (64,), generator=torch.Generator().manual_seed(i))
            return torch.nn.functional.one_hot(ids, x0.shape[1]).float()
        return data.batch(i, 64)[0]

    def loop() -> None:
        for i in range(40):
            busy = sum(math.sin(k * 0.001) for k in range(20000))  # per-batch preprocessing, or a plot, in Python
            x = batch(i) + 0 * busy if fresh else x0
            opt.zero_grad()
            data.loss_fn(model(x), y if not fresh else data.batch(i, 64)[1]).backward()
            opt.step()

    f = found(watched(model, loop), "dataloader_bottleneck")
    if not fresh:
        assert f is None
        return
    assert f is not None and not f.evidence["uses_dataloader"] and f.confidence < 0.85


def test_validation_time_between_steps_is_not_data_waiting() -> None:
    n = 60
    t_step = np.full(n, 0.010)
    t_data = np.full(n, 0.004)  # 40% between steps: not a bottleneck on its own
    t_step[::10] = t_data[::10] = 0.5  # a long validation pass every 10 steps
    lr = np.full(n, 0.01)  # an optimizer stepped: the time between steps is the loop's own
    unexplained = kinds_of(record_of(n, t_step=t_step, t_data=t_data, lr=lr))
    assert "dataloader_bottleneck" in unexplained and "slow_step" in unexplained
    w = RunWriter(":memory:")
    eid = w.entity("loss", "cross_entropy[val]", type="cross_entropy", info={"phase": "val"})
    for i in range(n):
        w.add_step(i, t_step=float(t_step[i]), t_data=float(t_data[i]), lr=0.01)
        if i % 10 == 0:
            w.add_stats(i, [(eid, "val_loss", 1.0)])
    w.flush()
    explained = kinds_of(Record(w.conn))
    assert "dataloader_bottleneck" not in explained and "slow_step" not in explained


# -- slow_step -----------------------------------------------------------------------------------
@pytest.fixture
def one_thread():  # type: ignore[no-untyped-def]
    """One intra-op thread while a test times steps.

    Two OpenMP threads on a busy two-core machine spin while they wait for each other: a step that
    lost its core then costs CPU time as well as wall time, 20x over for tens of steps, which no
    statistic of the run's own work can tell from work that grew (CI failed on it once in ~10 runs).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.timing
@pytest.mark.usefixtures("one_thread")
def test_a_negative_queue_that_is_never_truncated_slows_every_step() -> None:
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 16))
    opt = torch.optim.SGD(enc.parameters(), lr=0.05)
    x_all = classification(n=1024).x

    def loop() -> None:
        queue = torch.randn(64, 16)
        for step in range(64):
            x = x_all[torch.randint(0, 1024, (32,))]
            q = F.normalize(enc(x), dim=1)
            k = F.normalize(enc(x + 0.1 * torch.randn_like(x)), dim=1).detach()
            logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) / 0.2
            opt.zero_grad()
            F.cross_entropy(logits, torch.zeros(32, dtype=torch.long)).backward()
            opt.step()
            # Never truncated to the newest K; and it grows faster every step, so that the work
            # outgrows a busy machine's scheduling delays.
            queue = torch.cat([queue, k.repeat(4 * (step + 1), 1)])

    # Late in a full test run the heap holds every earlier test's objects: a full garbage collection
    # then pauses a step for tens of ms at random. Frozen, they are not scanned. And a trend timed on a
    # shared machine can still be hidden by one run's scheduling (full CI runs missed it 3 times in 5),
    # late in the suite: a second, independent run is allowed; a rule that cannot see the
    # trend fails both.
    gc.collect()
    gc.freeze()
    try:
        f = found(watched(enc, loop), "slow_step") or found(watched(enc, loop), "slow_step")
    finally:
        gc.unfreeze()
    assert f is not None and f.evidence["growth"] >= 2
    assert f.evidence["phase"] in ("t_forward", "t_backward")
    assert f.recommendations and f.recommendations[0].type == "fix"


@pytest.mark.parametrize("task", [healthy_mlp, healthy_cnn])
def test_healthy_runs_have_no_resource_findings(task) -> None:  # type: ignore[no-untyped-def]
    model, data = task(seed=3)
    report = watched(model, lambda: train(model, data, steps=120))
    for kind in ("slow_step", "memory_growth", "dataloader_bottleneck"):
        assert found(report, kind) is None
    assert serious(report) == []


def test_slow_step_thresholds_on_recorded_runs() -> None:
    n = 200
    steps = np.arange(n)
    rng = np.random.default_rng(0)
    noise = rng.uniform(0.8, 1.25, n)
    linear = 0.005 * (1 + steps / 40) * noise  # 5x over the run
    optimizer = np.full(n, 0.001) * noise
    f = kinds_of(record_of(n, t_step=linear + optimizer, t_backward=linear, t_optimizer=optimizer))["slow_step"]
    assert f.evidence["phase"] == "t_backward" and f.evidence["growth"] > 2
    busier = kinds_of(record_of(n, t_step=linear + 0.2 * linear, t_backward=linear, t_optimizer=0.2 * linear))
    assert "slow_step" not in busier  # every phase slowed alike: the machine, not the loop
    unfreeze = np.where(steps < 100, 0.005, 0.015) * noise  # one change of pace: not a trend
    assert "slow_step" not in kinds_of(record_of(n, t_step=unfreeze))
    periodic = 0.005 * noise
    periodic[5::10] = 0.1  # a checkpoint every 10 steps, 20x a step
    f = kinds_of(record_of(n, t_step=periodic, t_data=np.where(periodic > 0.05, 0.095, 0.001)))["slow_step"]
    assert f.evidence["period"] == 10 and f.evidence["phase"] == "t_data"
    scattered = 0.005 * noise
    scattered[rng.choice(np.arange(20, n), 12, replace=False)] = 0.1  # a busy machine's hiccups
    assert "slow_step" not in kinds_of(record_of(n, t_step=scattered))


def test_a_machine_that_gets_busier_is_not_a_slower_run() -> None:
    """Other processes take more and more of the CPU: more steps are preempted (by 1.5-15x, in
    backward, the multi-threaded phase), the others run as fast as ever. The run's own work did not grow."""
    n = 200
    steps = np.arange(n)
    rng = np.random.default_rng(1)
    noise = rng.uniform(0.9, 1.1, n)
    preempted = rng.uniform(0, 1, n) < 0.85 * steps / n
    backward = 0.004 * np.where(preempted, np.sort(rng.uniform(1.5, 15, n)), 1.0) * noise
    optimizer = np.full(n, 0.001) * noise
    busy = kinds_of(record_of(n, t_step=backward + optimizer, t_backward=backward, t_optimizer=optimizer))
    assert "slow_step" not in busy
    # the same wall-clock rise where every step's own work grows is still found
    growing = 0.004 * (1 + 8 * steps / n) * noise
    f = kinds_of(record_of(n, t_step=growing + optimizer, t_backward=growing, t_optimizer=optimizer))["slow_step"]
    assert f.evidence["own_growth"] > 2 and f.evidence["phase"] == "t_backward"


@pytest.mark.parametrize("where", ["between", "before", "other-model", "dropped-batches"])
def test_zero_grad_between_backward_and_step_is_found_with_its_line(where: str) -> None:
    """backward(), zero_grad(), step(): every step is a step of zero (blind3's Trainer.step). Its twins:
    zero_grad() before backward(), a zero_grad() of another model between them (this step's gradients
    are untouched), and a bad batch dropped on purpose that way now and then (low, not high)."""
    model, data = healthy_mlp()
    other = nn.Linear(3, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def loop() -> None:
        for i in range(60):
            x, y = data.batch(i, 32)
            if where in ("before", "dropped-batches"):
                opt.zero_grad()
            loss = data.loss_fn(model(x), y)
            loss.backward()
            if where == "between" or (where == "dropped-batches" and i % 20 == 19):
                opt.zero_grad()
            elif where == "other-model":
                other.zero_grad()
            opt.step()

    report = watched(model, loop)
    f = found(report, "params_not_updating")
    if where == "dropped-batches":
        assert f is not None and f.severity == "low" and f.evidence["steps"] == [19, 39, 59]
        return
    if where != "between":
        assert f is None
        return
    assert f is not None and f.severity == "high" and report.findings[0] is f
    assert "between backward() and step()" in f.title and "opt.zero_grad()" in f.title
    assert f.evidence["zero_grad_line"].startswith("test_rules_loop.py:")


@pytest.mark.parametrize("clip", ["after-step", "before-step", "two-optimizers"])
def test_clipping_after_the_step_bounds_nothing_and_is_the_root_cause(clip: str) -> None:
    """clip_grad_norm_ after optimizer.step() (blind3's GRU forecaster): the step used the unclipped
    gradients of an over-large learning rate, and the loss blows up. Its twins clip before the step
    (the rate may still be high for LRN001 to judge, but the clipping is where it should be), one of
    them with two optimizers over one backward pass, each clipping its own layers before its step."""
    model, data = healthy_mlp()
    layers = [m for m in model if isinstance(m, nn.Linear)]
    opts = ([torch.optim.SGD(layers[0].parameters(), lr=2.0, momentum=0.9),
             torch.optim.SGD([p for m in layers[1:] for p in m.parameters()], lr=2.0, momentum=0.9)]
            if clip == "two-optimizers" else [torch.optim.SGD(model.parameters(), lr=2.0, momentum=0.9)])
    parts = [[layers[0]], layers[1:]] if clip == "two-optimizers" else [layers]

    def loop() -> None:
        for i in range(60):
            x, y = data.batch(i, 32)
            for opt in opts:
                opt.zero_grad()
            data.loss_fn(model(x), y).backward()
            for opt, part in zip(opts, parts):
                if clip != "after-step":
                    torch.nn.utils.clip_grad_norm_([p for m in part for p in m.parameters()], 0.1)
                opt.step()
                if clip == "after-step":
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)

    report = watched(model, loop)
    f = found(report, "ineffective_grad_clipping")
    if clip != "after-step":
        assert f is None
        return
    assert f is not None and report.findings[0] is f and f.severity == "high"
    assert f.evidence["clip_line"].startswith("test_rules_loop.py:") and f.evidence["max_norm"] == 0.1
    assert "between backward() and step()" in f.recommendations[0].description


@pytest.mark.parametrize("given", ["filter", "list", "filter-never-over"])
def test_clipping_given_a_used_up_iterator_clips_nothing(given: str) -> None:
    """blind9's `trainable = filter(...)` handed to the optimizer and then to clip_grad_norm_ every step:
    the optimizer read the iterator to its end, so every clipping sees no parameter and returns 0 while
    the gradients explode. Its twins: a list (clipping works), and the same filter with a limit the
    gradients never reach (nothing changed on this run: low)."""
    model, data = healthy_mlp()
    lr, max_norm = (0.05, 1e6) if given == "filter-never-over" else (2.0, 0.1)
    trainable = (filter(lambda p: p.requires_grad, model.parameters()) if given.startswith("filter")
                 else [p for p in model.parameters() if p.requires_grad])
    opt = torch.optim.SGD(trainable, lr=lr, momentum=0.9)

    def loop() -> None:
        for i in range(40):
            x, y = data.batch(i, 32)
            opt.zero_grad()
            data.loss_fn(model(x), y).backward()
            torch.nn.utils.clip_grad_norm_(trainable, max_norm)
            opt.step()

    report = watched(model, loop)
    f = found(report, "ineffective_grad_clipping")
    if given == "list":
        assert f is None
        return
    assert f is not None and "clips nothing" in f.title and f.evidence["parameters"] == "filter"
    assert f.evidence["same_iterator_again"] and f.evidence["clip_line"].startswith("test_rules_loop.py:")
    assert "a list, not filter" in (f.recommendations[0].implementation or "")
    if given == "filter-never-over":
        assert f.severity == "low"
    else:
        assert f.severity == "high" and report.findings[0] is f


def test_sparse_gradients_beside_another_models_zero_grad_keep_the_watch_on() -> None:
    """nn.Embedding(sparse=True) with SparseAdam, and a zero_grad of another model between backward and
    step: the check of what gradients are left reads sparse ones too, and the optimizers stay watched."""
    torch.manual_seed(0)
    emb, head, other = nn.Embedding(50, 8, sparse=True), nn.Linear(8, 2), nn.Linear(2, 2)
    model = nn.ModuleDict({"emb": emb, "head": head})
    opts = [torch.optim.SparseAdam(list(emb.parameters()), lr=1e-2), torch.optim.Adam(head.parameters(), lr=1e-2)]
    ids = torch.randint(0, 50, (64, 4), generator=torch.Generator().manual_seed(0))
    y = (ids[:, 0] % 2).long()

    def loop() -> None:
        for i in range(40):
            for o in opts:
                o.zero_grad()
            loss = F.cross_entropy(head(emb(ids).mean(1)), y)
            loss.backward()
            other.zero_grad()
            for o in opts:
                o.step()

    with md.watch(model, db=":memory:") as session:
        loop()
    assert not session.record.events("internal_error")
    assert session.record.n_steps >= 79  # both optimizers' steps, as each closes a step
    assert found(session.report(), "params_not_updating") is None


class _Files(Dataset):
    """Samples read one by one (from files, say); only the labels are held, as an array."""

    def __init__(self, n: int) -> None:
        self.labels = np.arange(n) % 2

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        return torch.full((4,), float(i)), int(self.labels[i])


def test_the_loader_described_is_the_training_one_and_in_memory_means_a_feature_array() -> None:
    """A validation pass read first without autograd (Lightning's sanity check) does not stand for the
    training loader; rows held in memory are a feature matrix (a Subset selects from one), not an
    array of labels beside samples read one by one."""
    from torch.utils.data import Subset

    from modeldebug.rules.context import Context
    from modeldebug.rules.resources import _loader_settings

    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    rows = _Rows(64)

    def loop() -> None:
        with torch.no_grad():
            for batch in DataLoader(_Files(64), batch_size=64):
                model(batch[0])
        for dataset in (Subset(rows, np.arange(32)), _Files(64)):
            for batch in DataLoader(dataset, batch_size=16):
                x = batch["x"][:, :4] if isinstance(batch, dict) else batch[0]
                opt.zero_grad()
                model(x).sum().backward()
                opt.step()

    with md.watch(model, db=":memory:") as session:
        loop()
    events = [e.data for e in session.record.events("dataloader")]
    assert [(e["dataset"], e["grad_enabled"], e["in_memory"]) for e in events] == [
        ("_Files", False, False), ("Subset", True, True), ("_Files", True, False)]
    assert _loader_settings(Context(session.record))["dataset"] == "Subset"


def test_a_slow_loader_feeding_several_optimizers_is_judged_per_batch() -> None:
    """MorvanZhou's optimizer comparison: four nets, each with its own optimizer, stepped in turn on
    every batch, so only the first of four steps waits for the loader. Judged per batch: the loader,
    not the gaps between steps in general."""
    model, data = healthy_cnn()
    nets = [healthy_mlp()[0] for _ in range(3)]
    opts = [torch.optim.SGD(m.parameters(), lr=0.01) for m in (model, *nets)]
    ds = _Decoded(data.x, data.y)

    def loop() -> None:
        for x, y in DataLoader(ds, batch_size=8, shuffle=True):
            for net, opt in zip((model, *nets), opts):
                opt.zero_grad()
                out = net(x) if net is model else net(torch.randn(8, 20))
                (data.loss_fn(out, y) if net is model else out.square().mean()).backward()
                opt.step()

    with md.watch(db=":memory:") as session:
        loop()
    f = found(session.report(), "dataloader_bottleneck")
    assert f is not None and f.evidence["uses_dataloader"] and f.title.startswith("Training waits for data")
    assert "iterations of 4" in f.description
