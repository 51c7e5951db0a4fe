"""Patches that cannot leak: every patched function works while watched and is itself again after;
overlapping sessions close in any order; an exception inside changes nothing; a user's own patch
made while watching survives."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.modules import module as nn_module
from torch.optim import optimizer as optim_module
from torch.utils.data import DataLoader, TensorDataset

import modeldebug as md
from modeldebug.capture.patches import LOSS_FUNCTIONS, PATCHES, TARGETS

GLOBAL_TABLES = ("_global_forward_pre_hooks", "_global_forward_hooks", "_global_forward_hooks_always_called",
                 "_global_backward_pre_hooks", "_global_backward_hooks")


def _patchable() -> dict[tuple[int, str], Any]:
    """Every attribute capture may replace, as it is now."""
    out = {(id(t.locate()), t.name): getattr(t.locate(), t.name) for t in TARGETS}
    out[(id(nn_module), "_has_any_global_hook")] = nn_module._has_any_global_hook
    return out


ORIGINAL = _patchable()


def _nothing_left(model: nn.Module | None = None) -> None:
    """The hook-leak check: no patch, no global hook, no module hook of ours anywhere."""
    assert _patchable() == ORIGINAL
    assert PATCHES.installed() == [] and PATCHES.sessions == ()
    for name in GLOBAL_TABLES:
        assert not getattr(nn_module, name), name
    assert not optim_module._global_optimizer_pre_hooks and not optim_module._global_optimizer_post_hooks
    for m in model.modules() if model is not None else ():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks


def _model() -> tuple[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    return model, torch.optim.SGD(model.parameters(), lr=0.1), torch.randn(16, 6), torch.randint(0, 3, (16,))


def _step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return float(loss.detach())


def test_every_patched_function_is_wrapped_while_watching_and_itself_after() -> None:
    model, opt, x, y = _model()
    with md.watch(model, optimizer=opt, db=":memory:"):
        now = _patchable()
        replaced = {key for key in ORIGINAL if now[key] is not ORIGINAL[key]}
        assert replaced == set(ORIGINAL)  # the default selection needs every probe
        for t in TARGETS:
            assert getattr(t.locate(), t.name).__wrapped__ is ORIGINAL[(id(t.locate()), t.name)]
    _nothing_left(model)


def test_every_patched_function_still_works_and_is_seen() -> None:
    model, _, x, y = _model()
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    with md.watch(model, db=":memory:") as session:
        opt = torch.optim.SGD(model.parameters(), lr=0.1)  # Optimizer.__init__: known before its first step
        for step, (xb, yb) in enumerate(loader):  # _BaseDataLoaderIter.__next__
            model.zero_grad()  # Module.zero_grad
            opt.zero_grad()  # Optimizer.zero_grad
            out = model(xb)
            loss = nn.functional.cross_entropy(out, yb) + nn.functional.mse_loss(out, torch.zeros_like(out))
            if step == 0:
                loss.backward()  # Tensor.backward -> torch.autograd.backward
            else:
                torch.autograd.backward(loss)
            total = (torch.nn.utils.clip_grad_norm_ if step == 0 else torch.nn.utils.clip_grad.clip_grad_norm_)(
                model.parameters(), 0.5)
            assert isinstance(total, torch.Tensor)
            opt.step()
    rec = session.record
    assert rec.n_steps == 2 and rec.meta["optimizers"] == ["SGD"]
    assert rec.column("zero_grad_calls").values.tolist() == [2, 2]
    assert rec.column("clip_max").values.tolist() == [0.5, 0.5]
    assert (rec.column("t_loader").values > 0).all() and (rec.column("t_backward").values > 0).all()
    assert {e.name for e in rec.entities("loss")} >= {"cross_entropy", "mse_loss"}
    _nothing_left(model)


def _loss_args(name: str) -> tuple[Any, ...]:
    torch.manual_seed(1)
    x = torch.randn(8, 4, requires_grad=True)
    classes, probs01 = torch.randint(0, 4, (8,)), torch.rand(8, 4)
    return {
        "cross_entropy": (x, classes), "nll_loss": (x.log_softmax(1), classes), "multi_margin_loss": (x, classes),
        "binary_cross_entropy": (x.sigmoid(), probs01), "binary_cross_entropy_with_logits": (x, probs01),
        "multilabel_soft_margin_loss": (x, probs01.round()), "kl_div": (x.log_softmax(1), probs01.softmax(1)),
        "poisson_nll_loss": (x, probs01 * 3), "gaussian_nll_loss": (x, probs01, torch.ones(8, 4)),
        "soft_margin_loss": (x, probs01.round() * 2 - 1),
    }.get(name, (x, probs01))


@pytest.mark.parametrize("name", LOSS_FUNCTIONS)
def test_every_functional_loss_gives_the_same_value_watched_and_is_recorded(name: str) -> None:
    model, _, _, _ = _model()
    fn = getattr(nn.functional, name)
    kwargs = {"reduction": "batchmean"} if name == "kl_div" else {}
    plain = fn(*_loss_args(name), **kwargs)
    with md.watch(model, db=":memory:") as session:
        watched = getattr(nn.functional, name)(*_loss_args(name), **kwargs)
        watched.backward()
    assert torch.equal(plain, watched)
    (loss,) = [e for e in session.record.entities("loss") if e.type == name]
    assert loss.info["phase"] == "train" and loss.info["input_shape"] == [8, 4]
    assert len(session.record.series(loss.name, "in_max", kind="loss")) == 1
    _nothing_left(model)


def test_a_narrow_selection_patches_only_what_it_needs() -> None:
    model, opt, x, y = _model()
    with md.watch(model, optimizer=opt, db=":memory:", config=md.DebuggingConfig(select=["ACT"])):
        assert nn.functional.cross_entropy is ORIGINAL[(id(nn.functional), "cross_entropy")]
        assert torch.autograd.backward is not ORIGINAL[(id(torch.autograd), "backward")]
        _step(model, opt, x, y)
    _nothing_left(model)


@pytest.mark.parametrize("first_out", ["outer", "inner"])
def test_overlapping_sessions_close_in_either_order(first_out: str) -> None:
    model, opt, x, y = _model()
    outer = md.watch(model, optimizer=opt, db=":memory:")
    inner = md.watch(model, optimizer=opt, db=":memory:")
    outer.__enter__()
    _step(model, opt, x, y)
    inner.__enter__()
    both = [_step(model, opt, x, y) for _ in range(2)]
    first, second = (outer, inner) if first_out == "outer" else (inner, outer)
    first.__exit__(None, None, None)
    assert PATCHES.sessions == (second.tracer,)
    assert torch.autograd.backward is not ORIGINAL[(id(torch.autograd), "backward")]
    last = _step(model, opt, x, y)  # the session still open keeps recording
    second.__exit__(None, None, None)
    _nothing_left(model)
    assert outer.record.n_steps == (4 if first_out == "inner" else 3)
    assert inner.record.n_steps == (2 if first_out == "inner" else 3)
    # the same steps seen by both sessions have the same losses: one call, fanned out to both
    assert inner.record.column("loss").values.tolist()[:2] == pytest.approx(both)
    assert outer.record.column("loss").values.tolist()[1:3] == pytest.approx(both)
    assert second.record.column("loss").values.tolist()[-1] == pytest.approx(last)


def test_an_exception_inside_nested_sessions_leaves_nothing() -> None:
    model, opt, x, y = _model()
    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        with md.watch(model, optimizer=opt, db=":memory:") as outer:
            with md.watch(model, optimizer=opt, db=":memory:") as inner:
                _step(model, opt, x, y)
                model(torch.randn(4, 5))
    _nothing_left(model)
    for session in (outer, inner):
        (crash,) = session.record.events("exception")
        assert crash.data["module"] == "0" and session.record.meta["status"] == "crashed"


def test_a_users_own_patch_made_while_watching_survives_the_session() -> None:
    model, opt, x, y = _model()
    calls: list[int] = []
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        ours = torch.autograd.backward

        def users_backward(*args: Any, **kwargs: Any) -> Any:  # a user's profiler, say
            calls.append(1)
            return ours(*args, **kwargs)

        torch.autograd.backward = users_backward
        try:
            _step(model, opt, x, y)
        except BaseException:
            torch.autograd.backward = ORIGINAL[(id(torch.autograd), "backward")]
            raise
    try:
        assert torch.autograd.backward is users_backward  # still the user's
        assert session.record.n_steps == 1 and calls == [1]
        assert PATCHES.installed() == [] and PATCHES.sessions == ()
        loss = _step(model, opt, x, y)  # works; ours inside it is a pass-through now
        assert calls == [1, 1] and session.record.n_steps == 1 and loss > 0
        with md.watch(model, optimizer=opt, db=":memory:") as again:  # a later session wraps the user's
            _step(model, opt, x, y)
        assert again.record.n_steps == 1 and calls == [1, 1, 1]
        assert torch.autograd.backward is users_backward
    finally:
        torch.autograd.backward = ORIGINAL[(id(torch.autograd), "backward")]
    _nothing_left(model)


def test_a_failing_attach_leaves_nothing_behind() -> None:
    model, opt, _, _ = _model()
    session = md.watch(model, optimizer=opt, db=":memory:")
    with pytest.raises(ValueError, match="no patch target"):
        PATCHES.attach(session.tracer, {"no_such_function": None})  # type: ignore[dict-item]
    _nothing_left(model)
