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


def adam(lr: float):  # type: ignore[no-untyped-def]
    return lambda params: torch.optim.Adam(params, lr=lr)


def test_a_healthy_mlp_that_halves_its_loss_in_60_steps_memorises_the_batch_given_more() -> None:
    # The report's case: a 20-64-4 MLP, Adam at 1e-3 (the default), 64 samples: 50% in 60 steps was a "warn".
    x, _ = am.batch()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 4))
    y4 = (x @ torch.randn(20, 4, generator=torch.Generator().manual_seed(1))).argmax(1)
    fit = probes.overfit_one_batch(work(model, (x, y4)))
    assert fit.verdict == "pass" and fit.data["ratio"] <= 0.1 and fit.data["long_steps"] > 60, fit.summary
    sgd = probes.overfit_one_batch(work(am.mlp(), optimizer_factory=lambda p: torch.optim.SGD(p, 0.05, momentum=0.9)))
    assert sgd.verdict == "pass", sgd.summary


def test_overfit_fails_on_faults_that_stall_the_loss() -> None:
    softmax = probes.overfit_one_batch(work(am.double_softmax()))  # cannot fall below log(1 + 2/e) / ln 3 = 50%
    assert softmax.verdict == "fail" and softmax.findings[0].kind == "loss_not_decreasing"
    assert 0.45 < softmax.data["ratio"] < 0.6, softmax.summary
    detached = probes.overfit_one_batch(work(am.Detached()))  # only the head learns
    assert detached.verdict == "fail" and detached.data["ratio"] > 0.5, detached.summary
    zero_lr = probes.overfit_one_batch(work(am.mlp(), optimizer_factory=adam(0.0)))
    assert zero_lr.verdict == "fail" and zero_lr.data["long_steps"] < 200  # stalled: stops early


def test_a_low_learning_rate_is_slow_learning_not_a_fault() -> None:
    slow = probes.overfit_one_batch(work(am.mlp(), optimizer_factory=am.sgd(0.01)))
    assert slow.verdict == "warn" and not slow.findings and "learning, slowly" in slow.summary, slow.summary


def test_an_overfit_run_cut_short_by_its_time_limit_is_not_a_verdict_of_stalling() -> None:
    from modeldebug.agent import AnalysisOptions

    w = work(am.mlp(), optimizer_factory=adam(1e-4), options=AnalysisOptions(overfit_seconds=0.0))
    r = probes.overfit_one_batch(w)
    assert r.verdict == "inconclusive" and not r.findings and "overfit_seconds" in r.summary, r.summary
    assert r.data["long_steps"] == w.options.probe_steps  # the first window is always run


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


def test_inputs_that_only_hurt_are_said_so_not_a_negative_share() -> None:
    """The input reaches the output only as a fixed perturbation the model cannot see to undo: zeroed
    inputs end lower than real ones. That is no use of the input (a finding), said in words: a
    share of the loss drop below zero ("-43%") means nothing to a reader."""
    g = torch.Generator().manual_seed(5)
    p = torch.randn(20, 3, generator=g) * 0.03

    class Perturbed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = am.mlp()
            self.register_buffer("p", p)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(torch.zeros_like(x)) + x @ self.p  # the bug: the net itself reads a placeholder

    r = probes.input_independent(work(Perturbed()))
    assert r.verdict == "fail" and r.data["input_share"]["mean"] < 0
    assert "better with its inputs zeroed" in r.findings[0].title and "-" not in r.summary.split(":")[-1]


def test_batch_mixing_probe() -> None:
    assert probes.batch_mixing_probe(work(am.mlp())).verdict == "pass"
    bad = probes.batch_mixing_probe(work(am.BatchMixing()))
    assert bad.verdict == "fail" and bad.findings[0].kind == "batch_mixing"
    assert bad.data["fraction_mixed"] > 0.1
    # where: the reshape between fc1 and fc2 in the model's own forward
    assert bad.findings[0].location == "BatchMixing: between fc1 and fc2"
    assert "code between fc1 and fc2" in bad.findings[0].description


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


def test_range_test_suggestions_sit_near_known_good_rates() -> None:
    # Read on samples the sweep does not train on, the loss rises once the rate is too high; on the trained
    # samples it kept falling (Adam's step shrinks with the gradient) and the suggestion was 1.0 for Adam.
    x, _ = am.batch()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 4))
    y4 = (x @ torch.randn(20, 4, generator=torch.Generator().manual_seed(1))).argmax(1)
    cases = [(work(model, (x, y4)), 1e-4, 1e-2),  # Adam (the default optimizer)
             (work(am.mlp(), optimizer_factory=adam(1e-3)), 1e-4, 1e-2),
             (work(am.mlp(), optimizer_factory=am.sgd(0.1)), 1e-2, 1.0),
             # one conv + BatchNorm + pooling on an easy task tolerates far more: its suggestion (~0.1) is
             # checked against training below, not against a band
             (work(am.batchnorm_net(), am.images(64), optimizer_factory=adam(1e-3)), 1e-4, 0.3)]
    for w, lo, hi in cases:
        r = probes.lr_range_test(w)
        s = r.data["suggested_lr"]
        assert r.verdict == "pass" and lo <= s <= hi, r.summary
        assert s <= r.data["min_loss_lr"] / 10 * 1.0001  # a decade below where the loss starts to rise
        assert r.data["blowup_lr"] is None or s <= r.data["blowup_lr"] / 10
    from modeldebug.agent.lr_range import held_out
    from modeldebug.agent.trainer import short_run

    train, scored = held_out(w)  # type: ignore[misc]
    at = {lr: short_run(w, steps=100, batches=train, one_batch=False, lr=lr, evaluate_on=scored).eval_loss
          for lr in (1e-3, s)}
    assert at[s] < at[1e-3], at  # the suggestion trains the CNN better than Adam's default on unseen samples


# -- margins: a verdict on two noisy numbers needs an interval beyond the noise ------------------------------
def test_interval_is_the_t_interval_and_never_narrower_than_the_noise() -> None:
    import statistics

    from modeldebug.agent.intervals import interval, tail_noise

    values = [0.12, 0.15, 0.11]
    iv = interval(values)
    half = 4.303 * statistics.stdev(values) / 3 ** 0.5  # Student t, 2 degrees of freedom
    assert abs(iv.mean - statistics.mean(values)) < 1e-12 and abs(iv.high - iv.mean - half) < 1e-12
    exact = interval([0.5, 0.5], floor=0.01)  # deterministic repeats still get the runs' own noise
    assert (exact.low, exact.high) == (0.49, 0.51)
    assert not interval([float("nan")]).above(0) and not interval([float("nan")]).below(1)
    assert tail_noise([3.0 - 0.1 * i for i in range(20)]) < 1e-12  # a steady trend is not noise
    assert tail_noise([1.0, 1.2] * 10) > 0.1


def test_a_slow_learning_lstm_is_not_called_input_ignored_or_unfit() -> None:
    # The case: after 60 steps the zeroed copy ends at 1.38, the real one at 1.29 (ratio < 1.1):
    # slow, but nearly all of what it learned came from its inputs.
    w = work(am.LSTMClassifier(), am.sequences())
    runs = probes.seeded_runs(w)
    assert len(runs) == 2 and runs[0].losses == runs[1].losses  # no randomness: the repeats stop at two
    ii = probes.input_independent(w, runs)
    assert ii.verdict == "pass" and not ii.findings
    assert ii.data["zeroed_final"] / ii.data["real_final"] < 1.1 and ii.data["input_share"]["low"] > 0.5
    fit = probes.overfit_one_batch(w, runs)  # it memorises the batch when given the steps (about 240)
    assert fit.verdict == "pass" and not fit.findings and fit.data["long_steps"] > w.options.probe_steps


def test_random_labels_are_memorised_from_the_inputs_whatever_the_seed() -> None:
    for seed in range(3):
        result = probes.input_independent(work(am.mlp(seed), am.random_labels(seed=seed)))
        assert result.verdict == "pass", (seed, result.summary)


def test_repeats_with_dropout_give_a_real_interval() -> None:
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 3))
    result = probes.input_independent(work(model))
    share = result.data["input_share"]
    assert len(share["values"]) == 3 and len(set(share["values"])) == 3 and share["low"] < share["mean"] < share["high"]
    assert result.verdict == "pass"


def test_a_loss_at_init_on_the_threshold_is_inconclusive_not_a_finding() -> None:
    # Scale the head until the mean initial loss (three dropout draws) sits exactly on the limit: the
    # interval must straddle it, and the probe must not claim either way.
    def build(scale: float) -> nn.Module:
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, 3))
        with torch.no_grad():
            m[3].weight.mul_(scale)
        return m

    lo, hi = 1.0, 100.0
    for _ in range(30):
        mid = (lo + hi) / 2
        r = probes.loss_at_init(work(build(mid)))
        lo, hi = (mid, hi) if r.data["loss"] < r.data["limit"] else (lo, mid)
    r = probes.loss_at_init(work(build(hi)))
    iv = r.data["interval"]
    assert iv["low"] < r.data["limit"] < iv["high"]
    assert r.verdict == "inconclusive" and not r.findings and "straddles" in r.summary
    assert probes.loss_at_init(work(build(hi * 3))).verdict == "fail"  # well past it: a finding


def test_zeroing_leaves_labels_given_to_a_model_that_scores_itself() -> None:
    x, y = am.batch()
    zeroed = probes._zeros(((x, y), None)[0])
    assert torch.equal(zeroed[0], torch.zeros_like(x)) and zeroed[1] is y
    tokens = torch.randint(1, 9, (4, 6))
    assert torch.equal(probes._zeros(tokens), torch.zeros_like(tokens))  # a lone token tensor is the input
    mapping = probes._zeros({"input_ids": tokens, "labels": tokens})
    assert not mapping["input_ids"].any() and mapping["labels"] is tokens


def test_a_range_test_verdict_is_confirmed_by_the_other_seeds() -> None:
    high = probes.lr_range_test(work(am.mlp(), optimizer_factory=am.sgd(50.0)))
    assert high.verdict == "fail" and high.data["seeds"] == 3 and high.data["verdicts"] == ["lr_too_high"] * 3
    assert "seeds" not in probes.lr_range_test(work(am.mlp())).data  # a fine rate costs one test
