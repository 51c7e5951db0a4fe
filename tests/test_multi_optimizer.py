"""Several optimizers stepping in turn: four models compared in one loop, a GAN's two players.

Each optimizer step closes a step, so the optimizers take the steps in turn. A sample must see every
one of them (a sampler's interval that is a multiple of their cycle would see one only), and a
sampled step measures the updates of the optimizer that stepped, not the weights another one left
alone (those did not "never move").
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from helpers import serious
from torch import nn

import modeldebug as md


def _four_nets(lrs: list[float], steps: int = 60):  # type: ignore[no-untyped-def]
    """Four small regressors, each with its own optimizer, trained on the same batch one after the
    other, as tutorials compare optimizers. Watched with no model named (found as they are called)."""
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    y = x.pow(2) + 0.1 * torch.randn(64, 1)
    nets = [nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1)) for _ in lrs]
    opts = [torch.optim.SGD(nets[0].parameters(), lr=lrs[0]),
            torch.optim.SGD(nets[1].parameters(), lr=lrs[1], momentum=0.8),
            torch.optim.RMSprop(nets[2].parameters(), lr=lrs[2], alpha=0.9),
            torch.optim.Adam(nets[3].parameters(), lr=lrs[3])]
    with md.watch(db=":memory:") as s:
        for _ in range(steps):
            for net, opt in zip(nets, opts):
                loss = nn.functional.mse_loss(net(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
    return s


def test_every_model_stepped_in_turn_is_found_and_sampled() -> None:
    s = _four_nets([0.01] * 4)
    rec = s.record
    models = {e.model for e in rec.entities("param")}
    assert len(models) == 4  # the fourth model steps on steps 3, 7, 11, ...: never one of the sampler's own
    # every optimizer's weights have update ratios, each measured on a step its own optimizer took
    ratios = rec.stat("update_ratio", kind="param")
    for e in rec.entities("param"):
        steps = ratios[e.name].steps
        assert len(steps) >= 2, e.name
        assert (ratios[e.name].values > 0).all(), e.name
    report = s.report()
    assert not serious(report), serious(report)


def test_one_optimizer_of_four_at_rate_zero_is_the_one_named() -> None:
    s = _four_nets([0.01, 0.01, 0.01, 0.0])
    f = next(f for f in s.report().findings if f.code == "OPT001")
    assert f.evidence["problem"] == "get gradients but their weights never change"
    (adam_model,) = {s.record.entity(n, "param").model for n in f.evidence["params"]}
    others = {e.model for e in s.record.entities("param")} - {adam_model}
    assert len(f.evidence["params"]) == 4 and len(others) == 3


@pytest.mark.parametrize("stepped", [True, False], ids=["generator-steps", "generator-never-steps"])
def test_a_gan_players_weights_are_measured_on_their_own_steps(stepped: bool) -> None:
    """D's step leaves G's weights alone and G's step D's (G's loss backpropagates through D): each
    player's update ratios come from its own optimizer's steps only. A generator whose optimizer
    never steps has no update ratio at all, and is said to be in no optimizer."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 8))
    D = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3)
    bce = nn.BCEWithLogitsLoss()
    with md.watch(db=":memory:") as s:
        for _ in range(40):
            real, fake = torch.randn(16, 8) + 2, G(torch.randn(16, 4))
            d_loss = bce(D(real), torch.ones(16, 1)) + bce(D(fake.detach()), torch.zeros(16, 1))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = bce(D(fake), torch.ones(16, 1))
            opt_g.zero_grad()
            g_loss.backward()
            if stepped:
                opt_g.step()
    rec = s.record
    ratios = rec.stat("update_ratio", kind="param")
    g_model = rec.entity("0.weight", "param").model  # G is called first: its names are unprefixed
    g_names = [e.name for e in rec.entities("param") if e.model == g_model]
    d_names = [e.name for e in rec.entities("param") if e.model != g_model]
    assert len(g_names) == len(d_names) == 4
    d_steps = set(ratios[d_names[0]].steps.tolist())
    if stepped:
        g_steps = set(ratios[g_names[0]].steps.tolist())
        assert d_steps and g_steps and not d_steps & g_steps
        assert all((ratios[n].values > 0).all() for n in ratios)
    else:
        assert not any(n in ratios for n in g_names)
        f = next(f for f in s.report().findings if f.code == "OPT001")
        assert f.evidence["problem"] == "get gradients but are in no optimizer"


@pytest.mark.parametrize("bug", [True, False], ids=["d-stepped-before-g-backward", "g-backward-first"])
def test_a_gan_that_crashes_in_its_first_iteration_is_not_said_to_miss_an_optimizer(bug: bool) -> None:
    """The conditional GAN of a popular tutorial: D's step changes D's weights in place before G's
    loss, computed through D, is backpropagated, and the first iteration crashes. G's optimizer never
    stepped, so it was never seen: G's gradients (from D's loss) do not make G "in no optimizer".
    The in-place change is the finding; the twin that detaches G's output for D's loss and runs D
    again for G's trains."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 16))
    D = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1), nn.Sigmoid())
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-4)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-4)
    with pytest.raises(RuntimeError, match="inplace") if bug else contextlib.nullcontext(), \
            md.watch(db=":memory:") as s:
            for _ in range(30):
                fake, real = G(torch.randn(32, 6)), torch.randn(32, 16) + 1
                p_fake = D(fake if bug else fake.detach())
                d_loss = -torch.mean(torch.log(D(real)) + torch.log(1.0 - p_fake))
                opt_d.zero_grad()
                d_loss.backward(retain_graph=bug)
                opt_d.step()
                g_loss = torch.mean(torch.log(1.0 - (p_fake if bug else D(fake))))  # bug: D's output before its step
                opt_g.zero_grad()
                g_loss.backward()
                opt_g.step()
    findings = s.report().findings
    assert "OPT001" not in {f.code for f in findings}
    if bug:
        assert findings[0].kind == "inplace_modification"


def test_two_models_backpropagated_then_stepped_have_no_lossless_steps_read_as_nan() -> None:
    """Two models' losses backpropagated, then their two optimizers stepped (a tutorial comparing a
    net with dropout and one without): the second optimizer's step has no loss of its own. Its row's
    missing loss is not a NaN: nothing here went non-finite."""
    torch.manual_seed(1)
    x = torch.linspace(-1, 1, 20).unsqueeze(1)
    y = x + 0.3 * torch.randn(20, 1)
    nets = [nn.Sequential(nn.Linear(1, 300), *([nn.Dropout(0.5)] if d else []), nn.ReLU(),
                          nn.Linear(300, 300), nn.ReLU(), nn.Linear(300, 1)) for d in (False, True)]
    opts = [torch.optim.Adam(n.parameters(), lr=0.01) for n in nets]
    with md.watch(db=":memory:") as s:
        for _ in range(120):
            losses = [nn.functional.mse_loss(n(x), y) for n in nets]
            for o in opts:
                o.zero_grad()
            for loss in losses:
                loss.backward()
            for o in opts:
                o.step()
    n_back = s.record.column("n_backward").values
    assert (n_back == 0).sum() >= 100  # the rows without a loss of their own are there
    findings = s.report().findings
    assert not any("non-finite" in f.title + f.description for f in findings), [f.title for f in findings]
    assert "NUM001" not in {f.code for f in findings}


def test_an_earlier_phases_optimizer_is_not_waited_for() -> None:
    """The head trained alone with its own optimizer, then the whole model with another: the first
    never steps again, and samples are not stretched waiting for it."""
    def sampled(two: bool) -> int:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))
        head, full = torch.optim.SGD(model[2].parameters(), lr=0.01), torch.optim.Adam(model.parameters(), lr=1e-3)
        with md.watch(model, db=":memory:") as s:
            for step in range(800):
                opt = head if two and step < 100 else full
                x = torch.randn(32, 10)
                loss = nn.functional.mse_loss(model(x), x.sum(1, keepdim=True))
                opt.zero_grad()
                loss.backward()
                opt.step()
        return int(s.record.column("sampled").values.sum())

    assert sampled(True) <= sampled(False) + 16  # one sample at the switch may wait; no more


def test_a_gradient_blow_up_is_dated_on_the_steps_it_happened_beside_lossless_rows() -> None:
    """Two models backpropagated, then both stepped: every other row has no loss. The gradient's
    growth is dated by its own column's steps, not by the rows that have a loss."""
    from modeldebug.rules.context import Context
    from modeldebug.rules.measures import instability

    torch.manual_seed(0)
    a, b = nn.Linear(8, 1), nn.Linear(8, 1)
    oa, ob = torch.optim.SGD(a.parameters(), lr=0.01), torch.optim.SGD(b.parameters(), lr=0.01)
    x = torch.randn(64, 8)
    y = x.sum(1, keepdim=True)
    with md.watch(a, b, db=":memory:") as s:
        for it in range(40):
            if it == 15:  # from here on, a's gradient is 1000x
                with torch.no_grad():
                    a.weight.mul_(1000)
            la, lb = nn.functional.mse_loss(a(x), y), nn.functional.mse_loss(b(x), y)
            oa.zero_grad()
            ob.zero_grad()
            la.backward()
            lb.backward()
            oa.step()
            ob.step()
    grad = next(sig for sig in instability(Context(s.record)) if "gradient norm grew" in sig.what)
    g = s.record.column("grad_norm")
    first = int(g.steps[np.flatnonzero(g.values >= 10 * np.nanmedian(g.values[:5]))[0]])
    assert first in (30, 31) and grad.onset == first  # iteration 15 (two rows an iteration), not 61


def _relativistic_gan(frozen_lr: float | None):  # type: ignore[no-untyped-def]
    """eriklindernoren/PyTorch-GAN's relativistic GAN in small: D's loss is a function of
    D(real) - D(fake), so D's output bias cancels out of it (its gradient at D's steps is exactly 0);
    G's loss goes through D with D(real) detached, so D's bias does get a gradient on G's steps.
    `frozen_lr`: D's last weight matrix in its own parameter group at this learning rate."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 8))
    D = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    if frozen_lr is None:
        opt_d = torch.optim.Adam(D.parameters(), lr=1e-3)
    else:
        rest = [p for n, p in D.named_parameters() if n != "3.weight"]
        opt_d = torch.optim.Adam([{"params": rest}, {"params": [D[3].weight], "lr": frozen_lr}], lr=1e-3)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3)
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(16, 1), torch.zeros(16, 1)
    with md.watch(db=":memory:") as s:
        for _ in range(60):
            real = torch.randn(16, 8) + 2
            fake = G(torch.randn(16, 4))
            opt_g.zero_grad()
            real_pred = D(real).detach()
            g_loss = bce(D(fake) - real_pred, ones)
            g_loss.backward()
            opt_g.step()
            opt_d.zero_grad()
            real_pred, fake_pred = D(real), D(fake.detach())
            d_loss = (bce(real_pred - fake_pred, ones) + bce(fake_pred - real_pred, zeros)) / 2
            d_loss.backward()
            opt_d.step()
    return s


def test_a_bias_the_relativistic_loss_cancels_is_dead_weight_not_a_frozen_group() -> None:
    """It read OPT001 medium, "get gradients but their weights never change ... a learning rate of 0":
    the gradients were G's steps', and D's optimizer saw exactly zero."""
    s = _relativistic_gan(None)
    assert not [f for f in serious(s.report()) if f.code == "OPT001"]
    f = next(f for f in s.report().findings if f.code == "OPT001")
    assert f.severity == "low" and "3.bias" in " ".join(f.evidence["params"])
    assert f.evidence["problem"].endswith("on every step their optimizer took")


def test_the_same_gan_with_a_weight_in_a_group_at_rate_zero_is_a_frozen_group() -> None:
    s = _relativistic_gan(0.0)
    frozen = [f for f in s.report().findings if f.code == "OPT001"
              and f.evidence["problem"] == "get gradients but their weights never change"]
    assert frozen and frozen[0].severity == "medium" and [n.split(".", 1)[1] for n in frozen[0].evidence["params"]] == ["3.weight"]


def _info_gan():  # type: ignore[no-untyped-def]
    """eriklindernoren/PyTorch-GAN's InfoGAN in small: G's and D's optimizers step in turn, then a
    third over both nets' weights steps on the mutual-information loss: three objectives of very
    different levels, one after the other, every iteration."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 8))
    D = nn.Sequential(nn.Linear(8, 32), nn.LeakyReLU(0.2))
    adv, aux = nn.Linear(32, 1), nn.Linear(32, 2)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam([*D.parameters(), *adv.parameters()], lr=1e-3)
    opt_info = torch.optim.Adam([*G.parameters(), *D.parameters(), *aux.parameters()], lr=1e-3)
    bce = nn.BCEWithLogitsLoss()
    with md.watch(db=":memory:") as s:
        for _ in range(80):
            real = torch.randn(32, 8) + 2
            code = torch.randint(0, 2, (32,))
            z = torch.cat([torch.randn(32, 4), nn.functional.one_hot(code, 2).float()], 1)
            opt_g.zero_grad()
            g_loss = bce(adv(D(G(z))), torch.ones(32, 1))
            g_loss.backward()
            opt_g.step()
            opt_d.zero_grad()
            d_loss = bce(adv(D(real)), torch.ones(32, 1)) + bce(adv(D(G(z).detach())), torch.zeros(32, 1))
            d_loss.backward()
            opt_d.step()
            opt_info.zero_grad()
            info_loss = 5.0 * nn.functional.cross_entropy(aux(D(G(z))), code)
            info_loss.backward()
            opt_info.step()
    return s


def test_three_optimizers_in_turn_over_shared_weights_are_players_not_an_oscillating_loss() -> None:
    """The info optimizer holds G's and D's weights too: the sets overlap, but all three optimizers
    step from the first iteration, so the loss series is three objectives in turn, not one curve
    (it read LOS003 high, "alternates up and down every step", and LOS002 medium)."""
    report = _info_gan().report()
    assert not [f for f in report.findings if f.severity in ("medium", "high") and f.code in ("LOS001", "LOS002", "LOS003")]


def test_an_optimizer_built_later_over_the_same_weights_is_a_new_phase_whose_loss_is_judged() -> None:
    """A second phase (a new optimizer over the same weights, at a rate 100x too high) is not a player:
    its blow-up is still found."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    x = torch.randn(256, 10)
    y = x[:, :3].sum(1, keepdim=True)
    with md.watch(model, db=":memory:") as s:
        for opt, steps in ((torch.optim.Adam(model.parameters(), lr=1e-3), 60),
                           (torch.optim.SGD(model.parameters(), lr=3.0), 30)):
            for step in range(steps):
                i = (step * 32) % 256
                loss = nn.functional.mse_loss(model(x[i:i + 32]), y[i:i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
    kinds = {f.kind for f in s.report().findings if f.severity in ("medium", "high")}
    assert kinds & {"lr_too_high", "loss_diverging", "nonfinite", "exploding_gradients"}
    assert [e.step for e in s.record.events("optimizer")] == [0, 60]
