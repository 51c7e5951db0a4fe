"""Each rule: a real fault in a tiny model that must be found, and a healthy twin that must not be."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import modeldebug as md
from modeldebug.rules import RULES, analyze
from modeldebug.testing import TASKS, Data, build_record, classification, healthy_mlp, healthy_regression, train

from helpers import found, serious, watched


# -- healthy twins: no medium or high finding ---------------------------------------------------
@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("level", ["basic", "detailed"])
def test_healthy_models_come_out_clean(task: str, level: str) -> None:
    model, data = TASKS[task](seed=1)
    report = watched(model, lambda: train(model, data, steps=80, lr=1e-3 if task == "transformer" else 1e-2), level)
    assert serious(report) == []


# -- nonfinite ------------------------------------------------------------------------------------
class _LogNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(10, 32), nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.log(self.fc1(x) + 1.0))


def test_nonfinite_names_the_operation_between_modules() -> None:
    torch.manual_seed(0)
    model = _LogNet()
    x = torch.randn(64, 10) * 3
    report = watched(model, lambda: train(model, md.testing.Data(x, x.sum(1, keepdim=True), nn.MSELoss()), steps=5, lr=1e-3))
    top = report.findings[0]
    assert top.kind == "nonfinite" and top.severity == "high"
    assert top.location == "fc2" and top.evidence["origin"]["where"] == "between_modules"
    assert top.evidence["origin"]["previous_module"] == "fc1"
    assert any(r.type == "fix" and "clamp" in (r.implementation or "") for r in top.recommendations)


def test_nonfinite_twin_with_a_guarded_log_is_clean() -> None:
    class Guarded(_LogNet):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(torch.log(torch.relu(self.fc1(x)) + 1.0))

    torch.manual_seed(0)
    model = Guarded()
    x = torch.randn(64, 10) * 3
    report = watched(model, lambda: train(model, md.testing.Data(x, x.sum(1, keepdim=True), nn.MSELoss()), steps=30, lr=1e-3))
    assert found(report, "nonfinite") is None


# -- exploding gradients, loss diverging -----------------------------------------------------------------
def test_too_high_learning_rate_explodes_gradients_and_the_learning_rate_is_named_first() -> None:
    model, data = healthy_regression()
    report = watched(model, lambda: train(model, data, steps=60, optimizer=torch.optim.SGD(model.parameters(), lr=3.0)))
    top = report.findings[0]
    assert top.kind == "lr_too_high" and top.severity == "high"
    symptoms = {s["kind"] for s in top.evidence["symptoms"]}
    assert {"exploding_gradients", "loss_diverging"} <= symptoms
    explode = analyze(s_record := report.record, md.DebuggingConfig(select=["GRD001"]))[0]
    assert s_record is not None and explode.kind == "exploding_gradients" and explode.severity == "high"
    assert any("clip_grad_norm_" in (r.implementation or "") for r in explode.recommendations)


def test_same_model_at_a_sane_learning_rate_has_no_gradient_or_loss_finding() -> None:
    model, data = healthy_regression()
    report = watched(model, lambda: train(model, data, steps=60, optimizer=torch.optim.SGD(model.parameters(), lr=0.05)))
    for kind in ("exploding_gradients", "loss_diverging", "nonfinite"):
        assert found(report, kind) is None


def test_loss_diverging_on_a_recorded_curve_and_not_on_a_converged_noisy_one() -> None:
    rising = [1.0 - 0.01 * i for i in range(30)] + [0.7 + 0.1 * i for i in range(30)]
    f = [x for x in analyze(build_record(loss=rising)) if x.kind == "loss_diverging"]
    assert f and 25 <= f[0].evidence["best_step"] <= 35
    converged = [2.0 * 0.9 ** i + 0.002 * (i % 3) for i in range(120)]  # 0.001 -> 0.003 wiggles at the end
    assert not [x for x in analyze(build_record(loss=converged)) if x.kind == "loss_diverging"]


# -- vanishing gradients ---------------------------------------------------------------------------------------
def _deep(act: type[nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(20, 32), act()]
    for _ in range(10):
        layers += [nn.Linear(32, 32), act()]
    return nn.Sequential(*layers, nn.Linear(32, 3))


def test_deep_sigmoid_stack_has_vanishing_gradients_in_its_first_layers() -> None:
    model, data = _deep(nn.Sigmoid), classification()
    report = watched(model, lambda: train(model, data, steps=40, optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    f = next(f for f in report.findings if f.kind == "vanishing_gradients")
    assert f.location == "0" and f.severity in ("medium", "high")
    assert found(report, "params_not_updating") in (None, f)  # tiny updates are its symptom, not a separate cause


def test_the_same_depth_with_relu_and_he_init_does_not_vanish() -> None:
    model = _deep(nn.ReLU)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    data = classification()
    report = watched(model, lambda: train(model, data, steps=40, optimizer=torch.optim.SGD(model.parameters(), lr=0.01)))
    assert found(report, "vanishing_gradients") is None


def _wide_first_layer_before_batchnorm() -> nn.Module:
    """DCGAN's generator in small: a first Linear at a large init (``normal_``'s std of 1) in front of
    a BatchNorm, which makes its scale harmless, and the later layers at N(0, 0.02)."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(20, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 64), nn.BatchNorm1d(64),
                      nn.ReLU(), nn.Linear(64, 3))
    nn.init.normal_(m[0].weight)
    for i in (3, 6):
        nn.init.normal_(m[i].weight, 0.0, 0.02)
    return m


def test_a_small_gradient_that_adam_still_turns_into_a_normal_step_is_not_vanishing() -> None:
    # (eriklindernoren/PyTorch-GAN's dcgan.py read GRD002 medium on its generator's first Linear)
    model, data = _wide_first_layer_before_batchnorm(), classification()
    report = watched(model, lambda: train(model, data, steps=60, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3)))
    assert found(report, "vanishing_gradients") is None


def test_the_same_small_gradient_under_sgd_is_a_layer_that_barely_moves() -> None:
    model, data = _wide_first_layer_before_batchnorm(), classification()
    report = watched(model, lambda: train(model, data, steps=60, optimizer=torch.optim.SGD(model.parameters(), lr=0.05)))
    f = found(report, "vanishing_gradients")
    assert f is not None and f.location == "0" and "small_gradient_but_moving" not in f.evidence


def test_deep_sigmoid_stack_under_adam_still_vanishes_where_even_adam_cannot_move_it() -> None:
    model, data = _deep(nn.Sigmoid), classification()
    report = watched(model, lambda: train(model, data, steps=40, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3)))
    f = next(f for f in report.findings if f.kind == "vanishing_gradients")
    assert f.location == "0"
    assert "0.weight" not in f.evidence.get("small_gradient_but_moving", {})


# -- dead activations -------------------------------------------------------------------------------------------
def test_relu_layer_killed_by_a_minus_ten_bias_is_the_top_finding() -> None:
    model, data = healthy_mlp()
    nn.init.constant_(model[2].bias, -10.0)
    report = watched(model, lambda: train(model, data, steps=60, lr=1e-3))
    top = report.findings[0]
    assert top.kind == "dead_activations" and top.location == "3" and top.severity == "high"
    assert top.evidence["from_first_step"] is True and top.evidence["feeding_layer"] == "2"
    assert top.evidence["pre_activation_mean"] < -5
    assert any("kaiming_normal_" in (r.implementation or "") for r in top.recommendations)


def _partly_dead(kill_at: int) -> md.Report:
    """60% of the second ReLU layer's units knocked out by a -10 bias at step `kill_at` (0: the initialisation)."""
    model, data = healthy_mlp()
    killed = torch.arange(64) < 38

    def loop() -> None:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for step in range(200):
            if step == kill_at:
                with torch.no_grad():
                    model[2].bias[killed] = -10.0
            x, y = data.batch(step, 64)
            opt.zero_grad()
            data.loss_fn(model(x), y).backward()
            opt.step()

    return watched(model, loop)


def test_part_of_a_layer_dead_from_the_first_step_is_medium() -> None:
    f = found(_partly_dead(kill_at=0), "dead_activations")
    assert f is not None and f.location == "3" and f.severity == "medium" and f.evidence["from_first_step"] is True
    assert f.evidence["dead_fraction"] == pytest.approx(38 / 64, abs=0.05)


def test_part_of_a_layer_gone_quiet_after_training_began_is_low() -> None:
    """The same 60% knocked out at step 40 of 200 (dead on 3 of the 9 sampled steps): seen, dated, but low. Units that stop firing while training goes
    on are not why a run fails (blind6's healthy box regressor ends with half of a 128-unit layer quiet)."""
    f = found(_partly_dead(kill_at=40), "dead_activations")
    assert f is not None and f.location == "3" and f.severity == "low" and f.evidence["from_first_step"] is False
    assert f.step >= 40 and "after training began" in f.evidence["severity_basis"]


@pytest.mark.parametrize("recovers", [True, False])
def test_units_that_come_back_to_life_are_not_called_dead(recovers: bool) -> None:
    """The real-world corpus's lx_ae (a decoder behind a 3-unit bottleneck): 58% of a ReLU layer's units zero on
    the first batch, 8% at step 100, as the layers before it moved. The median over its samples (49%, mostly
    the densely sampled start) flipped the finding from run to run. The twin stays dead to the end."""
    steps = [0, 1, 2, 5, 10, 20, 50, 100]
    dead = [0.578, 0.562, 0.547, 0.516, 0.469, 0.281, 0.125, 0.078] if recovers else \
        [0.578, 0.562, 0.547, 0.516, 0.547, 0.562, 0.531, 0.547]
    record = build_record(loss=[1.0 - 0.004 * i for i in range(101)], sample_steps=steps,
                          modules={"relu": ("ReLU", {"dead_frac": dead})})
    f = next((x for x in analyze(record) if x.kind == "dead_activations"), None)
    if recovers:
        assert f is None
    else:
        assert f is not None and f.severity == "medium" and f.evidence["from_first_step"] is True
        assert f.evidence["dead_fraction"] == pytest.approx(0.547, abs=0.01)


def test_healthy_relu_layers_are_not_called_dead() -> None:
    model, data = healthy_mlp()
    report = watched(model, lambda: train(model, data, steps=60, lr=1e-3), level="detailed")
    assert found(report, "dead_activations") is None


# -- params not updating ----------------------------------------------------------------------------------------
class _Detached(nn.Module):
    def __init__(self, detach: bool) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(20, 32), nn.ReLU())
        self.head = nn.Linear(32, 3)
        self.detach = detach

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        return self.head(h.detach() if self.detach else h)


@pytest.mark.parametrize("detach", [True, False])
def test_a_detached_encoder_never_gets_a_gradient(detach: bool) -> None:
    torch.manual_seed(0)
    model, data = _Detached(detach), classification()
    report = watched(model, lambda: train(model, data, steps=30))
    f = found(report, "params_not_updating")
    if detach:
        assert f is not None and f.location == "encoder.0"
        assert set(f.evidence["params"]) == {"encoder.0.weight", "encoder.0.bias"}
    else:
        assert f is None


class _BiLSTM(nn.Module):
    """Reads a [batch, time, features] batch time-first into a bidirectional LSTM; classifies from the
    output at the last step (`last_step`: where the reverse direction has taken one step) or from h_n."""

    def __init__(self, last_step: bool) -> None:
        super().__init__()
        self.lstm, self.head, self.last_step = nn.LSTM(5, 8, bidirectional=True), nn.Linear(16, 3), last_step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, (h_n, _) = self.lstm(x.transpose(0, 1))
        return self.head(out[-1] if self.last_step else torch.cat([h_n[-2], h_n[-1]], dim=1))


@pytest.mark.parametrize("last_step", [True, False])
def test_the_reverse_direction_read_at_the_last_step_is_named_as_such(last_step: bool) -> None:
    # graykode/nlp-tutorial's Bi-LSTM: out[-1] of a bidirectional LSTM; weight_hh_l0_reverse's gradient is exactly 0
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 7, 5, generator=g)
    data = Data(x, (x[:, :, 0].sum(1) > 0).long() + (x[:, 0, 1] > 1).long(), nn.CrossEntropyLoss())
    model = _BiLSTM(last_step)
    report = watched(model, lambda: train(model, data, steps=30))
    f = found(report, "params_not_updating")
    if not last_step:
        assert f is None
        return
    assert f is not None and f.evidence["params"] == ["lstm.weight_hh_l0_reverse"] and "zero gradient" in f.title
    assert "reverse direction" in f.description and "h_n[-2], h_n[-1]" in f.recommendations[0].implementation


class _BiGRUClassifier(nn.Module):
    """PyTorchZeroToAll's name classifier (13_2): a 2-layer bidirectional GRU read through h_n[-1]
    (`one_direction`, the top layer's reverse direction only), or through both top directions."""

    def __init__(self, one_direction: bool) -> None:
        super().__init__()
        self.embed, self.gru = nn.Embedding(20, 8), nn.GRU(8, 8, 2, bidirectional=True)
        self.fc, self.one = nn.Linear(8 if one_direction else 16, 3), one_direction

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        _, h_n = self.gru(self.embed(ids.t()))  # time first
        return self.fc(h_n[-1] if self.one else torch.cat([h_n[-2], h_n[-1]], dim=1))


@pytest.mark.parametrize("one_direction", [True, False])
def test_a_bidirectional_rnn_read_through_h_n_minus_one_leaves_its_top_forward_direction_unused(
        one_direction: bool) -> None:
    torch.manual_seed(0)
    ids = torch.randint(0, 20, (256, 6), generator=torch.Generator().manual_seed(0))
    data = Data(ids, (ids[:, 0] % 3), nn.CrossEntropyLoss())
    model = _BiGRUClassifier(one_direction)
    f = found(watched(model, lambda: train(model, data, steps=30)), "params_not_updating")
    if not one_direction:
        assert f is None
        return
    assert f is not None and set(f.evidence["params"]) == {
        f"gru.{w}_l1" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    assert "h_n[-1]" in f.description and "REVERSE" in f.description
    assert "h_n[-2], h_n[-1]" in f.recommendations[0].implementation


def test_a_layer_replaced_after_the_optimizer_was_built_is_in_no_optimizer() -> None:
    model, data = healthy_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model[4] = nn.Linear(64, 3)  # the classic: swap the head after building the optimizer
    report = watched(model, lambda: train(model, data, steps=20, optimizer=opt))
    f = next(f for f in report.findings if f.kind == "params_not_updating")
    assert "in no optimizer" in f.title and set(f.evidence["params"]) == {"4.weight", "4.bias"}


def test_a_parameter_group_with_learning_rate_zero_is_found() -> None:
    model, data = healthy_mlp()
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.0},
                           {"params": list(model[2].parameters()) + list(model[4].parameters()), "lr": 0.05}])
    report = watched(model, lambda: train(model, data, steps=30, optimizer=opt), level="detailed")
    f = next(f for f in report.findings if f.kind == "params_not_updating")
    assert "never change" in f.title and set(f.evidence["params"]) == {"0.weight", "0.bias"}


# -- loss not decreasing ----------------------------------------------------------------------------------------
def test_a_learning_rate_far_too_low_leaves_the_loss_flat() -> None:
    model, data = healthy_mlp()
    report = watched(model, lambda: train(model, data, steps=60, optimizer=torch.optim.SGD(model.parameters(), lr=1e-7)))
    assert found(report, "loss_not_decreasing") is not None
    flat = analyze(report.record, md.DebuggingConfig(select=["LOS002"]))
    assert flat and flat[0].kind == "loss_not_decreasing"


def test_labels_shuffled_apart_from_their_inputs_leave_the_loss_at_chance() -> None:
    torch.manual_seed(0)
    data = classification(n=2000)
    data.y = data.y[torch.randperm(len(data.y))]
    model = nn.Linear(20, 3)
    report = watched(model, lambda: train(model, data, steps=120, optimizer=torch.optim.SGD(model.parameters(), lr=0.05)))
    f = found(report, "loss_not_decreasing")
    assert f is not None and "chance" in (f.title if f.kind == "loss_not_decreasing" else str(f.evidence["symptoms"]))


def test_a_classifier_that_learns_is_not_at_chance() -> None:
    torch.manual_seed(0)
    model, data = nn.Linear(20, 3), classification(n=2000)
    report = watched(model, lambda: train(model, data, steps=120, optimizer=torch.optim.SGD(model.parameters(), lr=0.05)))
    assert found(report, "loss_not_decreasing") is None


@pytest.mark.parametrize("shuffled", [True, False])
def test_chance_under_a_pos_weight_is_the_weighted_loss_of_the_best_constant(shuffled: bool) -> None:
    """blind1's rare_positive healthy twin: BCEWithLogitsLoss(pos_weight=negatives/positives) on 8%
    positives learns (recall 0.9) with a loss of ~0.85, above the unweighted entropy of the positive
    rate (0.28) but below the weighted chance (2(1-p) ln 2 = 1.28). It read "worse than chance", high.
    Its twin's labels are shuffled apart from the inputs: stuck at the weighted chance."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3000, 10, generator=g)
    y = ((x[:, :3].sum(1) + 0.7 * torch.randn(3000, generator=g)) > 2.4).float().unsqueeze(1)  # ~8% positives
    if shuffled:
        y = y[torch.randperm(len(y), generator=g)]
    share = float(y.mean())
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([(1 - share) / share]))
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))
    report = watched(model, lambda: train(model, Data(x, y, loss_fn), steps=150, batch=64,
                                          optimizer=torch.optim.SGD(model.parameters(), lr=0.01)))
    f = found(report, "loss_not_decreasing")
    if shuffled:
        assert f is not None and "chance" in (f.title if f.kind == "loss_not_decreasing" else str(f.evidence["symptoms"]))
    else:
        assert f is None, f.title


def test_a_learning_model_is_not_flat_and_short_runs_are_not_judged() -> None:
    model, data = healthy_mlp()
    report = watched(model, lambda: train(model, data, steps=60, lr=1e-2))
    assert found(report, "loss_not_decreasing") is None
    flat_but_short = [1.0] * 10
    assert analyze(build_record(loss=flat_but_short)) == []


# -- the catalogue itself is tested in test_catalogue.py ------------------------------------------------------
def test_every_serious_finding_carries_a_fix_with_code() -> None:
    model, data = healthy_mlp()
    nn.init.constant_(model[2].bias, -10.0)
    report = watched(model, lambda: train(model, data, steps=30))
    for f in report.findings:
        if f.severity in ("medium", "high"):
            assert any(r.type == "fix" and r.implementation for r in f.recommendations), f.code


def test_select_and_ignore_steer_which_rules_run() -> None:
    model, data = healthy_mlp()
    nn.init.constant_(model[2].bias, -10.0)
    with md.watch(model, db=":memory:") as s:
        train(model, data, steps=30)
    assert "dead_activations" not in s.report(md.DebuggingConfig(ignore=["ACT"])).kinds()
    assert s.report(md.DebuggingConfig(select=["ACT001"])).kinds() == ["dead_activations"]
    with pytest.raises(md.UnknownRuleError):
        s.report(md.DebuggingConfig(select=["XYZ999"]))


def test_every_threshold_a_rule_reads_can_be_set_in_the_config() -> None:
    import re
    from pathlib import Path

    import modeldebug.rules as rules_pkg
    from modeldebug.config import Thresholds

    used = set()
    for path in Path(rules_pkg.__file__).parent.glob("*.py"):
        text = path.read_text()
        used |= set(re.findall(r"ctx\.option\(.([a-z_]+).\)", text))
        used |= set(re.findall(r'ctx\.t\.([a-z_]+)', text))
        assert "ctx.threshold(" not in text, f"{path.name}: read options with ctx.option(name)"
    assert used and used <= set(Thresholds.model_fields)


def test_a_threshold_override_changes_the_verdict() -> None:
    model, data = healthy_mlp()
    nn.init.constant_(model[2].bias, -10.0)
    with md.watch(model, db=":memory:") as s:
        train(model, data, steps=30)
    assert "dead_activations" in s.report().kinds()
    strict = md.DebuggingConfig(thresholds={"dead_fraction": 1.01})  # no layer can be more than 100% dead
    assert "dead_activations" not in s.report(strict).kinds()
