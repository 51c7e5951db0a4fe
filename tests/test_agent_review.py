"""The agent on the cases a review found it wrong on: NaN state, the user's RNG and hooks, scale, edges."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from modeldebug.agent import AnalysisOptions, DebuggingRequest, ModelDebuggingAgent
from modeldebug.agent.guard import ModelGuard


def data(n: int = 64, d: int = 20, c: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x, (x @ torch.randn(d, c, generator=g)).argmax(1)


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 4))


def fast(**kw):  # type: ignore[no-untyped-def]
    kw.setdefault("probe_steps", 20)
    kw.setdefault("verify_fixes", False)
    return AnalysisOptions(**kw)


def debug(model: nn.Module, batch=None, *, options=None, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("loss_fn", nn.CrossEntropyLoss())
    return ModelDebuggingAgent().debug_model(DebuggingRequest(model=model, batch=batch, options=options or fast(),
                                                              **kw))


# -- 1. NaN weights or gradients --------------------------------------------------------------------
def test_nan_weights_are_named_first_and_explain_the_rest_and_the_model_is_not_reported_changed() -> None:
    model = mlp()
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = debug(model, data(), issue="loss is nan", options=fast(verify_fixes=True))
    top = r.findings[0]
    assert (top.kind, top.severity) == ("nonfinite", "high") and "0.weight" in top.title, top.title
    assert not [f for f in r.findings if f.code in ("LOS001", "INI001", "PRB002")], [f.title for f in r.findings]
    assert r.model_unchanged and r.changed == []
    assert all(torch.equal(v.view(torch.int32), before[k].view(torch.int32)) for k, v in model.state_dict().items()
               if v.dtype == torch.float32)
    text = r.to_text()
    assert "nanx" not in text and "differ by up to nan" not in text and "Lower the learning rate" not in text
    assert [v.fix for v in r.fixes] == ["reinitialize"] and r.fixes[0].helped


def test_nan_gradients_are_named_and_the_users_gradient_tensors_stay_theirs() -> None:
    model = mlp()
    x, y = data()
    bad = x.clone()
    bad[0, 0] = float("nan")
    nn.CrossEntropyLoss()(model(bad), y).backward()  # the user's last step left NaN gradients
    grads = {n: p.grad for n, p in model.named_parameters()}
    r = debug(model, (x, y), issue="loss is nan")
    assert r.model_unchanged and r.changed == []
    assert all(p.grad is grads[n] for n, p in model.named_parameters())
    (f,) = [f for f in r.findings if f.kind == "nonfinite"]
    assert f.severity == "high" and "0.weight.grad" in f.title


def test_the_guard_puts_a_changed_gradient_back_into_the_users_own_tensor() -> None:
    model = mlp()
    model(data()[0]).sum().backward()
    g = model[0].weight.grad
    saved = g.clone()
    with ModelGuard(model) as guard:
        g.mul_(2)
    assert guard.changed == ["grad of 0.weight"] and model[0].weight.grad is g and torch.equal(g, saved)


# -- 2. the user's RNG ------------------------------------------------------------------------------
def test_a_shuffled_data_loader_does_not_advance_the_users_random_generator() -> None:
    x, y = data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True)
    model = mlp()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    debug(model, data=loader, options=fast(probe_steps=10))
    assert torch.equal(state, torch.get_rng_state())


# -- 9. the optimizer factory gets copies -----------------------------------------------------------
def test_the_optimizer_factory_never_sees_the_users_parameters_and_hooks_are_noticed() -> None:
    model = mlp()
    users = {id(p) for p in model.parameters()}
    seen: list[bool] = []

    def factory(params):  # type: ignore[no-untyped-def]
        params = list(params)
        seen.append(any(id(p) in users for p in params))
        for p in params:  # the optimizer-in-backward pattern registers a hook on every parameter
            p.register_post_accumulate_grad_hook(lambda q: None)
        return torch.optim.SGD(params, lr=0.1)

    r = debug(model, data(), optimizer_factory=factory, options=fast(verify_fixes=True))
    assert seen and not any(seen) and r.model_unchanged
    assert all(not p._post_accumulate_grad_hooks for p in model.parameters())
    with ModelGuard(model) as guard:  # and a hook that does get there is noticed and taken off
        model[0].weight.register_post_accumulate_grad_hook(lambda q: None)
        model.register_forward_hook(lambda m, i, o: None)
    assert guard.changed == ["hooks added to module the model", "hooks added to 0.weight"], guard.changed
    assert not model[0].weight._post_accumulate_grad_hooks and not model._forward_hooks


# -- 3. unnormalised inputs are used, not ignored ---------------------------------------------------
def work(model: nn.Module, batch, **kw):  # type: ignore[no-untyped-def]
    from modeldebug.agent.request import Workload

    kw.setdefault("loss_fn", nn.CrossEntropyLoss())
    return Workload(DebuggingRequest(model=model, batch=batch, **kw))


def pixels() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 20), generator=g).float()
    return x, ((x[:, :4] - 128) @ torch.randn(4, 4, generator=g)).argmax(1)


@pytest.mark.parametrize("batch", [(data()[0] * 1000 + 500, data()[1]), pixels()], ids=["x1000+500", "pixels"])
def test_unnormalised_inputs_that_the_model_learns_from_are_not_called_ignored(batch) -> None:  # type: ignore[no-untyped-def]
    from modeldebug.agent import probes

    result = probes.input_independent(work(mlp(), batch))
    assert result.verdict == "pass" and not result.findings, result.summary
    assert result.data["real_final"] < 0.5 * result.data["zeroed_final"]


# -- 4. a fix "helps" only when the loss falls ------------------------------------------------------
class Tok(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(50, 16)
        self.h = nn.Linear(16, 4)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.h(self.emb(ids).mean(1))


def tokens() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, 50, (64, 8), generator=torch.Generator().manual_seed(0))
    return ids, ids[:, 0] % 4


def sgd(lr: float):  # type: ignore[no-untyped-def]
    return lambda params: torch.optim.SGD(params, lr=lr)


def test_a_fix_after_a_blow_up_helps_only_when_the_loss_falls_below_its_start() -> None:
    from modeldebug.agent import fixes, probes

    w = work(Tok(), tokens(), optimizer_factory=sgd(200.0))
    (diverging,) = probes.overfit_one_batch(w).findings
    still = fixes.verify(fixes._Candidate("lower_lr", "a rate too low to move", "", {"lr": 1e-9}), diverging, w)
    assert math.isnan(still.before) and math.isfinite(still.after) and not still.helped, still.to_text()
    assert "did not learn" in still.note
    r = debug(Tok(), tokens(), optimizer_factory=sgd(200.0), options=fast(verify_fixes=True))
    lower = next(v for v in r.fixes if v.fix == "lower_lr")
    assert "e-08" not in lower.description and "e-07" not in lower.description, lower.description
    for v in r.fixes:
        assert not v.helped or v.after < 0.9 * 1.36, v.to_text()


# -- 8. the LR range test at the edges of its range ------------------------------------------------
def test_the_range_test_gives_no_verdict_above_its_range_and_no_suggestion_from_its_edges() -> None:
    from modeldebug.agent import probes

    x, y = data()
    above = probes.lr_range_test(work(mlp(), (x, y), optimizer_factory=sgd(50.0)))
    assert above.verdict == "inconclusive" and "outside the tested range" in above.summary, above.summary
    top = probes.lr_range_test(work(mlp(), (x, y), optimizer_factory=sgd(0.01)), hi=0.05)
    assert top.verdict == "inconclusive" and top.data["suggested_lr"] is None and "still falling" in top.summary
    flat = probes.lr_range_test(work(Tok(), tokens(), optimizer_factory=sgd(200.0)))
    assert flat.data["suggested_lr"] is None and "no minimum found" in flat.summary, flat.summary
    healthy = probes.lr_range_test(work(mlp(), (x, y), optimizer_factory=lambda p: torch.optim.Adam(p, lr=1e-3)))
    assert healthy.verdict == "pass" and 1e-4 < healthy.data["suggested_lr"] < 1e-1


# -- 5. mapping batches with a loss_fn --------------------------------------------------------------
class Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(20, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_a_mapping_batch_gives_its_target_entry_to_the_loss_not_to_the_model() -> None:
    from modeldebug.errors import BadInputError

    x, y = data()
    loader = [{"x": x[i:i + 16], "y": y[i:i + 16]} for i in range(0, 64, 16)]
    r = debug(Linear(), data=loader, options=fast(probe_steps=10))
    assert not [f for f in r.findings if f.category == "runtime"], [f.title for f in r.findings]
    w = work(Linear(), {"x": x, "label": y})
    assert set(w.batch[0]) == {"x"} and w.batch[1] is y

    class TakesLabels(nn.Module):  # forward() names it: the model gets it too
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(20, 4)

        def forward(self, x, labels=None, y=None):  # type: ignore[no-untyped-def]
            return self.fc(x)

    w = work(TakesLabels(), {"x": x, "labels": y})
    assert set(w.batch[0]) == {"x", "labels"} and w.batch[1] is y
    with pytest.raises(BadInputError, match="several target-like entries"):
        work(TakesLabels(), {"x": x, "labels": y, "y": y})


# -- 6. one repeated batch is no sample of the labels ----------------------------------------------
@pytest.mark.parametrize("n", [1, 8])
def test_label_distribution_rules_do_not_judge_one_repeated_batch(n: int) -> None:
    x, y = data()
    r = debug(mlp(), (x[:n], y[:n]))
    assert not [f for f in r.findings if f.code in ("DAT003", "LBL001")], [(f.code, f.title) for f in r.findings]


# -- 7. batch mixing with keyword and positional inputs, and why it was skipped ---------------------
class DictMix(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(20, 32)
        self.h = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.relu(self.a(x))
        return self.h(h.t().reshape(h.shape))  # the bug: mixes the batch axis


class TwoMix(DictMix):
    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Linear(5, 32)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        h = torch.relu(self.a(x) + self.b(z))
        return self.h(h.t().reshape(h.shape))


class Detached(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Sequential(nn.Linear(20, 32), nn.ReLU())
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x).detach())


def test_batch_mixing_is_found_through_keyword_and_positional_inputs_and_skips_say_why() -> None:
    from modeldebug.agent import probes

    x, y = data()
    keyword = probes.batch_mixing_probe(work(DictMix(), ({"x": x, "mask": torch.ones(64, 20)}, y)))
    assert keyword.verdict == "fail" and keyword.findings[0].kind == "batch_mixing", keyword.summary
    positional = probes.batch_mixing_probe(work(TwoMix(), ((x, torch.randn(64, 5)), y)))
    assert positional.verdict == "fail", positional.summary
    healthy = probes.batch_mixing_probe(work(DictMix().a, ({"input": x}, y)))
    assert healthy.verdict == "pass", healthy.summary
    detached = probes.batch_mixing_probe(work(Detached(), (x, y)))
    assert detached.verdict == "skipped" and "detached" in detached.summary, detached.summary
    small = probes.batch_mixing_probe(work(mlp(), (x[:2], y[:2])))
    assert small.verdict == "skipped" and "2 sample" in small.summary, small.summary


# -- 10. a model that cannot be copied --------------------------------------------------------------
class Locked(nn.Module):
    def __init__(self) -> None:
        import threading

        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(20, 4)
        self.lock = threading.Lock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.lock:
            return self.fc(x)


def test_a_model_that_cannot_be_copied_is_one_clear_error() -> None:
    from modeldebug.errors import BadInputError

    with pytest.raises(BadInputError, match=r"Locked cannot be copied .*lock.*keep locks"):
        debug(Locked(), data())


# -- 12. the request's fields are checked ------------------------------------------------------------
@pytest.mark.parametrize(("field", "value", "says"), [
    ("issue", 123, "request.issue must be the problem in words, a str"),
    ("issue", ["slow"], "got list"),
    ("issue", b"slow", "got bytes"),
    ("options", {"probe_steps": 10}, "request.options must be a modeldebug.AnalysisOptions"),
    ("probe_steps", 0, "options.probe_steps 0 must be a whole number of at least 5"),
    ("probe_steps", -1, "options.probe_steps -1"),
    ("seed", None, "options.seed None must be a whole number"),
    ("max_batches", 0, "options.max_batches 0"),
    ("memory_threshold_mb", "5", "options.memory_threshold_mb '5'"),
    ("loss_fn", nn.CrossEntropyLoss, r"the class CrossEntropyLoss, not a loss: pass an instance, CrossEntropyLoss\(\)"),
    ("visualizations", ["gradient_flow", "nope"], "unknown visualization 'nope'"),
])
def test_bad_request_fields_are_one_clear_error(field: str, value, says: str) -> None:  # type: ignore[no-untyped-def]
    from modeldebug.errors import BadInputError

    kw: dict = {"model": mlp(), "batch": data(), "loss_fn": nn.CrossEntropyLoss()}
    if field in ("probe_steps", "seed", "max_batches", "memory_threshold_mb"):
        kw["options"] = AnalysisOptions(**{field: value})
    else:
        kw[field] = value
    with pytest.raises(BadInputError, match=says):
        ModelDebuggingAgent().debug_model(DebuggingRequest(**kw))


def test_unknown_rules_in_the_config_and_one_visualization_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from modeldebug import DebuggingConfig
    from modeldebug.errors import UnknownRuleError

    with pytest.raises(UnknownRuleError, match="NOPE999"):
        ModelDebuggingAgent(DebuggingConfig(ignore=["NOPE999"])).debug_model(
            DebuggingRequest(model=mlp(), batch=data(), loss_fn=nn.CrossEntropyLoss()))
    r = debug(mlp(), data(), visualizations="gradient_flow", output_dir=str(tmp_path))
    assert list(r.visualizations) == ["gradient_flow"] and (tmp_path / "gradient_flow.svg").is_file()


# -- 15. what the messages say ------------------------------------------------------------------------
class Only64(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(20, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != 64:
            raise ValueError(f"batch must be 64, got {x.shape[0]}")
        return self.fc(x)


def test_a_range_test_that_crashes_says_so_not_that_the_loss_blew_up() -> None:
    from modeldebug.agent import probes

    result = probes.lr_range_test(work(Only64(), data()))
    assert result.verdict == "skipped" and "crashed" in result.summary and "batch must be 64, got 32" in result.summary
    assert "blew up" not in result.summary
