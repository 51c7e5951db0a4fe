"""Capture never changes training, never leaks a hook, and records what the rules need."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.modules import module as nn_module
from torch.optim import optimizer as optim_module

import modeldebug as md
from modeldebug.capture.tracer import Tracer
from modeldebug.record import RunWriter
from modeldebug.testing import healthy_cnn, healthy_mlp, healthy_regression, train

ORIGINAL_BACKWARD = torch.autograd.backward
ORIGINAL_OPT_INIT = torch.optim.Optimizer.__init__


def _no_hooks_left(model: nn.Module) -> None:
    assert not nn_module._global_forward_hooks
    assert not nn_module._global_forward_pre_hooks
    assert not optim_module._global_optimizer_pre_hooks
    assert not optim_module._global_optimizer_post_hooks
    assert torch.autograd.backward is ORIGINAL_BACKWARD
    assert torch.optim.Optimizer.__init__ is ORIGINAL_OPT_INIT
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks


@pytest.mark.parametrize("level", ["basic", "detailed", "comprehensive"])
@pytest.mark.parametrize("build", [healthy_mlp, healthy_cnn])
def test_loss_sequence_is_bit_identical_with_and_without_watching(build, level: str) -> None:
    model, data = build(seed=3)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(7)
    plain = train(model, data, steps=25)
    model.load_state_dict(state)
    torch.manual_seed(7)
    with md.watch(model, db=":memory:", level=level):
        watched = train(model, data, steps=25)
    assert plain == watched  # exact equality, not approximate


def test_dropout_rng_and_batchnorm_buffers_are_untouched_by_a_nonfinite_replay() -> None:
    # The replay of a NaN step must restore the RNG and BatchNorm statistics it touched.
    def run(watched: bool) -> list[float]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 1))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        x = torch.randn(16, 4)
        out = []
        ctx = md.watch(model, optimizer=opt, db=":memory:") if watched else None
        if ctx:
            ctx.__enter__()
        for step in range(6):
            opt.zero_grad()
            pred = model(x)
            loss = pred.mean() * (float("nan") if step == 2 else 1.0)
            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    p.grad = torch.nan_to_num(p.grad)
            opt.step()
            out.append(float(model[1].running_mean.sum()) + float(torch.rand(1)))
        if ctx:
            ctx.__exit__(None, None, None)
        return out

    assert run(False) == run(True)


def test_no_hook_is_left_after_normal_exit() -> None:
    model, data = healthy_mlp()
    with md.watch(model, db=":memory:"):
        train(model, data, steps=3)
    _no_hooks_left(model)


def test_no_hook_is_left_when_training_raises() -> None:
    model, data = healthy_mlp()
    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        with md.watch(model, db=":memory:"):
            model(torch.randn(4, 7))
    _no_hooks_left(model)


def test_steps_follow_optimizer_steps_with_gradient_accumulation() -> None:
    model, data = healthy_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for step in range(12):
            x, y = data.batch(step, 16)
            (data.loss_fn(model(x), y) / 4).backward()
            if step % 4 == 3:
                opt.step()
                opt.zero_grad()
    rec = s.record
    assert rec.n_steps == 3
    assert rec.column("n_backward").values.tolist() == [4, 4, 4]


def test_loops_without_an_optimizer_count_each_backward_as_a_step() -> None:
    torch.manual_seed(0)
    w = nn.Linear(3, 1)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    with md.watch(w, db=":memory:") as s:
        for _ in range(5):
            loss = ((w(x) - y) ** 2).mean()
            loss.backward()
            with torch.no_grad():
                for p in w.parameters():
                    p -= 0.1 * p.grad
                    p.grad = None
    losses = s.record.column("loss").values
    assert len(losses) == 5 and losses[0] > losses[-1]


def test_recorded_loss_and_gradient_norms_equal_direct_computation() -> None:
    model, data = healthy_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    direct_loss, direct_norm, direct_w0 = [], [], []
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for step in range(4):
            x, y = data.batch(step, 32)
            opt.zero_grad()
            loss = data.loss_fn(model(x), y)
            loss.backward()
            direct_loss.append(loss.item())
            direct_norm.append(math.sqrt(sum(float(p.grad.norm()) ** 2 for p in model.parameters())))
            direct_w0.append(float(model[0].weight.grad.norm()))
            opt.step()
    rec = s.record
    assert rec.column("loss").values.tolist() == pytest.approx(direct_loss, rel=1e-6)
    assert rec.column("grad_norm").values.tolist() == pytest.approx(direct_norm, rel=1e-5)
    # per-parameter norms on the sampled steps (0, 1, 2 at basic), the total on every step
    w0 = rec.series("0.weight", "grad_norm")
    assert w0.steps.tolist() == [0, 1, 2]
    assert w0.values.tolist() == pytest.approx(direct_w0[:3], rel=1e-6)


def test_activation_statistics_are_sampled_by_level() -> None:
    model, data = healthy_mlp()
    with md.watch(model, db=":memory:", level="basic") as s:
        train(model, data, steps=60)
    basic = s.record.series("0", "mean").steps.tolist()
    assert basic == [0, 1, 2, 5, 10, 20, 50]
    # at basic, each statistic where the rules read it: output scale of layers with weights,
    # dead units of ReLUs
    assert s.record.series("1", "dead_frac").steps.tolist() == basic
    assert len(s.record.series("1", "mean")) == 0 and len(s.record.series("0", "dead_frac")) == 0
    model, data = healthy_mlp()
    with md.watch(model, db=":memory:", level="comprehensive") as s:
        train(model, data, steps=6)
    assert s.record.series("1", "mean").steps.tolist() == list(range(6))
    assert len(s.record.histograms("1")) == 6


def test_the_module_that_produced_a_nan_is_named_not_its_followers() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.act, self.fc2, self.fc3 = nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc3(self.fc2(self.act(self.fc1(x))))

    torch.manual_seed(0)
    model = Net()
    with torch.no_grad():
        model.fc2.weight[0, 0] = float("inf")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        opt.zero_grad()
        model(torch.rand(8, 4) + 0.1).mean().backward()
        opt.step()
    ev = s.record.events("nonfinite")
    assert ev and ev[0].data["origin"]["module"] == "fc2"
    assert ev[0].data["origin"]["where"] == "module"


def test_nan_from_the_input_batch_is_blamed_on_the_data() -> None:
    model, _ = healthy_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(8, 20)
    x[3, 5] = float("nan")
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    assert s.record.events("nonfinite")[0].data["origin"]["where"] == "input"


def test_the_module_running_when_a_crash_happened_is_recorded() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(5, 2)))
    with pytest.raises(RuntimeError):
        with md.watch(model, db=":memory:") as s:
            model(torch.randn(3, 4))
    ev = s.record.events("exception")[0].data
    assert ev["module"] == "2.0" and ev["phase"] == "forward" and ev["type"] == "RuntimeError"


def test_a_failing_probe_is_switched_off_and_recorded_never_raised() -> None:
    writer = RunWriter(":memory:")
    tracer = Tracer(writer)

    def broken(*args: object) -> None:
        raise ValueError("probe bug")

    tracer.call("forward", broken, None)  # must not raise
    assert "forward" in tracer._disabled
    writer.flush()
    events = writer.conn.execute("SELECT kind, data FROM events").fetchall()
    assert events[0][0] == "internal_error" and "probe bug" in events[0][1]


def test_watch_rejects_what_is_not_a_model() -> None:
    with pytest.raises(md.BadInputError, match="nn.Module"):
        md.watch("model")  # type: ignore[arg-type]


def test_watch_discovers_an_optimizer_created_inside_the_block() -> None:
    model, data = healthy_mlp()
    with md.watch(model, db=":memory:") as s:
        train(model, data, steps=3)  # builds its own Adam
    assert s.record.meta["optimizers"] == ["Adam"]
    assert s.record.n_steps == 3
    assert s.record.column("lr").values.tolist() == [0.01] * 3


def test_watch_takes_the_optimizer_positionally_too() -> None:
    """`watch(model, opt)`: the one-line form people write first."""
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with md.watch(model, opt, db=":memory:") as s:
        for _ in range(3):
            opt.zero_grad()
            model(torch.randn(8, 4)).pow(2).mean().backward()
            opt.step()
    assert s.record.meta["optimizers"] == ["SGD"] and s.record.n_steps == 3
    with pytest.raises(md.BadInputError, match="got str"):
        md.watch(model, "adam")


def test_a_closure_step_is_measured_after_its_closure_runs() -> None:
    """LBFGS (and Lightning) run forward and backward inside optimizer.step(closure)."""
    torch.set_num_threads(1)
    model, data = healthy_regression()
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4)
    losses = []
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for step in range(5):
            x, y = data.batch(step, 64)

            def closure() -> torch.Tensor:
                opt.zero_grad()
                loss = data.loss_fn(model(x), y)
                loss.backward()
                return loss

            losses.append(opt.step(closure).item())  # LBFGS returns its first evaluation's loss
    record = session.record
    assert record.n_steps == 5
    assert record.column("loss").values.tolist() == pytest.approx(losses)
    assert (record.column("grad_norm").values > 0).all()
    assert (record.column("n_backward").values > 1).all()


def test_session_step_marks_hand_written_steps_and_rejects_a_loss_that_is_not_one_number() -> None:
    from modeldebug.errors import BadInputError

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    with md.watch(model, db=":memory:") as s:
        for _ in range(5):  # no optimizer object: the update by hand, the step marked by hand
            model.zero_grad()
            out = model(x)
            loss = ((out - y) ** 2).mean()
            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.05 * p.grad
            s.step(loss.item())
        with pytest.raises(BadInputError, match="loss must be one number"):
            s.step(out)
        with pytest.raises(BadInputError, match="must be a number or a tensor"):
            s.step("0.5")  # type: ignore[arg-type]
    losses = s.record.column("loss")
    assert len(losses) == 5 and np.all(np.diff(losses.values) < 0)  # the loss fell, step by step
