"""Patterns met in training code nobody here wrote, each with a healthy twin (issue 14).

Each test reproduces the PATTERN of a real script (a word language model that reloads its best
checkpoint, a character-level GPT, clipping by design, LBFGS, hand-written SGD, ...) in a few
seconds on a tiny seeded model, and checks that the diagnosis holds.
"""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import modeldebug as md

from helpers import found, serious

_TIMING = ("slow_step", "dataloader_bottleneck")  # wall-clock rules: judged on recorded runs, not on a shared CPU


def _serious_but_timing(report) -> list[str]:  # type: ignore[no-untyped-def]
    return [f for f in serious(report) if not f.startswith(_TIMING)]


class _WordLM(nn.Module):
    """An embedding, a recurrent-ish mixing layer and a decoder: word_language_model's shape, kept cheap."""

    def __init__(self, vocab: int = 40, hidden: int = 24, *, detach_encoder: bool = False) -> None:
        super().__init__()
        self.encoder = nn.Embedding(vocab, hidden)
        self.mix = nn.Linear(hidden, hidden)
        self.decoder = nn.Linear(hidden, vocab)
        self.detach_encoder = detach_encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.encoder(x)
        if self.detach_encoder:
            e = e.detach()
        return self.decoder(torch.tanh(self.mix(e)))


def _corpus(vocab: int = 40, n: int = 4000, seed: int = 0) -> torch.Tensor:
    """Token ids with a Zipf-like skew and some structure (each token predicts the next)."""
    g = torch.Generator().manual_seed(seed)
    p = 1.0 / torch.arange(1, vocab + 1, dtype=torch.float) ** 1.1
    base = torch.multinomial(p / p.sum(), n, replacement=True, generator=g)
    return torch.where(torch.rand(n, generator=g) < 0.5, (base.roll(1) * 7 + 3) % vocab, base)


def _lm_batches(data: torch.Tensor, step: int, batch: int = 16, bptt: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    starts = (torch.arange(batch) * 97 + step * bptt) % (len(data) - bptt - 1)
    x = torch.stack([data[s:s + bptt] for s in starts.tolist()])
    y = torch.stack([data[s + 1:s + bptt + 1] for s in starts.tolist()])
    return x, y


def _train_lm(model: nn.Module, data: torch.Tensor, steps: int = 60, lr: float = 50.0, clip: float | None = 0.02) -> list[float]:
    """word_language_model's loop: no optimizer object, clipping, then `p.data.add_(p.grad, alpha=-lr)`."""
    losses = []
    for i in range(steps):
        x, y = _lm_batches(data, i)
        loss = F.cross_entropy(model(x).reshape(-1, model.decoder.out_features), y.reshape(-1))
        model.zero_grad()
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        for p in model.parameters():
            if p.grad is not None:
                p.data.add_(p.grad, alpha=-lr)
        losses.append(loss.item())
    return losses


# -- 1. a reloaded best checkpoint evaluated under no_grad is not a training model -------------------------
def test_best_checkpoint_reloaded_into_a_new_instance_is_not_judged_as_untrained() -> None:
    torch.manual_seed(0)
    data = _corpus()
    model = _WordLM()
    with md.watch(db=":memory:") as s:  # every model of the process, as `modeldebug run` watches
        _train_lm(model, data)
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        buf.seek(0)
        best = _WordLM()                              # a NEW instance, as `model = torch.load(f)` gives
        best.load_state_dict(torch.load(buf))
        best.eval()
        with torch.no_grad():
            for i in range(3):
                x, y = _lm_batches(data, 100 + i)
                F.cross_entropy(best(x).reshape(-1, 40), y.reshape(-1))
    report = s.report()
    assert found(report, "params_not_updating") is None, serious(report)


def test_a_detached_encoder_of_the_trained_model_is_still_found() -> None:
    torch.manual_seed(0)
    data = _corpus()
    model = _WordLM(detach_encoder=True)
    with md.watch(db=":memory:") as s:
        _train_lm(model, data)
        best = copy.deepcopy(model).eval()
        with torch.no_grad():
            best(_lm_batches(data, 100)[0])
    f = found(s.report(), "params_not_updating")
    assert f is not None and f.evidence["params"] == ["encoder.weight"] and f.severity == "high"


# -- 2. next-token targets are skewed by nature; a collapse onto the majority is not -------------------------
def test_next_token_targets_flattened_to_one_dimension_are_not_class_imbalance() -> None:
    torch.manual_seed(0)
    data = _corpus()
    model = _WordLM()
    with md.watch(db=":memory:") as s:
        _train_lm(model, data, clip=None, lr=1.0)
    report = s.report()
    assert found(report, "class_imbalance") is None, [f.title for f in report.findings]
    assert not any("weight = torch.tensor" in (r.implementation or "") for f in report.findings for r in f.recommendations)


def _skewed_classifier(*, signal: float, steps: int = 80) -> md.Report:  # type: ignore[name-defined]
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2048, 12, generator=g)
    y = (torch.rand(2048, generator=g) < 0.06).long()      # 6% minority: 15.7:1
    x[y == 1, :3] += signal
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with md.watch(model, db=":memory:") as s:
        for i in range(steps):
            idx = torch.arange(i * 64, i * 64 + 64) % 2048
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return s.report()


def test_a_class_imbalance_the_model_collapses_on_is_high_and_one_it_learns_through_is_low() -> None:
    collapsed = found(_skewed_classifier(signal=0.0), "class_imbalance")
    assert collapsed is not None and collapsed.severity == "high" and collapsed.evidence["predicts_prior"]
    handled = found(_skewed_classifier(signal=3.0), "class_imbalance")
    assert handled is not None and handled.severity == "low"


# -- 3. clipping with a large learning rate is a policy; clipping that stops learning is not --------------------
def test_clipping_hard_with_a_large_learning_rate_that_trains_is_not_flagged() -> None:
    torch.manual_seed(0)
    model = _WordLM()
    with md.watch(db=":memory:") as s:
        losses = _train_lm(model, _corpus())                 # clip 0.02, lr 50: every step clipped ~16x
    assert losses[-1] < 0.85 * losses[0]
    report = s.report()
    assert found(report, "excessive_grad_clipping") is None, [f.title for f in report.findings]


def test_clipping_that_stops_learning_is_flagged_and_says_how_much_larger_updates_get() -> None:
    torch.manual_seed(0)
    model = _WordLM()
    with md.watch(db=":memory:") as s:
        _train_lm(model, _corpus(), lr=0.5)                  # same clipping, a rate that cannot move it
    f = found(s.report(), "excessive_grad_clipping")
    assert f is not None and f.evidence["loss_improvement_while_clipped"] < 0.1
    fix = f.recommendations[0]
    assert "larger" in fix.description and "optimizer.param_groups" not in (fix.implementation or "")


# -- 4. closure optimizers are judged by their closure evaluations; a short run says so ---------------------------
def _lbfgs(lr: float, steps: int) -> md.Report:  # type: ignore[name-defined]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 10, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 2))
    opt = torch.optim.LBFGS(model.parameters(), lr=lr, max_iter=20)
    with md.watch(model, db=":memory:") as s:
        for _ in range(steps):
            def closure() -> torch.Tensor:
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                return loss
            opt.step(closure)
    return s.report()


def test_lbfgs_at_a_huge_learning_rate_is_found_in_two_steps() -> None:
    report = _lbfgs(100.0, 2)
    top = report.findings[0]
    assert top.kind == "lr_too_high" and top.severity == "high"
    assert top.evidence["closure_evaluations_per_step"] == 20
    assert "line_search_fn" in (top.recommendations[0].implementation or "")


def test_a_healthy_short_lbfgs_run_is_too_short_to_judge_not_clean() -> None:
    from modeldebug.report.verdict import verdict

    report = _lbfgs(1.0, 2)
    assert not serious(report)
    if not report.findings:
        v = verdict(report)
        assert v.code == "too_short" and "too short" in v.text and "20" in (v.detail or "")
        assert "too short" in report.to_text() if hasattr(report, "to_text") else True


# -- 5. hand-written updates: the learning rate is judged from what the loss does --------------------------------
def _manual_sgd(lr: float) -> md.Report:  # type: ignore[name-defined]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 20, generator=g)
    y = (x[:, :5].sum(1) > 0).long() + (x[:, 5:10].sum(1) > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 3))
    with md.watch(db=":memory:") as s:
        for i in range(80):
            idx = torch.arange(i * 64, i * 64 + 64) % 1024
            loss = F.cross_entropy(model(x[idx]), y[idx])
            model.zero_grad()
            loss.backward()
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)             # no optimizer object
    return s.report()


def test_a_100x_learning_rate_in_a_hand_written_update_is_lr_too_high_with_a_fix_for_that_code() -> None:
    report = _manual_sgd(10.0)
    top = report.findings[0]
    assert top.kind == "lr_too_high", [f.kind for f in report.findings]
    assert top.kind != "vanishing_gradients"
    for f in report.findings:
        for r in f.recommendations:
            assert "optimizer.param_groups" not in (r.implementation or ""), (f.kind, r.implementation)
    assert "p.grad" in top.recommendations[0].description


def test_the_same_hand_written_update_at_a_sane_rate_is_clean() -> None:
    report = _manual_sgd(0.1)
    assert not serious(report) and found(report, "lr_too_high") is None


# -- 7. misses: decoupled weight decay too strong; a NaN born in the branch torch.where does not select ------------
def _adamw(weight_decay: float) -> md.Report:  # type: ignore[name-defined]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 16, generator=g)
    y = (x[:, :4].sum(1) > 0).long() + (x[:, 4:8].sum(1) > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=weight_decay)
    with md.watch(model, db=":memory:") as s:
        for i in range(150):
            idx = torch.arange(i * 64, i * 64 + 64) % 2048
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return s.report()


def test_adamw_with_lr_times_weight_decay_of_9_percent_a_step_is_found_before_a_full_collapse() -> None:
    f = found(_adamw(30.0), "weight_collapse")
    assert f is not None and f.severity in ("medium", "high")
    assert 0.1 < f.evidence["median_shrink"] <= 0.5 and "weight_decay=" in (f.recommendations[0].implementation or "")
    healthy = _adamw(0.01)
    assert found(healthy, "weight_collapse") is None and not serious(healthy)


class _SqrtGate(nn.Module):
    def __init__(self, *, safe: bool) -> None:
        super().__init__()
        self.a, self.b, self.safe = nn.Linear(8, 16), nn.Linear(16, 2), safe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        root = torch.sqrt(h.clamp_min(1e-12)) if self.safe else torch.sqrt(h)  # sqrt(<0) = NaN, unselected
        return self.b(torch.where(h > 0, root, torch.zeros_like(h)))


def _gated(*, safe: bool) -> md.Report:  # type: ignore[name-defined]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    model = _SqrtGate(safe=safe)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with md.watch(model, db=":memory:") as s:
        for i in range(40):
            idx = torch.arange(i * 32, i * 32 + 32) % 512
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return s.report()


def test_a_nan_born_in_the_branch_torch_where_does_not_select_is_a_nonfinite_gradient_behind_a_finite_loss() -> None:
    report = _gated(safe=False)
    top = report.findings[0]
    assert top.kind == "nonfinite" and top.severity == "high" and top.location == "a"
    assert "loss was finite" in top.title
    assert not serious(_gated(safe=True))


# -- 7. partly dead units: most units inactive on nearly every sample, few on every one ------------------------------
def _biased_relu(bias: float) -> md.Report:  # type: ignore[name-defined]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 16, generator=g)
    y = (x[:, :4].sum(1) > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 2))
    with torch.no_grad():
        model[0].weight.mul_(1.0 / model[0].weight.std() / 4.0)   # pre-activations of std ~1
        model[0].bias.fill_(bias)                                 # -2.2: each unit fires on ~1.4% of samples
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with md.watch(model, db=":memory:", level="detailed") as s:
        for i in range(60):
            idx = torch.arange(i * 64, i * 64 + 64) % 2048
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return s.report()


def test_partly_dead_units_are_found_from_the_share_of_zero_outputs() -> None:
    report = _biased_relu(-2.2)
    f = found(report, "dead_activations")
    assert f is not None and f.evidence["partly_dead"] and f.evidence["dead_fraction"] < 0.5
    assert f.evidence["zero_fraction"] >= 0.9
    healthy = _biased_relu(0.0)
    assert found(healthy, "dead_activations") is None and not serious(healthy)


# -- 8. a dead network's constant logits that lie in [0, 1] are not a squashing -------------------------------------
def _dead_or_squashed(*, dead: bool, sigmoid: bool) -> md.Report:  # type: ignore[name-defined]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 20, generator=g)
    y = (x[:, :3].sum(1) > 0).long() + (x[:, 3:6].sum(1) > 0).long()
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3)]
    model = nn.Sequential(*layers, *([nn.Sigmoid()] if sigmoid else []))
    if dead:
        with torch.no_grad():
            model[0].bias.fill_(-10.0)                 # every unit of the first ReLU is zero on every sample
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)  # the logits are the last bias: small, inside [0, 1]
    with md.watch(db=":memory:") as s:               # every model of the process, as `modeldebug run` watches
        for i in range(40):
            idx = torch.arange(i * 32, i * 32 + 32) % 1024
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return s.report()


def test_constant_logits_of_a_dead_network_are_not_called_squashed() -> None:
    report = _dead_or_squashed(dead=True, sigmoid=False)
    assert found(report, "double_softmax") is None, [f.title for f in report.findings]
    assert report.findings[0].kind == "dead_activations"


def test_a_sigmoid_before_cross_entropy_is_still_found_alive_or_dead() -> None:
    for dead in (False, True):
        f = found(_dead_or_squashed(dead=dead, sigmoid=True), "double_softmax")
        assert f is not None and f.severity == "high" and f.location == "5", dead


# -- 9. a word model early in training is above the label entropy and still falling: not "worse than chance" ----------
def _word_model(*, steps: int, shuffled: bool, vocab: int = 2000) -> tuple[md.Report, list[float]]:  # type: ignore[name-defined]
    g = torch.Generator().manual_seed(0)
    p = 1.0 / torch.arange(1, vocab + 1, dtype=torch.float)
    base = torch.multinomial(p / p.sum(), 40000, replacement=True, generator=g)
    data = torch.where(torch.rand(40000, generator=g) < 0.5, (base.roll(1) * 7 + 3) % vocab, base)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(vocab, 32), nn.Linear(32, vocab))
    opt = torch.optim.SGD(model.parameters(), lr=2.0)
    losses = []
    with md.watch(model, db=":memory:") as s:
        for i in range(steps):
            st = (i * 256) % (len(data) - 257)
            x, y = data[st:st + 256], data[st + 1:st + 257]
            if shuffled:
                y = y[torch.randperm(256)]                  # the next word no longer follows from this one
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return s.report(), losses


def test_a_word_model_still_falling_above_the_label_entropy_is_not_worse_than_chance() -> None:
    report, losses = _word_model(steps=100, shuffled=False)
    assert losses[-1] < losses[0] - 1.5
    assert found(report, "loss_not_decreasing") is None, serious(report)
    assert not _serious_but_timing(report)


def test_a_model_flat_at_chance_is_still_stuck() -> None:
    # the broken twin: labels shuffled against their inputs, long enough for the loss to flatten at chance
    torch.manual_seed(0)
    data = _corpus()
    model = _WordLM()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with md.watch(model, db=":memory:") as s:
        for i in range(200):
            x, y = _lm_batches(data, i)
            y = y.reshape(-1)[torch.randperm(y.numel())]
            loss = F.cross_entropy(model(x).reshape(-1, 40), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    f = found(s.report(), "loss_not_decreasing")
    assert f is not None and f.severity in ("medium", "high") and "chance" in f.title


# -- 10. a GAN: two optimizers take turns on opposing losses; the series is not one curve to minimise ------------------
def _gan(*, lr: float, clear_d: bool = True, iters: int = 100) -> md.Report:  # type: ignore[name-defined]
    g = torch.Generator().manual_seed(0)
    real_all = torch.randn(4096, 2, generator=g) * 0.5 + torch.tensor([2.0, -1.0])
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    disc = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1), nn.Sigmoid())
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    with md.watch(db=":memory:") as s:
        for i in range(iters):
            real = real_all[(i * 64) % 4096:(i * 64) % 4096 + 64]
            if clear_d:
                disc.zero_grad()
            F.binary_cross_entropy(disc(real), torch.ones(64, 1)).backward()      # D: real and fake, two backward calls
            fake = gen(torch.randn(64, 4))
            F.binary_cross_entropy(disc(fake.detach()), torch.zeros(64, 1)).backward()
            opt_d.step()
            gen.zero_grad()
            F.binary_cross_entropy(disc(fake), torch.ones(64, 1)).backward()      # G: rises as D gets better
            opt_g.step()
    return s.report()


def test_a_gan_whose_generator_loss_rises_as_the_discriminator_learns_is_not_diverging() -> None:
    report = _gan(lr=2e-3)
    for kind in ("loss_diverging", "loss_not_decreasing", "loss_oscillating"):
        assert found(report, kind) is None, serious(report)
    assert not _serious_but_timing(report)


def test_a_gan_at_100x_the_rate_or_without_clearing_d_is_still_found() -> None:
    top = _gan(lr=0.2).findings[0]
    assert top.kind == "lr_too_high" and top.severity == "high"
    assert _gan(lr=2e-3, clear_d=False).findings[0].kind == "missing_zero_grad"


# -- 11. policy gradients: the loss is a surrogate whose sign and scale follow the returns, not progress -----------------
class _Pole:
    """A cart-pole balancing task written for this test: 4 numbers of state, push left or right."""

    def __init__(self, seed: int, cap: int = 200) -> None:
        self.g, self.cap = torch.Generator().manual_seed(seed), cap

    def reset(self) -> torch.Tensor:
        self.s, self.t = (torch.rand(4, generator=self.g) - 0.5) * 0.1, 0
        return self.s.clone()

    def step(self, action: int) -> tuple[torch.Tensor, bool]:
        x, v, th, w = self.s.tolist()
        push = 10.0 if action == 1 else -10.0
        tmp = (push + 0.05 * w * w * math.sin(th)) / 1.1
        acc_th = (9.8 * math.sin(th) - math.cos(th) * tmp) / (0.5 * (4 / 3 - 0.1 * math.cos(th) ** 2 / 1.1))
        acc_x = tmp - 0.05 * acc_th * math.cos(th) / 1.1
        self.s = torch.tensor([x + 0.02 * v, v + 0.02 * acc_x, th + 0.02 * w, w + 0.02 * acc_th])
        self.t += 1
        return self.s.clone(), bool(abs(self.s[0]) > 2.4 or abs(self.s[2]) > 0.21 or self.t >= self.cap)


def _policy_gradient(*, lr: float, critic: bool, episodes: int) -> tuple[md.Report, list[int]]:  # type: ignore[name-defined]
    """REINFORCE (or actor-critic with a value head): one optimizer step per episode, one sample per forward."""
    torch.manual_seed(0)
    env = _Pole(0)
    body, head, value = nn.Linear(4, 64), nn.Linear(64, 2), nn.Linear(64, 1)
    model = nn.ModuleDict({"body": body, "head": head, **({"value": value} if critic else {})})
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    lengths = []
    with md.watch(db=":memory:") as s:
        for _ in range(episodes):
            state, done = env.reset(), False
            logps, values = [], []
            while not done:
                h = F.relu(body(state.unsqueeze(0)))
                dist = torch.distributions.Categorical(logits=head(h))
                action = dist.sample()
                logps.append(dist.log_prob(action))
                values.append(value(h).squeeze())
                state, done = env.step(int(action))
            n = len(logps)
            ret = (1 - 0.99 ** torch.arange(n, 0, -1, dtype=torch.float)) / 0.01   # discounted reward 1 per step survived
            ret = (ret - ret.mean()) / (ret.std() + 1e-8) if len(ret) > 1 else ret * 0
            if critic:
                v = torch.stack(values)
                loss = (-torch.cat(logps) * (ret - v.detach())).sum() + F.smooth_l1_loss(v, ret, reduction="sum")
            else:
                loss = (-torch.cat(logps) * ret).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            lengths.append(len(logps))
    return s.report(), lengths


def test_a_policy_gradient_that_learns_is_not_told_its_rate_is_too_high() -> None:
    report, lengths = _policy_gradient(lr=1e-2, critic=False, episodes=80)
    assert sum(lengths[-15:]) > 2 * sum(lengths[:15])                 # episodes get longer: it learns
    assert found(report, "lr_too_high") is None and found(report, "loss_diverging") is None, serious(report)
    assert found(report, "loss_not_decreasing") is None
    assert not _serious_but_timing(report)                            # slow_step: judged on a recorded run below


def test_an_actor_critic_whose_summed_loss_grows_with_its_episodes_is_not_diverging() -> None:
    report, lengths = _policy_gradient(lr=3e-2, critic=True, episodes=50)
    assert sum(lengths[-10:]) > 2 * sum(lengths[:10])
    for kind in ("lr_too_high", "loss_diverging", "loss_not_decreasing"):
        assert found(report, kind) is None, serious(report)


def test_a_policy_collapsed_by_a_100x_rate_is_lr_too_high() -> None:
    for critic, lr in ((False, 1.0), (True, 3.0)):
        report, lengths = _policy_gradient(lr=lr, critic=critic, episodes=30)
        assert sum(lengths[-10:]) <= 12 * 10                         # one action for ever: the pole falls at once
        top = report.findings[0]
        assert top.kind == "lr_too_high" and top.severity == "high", (critic, [f.title for f in report.findings])


def _timed_run(*, batch: int, n: int = 120) -> md.Report:  # type: ignore[name-defined]
    """A recorded run whose steps grow 10x in the forward and backward passes alike (the RL shape)."""
    from modeldebug.record import Record
    from modeldebug.record.writer import RunWriter
    from modeldebug.report import Report

    rng = np.random.default_rng(0)
    w = RunWriter(":memory:")
    w.entity("input", "Policy", type="float32", model="Policy", info={"shape": [batch, 4]})
    for i in range(n):
        work = 0.002 * (1 + 9 * i / n) * rng.uniform(0.8, 1.25)     # the calls per step grow with the episodes
        w.add_step(i, loss=1.0, t_data=0.0005, t_forward=0.6 * work, t_backward=0.4 * work, t_optimizer=0.0005,
                   t_step=work + 0.001)
    w.set_meta(steps=n)
    w.flush()
    return Report.from_record(Record(w.conn))


def test_steps_that_grow_with_one_sample_per_forward_call_are_low_and_say_why() -> None:
    f = found(_timed_run(batch=1), "slow_step")
    assert f is not None and f.severity == "low" and f.evidence["one_sample_per_call"]
    assert "one sample per call" in f.description
    batched = found(_timed_run(batch=32), "slow_step")               # the same growth with batches: a leak's shape
    assert batched is not None and batched.severity in ("medium", "high")


# -- 12. AdamW at 100x on a small GPT: no blow-up (Adam normalises, clipping bounds), the weights grow instead ---------
class _Block(nn.Module):
    def __init__(self, d: int, heads: int = 4) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in self.qkv(self.ln1(x)).split(d, dim=2))
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class _TinyGPT(nn.Module):
    def __init__(self, vocab: int, d: int = 48, block: int = 32) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(block, d)
        self.block, self.ln, self.head = _Block(d), nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)       # the small GPT initialisation
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.ln(self.block(self.tok(idx) + self.pos(torch.arange(idx.shape[1])))))


def _char_gpt(peak_lr: float, steps: int = 150) -> tuple[md.Report, float]:  # type: ignore[name-defined]
    """AdamW with decay groups, 20 warm-up steps then cosine, clip 1.0: a nanoGPT-style loop on a made-up text."""
    g = torch.Generator().manual_seed(0)
    words = ["the ", "cat ", "sat ", "on ", "a ", "mat ", "and ", "dog ", "ran ", "far ", "away ", "then ", "slept. "]
    freq = torch.tensor([8, 3, 3, 4, 5, 2, 5, 3, 2, 1, 1, 2, 2], dtype=torch.float)
    s = "".join(words[i] for i in torch.multinomial(freq / freq.sum(), 5000, replacement=True, generator=g).tolist())[:20000]
    chars = sorted(set(s))
    data = torch.tensor([chars.index(c) for c in s])
    torch.manual_seed(0)
    model = _TinyGPT(len(chars))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith(("tok", "pos"))]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and not n.startswith(("tok", "pos")))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=peak_lr, betas=(0.9, 0.95))
    losses = []
    with md.watch(db=":memory:") as session:
        for it in range(steps):
            f = (it + 1) / 20 if it < 20 else 0.1 + 0.45 * (1 + math.cos(math.pi * (it - 20) / (steps - 20)))
            for group in opt.param_groups:
                group["lr"] = peak_lr * f
            ix = torch.randint(0, len(data) - 33, (16,), generator=g)
            x, y = torch.stack([data[i:i + 32] for i in ix]), torch.stack([data[i + 1:i + 33] for i in ix])
            loss = F.cross_entropy(model(x).view(-1, len(chars)), y.view(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
    return session.report(), sum(losses[-20:]) / 20


def test_adamw_at_100x_on_a_small_gpt_is_found_from_the_weights_growth() -> None:
    report, final = _char_gpt(0.3)
    top = report.findings[0]
    assert top.kind == "lr_too_high" and top.severity == "medium", [f.title for f in report.findings]
    assert top.evidence["inferred_from"] == "weight_growth" and top.evidence["weight_growth"] >= 5
    assert top.evidence["peak_step_share"] >= 0.1                       # the weights are a few peak steps big
    assert "peak was 0.3" in (top.recommendations[0].implementation or "")
    healthy, healthy_final = _char_gpt(3e-3)
    assert final > 1.5 * healthy_final                                   # the 100x run ends clearly worse
    assert found(healthy, "lr_too_high") is None and not _serious_but_timing(healthy)


# -- 13. graphs: one whole graph a pass, nodes mix by design, the split is a loss mask (held-out gat) ----------
class _DenseGraphNet(nn.Module):
    """Two graph convolutions over a dense normalised adjacency: forward(features, adjacency)."""

    def __init__(self, n_in: int, n_out: int, *, mix_batch: bool = False) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(n_in, 16), nn.Linear(16, n_out)
        self.mix_batch = mix_batch

    def forward(self, x: torch.Tensor, adj: torch.Tensor | None = None) -> torch.Tensor:
        h = self.l1(x)
        if adj is not None:
            h = adj @ h
        if self.mix_batch:  # the bug: a transpose-and-reshape that moves the batch axis
            h = h.t().reshape(x.shape[0], -1)
        h = torch.relu(h)
        h = self.l2(h)
        return F.log_softmax(adj @ h if adj is not None else h, dim=1)


def _graph(n: int = 300, feats: int = 40, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, classes, (n,), generator=g)
    x = (torch.rand(n, feats, generator=g) < 0.05 + 0.2 * (torch.arange(feats) % classes == y[:, None])).float()
    x = x / x.sum(1, keepdim=True).clamp_min(1)
    same = y[:, None] == y[None, :]
    adj = (torch.rand(n, n, generator=g) < torch.where(same, 0.03, 0.004)).float()
    adj = ((adj + adj.t() + torch.eye(n)) > 0).float()
    d = adj.sum(1).rsqrt()
    return x, d[:, None] * adj * d[None, :], y


def _graph_training(*, transductive: bool, mix_batch: bool = False, epochs: int = 30) -> md.Report:  # type: ignore[name-defined]
    x, adj, y = _graph()
    torch.manual_seed(0)
    model = _DenseGraphNet(x.shape[1], 4, mix_batch=mix_batch)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    train, val = torch.arange(0, 80), torch.arange(80, 160)
    with md.watch(model, db=":memory:") as s:
        for _ in range(epochs):
            model.train()
            if transductive:  # the whole graph every pass, the loss on the training nodes
                loss = F.nll_loss(model(x, adj)[train], y[train])
            else:  # an ordinary per-sample classifier on the training rows
                loss = F.nll_loss(model(x[train]), y[train])
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.eval()
            with torch.no_grad():
                if transductive:
                    F.nll_loss(model(x, adj)[val], y[val])
                else:  # the leak: "validation" on the training rows
                    F.nll_loss(model(x[train]), y[train])
    return s.report()


def test_a_graph_network_over_one_whole_graph_split_by_loss_masks_is_neither_mixing_nor_leaking() -> None:
    report = _graph_training(transductive=True)
    assert not _serious_but_timing(report), [f.title for f in report.findings]
    for kind in ("batch_mixing", "data_leakage"):
        f = found(report, kind)
        assert f is None or (f.severity == "low" and "mask" in f.description), (kind, f and f.title)


def test_validating_on_the_training_rows_and_a_batch_axis_reshape_are_still_found() -> None:
    leak = _graph_training(transductive=False)
    f = found(leak, "data_leakage")
    assert f is not None and f.severity == "medium" and "masked_whole_input" not in f.evidence
    mixed = _graph_training(transductive=False, mix_batch=True, epochs=3)
    f = found(mixed, "batch_mixing")
    assert f is not None and f.severity in ("medium", "high"), [g.title for g in mixed.findings]


# -- 14. a recurrent state passed beside the ids, a loss summed over the characters (held-out charrnn) ------------
class _CharGRU(nn.Module):
    def __init__(self, vocab: int, hidden: int = 32, layers: int = 2) -> None:
        super().__init__()
        self.encoder = nn.Embedding(vocab, hidden)
        self.rnn = nn.GRU(hidden, hidden, layers)
        self.decoder = nn.Linear(hidden, vocab)
        self.layers, self.hidden = layers, hidden

    def forward(self, ids: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, h = self.rnn(self.encoder(ids).unsqueeze(0), h)   # one character for the whole batch
        return self.decoder(out.squeeze(0)), h

    def init_hidden(self, batch: int) -> torch.Tensor:
        return torch.zeros(self.layers, batch, self.hidden)


def _char_rnn(lr: float, steps: int = 40, chunk: int = 20) -> tuple[md.Report, list[float]]:  # type: ignore[name-defined]
    """char-rnn's loop: chunk characters fed one at a time, the loss summed over them, Adam."""
    data = _corpus(vocab=30, n=6000)
    torch.manual_seed(0)
    model = _CharGRU(30)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(1)
    losses = []
    with md.watch(model, db=":memory:") as s:
        for _ in range(steps):
            starts = torch.randint(0, len(data) - chunk - 1, (16,), generator=g)
            seq = torch.stack([data[i:i + chunk + 1] for i in starts.tolist()])
            h = model.init_hidden(16)
            opt.zero_grad()
            loss = torch.zeros(())
            for c in range(chunk):
                out, h = model(seq[:, c], h)
                loss = loss + F.cross_entropy(out, seq[:, c + 1])
            loss.backward()
            opt.step()
            losses.append(loss.item() / chunk)
    return s.report(), losses


def test_a_zero_hidden_state_beside_the_ids_is_not_the_data_and_a_summed_loss_is_not_poor_init() -> None:
    report, losses = _char_rnn(0.01)
    assert losses[-1] < losses[0]
    assert found(report, "input_not_normalized") is None, [f.title for f in report.findings]
    assert found(report, "poor_initialization") is None, [f.title for f in report.findings]
    assert not _serious_but_timing(report), [f.title for f in report.findings]


def test_a_100x_rate_on_the_summed_char_rnn_is_lr_too_high_first() -> None:
    report, losses = _char_rnn(1.0)
    assert max(losses) > 2 * losses[0]
    top = report.findings[0]
    assert top.kind == "lr_too_high" and top.severity == "high", [f.title for f in report.findings]
    assert found(report, "input_not_normalized") is None


# -- 15. a 100x rate whose first update overflows the loss (held-out ff, realnvp) -----------------------------------
def _ff_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Positive samples carry their own label in the first 4 features, negative ones a wrong label."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(256, 20, generator=g)
    label = base[:, 4:8].argmax(1)
    wrong = (label + torch.randint(1, 4, (256,), generator=g)) % 4
    pos, neg = base.clone(), base.clone()
    pos[:, :4], neg[:, :4] = F.one_hot(label, 4).float(), F.one_hot(wrong, 4).float()
    return pos, neg


def _goodness_layer(lr: float, *, nan_sample_at: int | None = None, steps: int = 30) -> tuple[md.Report, list[float]]:  # type: ignore[name-defined]
    """A forward-forward layer: the label is written into the input, goodness = sum of squares, log1p(exp) loss."""
    pos, neg = _ff_data()
    torch.manual_seed(0)
    layer = nn.Sequential(nn.Linear(20, 500), nn.ReLU())
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    losses = []
    with md.watch(layer, db=":memory:") as s:
        for i in range(steps):
            p = pos.clone()
            if i == nan_sample_at:
                p[3, 9] = float("nan")  # one corrupt sample in the data
            gp = layer(p / (p.norm(dim=1, keepdim=True) + 1e-4)).pow(2).sum(1)
            gn = layer(neg / (neg.norm(dim=1, keepdim=True) + 1e-4)).pow(2).sum(1)
            loss = torch.log1p(torch.exp(torch.cat([50.0 - gp, gn - 50.0]))).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return s.report(), losses


def test_a_100x_rate_whose_first_update_overflows_the_loss_is_lr_too_high_explaining_the_nan() -> None:
    report, losses = _goodness_layer(3.0)
    assert math.isfinite(losses[0]) and not math.isfinite(losses[1])
    top = report.findings[0]
    assert top.kind == "lr_too_high" and top.evidence["inferred_from"] == "update_before_nonfinite", [f.title for f in report.findings]
    assert any(sym["kind"] == "nonfinite" for sym in top.evidence.get("symptoms", []))
    healthy, h_losses = _goodness_layer(0.03)
    assert h_losses[-1] < 0.5 * h_losses[0] and not _serious_but_timing(healthy)


def test_a_nan_from_the_data_later_in_a_run_at_a_sane_rate_is_not_blamed_on_the_rate() -> None:
    report, _ = _goodness_layer(0.03, nan_sample_at=12)
    assert found(report, "lr_too_high") is None, [f.title for f in report.findings]
    assert found(report, "nonfinite") is not None


class _TwoOutputs(nn.Module):
    """A flow-like model returning (z, log_det): the first output stays finite, the second overflows."""

    def __init__(self) -> None:
        super().__init__()
        self.s = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale = self.s(x)
        return x, torch.exp(scale * 100.0).sum(1)


def test_a_nan_in_a_second_output_is_described_without_counting_zero_nans() -> None:
    torch.manual_seed(0)
    model = _TwoOutputs()
    x = torch.randn(32, 4)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with md.watch(model, db=":memory:") as s:
        for _ in range(3):
            z, log_det = model(x)
            loss = (z.pow(2).sum(1) - log_det).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    f = found(s.report(), "nonfinite")
    assert f is not None
    text = f.title + f.description if f.kind == "nonfinite" else next(
        sym["title"] for sym in f.evidence["symptoms"] if sym["kind"] == "nonfinite")
    assert "0 NaN and 0 Inf" not in text, text


def test_the_rate_fix_for_one_optimizer_per_layer_does_not_edit_an_optimizer_the_script_lacks() -> None:
    pos, neg = _ff_data()
    torch.manual_seed(0)
    layers = [nn.Sequential(nn.Linear(20, 200), nn.ReLU()), nn.Sequential(nn.Linear(200, 200), nn.ReLU())]
    opts = [torch.optim.Adam(layer.parameters(), lr=3.0) for layer in layers]   # forward-forward keeps one per layer
    with md.watch(db=":memory:") as s:
        for _ in range(10):
            hp, hn = pos, neg
            for layer, opt in zip(layers, opts):
                hp = layer(hp / (hp.norm(dim=1, keepdim=True) + 1e-4))
                hn = layer(hn / (hn.norm(dim=1, keepdim=True) + 1e-4))
                z = torch.cat([50.0 - hp.pow(2).sum(1), hn.pow(2).sum(1) - 50.0])
                loss = torch.log1p(torch.exp(z)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                hp, hn = hp.detach(), hn.detach()
    f = found(s.report(), "lr_too_high")
    assert f is not None, [x.title for x in s.report().findings]
    code = f.recommendations[0].implementation or ""
    assert "2 optimizers" in code and "optimizer.param_groups" not in code, code


def test_a_character_rnn_fed_one_character_at_a_time_sums_lines_of_any_length() -> None:
    """hunkim/PyTorchZeroToAll's char RNN: one line per step, its loss summed over the line's characters,
    one `CrossEntropyLoss` call per character ([1, C]). A long line's loss is larger whatever the
    progress: the per-step level follows the line length, so it is not read as a diverging or
    oscillating curve. (The model's first float input is its hidden state, [layers, 1, H].)"""
    import random

    rng = random.Random(0)
    torch.manual_seed(0)
    vocab = 12
    lines = [[rng.randrange(vocab) for _ in range(rng.choice([5, 30, 80]))] for _ in range(120)]
    rnn, head = nn.GRU(vocab, 32, num_layers=2), nn.Linear(32, vocab)
    model = nn.ModuleDict({"rnn": rnn, "head": head})
    opt = torch.optim.Adam(model.parameters(), lr=0.003)

    class Step(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, c: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out, h = self.m["rnn"](F.one_hot(c, vocab).float().view(1, 1, -1), h)
            return self.m["head"](out.view(1, -1)), h

    step_model = Step()
    ce = nn.CrossEntropyLoss()
    with md.watch(step_model, opt, db=":memory:") as s:
        for line in lines:
            h, loss = torch.zeros(2, 1, 32), 0
            for a, b in zip(line[:-1], line[1:]):
                out, h = step_model(torch.tensor([a]), h)
                loss = loss + ce(out, torch.tensor([b]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    kinds = [f.kind for f in s.report().findings if f.severity in ("medium", "high")]
    assert "loss_diverging" not in kinds and "loss_oscillating" not in kinds, kinds
