"""What makes watching cheap must not lose what the rules read.

Module calls reach capture on sampled steps only (one pre-hook per watched model otherwise), so:
the per-step columns are still there on every step, the per-layer detail on sampled steps; a crash
on an unsampled step still names its module (from the traceback); a watched model can be copied and
pickled while the hook is on it; the many-small-tensors gradient path gives the same numbers.
"""

from __future__ import annotations

import copy
import io
import itertools
import math
import sqlite3
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.modules import module as nn_module

import modeldebug as md
from modeldebug.capture.roots import RootHook
from modeldebug.record import Record, RunWriter
from modeldebug.testing import healthy_mlp

SAMPLED = {0, 1, 2, 5, 10, 20}


def _loop(model: nn.Module, opt: torch.optim.Optimizer, steps: int, seen: list[bool] | None = None,
          batch: int = 16) -> list[float]:
    torch.manual_seed(1)
    losses = []
    for _ in range(steps):
        x, y = torch.randn(batch, 8), torch.randint(0, 3, (batch,))
        if seen is not None:
            seen.append(bool(nn_module._global_forward_pre_hooks))
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def test_module_calls_reach_capture_on_sampled_steps_only_and_every_step_is_recorded() -> None:
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen: list[bool] = []
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        losses = _loop(model, opt, 12, seen)
    assert [i for i, on in enumerate(seen) if on] == sorted(SAMPLED & set(range(12)))
    assert not nn_module._global_forward_pre_hooks and not model._forward_pre_hooks
    rec = s.record
    assert rec.column("loss").values.tolist() == pytest.approx(losses, rel=1e-6)
    assert len(rec.column("grad_norm").finite()) == 12
    assert len(rec.column("t_forward").finite()) == 12 and len(rec.column("t_cpu").finite()) == 12
    assert (rec.column("t_cpu").values >= 0).all()
    assert rec.series("0", "mean").steps.tolist() == [0, 1, 2, 5, 10]


class Flaky(nn.Linear):
    """A Linear layer that raises once told to (a bug that shows up mid-run)."""

    fail = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fail:
            raise RuntimeError("shapes cannot be multiplied")
        return super().forward(x)


def test_a_crash_on_an_unsampled_step_names_the_module_from_the_traceback() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Sequential(Flaky(16, 3)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(RuntimeError), md.watch(model, optimizer=opt, db=":memory:") as s:
        _loop(model, opt, 3)  # steps 0-2 (sampled); step 3 is not
        assert not nn_module._global_forward_pre_hooks
        model[2][0].fail = True  # raises inside 2.0 at step 3
        _loop(model, opt, 1)
    (ev,) = [e.data for e in s.record.events("exception")]
    assert ev["module"] == "2.0" and ev["phase"] == "forward"


def test_a_crash_outside_the_model_is_not_blamed_on_a_module() -> None:
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError), md.watch(model, optimizer=opt, db=":memory:") as s:
        _loop(model, opt, 4)
        raise ValueError("the user's own bug, after the forward pass")
    (ev,) = [e.data for e in s.record.events("exception")]
    assert ev["module"] is None and ev["phase"] != "forward"


def test_a_watched_model_can_be_copied_and_pickled_and_the_copies_carry_nothing_of_ours(tmp_path: Path) -> None:
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with md.watch(model, optimizer=opt, db=str(tmp_path / "run.db")):
        _loop(model, opt, 4)
        assert any(isinstance(h, RootHook) for h in model._forward_pre_hooks.values())
        ema = copy.deepcopy(model)
        buf = io.BytesIO()
        torch.save(model, buf)
        _loop(model, opt, 2)
    assert not model._forward_pre_hooks  # removed at the end
    assert all(h.fn is None for h in ema._forward_pre_hooks.values())  # the copy's hook is inert
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert not any(isinstance(h, RootHook) for h in loaded._forward_pre_hooks.values())
    x = torch.randn(4, 8)
    assert torch.equal(loaded(x), ema(x))  # the stand-in hook changes nothing


@pytest.mark.parametrize("widths", [[8] * 21, [8 + i for i in range(21)]], ids=["one-shape-stacked", "flat-buffer"])
def test_many_small_gradients_give_the_same_norms_as_a_direct_computation(widths: list[int]) -> None:
    torch.manual_seed(0)
    layers = [m for a, b in itertools.pairwise(widths) for m in (nn.Linear(a, b), nn.Tanh())]
    model = nn.Sequential(nn.Linear(8, widths[0]), *layers, nn.Linear(widths[-1], 3))  # 44 small tensors
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    direct, first = [], []
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        torch.manual_seed(1)
        for step in range(8):  # steps 3, 4, 6 and 7 unsampled: the total alone
            x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            (loss * 1e21 if step == 6 else loss).backward()  # a total above float32's range
            direct.append(math.sqrt(sum(float(p.grad.double().norm()) ** 2 for p in model.parameters())))
            first.append(float(model[0].weight.grad.norm()))
            opt.param_groups[0]["lr"] = 0.0 if step == 6 else 0.05  # not to be applied
            opt.step()
    rec = s.record
    assert direct[6] > 2e19  # its square overflows float32
    assert rec.column("grad_norm").values.tolist() == pytest.approx(direct, rel=1e-5)
    assert rec.series("0.weight", "grad_norm").values.tolist() == pytest.approx([first[i] for i in (0, 1, 2, 5)], rel=1e-6)


def test_a_non_finite_gradient_on_an_unsampled_step_is_traced_to_its_parameter() -> None:
    model, data = healthy_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for step in range(5):
            x, y = data.batch(step, 16)
            opt.zero_grad()
            data.loss_fn(model(x), y).backward()
            if step == 4:  # not a sampled step; the loss was finite
                model[-1].bias.grad[0] = float("inf")
            opt.step()
    (ev,) = [e.data for e in s.record.events("nonfinite")]
    assert ev["what"] == "gradient" and ev["params"] and ev["params"][-1].endswith("bias")


def test_a_schema_2_record_reads_t_cpu_as_not_measured(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    w = RunWriter(path)
    w.add_step(0, loss=1.0, sampled=True)
    w.set_meta(schema_version=2)
    w.close()
    with sqlite3.connect(path) as c:  # the layout of version 2: no t_cpu column
        c.execute("ALTER TABLE steps DROP COLUMN t_cpu")
    rec = Record.open(path)
    assert rec.column("loss").values.tolist() == [1.0]
    assert math.isnan(rec.column("t_cpu").values[0])


def test_inactive_fraction_counts_units_alive_on_almost_no_sample() -> None:
    from modeldebug.capture.stats import ACTIVATION_STATS, activation_stats

    x = torch.rand(200, 10) + 0.1  # every unit active
    x[:, :3] = 0.0  # 3 units dead
    x[1:, 3:5] = 0.0  # 2 units alive on 1 sample of 200 (0.5%): inactive, not dead
    x[:150, 5] = 0.0  # alive on a quarter of the batch: neither
    stats = dict(zip(ACTIVATION_STATS, activation_stats(x).tolist()))
    assert stats["dead_frac"] == pytest.approx(0.3)
    assert stats["inactive_frac"] == pytest.approx(0.5)
    assert stats["zero_frac"] == pytest.approx((600 + 2 * 199 + 150) / 2000)
    healthy = dict(zip(ACTIVATION_STATS, activation_stats(torch.rand(200, 10) + 0.1).tolist()))
    assert healthy["inactive_frac"] == 0.0 and healthy["dead_frac"] == 0.0


def test_a_loop_without_an_optimizer_records_weight_norms_on_sampled_steps() -> None:
    model = _net()
    with md.watch(model, db=":memory:") as s:
        torch.manual_seed(1)
        for step in range(6):
            x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
            model.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
        norms = float(model[0].weight.detach().norm())
    w = s.record.series("0.weight", "param_norm")
    assert w.steps.tolist() == [0, 1, 2, 5]  # each backward pass is a step here; the sampled ones
    assert w.values[-1] == pytest.approx(norms, rel=1e-6)  # after the last hand-written update


def test_a_watched_model_can_be_scripted_and_its_copy_sheds_the_hook() -> None:
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(4, 8)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        _loop(model, opt, 4)
        scripted = torch.jit.script(model)  # torch would try to compile a Python hook on the model
        assert torch.equal(scripted(x), model(x))
        assert any(isinstance(h, RootHook) for h in model._forward_pre_hooks.values())  # put back
        ema = copy.deepcopy(model)
        ema(x)  # the copy's inert hook takes itself off at its first call
        assert not ema._forward_pre_hooks
        _loop(model, opt, 2)
    assert torch.jit.script(ema)(x).shape == (4, 3)
    assert s.record.n_steps == 6 and s.record.events("internal_error") == []


@pytest.mark.parametrize("shape", [(32, 16), (8, 12, 20), (4, 3, 5, 6), (1, 5)])
def test_batched_statistics_equal_one_module_at_a_time(shape: tuple[int, ...]) -> None:
    from modeldebug.capture.stats import activation_stats, activation_stats_batched

    torch.manual_seed(0)
    xs = [torch.randn(*shape).relu() for _ in range(4)]
    xs[1][:, :1] = 0.0  # a dead unit
    xs[2].view(-1)[0] = float("nan")
    batched = activation_stats_batched(torch.stack(xs))
    one_by_one = torch.stack([activation_stats(x) for x in xs])
    assert torch.allclose(batched, one_by_one, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_a_deep_model_at_detailed_records_every_layer_once_per_sampled_step() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(30) for m in (nn.Linear(8, 8), nn.ReLU(inplace=True))], nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with md.watch(model, optimizer=opt, db=":memory:", level="detailed") as s:
        torch.manual_seed(1)
        x = torch.randn(16, 8)
        _loop(model, opt, 6)
        probe = model[0](x)  # what the first layer gives (the in-place ReLU after it overwrites it in training)
    rec = s.record
    means = rec.series("0", "mean")
    assert means.steps.tolist() == [0, 1, 2, 5]  # the early steps, then every 5th at detailed
    assert len(rec.frame("std", kind="module").series(rec.entity("58").id).steps) == 4
    mins = rec.series("0", "min").values
    assert (mins < 0).all()  # the Linear's own output, copied before the in-place ReLU zeroed it
    assert float(probe.detach().min()) < 0


def test_a_model_saved_whole_while_watched_loads_with_weights_only(tmp_path: Path) -> None:
    """word_lm: ``torch.save(model, f)`` during training, ``torch.load(f)`` (weights_only) with the
    model's classes allowed: nothing of modeldebug may be in the file."""
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with md.watch(model, optimizer=opt, db=str(tmp_path / "run.db")):
        _loop(model, opt, 3)
        torch.save(model, tmp_path / "best.pt")
        torch.save({"model": model, "epoch": 3}, tmp_path / "ckpt.pt")
        assert any(isinstance(h, RootHook) for h in model._forward_pre_hooks.values())  # put back
        _loop(model, opt, 2)
    with torch.serialization.safe_globals([nn.Sequential, nn.Linear, nn.ReLU]):
        loaded = torch.load(tmp_path / "best.pt")
        ckpt = torch.load(tmp_path / "ckpt.pt")
    assert not loaded._forward_pre_hooks and not ckpt["model"]._forward_pre_hooks
    assert loaded(torch.randn(2, 8)).shape == (2, 3)


def test_an_unsampled_step_runs_little_python_of_ours() -> None:
    """A count, not a time (benchmarks/step_calls.py): watching a small model costs mostly Python
    frames that run cold after the step's kernels. 94 frames of ours a step before issue 17's second
    pass, 41 after it; this bound catches a hot path that grows back, not noise."""
    import sys

    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))

    def step() -> None:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    frames: list[str] = []

    def profile(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call" and "modeldebug" in frame.f_code.co_filename:
            frames.append(frame.f_code.co_name)

    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for _ in range(30):
            step()
        assert not s.tracer.sampled()
        sys.setprofile(profile)
        try:
            step()
        finally:
            sys.setprofile(None)
    assert s.record.column("loss").steps.tolist()[-1] == 30
    assert 10 < len(frames) <= 60, frames


def test_the_weight_copies_kept_between_sampled_steps_go_with_the_session() -> None:
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        _loop(model, opt, 3)
        assert s.tracer.updates._kept is not None  # the copies made for step 0-2's update ratios
    assert s.tracer.updates._kept is None
    assert s.record.frame("update_ratio").values.size > 0  # measured all the same


@pytest.mark.parametrize("level", ["basic", "detailed", "comprehensive"])
def test_nothing_of_a_step_is_held_into_the_next_one(level: str, tmp_path: Path) -> None:
    """After `zero_grad()` the last step's gradients, output, loss and batch are the user's to free:
    holding them would add a whole set of gradients to the next step's peak memory."""
    import weakref

    torch.manual_seed(0)
    model = _net()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    with md.watch(model, optimizer=opt, db=tmp_path / "r.db", level=level):
        for step in range(6):  # steps 0-2 and 5 are sampled
            x, y = torch.randn(4, 8), torch.randint(0, 3, (4,))
            opt.zero_grad()
            out = model(x)
            loss = nn.functional.cross_entropy(out, y)
            loss.backward()
            opt.step()
        refs = {"gradient": weakref.ref(model[0].weight.grad), "output": weakref.ref(out),
                "loss": weakref.ref(loss), "batch": weakref.ref(x)}
        del out, loss, x
        opt.zero_grad()
        model(torch.randn(4, 8))
        assert [k for k, r in refs.items() if r() is not None] == []


def test_a_model_above_the_copy_budget_gets_sampled_update_ratios_and_exact_weight_norms() -> None:
    """Over 64 MiB of weights, the copy made before a sampled step is of every k-th value: the peak
    memory grows by at most the budget, not by a whole copy of the model, and the ratios stay close."""
    from modeldebug.capture import updates

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4200, 4200), nn.ReLU(), nn.Linear(4200, 3))
    assert sum(p.numel() * 4 for p in model.parameters()) > updates._COPY_MAX_BYTES
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    truth: dict[int, list[tuple[float, float]]] = {}
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for step in range(3):
            x, y = torch.randn(2, 4200), torch.randint(0, 3, (2,))
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            before = [p.detach().clone() for p in model.parameters()]
            opt.step()
            truth[step] = [(float((b - p).norm() / p.norm()), float(p.norm()))
                           for b, p in zip(before, (q.detach() for q in model.parameters()))]
            del before
        names = [n for n, _ in model.named_parameters()]
    for step, values in truth.items():
        for name, (r, w) in zip(names, values):
            ratio, norm = s.record.series(name, "update_ratio"), s.record.series(name, "param_norm")
            got_r = ratio.values[ratio.steps.tolist().index(step)]
            got_w = norm.values[norm.steps.tolist().index(step)]
            assert got_r == pytest.approx(r, rel=0.05), (step, name)
            assert got_w == pytest.approx(w, rel=1e-5), (step, name)
    # what the copy takes: within the budget (the first weight's 17.6M values: every 2nd; no stride
    # of 2 to 4 shares no factor with its rows' 4,200, so every row, its even columns)
    views = updates._samples([p.detach() for p in model.parameters()])
    assert views is not None and views[0].stride() == (2,)
    assert sum(v.numel() * 4 for v in views) <= updates._COPY_MAX_BYTES + len(views) * updates._MIN_SAMPLE * 4


def test_the_sampled_copy_holds_a_value_of_every_row_of_a_matrix() -> None:
    """An embedding's rows are updated alone (the ids of a batch): a sample that skipped rows would
    read an update of those rows as "never moved" (OPT001)."""
    from modeldebug.capture import updates

    ballast = torch.empty(70_000_000)  # 280 MB: every 5th value (never written: no pages touched)
    emb = torch.empty(5000, 4)
    lin = torch.empty(600, 1024)
    views = updates._samples([ballast, emb, lin])
    assert views is not None and views[0].stride() == (5,)
    for matrix, view in ((emb, views[1]), (lin, views[2])):
        step = view.stride()[0] if view.dim() == 1 else 1
        rows, cols = matrix.shape
        assert step <= cols and math.gcd(step, cols) == 1
        hit = set(range(0, matrix.numel(), step))
        assert {i // cols for i in hit} == set(range(rows))  # every row
        assert len({i % cols for i in hit}) == cols  # ... over every column


@pytest.mark.parametrize("level", ["basic", "comprehensive"])
def test_the_loss_input_is_not_held_once_the_loss_is_computed(level: str, tmp_path: Path) -> None:
    """Backward frees a loss input that no graph node saved (a language model's logits, a GB) as soon
    as the loss is computed; the repro bundle's reference to the loss call must not keep it alive."""
    import weakref

    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    alive = []
    with md.watch(model, optimizer=opt, db=tmp_path / "r.db", level=level):  # a file: the bundle armed
        for _ in range(4):
            x, y = torch.randn(4, 8), torch.randint(0, 3, (4,))
            opt.zero_grad()
            logits = model(x) * 1.0  # (a product by a constant saves nothing of its input)
            loss = nn.functional.cross_entropy(logits, y)  # (log_softmax saves its output, not its input)
            ref = weakref.ref(logits)
            del logits
            alive.append(ref() is not None)
            loss.backward()
            opt.step()
    assert alive == [False] * 4


@pytest.mark.parametrize("in_optimizer", [True, False], ids=["updated-rows", "never-updated"])
def test_a_sample_that_skips_rows_says_unknown_not_never_moved(in_optimizer: bool) -> None:
    """Rows of one value (an `Embedding(n, 1)`) in a model of 3x the copy budget: the sample holds
    every 3rd row. An update of other rows alone is unknown (NaN), not "never moved" (OPT001); a
    matrix that does not move at all (its group's rate is 0) still reads 0, and OPT001 finds it."""
    from modeldebug.capture import updates
    from modeldebug.rules import analyze

    torch.manual_seed(0)
    model = nn.ModuleDict({"emb": nn.Embedding(300_000, 1), "ballast": nn.Linear(6000, 6000)})  # 144 MB
    emb, ballast = model["emb"], model["ballast"]
    opt = torch.optim.SGD([{"params": ballast.parameters()},
                           {"params": emb.parameters(), "lr": 0.1 if in_optimizer else 0.0}], lr=0.1)
    views = updates._samples([p.detach() for p in model.parameters()])
    assert views is not None and updates._skips_rows(emb.weight, views[0]) and views[0].stride() == (3,)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for step in range(3):
            ids = torch.tensor([3 * step + 1, 3 * step + 2])  # rows the sample skips
            opt.zero_grad()
            (emb(ids).sum() + ballast(torch.randn(1, 6000)).square().mean()).backward()
            opt.step()
    ratios = s.record.series("emb.weight", "update_ratio").values.tolist()
    codes = {f.code for f in analyze(s.record)}
    if in_optimizer:
        assert len(ratios) == 3 and all(math.isnan(r) for r in ratios)
        assert "OPT001" not in codes
    else:
        assert ratios == [0.0, 0.0, 0.0]
        assert "OPT001" in codes
