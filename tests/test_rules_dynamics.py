"""Training-dynamics rules: each fault built the way people write it, and a healthy twin."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from helpers import found, serious, watched
from torch import nn

import modeldebug as md
from modeldebug.rules import analyze
from modeldebug.testing import (
    Data,
    build_record,
    classification,
    healthy_gru,
    healthy_mlp,
    healthy_regression,
    healthy_transformer,
    train,
)


def fix_code(f) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(r.implementation or "" for r in f.recommendations if r.type == "fix")


# -- lr_too_high ------------------------------------------------------------------------------------------
def test_adam_at_lr_half_is_named_first_with_the_current_and_a_lower_learning_rate() -> None:
    model, data = healthy_mlp()
    report = watched(model, lambda: train(model, data, steps=60, optimizer=torch.optim.Adam(model.parameters(), lr=0.5)))
    top = report.findings[0]
    assert top.kind == "lr_too_high" and top.severity == "high"
    assert top.evidence["lr"] == 0.5 and top.evidence["suggested_lr"] < 0.05
    assert top.evidence["update_ratio"] > 0.1
    assert "0.5" in top.title and "lr=" in fix_code(top) and "# was 0.5" in fix_code(top)
    # the ReLU units its updates killed are its symptom, not a separate cause
    assert "dead_activations" in {s["kind"] for s in top.evidence["symptoms"]} and top.evidence["casualties"]


def test_a_transformer_knocked_back_to_chance_by_its_first_adam_steps() -> None:
    model, data = healthy_transformer()
    report = watched(model, lambda: train(model, data, steps=60, optimizer=torch.optim.Adam(model.parameters(), lr=0.1)))
    top = report.findings[0]
    assert top.kind == "lr_too_high" and top.evidence["stuck"] is True and top.step is not None and top.step <= 5


@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_healthy_learning_rates_are_not_called_too_high_or_too_low(opt: str) -> None:
    model, data = healthy_mlp(seed=2)
    o = torch.optim.Adam(model.parameters(), lr=1e-2) if opt == "adam" else torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    report = watched(model, lambda: train(model, data, steps=120, optimizer=o))
    for kind in ("lr_too_high", "lr_too_low", "loss_oscillating"):
        assert found(report, kind) is None, kind


@pytest.mark.parametrize("lr", [0.5, 2.0])
def test_a_momentum_rate_whose_first_steps_jump_but_that_trains_is_low(lr: float) -> None:
    """blind1's all_weights_zero_init healthy twin: a sigmoid MLP on rings, SGD with momentum 0.9 at 0.5.
    Its loss jumps ~3x in the first steps, then trains to the best accuracy of the rates tried (0.5
    and 1.0: val 0.83; 0.2: 0.53 in 300 steps); it read "too high", medium. At 2.0 it never recovers."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3200, 16, generator=g)
    r = x[:, 0] ** 2 + x[:, 1] ** 2
    y = (r > 0.7).long() + (r > 2.0).long()  # rings: not linearly separable
    model = nn.Sequential(nn.Linear(16, 64), nn.Sigmoid(), nn.Linear(64, 3))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    report = watched(model, lambda: train(model, Data(x, y, nn.CrossEntropyLoss()), steps=300, batch=64, optimizer=opt))
    f = found(report, "lr_too_high")
    assert f is not None, report.findings  # the jump is real, and said
    if lr == 0.5:
        assert f.severity == "low" and f.evidence["settled"] and "transient" in f.description
        assert not serious(report)
    else:
        assert f.severity == "high" and not f.evidence["settled"]


def test_gradients_that_explode_at_a_small_learning_rate_are_not_blamed_on_it() -> None:
    model, data = healthy_regression()
    opt = torch.optim.SGD(model.parameters(), lr=1e-5)

    def loop() -> None:
        for step in range(40):
            x, y = data.batch(step, 64)
            opt.zero_grad()
            data.loss_fn(model(x * 1.3 ** step), y * 1.3 ** step).backward()  # a feature whose scale drifts
            opt.step()

    report = watched(model, loop)
    f = found(report, "exploding_gradients")
    assert f is not None and f.step is not None and f.step > 3  # grew during the run, with tiny updates before
    assert found(report, "lr_too_high") is None


# -- lr_too_low -------------------------------------------------------------------------------------------
def test_sgd_at_1e_4_is_too_low_and_explains_the_flat_loss() -> None:
    model, data = healthy_mlp()
    report = watched(model, lambda: train(model, data, steps=60, optimizer=torch.optim.SGD(model.parameters(), lr=1e-4)))
    top = report.findings[0]
    assert top.kind == "lr_too_low"
    assert top.evidence["update_ratio"] < 1e-4 and top.evidence["suggested_lr"] >= 1e-2
    assert "# was 0.0001" in fix_code(top)
    assert found(report, "loss_not_decreasing") in (None, top)


def test_a_converged_model_with_tiny_gradients_is_not_called_lr_too_low() -> None:
    model, data = healthy_regression()
    train(model, data, steps=400, optimizer=torch.optim.Adam(model.parameters(), lr=1e-2))  # converge first, unwatched
    report = watched(model, lambda: train(model, data, steps=60, optimizer=torch.optim.SGD(model.parameters(), lr=1e-3)))
    assert found(report, "lr_too_low") is None


# -- loss_oscillating -------------------------------------------------------------------------------------
def test_a_gru_bouncing_under_sgd_at_lr_5_oscillates_and_the_learning_rate_is_the_cause() -> None:
    """SGD at lr 5 makes the GRU's loss bounce chaotically: whether a given machine's rounding leaves
    enough regular swings for the oscillation reading varies (it does on some CPUs, not on others), so
    the claim tested is the ranking: the learning rate is the top finding, and an oscillation, when
    found, is folded under it, never ranked on its own."""
    model, data = healthy_gru(seed=1)
    report = watched(model, lambda: train(model, data, steps=200, optimizer=torch.optim.SGD(model.parameters(), lr=5.0)))
    assert report.findings and report.findings[0].kind == "lr_too_high", [f.kind for f in report.findings]
    assert "loss_oscillating" not in {f.kind for f in report.findings}
    f = found(report, "loss_oscillating")
    assert f is None or f is report.findings[0]


def test_two_sources_read_in_order_make_the_loss_swing_every_half_epoch() -> None:
    torch.manual_seed(0)
    xa, xb = torch.randn(1000, 8), torch.randn(1000, 8)
    xb[:, 2] += 1.0
    x = torch.cat([xa, xb])
    y = torch.cat([(xa[:, 0] + xa[:, 1] > 0).long(), (xb[:, 0] - xb[:, 1] > 0).long()])  # the rule changed
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def loop() -> None:
        for _ in range(8):
            for i in range(0, 2000, 50):  # in stored order, never shuffled
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[i:i + 50]), y[i:i + 50]).backward()
                opt.step()

    report = watched(model, loop)
    top = report.findings[0]
    assert top.kind == "loss_oscillating" and top.evidence["reversals"] >= 4
    assert "shuffle=True" in "\n".join(r.implementation or "" for r in top.recommendations)
    assert found(report, "lr_too_high") is None


def test_an_oscillating_curve_is_found_and_a_noisy_converging_one_is_not() -> None:
    i = np.arange(200)
    swinging = list(1.0 - 0.004 * np.minimum(i, 60) + 0.35 * np.sin(i / 4.0))
    f = [x for x in analyze(build_record(loss=swinging, lr=0.1)) if x.kind == "loss_oscillating"]
    assert f and f[0].evidence["reversals"] >= 4 and "0.1" in fix_code(f[0])
    rng = np.random.default_rng(0)
    converging = list(2.0 * np.exp(-i / 30) + 0.05 + 0.04 * rng.standard_normal(200))
    assert not [x for x in analyze(build_record(loss=converging, lr=0.1)) if x.kind == "loss_oscillating"]
    flat_noise = list(1.1 + 0.3 * rng.standard_normal(200))  # small batches at chance: noise, not swings
    assert not [x for x in analyze(build_record(loss=flat_noise, lr=0.1)) if x.kind == "loss_oscillating"]


def test_a_spiky_but_converging_adam_transformer_does_not_oscillate() -> None:
    model, data = healthy_transformer(seed=1)
    report = watched(model, lambda: train(model, data, steps=200, lr=1e-2))
    assert found(report, "loss_oscillating") is None and found(report, "lr_too_high") is None


# -- poor_initialization -------------------------------------------------------------------------------------
def _deep(init) -> nn.Module:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(20, 128), nn.ReLU()]
    for _ in range(4):
        layers += [nn.Linear(128, 128), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(128, 3))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            init(m)
    return model


def test_weights_drawn_with_std_one_blow_up_activations_and_the_first_loss() -> None:
    model = _deep(lambda m: nn.init.normal_(m.weight))  # std 1 whatever the fan-in
    report = watched(model, lambda: train(model, classification(), steps=30, lr=1e-3))
    top = report.findings[0]
    assert top.kind == "poor_initialization" and top.severity == "high" and top.step == 0
    assert top.evidence["expected_initial_loss"] == pytest.approx(math.log(3))
    assert top.evidence["loss_ratio"] > 10 and "kaiming_normal_" in fix_code(top)


def test_an_output_layer_initialised_large_gives_a_first_loss_far_above_ln_c() -> None:
    model, data = healthy_mlp()
    nn.init.normal_(model[4].weight, std=3.0)
    report = watched(model, lambda: train(model, data, steps=30, lr=1e-3))
    f = found(report, "poor_initialization")
    assert f is not None and f.location == "4" and "get_submodule('4').weight, std=0.01" in fix_code(f)


def test_he_initialisation_is_not_poor() -> None:
    model = _deep(lambda m: (nn.init.kaiming_normal_(m.weight, nonlinearity="relu"), nn.init.zeros_(m.bias)))
    report = watched(model, lambda: train(model, classification(), steps=30, lr=1e-3))
    assert found(report, "poor_initialization") is None


# -- weight_collapse --------------------------------------------------------------------------------------------
def test_weight_decay_of_one_collapses_the_weights() -> None:
    model, data = healthy_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1.0)
    report = watched(model, lambda: train(model, data, steps=80, optimizer=opt))
    top = report.findings[0]
    assert top.kind == "weight_collapse" and top.evidence["weight_decay"] == 1.0
    assert top.evidence["median_shrink"] < 0.1 and "weight_decay=" in fix_code(top)
    assert found(report, "lr_too_high") is None


def test_adamw_default_decay_does_not_collapse() -> None:
    model, data = healthy_mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)
    report = watched(model, lambda: train(model, data, steps=80, optimizer=opt))
    assert found(report, "weight_collapse") is None


# -- excessive_grad_clipping -------------------------------------------------------------------------------------
def _clipped(model: nn.Module, data: Data, max_norm: float, steps: int = 60, adam: bool = False) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2) if adam else torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(steps):
        x, y = data.batch(step, 64)
        opt.zero_grad()
        data.loss_fn(model(x), y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=max_norm)
        opt.step()


def test_clipping_every_step_to_a_hundredth_of_the_norm_is_found() -> None:
    model, data = healthy_mlp()
    report = watched(model, lambda: _clipped(model, data, max_norm=0.005))
    f = next(f for f in report.findings if f.kind == "excessive_grad_clipping")
    assert f.evidence["clipped_fraction"] > 0.9 and f.evidence["median_factor"] > 50
    assert "max_norm=" in fix_code(f) and f.evidence["suggested_max_norm"] > 0.1
    assert report.findings[0] is f


def test_clipping_only_outliers_is_fine_and_adam_cancels_a_steady_rescale() -> None:
    model, data = healthy_mlp()
    report = watched(model, lambda: _clipped(model, data, max_norm=1.0))
    assert found(report, "excessive_grad_clipping") is None
    model, data = healthy_mlp()
    report = watched(model, lambda: _clipped(model, data, max_norm=0.005, adam=True))
    assert found(report, "excessive_grad_clipping") is None


# -- overfitting ------------------------------------------------------------------------------------------------
def _epochs(model: nn.Module, train_data: Data, val_data: Data, epochs: int, *, weight_decay: float = 0.0) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=weight_decay)
    for _ in range(epochs):
        model.train()
        for i in range(0, len(train_data.x), 16):
            opt.zero_grad()
            train_data.loss_fn(model(train_data.x[i:i + 16]), train_data.y[i:i + 16]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            for i in range(0, len(val_data.x), 100):
                val_data.loss_fn(model(val_data.x[i:i + 100]), val_data.y[i:i + 100])


def _noisy(n: int, seed: int) -> Data:
    d = classification(n=n, seed=seed)
    g = torch.Generator().manual_seed(seed)
    flip = torch.rand(n, generator=g) < 0.3
    d.y[flip] = torch.randint(0, 3, (int(flip.sum()),), generator=g)
    return d


def test_a_big_network_on_64_noisy_samples_overfits() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 3))
    report = watched(model, lambda: _epochs(model, _noisy(64, 0), _noisy(400, 1), epochs=30))
    f = found(report, "overfitting")
    assert f is not None and f.kind == "overfitting"
    assert f.evidence["final_val_loss"] > 1.1 * f.evidence["best_val_loss"]
    assert "load_state_dict" in fix_code(f)
    assert found(report, "label_issue") is None  # it generalised a little first: overfitting, not other labels


@pytest.mark.parametrize("when", ["after", "before"])
def test_overfitting_with_the_best_checkpoint_restored_after_training_is_low(when: str) -> None:
    """Early stopping by checkpoint: the best pass's weights kept and loaded back after the last step.
    The rise is still reported, low, since the model kept is the best one. Weights loaded before
    training (a pretrained start) change nothing."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 3))
    start = copy.deepcopy(model.state_dict())

    def run() -> None:
        if when == "before":
            model.load_state_dict(start)
        _epochs(model, _noisy(64, 0), _noisy(400, 1), epochs=30)
        if when == "after":
            model.load_state_dict(start)  # (a checkpoint: here the first one)

    f = found(watched(model, run), "overfitting")
    assert f is not None
    if when == "after":
        assert f.severity == "low" and f.evidence["checkpoint_restored_at"] is not None
    else:
        assert f.severity in ("medium", "high") and f.evidence["checkpoint_restored_at"] is None


def test_enough_data_does_not_overfit() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 3))
    report = watched(model, lambda: _epochs(model, classification(n=1024, seed=0), classification(n=400, seed=1), epochs=6))
    assert found(report, "overfitting") is None


def test_a_validation_loss_coming_back_down_after_a_jump_is_not_overfitting(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """blind5's call detector, healthy: trained on batches a WeightedRandomSampler balances, validated on
    the 10%-positive data. Its validation loss went 0.44, 0.14, 0.22, 0.19, 0.20 while the balanced
    accuracy rose 0.76 -> 0.92: a shift as it learned to predict calls, falling back since. It read
    "overfitting", medium. Run as the user runs it, on the script the blind corpus holds."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "blind5" / "weighted_sampler_given_class_weights" / "healthy.py"
    out = tmp_path / "r.json"
    subprocess.run([sys.executable, "-m", "modeldebug", "run", "--json", str(out), "--db", str(tmp_path / "r.db"), "-q",
                    "--", str(script)], cwd=tmp_path, capture_output=True, timeout=240,
                   env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True)
    kinds = {f["kind"]: f["severity"] for f in json.loads(out.read_text())["findings"]}
    assert "overfitting" not in kinds, kinds


@pytest.mark.parametrize("numbering", ["shifted", "same", "same-summed"])
def test_validation_labels_numbered_differently_are_a_label_issue_not_overfitting(numbering: str) -> None:
    """blind3's sound-event classifier: each split numbers its classes from its own directory listing,
    so validation is confidently wrong from the first pass (worse than guessing), not overfitting. Its
    twins number them the same way, one summing the validation loss (pytorch/examples' MNIST test pass:
    a sum is on another scale than the chance level)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 3))
    train_data, val_data = classification(n=1024, seed=0), classification(n=400, seed=1)
    if numbering == "shifted":
        val_data.y = (val_data.y + 1) % 3
    if numbering == "same-summed":
        val_data = Data(val_data.x, val_data.y, nn.CrossEntropyLoss(reduction="sum"))
    report = watched(model, lambda: _epochs(model, train_data, val_data, epochs=6))
    f = found(report, "label_issue")
    if numbering != "shifted":
        assert f is None and serious(report) == []
        return
    assert f is not None and report.findings[0] is f and "worse than guessing" in f.title
    assert f.evidence["best_val_loss"] >= 2 * f.evidence["chance_loss"]


# -- saturated_activations ----------------------------------------------------------------------------------------
def test_sigmoid_units_pushed_to_one_by_a_large_bias_are_saturated() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.Sigmoid(), nn.Linear(64, 3))
    nn.init.constant_(model[0].bias, 6.0)
    report = watched(model, lambda: train(model, classification(), steps=60, optimizer=torch.optim.SGD(model.parameters(), lr=0.05)))
    top = report.findings[0]
    assert top.kind == "saturated_activations" and top.location == "1" and top.evidence["from_first_step"]
    assert top.evidence["feeding_layer"] == "0" and top.evidence["pre_activation_mean"] > 5
    assert "nn.init.xavier_uniform_(model.get_submodule('0').weight" in fix_code(top)


def test_healthy_tanh_layers_and_a_confident_output_sigmoid_are_not_saturated() -> None:
    model, data = healthy_regression()
    assert found(watched(model, lambda: train(model, data, steps=80)), "saturated_activations") is None
    torch.manual_seed(0)
    clf = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 1), nn.Sigmoid())
    d = classification()
    binary = Data(d.x, (d.y > 0).float().unsqueeze(1), nn.BCELoss())
    assert found(watched(clf, lambda: train(clf, binary, steps=200, lr=3e-2)), "saturated_activations") is None


# -- a heavy-tailed loss: rare glitch labels --------------------------------------------------------------------
def _glitchy(lr: float, clip: bool) -> md.Report:
    """A regression whose targets hold rare glitch readings (+-40 on 1% of samples, blind3's sensor
    forecaster): about a quarter of the batches cost a hundred times the rest, each for one step."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6000, 8, generator=g)
    y = x[:, :1] * 0.5 + torch.sin(x[:, 1:2]) + 0.05 * torch.randn(6000, 1, generator=g)
    glitch = torch.rand(6000, generator=g) < 0.01
    y[glitch] += 40.0 * torch.sign(torch.randn(int(glitch.sum()), 1, generator=g))
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    def loop() -> None:
        for i in range(0, 6000 * 2, 32):
            j = i % 6000
            opt.zero_grad()
            nn.functional.mse_loss(model(x[j:j + 32]), y[j:j + 32]).backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

    return watched(model, loop)


@pytest.mark.parametrize("lr", [0.02, 2.0])
def test_a_loss_that_jumps_with_the_batch_is_not_a_learning_rate_too_high(lr: float) -> None:
    """The glitch batches make the loss jump at any learning rate; with clipping and a sound rate the
    typical batch keeps improving and LRN001 says nothing. At 100x the rate, unclipped, it does."""
    report = _glitchy(lr, clip=lr < 1)
    f = found(report, "lr_too_high")
    if lr < 1:
        assert f is None
        return
    assert f is not None and f.severity == "high"


def test_a_heavy_tailed_loss_that_drifts_between_its_own_levels_neither_oscillates_nor_diverges() -> None:
    """blind3's GRU forecaster, healthy (clipped, SGD with momentum, 1% glitch targets, shuffled each
    epoch): a quarter of the batches cost 1000x the rest, so the median of a short window jumps with
    their share. Read "oscillates" (medium) here, and "diverged" from a best window that was a low
    extreme of the run's own spread (0.022 -> 0.082, medians 0.03-0.12 all run) on the blind script."""
    torch.manual_seed(4)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(6000, 8, generator=g)
    y = x[:, :1] * 0.5 + torch.sin(x[:, 1:2]) + 0.05 * torch.randn(6000, 1, generator=g)
    glitch = torch.rand(6000, generator=g) < 0.01
    y[glitch] += 40.0 * torch.sign(torch.randn(int(glitch.sum()), 1, generator=g))
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def loop() -> None:
        for _ in range(5):
            perm = torch.randperm(6000, generator=g)
            for i in range(0, 6000, 32):
                idx = perm[i:i + 32]
                opt.zero_grad()
                nn.functional.mse_loss(model(x[idx]), y[idx]).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()

    report = watched(model, loop)
    for kind in ("loss_oscillating", "loss_diverging", "lr_too_high"):
        assert found(report, kind) is None, kind


def test_a_level_the_loss_revisits_is_its_spread_and_a_new_high_after_the_best_is_a_climb() -> None:
    from modeldebug.rules.measures import fluctuated_back

    # blind3's shape: a descent from 0.45 (half-way to the best: 0.236), medians that swing between
    # levels, back up to 0.3 at step 300 and down again, the best 0.022 at 650, the end at 0.26
    t = np.arange(940.0)
    run = 0.45 * np.exp(-t / 40) + 0.06 + 0.24 * np.exp(-(((t - 300) / 30) ** 2))
    run[640:660] = 0.022
    assert fluctuated_back(run, 650, 0.45, 0.26)
    # the same run ending at 0.35, above anything since the descent: a climb
    assert not fluctuated_back(run, 650, 0.45, 0.35)
    # a plain descent to the best, then a climb back above half-way: nothing before the best was as high
    steady = np.concatenate([np.linspace(0.45, 0.02, 600), np.linspace(0.02, 0.3, 340)])
    assert not fluctuated_back(steady, 599, 0.45, 0.3)


def test_a_loss_summed_over_one_label_calls_whose_first_label_never_changes_is_judged_without_error() -> None:
    """PyTorchZeroToAll's hello-RNN: the step's loss adds six cross_entropy calls of one label each, the
    first always the same class, so the recorded label counts hold one class and the chance level is 0."""
    torch.manual_seed(0)
    cell, head = nn.RNNCell(5, 8), nn.Linear(8, 5)
    model = nn.ModuleDict({"cell": cell, "head": head})
    x = torch.eye(5)[[0, 1, 0, 2, 3, 3]]
    labels = [1, 0, 2, 3, 3, 4]
    opt = torch.optim.Adam(model.parameters(), lr=0.1)

    def loop() -> None:
        for _ in range(60):
            h, loss = torch.zeros(1, 8), 0.0
            for xt, yt in zip(x, labels):
                h = cell(xt[None], h)
                loss = loss + nn.functional.cross_entropy(head(h), torch.tensor([yt]))
            opt.zero_grad()
            loss.backward()
            opt.step()

    report = watched(model, loop)
    assert not [f for f in report.findings if f.code == "INT001"]


class _TinyVAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc, self.mu, self.logvar = nn.Sequential(nn.Linear(8, 16), nn.ReLU()), nn.Linear(16, 2), nn.Linear(16, 2)
        self.dec = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 8))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.enc(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.dec(z), mu, logvar


@pytest.mark.parametrize("flipped", [True, False])
def test_a_vae_whose_kl_sign_is_flipped_has_a_loss_without_floor(flipped: bool) -> None:
    """blind4's VAE: `kl = 0.5 * sum(1 + logvar - mu^2 - exp(logvar))` (the sign flipped) sends the loss
    to -1e21. It was reported as overfitting (high); the cause is a loss with no lower bound."""
    torch.manual_seed(0)
    model = _TinyVAE()
    x = torch.randn(512, 8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sign = 1.0 if flipped else -1.0

    def loop() -> None:
        for step in range(120):
            b = x[(step * 32) % 512:(step * 32) % 512 + 32]
            recon, mu, logvar = model(b)
            kl = sign * 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(b)
            loss = torch.nn.functional.mse_loss(recon, b) + kl
            opt.zero_grad()
            loss.backward()
            opt.step()

    report = watched(model, loop)
    f = found(report, "loss_diverging")
    if not flipped:
        assert f is None and not serious(report), [x.title for x in report.findings]
        return
    assert f is not None and f.evidence.get("unbounded") and report.findings[0] is f
    assert f.evidence["lowest_loss"] < -1000 * f.evidence["start_loss"] < 0
    assert "wrong sign" in f.description and "-0.5" in f.recommendations[0].implementation


@pytest.mark.parametrize("blown", [False, True])
def test_a_gans_summed_discriminator_losses_are_not_a_poor_initialisation(blown: bool) -> None:
    """blind4's GAN with two discriminators: each D step adds real and fake BCE of both (4 x ln 2 = 2.77
    at init), which INI001 read as 3.9x the chance loss (medium, on the healthy twin). Discriminators
    whose weights saturate their sigmoid at step 0 are still found from the loss."""
    torch.manual_seed(0)
    g = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    ds = [nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1), nn.Sigmoid())
          for _ in range(2)]
    if blown:
        with torch.no_grad():
            for d in ds:
                for layer in (d[0], d[2]):
                    layer.weight.mul_(40.0)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([p for d in ds for p in d.parameters()], lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCELoss()
    real = torch.randn(512, 2) * 0.3 + 1.0

    def loop() -> None:
        for step in range(60):
            x = real[(step * 32) % 512:(step * 32) % 512 + 32]
            ones, zeros = torch.ones(32, 1), torch.zeros(32, 1)
            fake = g(torch.randn(32, 4))
            d_loss = sum(bce(d(x), ones) + bce(d(fake.detach()), zeros) for d in ds)
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = sum(bce(d(fake), ones) for d in ds)
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()

    with md.watch(g, *ds, optimizer=[opt_g, opt_d], db=":memory:") as session:
        loop()
    f = found(session.report(), "poor_initialization")
    if blown:  # saturated discriminator outputs at step 0: each term far above chance
        assert f is not None and f.severity == "high" and "the loss at step 0" in f.title
    else:
        assert f is None


def test_a_gaussian_nll_with_a_learned_variance_settles_below_zero_and_is_not_unbounded() -> None:
    """Review: heteroscedastic regression (targets std 0.05), the mean warm-started for 100 steps, then
    the variance learned: the loss starts near +1e-3 and settles at its floor, 0.5 * (log(0.05^2) + 1)
    = -2.5. It was reported as a loss that "fell without bound" (2,000x its start)."""
    torch.manual_seed(0)
    x, y = torch.randn(4096, 8), 0.05 * torch.randn(4096, 1)
    body, out = nn.Sequential(nn.Linear(8, 64), nn.ReLU()), nn.Linear(64, 2)
    nn.init.zeros_(out.weight)
    nn.init.zeros_(out.bias)
    model = nn.Sequential(body, out)
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def loop() -> None:
        for step in range(400):
            i = slice((step * 256) % 4096, (step * 256) % 4096 + 256)
            mu, logvar = model(x[i]).chunk(2, -1)
            var = (logvar if step >= 100 else logvar.detach()).exp()
            loss = torch.nn.functional.gaussian_nll_loss(mu, y[i], var)
            opt.zero_grad()
            loss.backward()
            opt.step()

    report = watched(model, loop)
    assert report.record.column("loss").values[-20:].max() < -1.0  # it did go below zero, to its floor
    assert found(report, "loss_diverging") is None


def test_one_outlying_validation_pass_after_the_best_does_not_hide_overfitting() -> None:
    from modeldebug.rules.dynamics import _theil_sen

    assert _theil_sen(np.array([7.67, 4.3, 4.4, 4.5, 4.6, 4.92])) > 0  # a review's case: rising, one outlier first
    assert _theil_sen(np.array([0.218, 0.187, 0.200])) < 0  # blind5's healthy twin: falling back since a jump
