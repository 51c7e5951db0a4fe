"""Data-and-loss rules: each fault built the way people write it in a tiny seeded model, and a healthy twin."""

from __future__ import annotations

import contextlib

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import modeldebug as md
from modeldebug.rules import data, labels, lossfn  # noqa: F401  (importing registers the rules)
from modeldebug.rules.data import crash_kind
from modeldebug.rules.lossfn import broadcast_shape
from modeldebug.testing import Data, classification, healthy_cnn, healthy_mlp, healthy_regression, healthy_transformer, train

from helpers import serious
from test_rules import watched


def finding(report, kind: str):  # type: ignore[no-untyped-def]
    """The top-level finding of `kind` (these rules are causes, never folded), or None."""
    return next((f for f in report.findings if f.kind == kind), None)


def has_fix(f) -> bool:  # type: ignore[no-untyped-def]
    return any(r.type == "fix" and r.implementation for r in f.recommendations)


def loop(model: nn.Module, batches, loss_fn, *, steps: int = 30, lr: float = 1e-2) -> None:  # type: ignore[no-untyped-def]
    """Train on batches(step) -> (x, y) with Adam."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        x, y = batches(step)
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()


# -- input_not_normalized ----------------------------------------------------------------------------
def test_raw_pixels_0_to_255_are_the_root_cause() -> None:
    model, d = healthy_cnn()
    pixels = Data(((d.x.clamp(-2, 2) + 2) * 63.75).round(), d.y, d.loss_fn)  # integer pixel values 0..255
    report = watched(model, lambda: train(model, pixels, steps=30, optimizer=torch.optim.SGD(model.parameters(), lr=0.05)))
    f = report.findings[0]
    assert f.kind == "input_not_normalized" and f.severity == "high" and "0..255" in f.title
    assert f.location == "0" and f.evidence["max"] == 255
    assert has_fix(f) and "/ 255.0" in f.recommendations[0].implementation


def test_one_feature_in_the_thousands_is_found_and_unit_scale_inputs_are_not() -> None:
    model, d = healthy_mlp()
    x = d.x.clone()
    x[:, 5] *= 5000.0  # an unscaled column (a price, a count) among standardised ones
    report = watched(model, lambda: train(model, Data(x, d.y, d.loss_fn), steps=30))
    assert finding(report, "input_not_normalized") is not None
    model, d = healthy_mlp()
    assert finding(watched(model, lambda: train(model, d, steps=30)), "input_not_normalized") is None


def test_a_model_that_starts_with_batchnorm_may_take_raw_features() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm1d(20), nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 3))
    d = classification()
    report = watched(model, lambda: train(model, Data(d.x * 300 + 500, d.y, d.loss_fn), steps=30))
    assert finding(report, "input_not_normalized") is None


def test_a_batch_of_identical_samples_is_found() -> None:
    model, d = healthy_mlp()
    report = watched(model, lambda: loop(model, lambda s: (d.x[:1].expand(64, -1), d.y[:64]), d.loss_fn))
    f = finding(report, "input_not_normalized")
    assert f is not None and "identical" in f.title and has_fix(f)


def test_pixels_divided_by_255_twice_get_a_low_note() -> None:
    model, d = healthy_cnn()
    twice = Data((d.x.clamp(-2, 2) + 2) / 4 / 255, d.y, d.loss_fn)  # 0..1/255
    f = finding(watched(model, lambda: train(model, twice, steps=12)), "input_not_normalized")
    assert f is not None and "tiny" in f.title


# -- channel_order ---------------------------------------------------------------------------------------
def test_channels_last_images_into_conv2d_crash_as_channel_order() -> None:
    model, d = healthy_cnn()
    nhwc = Data(d.x.permute(0, 2, 3, 1).contiguous(), d.y, d.loss_fn)  # (N, 8, 8, 3)
    with pytest.raises(RuntimeError, match="channels"), md.watch(model, db=":memory:") as s:
        train(model, nhwc, steps=5)
    f = finding(s.report(), "channel_order")
    assert f is not None and f.severity == "high" and f.location == "0"
    assert "permute(0, 3, 1, 2)" in f.recommendations[0].implementation


def test_channels_last_into_a_conv_sized_from_axis_1_trains_silently_and_is_found() -> None:
    torch.manual_seed(0)
    x = torch.rand(128, 12, 12, 3)  # H, W, C
    y = (x[..., 0].mean((1, 2)) > 0.5).long()
    model = nn.Sequential(nn.Conv2d(x.shape[1], 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    report = watched(model, lambda: train(model, Data(x, y, nn.CrossEntropyLoss()), steps=10))
    f = finding(report, "channel_order")
    assert f is not None and "channels-last" in f.title and f.location == "0"


def _imagenet_like(bgr: bool) -> torch.Tensor:
    """Natural-image channel statistics (red brightest), normalised with ImageNet's RGB constants."""
    g = torch.Generator().manual_seed(0)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    img = (mean + std * torch.randn(256, 3, 8, 8, generator=g)).clamp(0, 1)
    if bgr:
        img = img.flip(1)  # cv2.imread order
    return (img - mean) / std


@pytest.mark.parametrize("bgr", [True, False])
def test_bgr_images_normalised_with_rgb_constants_get_a_low_note(bgr: bool) -> None:
    model, d = healthy_cnn()
    report = watched(model, lambda: train(model, Data(_imagenet_like(bgr), d.y, d.loss_fn), steps=12))
    f = finding(report, "channel_order")
    if bgr:
        assert f is not None and f.severity == "low" and "BGR" in f.title
    else:
        assert f is None


def test_channels_first_images_are_not_flagged() -> None:
    model, d = healthy_cnn()
    assert finding(watched(model, lambda: train(model, d, steps=12)), "channel_order") is None


# -- label_issue ----------------------------------------------------------------------------------------------
def test_one_based_labels_crash_as_a_label_issue() -> None:
    model, d = healthy_mlp()
    with pytest.raises(IndexError, match="out of bounds"), md.watch(model, db=":memory:") as s:
        train(model, Data(d.x, d.y + 1, d.loss_fn), steps=5)  # labels 1..3 for 3 outputs
    f = finding(s.report(), "label_issue")
    assert f is not None and f.severity == "high" and "y - 1" in f.recommendations[0].implementation


def test_minus_one_plus_one_labels_into_bce_with_logits() -> None:
    model, d = healthy_regression()
    y = torch.where(d.y > 0, 1.0, -1.0)
    report = watched(model, lambda: train(model, Data(d.x, y, nn.BCEWithLogitsLoss()), steps=30))
    f = report.findings[0]
    assert f.kind == "label_issue" and "outside [0, 1]" in f.title and "(y + 1) / 2" in f.recommendations[0].implementation
    model, d = healthy_regression()
    y01 = (d.y > 0).float()
    assert finding(watched(model, lambda: train(model, Data(d.x, y01, nn.BCEWithLogitsLoss()), steps=30)), "label_issue") is None


def test_data_sorted_by_label_and_not_shuffled() -> None:
    model, d = healthy_mlp()
    order = torch.argsort(d.y, stable=True)
    xs, ys = d.x[order], d.y[order]
    report = watched(model, lambda: loop(model, lambda s: (xs[(s * 16) % 512:(s * 16) % 512 + 16],
                                                           ys[(s * 16) % 512:(s * 16) % 512 + 16]), d.loss_fn, steps=40))
    f = finding(report, "label_issue")
    assert f is not None and "single class" in f.title and "shuffle=True" in f.recommendations[0].implementation
    assert finding(report, "class_imbalance") is None  # one bug, reported once


def test_labels_that_are_all_zero() -> None:
    model, d = healthy_mlp()
    report = watched(model, lambda: train(model, Data(d.x, torch.zeros_like(d.y), d.loss_fn), steps=30))
    f = finding(report, "label_issue")
    assert f is not None and "class 0" in f.title


def test_regression_targets_beyond_a_final_sigmoid() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
    d = healthy_regression()[1]
    report = watched(model, lambda: train(model, Data(d.x, 50 + 40 * d.y, nn.MSELoss()), steps=30))
    f = finding(report, "label_issue")
    assert f is not None and "Sigmoid" in f.title and f.location == "3"
    model, d = healthy_regression()  # targets within tanh's range: not flagged
    assert finding(watched(model, lambda: train(model, d, steps=30)), "label_issue") is None


@pytest.mark.parametrize("standardised", [False, True])
def test_regression_targets_far_off_the_outputs_scale(standardised: bool) -> None:
    """blind4's recommender regresses raw watch time (mean ~1,800 s) with MSE and Adam 1e-3: after 8
    epochs validation R2 is -0.13 (0.945 standardised). Its healthy twin standardises the targets."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    d = healthy_regression()[1]
    seconds = 1800 + 600 * d.y
    y = (seconds - seconds.mean()) / seconds.std() if standardised else seconds
    report = watched(model, lambda: train(model, Data(d.x, y, nn.MSELoss()), steps=80, lr=1e-3,
                                          optimizer=torch.optim.Adam(model.parameters(), lr=1e-3)))
    f = finding(report, "label_issue")
    if standardised:
        assert f is None and not serious(report), [x.title for x in report.findings]
        return
    assert f is not None and f.severity == "medium" and "standardise" in f.title
    assert f.evidence["target_scale"] > 1000 and f.evidence["output_max_abs"] < 10
    assert "y_std" in f.recommendations[0].implementation


def test_a_count_regression_that_settled_at_its_noise_is_not_off_scale() -> None:
    """Review: bike-sharing-like counts (mean ~145, std ~170) whose level is learned in a few dozen
    steps; the loss then sits at the targets' noise, above 5% of its start, and is not falling."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 8, generator=g)
    rate = torch.exp(4.5 + 0.6 * x[:, :1])
    y = torch.poisson(rate, generator=g) * (1 + torch.rand(2048, 1, generator=g))
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    report = watched(model, lambda: train(model, Data(x, y, nn.MSELoss()), steps=200, batch=128,
                                          optimizer=torch.optim.Adam(model.parameters(), lr=0.05)))
    f = finding(report, "label_issue")
    assert f is None, f.title


# -- class_imbalance ----------------------------------------------------------------------------------------------
def test_three_percent_positives_with_an_unweighted_loss() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 10, generator=g)
    y = (torch.rand(2048, generator=g) < 0.03).long()
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
    report = watched(model, lambda: train(model, Data(x, y, nn.CrossEntropyLoss()), steps=60, batch=128, lr=1e-3))
    f = finding(report, "class_imbalance")
    assert f is not None and f.evidence["imbalance_ratio"] >= 10
    assert f.evidence["predicts_prior"] and f.severity == "high"  # noise features: it can only learn the prior
    assert "CrossEntropyLoss(weight=" in f.recommendations[0].implementation


def test_rare_positives_with_bce_get_a_pos_weight() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2048, 10, generator=g)
    y = (torch.rand(2048, 1, generator=g) < 0.04).float()
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))
    report = watched(model, lambda: train(model, Data(x, y, nn.BCEWithLogitsLoss()), steps=40, batch=128))
    f = finding(report, "class_imbalance")
    assert f is not None and "pos_weight" in f.recommendations[0].implementation


@pytest.mark.parametrize("pos_weight", [None, "inverse", "uniform"])
def test_rare_positives_under_a_pos_weight_are_already_weighted(pos_weight: str | None) -> None:
    """blind1's rare_positive_class_never_predicted: its healthy twin weights BCEWithLogitsLoss with
    pos_weight = negatives / positives, and was reported high "imbalanced, predicts the prior" (the
    weighted loss stays near ln 2 while the model learns). The unweighted run is the fault."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4096, 10, generator=g)
    y = ((x[:, 0] + 0.8 * torch.randn(4096, generator=g)) > 2.2).float().unsqueeze(1)  # ~5% positives
    share = float(y.mean())
    w = None if pos_weight is None else torch.tensor([(1 - share) / share if pos_weight == "inverse" else 1.0])
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))
    report = watched(model, lambda: train(model, Data(x, y, nn.BCEWithLogitsLoss(pos_weight=w)), steps=60, batch=128))
    f = finding(report, "class_imbalance")
    if pos_weight == "inverse":
        assert f is None, f.title
        assert not serious(report)
        loss = next(e for e in report.record.entities("loss") if e.info.get("phase") == "train")
        assert loss.info["pos_weight"] == pytest.approx([float(w)])
    else:  # no weight, or a weight of 1: the loss is not weighted for it
        assert f is not None and f.evidence["imbalance_ratio"] >= 10, report.findings


def test_tied_weights_are_ranked_at_their_average() -> None:
    from modeldebug.rules.labels import _rank_correlation

    shares = np.array([0.04, 0.08, 0.15, 0.28, 0.45])
    assert _rank_correlation(np.array([1.0, 1, 1, 1, 3]), shares) < 0.8  # mostly equal weights: not "following"
    assert _rank_correlation(shares * 2, shares) == 1.0


@pytest.mark.parametrize("weights", ["frequency", "inverse"])
def test_class_weights_that_follow_the_frequency_are_found(weights: str) -> None:
    """weight = counts / counts.sum() where the inverse was meant (blind3's segmenter, here per sample):
    the rare class counts least. Its twin weights by the inverse frequency and learns the rare class."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4096, 10, generator=g)
    y = torch.where(x[:, 0] > 2.0, 2, torch.where(x[:, 1] > 0.8, 1, 0))  # about 2%, 21% and 77%
    counts = torch.bincount(y, minlength=3).float()
    w = counts / counts.sum() if weights == "frequency" else counts.sum() / (3 * counts)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    report = watched(model, lambda: train(model, Data(x, y, nn.CrossEntropyLoss(weight=w)), steps=60, batch=128))
    f = finding(report, "class_imbalance")
    if weights == "inverse":
        assert f is None, f.title  # the fix: the loss is weighted for the imbalance
        assert not serious(report)  # nor "worse than chance" against the unweighted label entropy
        return
    assert f is not None and f.severity == "high" and "grow with class frequency" in f.title
    assert f.evidence["rank_correlation"] == 1.0 and "counts.sum() / (len(counts) * counts)" in f.recommendations[0].implementation


def test_balanced_classes_are_not_imbalanced() -> None:
    model, d = healthy_mlp()
    assert finding(watched(model, lambda: train(model, d, steps=40)), "class_imbalance") is None


def _two_classes_on(outputs: int, *, minority: float = 0.5) -> md.Report:
    """Labels 0 and 1 (1 with probability `minority`), learnable from the input, on `outputs` logits."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 10, generator=g)
    y = (x[:, 0] > torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(1 - minority))).long()
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, outputs))
    return watched(model, lambda: train(model, Data(x, y, nn.CrossEntropyLoss()), steps=60, batch=128))


def test_an_output_no_label_names_is_not_an_imbalance_ratio_made_up_from_a_zero() -> None:
    # a 3-output head on 2 balanced classes: it read "imbalanced 300:1" with a loss weight of ~190 for class 2
    f = finding(_two_classes_on(3), "class_imbalance")
    assert f is not None and f.severity == "low" and "imbalance_ratio" not in f.evidence, f.title
    assert f.evidence["unlabelled_outputs"] == [2] and "No sampled label is class 2" in f.title
    assert "minlength=3" in f.recommendations[0].implementation and "nn.Linear(hidden, 2)" in f.recommendations[0].implementation


def test_an_imbalance_beside_an_unlabelled_output_is_the_seen_classes_ratio() -> None:
    f = finding(_two_classes_on(3, minority=0.04), "class_imbalance")
    assert f is not None and "Classes are imbalanced" in f.title and "class 1 is" in f.title, f.title
    assert 15 <= f.evidence["imbalance_ratio"] <= 40 and f.evidence["unlabelled_outputs"] == [2]
    weights = f.recommendations[0].implementation.split("[")[1].split("]")[0].split(", ")
    assert float(weights[2]) == float(weights[1]) > 5 > float(weights[0]), weights  # the absent class: the rarest's weight
    assert "Output 2 never appeared" in f.description


@pytest.mark.parametrize("one_hot", [True, False])
def test_next_word_targets_over_one_hot_words_are_a_vocabulary_not_classes(one_hot: bool) -> None:
    # graykode/nlp-tutorial's style: words fed as rows of an identity matrix, the next word as the target;
    # most words of a 12-word vocabulary are never a target (they only start sentences)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    vocab, n = 12, 512
    words = torch.randint(0, vocab, (n, 3), generator=g)
    x = torch.eye(vocab)[words] if one_hot else torch.randn(n, 3, vocab, generator=g)
    y = 8 + words[:, -1] % 4  # only words 8..11 ever follow
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * vocab, 32), nn.ReLU(), nn.Linear(32, vocab))
    report = watched(model, lambda: train(model, Data(x, y, nn.CrossEntropyLoss()), steps=40))
    f = finding(report, "class_imbalance")
    if one_hot:
        assert f is None, f.title
    else:  # the same labels over dense inputs: a classifier with 8 outputs no label names
        assert f is not None and f.evidence["unlabelled_outputs"] == list(range(8))


def test_as_many_outputs_as_classes_is_silent() -> None:
    assert finding(_two_classes_on(2), "class_imbalance") is None


# -- the deprecated size_average/reduce pair -----------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{"size_average": False}, {"reduction": "sum"}])
def test_a_loss_summed_through_size_average_false_is_judged_as_summed(kwargs: dict) -> None:
    # yunjey/pytorch-tutorial's VAE: F.binary_cross_entropy(x_reconst, x, size_average=False) read as a mean
    # loss gave INI001 high, "the loss at step 0 is 7.03e+04, 1.01e+05x the 0.693 of ln 2"
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 64), nn.Sigmoid())
    x = (torch.rand(512, 64, generator=torch.Generator().manual_seed(0)) > 0.7).float()
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def loop() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's size_average deprecation
            for i in range(40):
                b = x[(i * 32) % 512:(i * 32) % 512 + 32]
                opt.zero_grad()
                F.binary_cross_entropy(model(b), b, **kwargs).backward()
                opt.step()

    report = watched(model, loop)
    assert report.record.entity("binary_cross_entropy").info["kwargs"]["reduction"] == "sum"
    assert not serious(report), [f.title for f in report.findings]


# -- double_softmax ----------------------------------------------------------------------------------------------
def test_softmax_before_cross_entropy_explains_the_flat_loss() -> None:
    model, d = healthy_mlp()
    model.append(nn.Softmax(dim=1))
    report = watched(model, lambda: train(model, d, steps=60, optimizer=torch.optim.SGD(model.parameters(), lr=0.05)))
    f = report.findings[0]
    assert f.kind == "double_softmax" and f.severity == "high" and f.location == "5"
    assert has_fix(f)


def test_sigmoid_before_bce_with_logits() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1), nn.Sigmoid())
    d = healthy_regression()[1]
    report = watched(model, lambda: train(model, Data(d.x, (d.y > 0).float(), nn.BCEWithLogitsLoss()), steps=30))
    f = finding(report, "double_softmax")
    assert f is not None and "binary_cross_entropy_with_logits" in f.title


@pytest.mark.parametrize("log", [False, True])
def test_nll_loss_needs_log_softmax(log: bool) -> None:
    model, d = healthy_mlp()
    head = (lambda z: F.log_softmax(z, dim=1)) if log else (lambda z: z)
    report = watched(model, lambda: train(model, Data(d.x, d.y, lambda out, y: F.nll_loss(head(out), y)), steps=30))
    f = finding(report, "double_softmax")
    if log:
        assert f is None
    else:
        assert f is not None and "raw logits" in f.title


@pytest.mark.parametrize("relu", [True, False])
def test_a_relu_on_the_logits_of_cross_entropy(relu: bool) -> None:
    """L1aoXingyu/pytorch-beginner's MLP lesson ends in `nn.Linear(100, 10), nn.ReLU(True)`: logits that
    are never negative (3 epochs: test accuracy 0.67 against 0.99 without the ReLU)."""
    model, d = healthy_mlp()
    if relu:
        model.append(nn.ReLU())
    report = watched(model, lambda: train(model, d, steps=80, optimizer=torch.optim.SGD(model.parameters(), lr=0.05)))
    f = finding(report, "double_softmax")
    if not relu:
        assert f is None
        return
    assert f is not None and "clamped at 0" in f.title and f.location == "5"
    assert f.evidence["in_min"] == 0.0 and f.evidence["in_max"] > 0 and f.evidence["sampled_steps"] >= 3
    assert report.findings[0] is f and has_fix(f)


def test_a_relu_before_bce_with_logits_caps_every_prediction_at_one_half() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1), nn.ReLU())
    d = healthy_regression()[1]
    report = watched(model, lambda: train(model, Data(d.x, (d.y > 0).float(), nn.BCEWithLogitsLoss()), steps=60))
    f = finding(report, "double_softmax")
    assert f is not None and f.severity == "high" and "binary_cross_entropy_with_logits" in f.title
    assert "0.5" in f.description


def test_logits_into_cross_entropy_are_fine() -> None:
    model, d = healthy_mlp()
    assert finding(watched(model, lambda: train(model, d, steps=30)), "double_softmax") is None


# -- loss_shape_mismatch ----------------------------------------------------------------------------------------------
def test_prediction_n_by_1_against_target_n_broadcasts_in_mse() -> None:
    model, d = healthy_regression()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PyTorch warns once; most notebooks silence it
        report = watched(model, lambda: train(model, Data(d.x, d.y.squeeze(1), nn.MSELoss()), steps=40))
    f = report.findings[0]
    assert f.kind == "loss_shape_mismatch" and f.evidence["broadcast_shape"] == [64, 64]
    assert "view_as" in f.recommendations[0].implementation
    model, d = healthy_regression()
    assert finding(watched(model, lambda: train(model, d, steps=40)), "loss_shape_mismatch") is None


def test_cross_entropy_over_a_single_output_is_always_zero() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 1))
    d = classification(classes=2)
    report = watched(model, lambda: train(model, Data(d.x, torch.zeros_like(d.y), d.loss_fn), steps=30))
    f = finding(report, "loss_shape_mismatch")
    assert f is not None and "single class" in f.title and "BCEWithLogitsLoss" in f.recommendations[0].implementation


def test_bce_target_size_crash_is_a_loss_shape_mismatch() -> None:
    model, d = healthy_regression()
    with pytest.raises(ValueError, match="Target size"), md.watch(model, db=":memory:") as s:
        train(model, Data(d.x, (d.y.squeeze(1) > 0).float(), nn.BCEWithLogitsLoss()), steps=5)
    f = finding(s.report(), "loss_shape_mismatch")
    assert f is not None and "[64]" in f.title


# -- batch_mixing -------------------------------------------------------------------------------------------------------
class _AttendAcrossBatch(nn.Module):
    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 16)
        layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)).mean(1))


@pytest.mark.parametrize("batch_first", [False, True])
def test_attention_without_batch_first_mixes_the_batch(batch_first: bool) -> None:
    torch.manual_seed(0)
    model, d = _AttendAcrossBatch(batch_first), healthy_transformer()[1]
    report = watched(model, lambda: train(model, d, steps=5, lr=1e-3))
    f = finding(report, "batch_mixing")
    if batch_first:
        assert f is None
    else:
        assert f is not None and f.severity == "high" and "batch_first" in f.description
        assert any("batch_first=True" in (r.implementation or "") for r in f.recommendations)
        assert f.location == "encoder.layers.0.self_attn", f.location  # the attention, not the layers around it


class _TokenAttention(nn.Module):
    """Token ids -> embedding (+ a position embedding called on positions, not on the ids) -> one
    nn.MultiheadAttention -> the first position's state -> 2 classes."""

    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(5, 16), nn.Embedding(12, 16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=batch_first)
        self.head = nn.Linear(16, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        a, _ = self.attn(h, h, h)
        return self.head((h + a)[:, 0])


def _watched_on_tokens(model: nn.Module, ids: torch.Tensor, y: torch.Tensor):  # type: ignore[no-untyped-def]
    """Eight Adam steps of a token classifier on batches of 32, watched."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loop() -> None:
        for step in range(8):
            i = slice(32 * step, 32 * step + 32)
            loss = F.cross_entropy(model(ids[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()

    return watched(model, loop)


@pytest.mark.parametrize("batch_first", [False, True])
def test_token_ids_into_attention_without_batch_first_mix_the_batch(batch_first: bool) -> None:
    """Token ids have no gradient: the probe takes it at their embedding."""
    torch.manual_seed(0)
    model = _TokenAttention(batch_first)
    ids = torch.randint(1, 5, (256, 12))
    y = ((ids == 1).sum(1) > (ids == 2).sum(1)).long()
    report = _watched_on_tokens(model, ids, y)
    f = finding(report, "batch_mixing")
    if batch_first:
        assert f is None
        (probe,) = report.record.events("batch_mixing_probe")
        assert probe.data["mixed_samples"] == 0 and probe.data["own_grad"] > 0
    else:
        assert f is not None and f.severity == "high" and "MultiheadAttention" in f.description
        assert f.location == "attn" and "inside attn (MultiheadAttention)" in f.description


class _SortedPacked(nn.Module):
    """An LSTM classifier that sorts its batch by length for pack_padded_sequence (blind4's
    packed_lstm case): with `restore`, the outputs are put back in the batch's order."""

    def __init__(self, restore: bool) -> None:
        super().__init__()
        self.restore = restore
        self.emb, self.lstm, self.head = nn.Embedding(12, 8, padding_idx=0), nn.LSTM(8, 16, batch_first=True), nn.Linear(16, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        lengths = (ids != 0).sum(1)
        lengths_sorted, order = lengths.sort(descending=True)
        packed = nn.utils.rnn.pack_padded_sequence(self.emb(ids[order]), lengths_sorted, batch_first=True)
        _, (h_n, _) = self.lstm(packed)
        h = h_n[-1][order.argsort()] if self.restore else h_n[-1]
        return self.head(h)


@pytest.mark.parametrize("duplicates", [False, True], ids=["distinct", "with-repeated-samples"])
@pytest.mark.parametrize("restore", [True, False])
def test_a_batch_sorted_for_packing_is_judged_in_the_batchs_own_order(restore: bool, duplicates: bool) -> None:
    """Sorting before the embedding and restoring the order after keeps samples apart (it was a
    medium false alarm: the probe read embedding rows as if they were in the batch's order); not
    restoring it gives every output another sample's result."""
    torch.manual_seed(0)
    lengths = torch.randint(3, 13, (256,))
    ids = torch.randint(1, 12, (256, 12)) * (torch.arange(12) < lengths[:, None])
    if duplicates:  # identical samples in the first batch (short padded sentences): which is whose is moot
        ids[1], ids[5] = ids[0], ids[3]
    y = (ids == 1).any(1).long()
    model = _SortedPacked(restore)
    report = _watched_on_tokens(model, ids, y)
    f = finding(report, "batch_mixing")
    (probe,) = report.record.events("batch_mixing_probe")
    assert probe.data["reordered_before_embedding"] is True
    if restore:
        assert f is None and probe.data["mixed_samples"] == 0 and probe.data["own_grad"] > 0
    else:
        assert f is not None and f.severity == "high" and "sorted order" in f.title
        assert "argsort" in f.recommendations[0].implementation


class _TimeFirstTokens(nn.Module):
    """A character model the time-first way: ids ``[T, B]`` -> embedding -> GRU -> ``[T, B, V]``."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.rnn, self.fc = nn.Embedding(10, 8), nn.GRU(8, 16), nn.Linear(16, 10)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.emb(ids))
        return self.fc(out)


def test_time_first_token_ids_through_a_recurrence_are_not_read_as_mixing() -> None:
    # axis 0 holds 20 time steps, not samples: output t depends on positions <= t only
    torch.manual_seed(0)
    model = _TimeFirstTokens()
    ids = torch.randint(0, 10, (21, 16))
    opt = torch.optim.Adam(model.parameters(), 1e-2)

    def loop() -> None:
        for _ in range(6):
            loss = F.cross_entropy(model(ids[:-1]).reshape(-1, 10), ids[1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()

    report = watched(model, loop)
    assert finding(report, "batch_mixing") is None
    (probe,) = report.record.events("batch_mixing_probe")
    assert "cannot be told" in probe.data["skipped"]


class _MasksItsIds(nn.Module):
    """A masked-language-model-style forward that masks some of the ids it is given, in place."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.out = nn.Embedding(50, 16), nn.Linear(16, 50)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids[torch.rand(ids.shape) < 0.15] = 0
        return self.out(self.emb(ids))


def test_the_token_probe_runs_on_a_copy_of_the_ids() -> None:
    """(review) The twin was handed the user's own ids tensor: a model that edits its ids in place
    changed the user's batch a second time."""
    def first_batch(watching: bool) -> int:
        torch.manual_seed(0)
        model = _MasksItsIds()
        opt = torch.optim.SGD(model.parameters(), 0.1)
        ids = torch.randint(1, 50, (8, 12))
        target = ids.clone()
        with md.watch(model, optimizer=opt, db=":memory:") if watching else contextlib.nullcontext():
            loss = F.cross_entropy(model(ids).flatten(0, 1), target.flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
        return int((ids == 0).sum())

    assert first_batch(True) == first_batch(False)


def test_a_model_too_large_to_copy_is_not_probed(monkeypatch: pytest.MonkeyPatch) -> None:
    from modeldebug.capture import probes

    monkeypatch.setattr(probes, "TWIN_MAX_BYTES", 100)  # a Linear(20, 3) holds 252 bytes
    result = probes.batch_mixing(nn.Linear(20, 3), (torch.randn(8, 20),))
    assert result is not None and "is not made" in result["skipped"]
    monkeypatch.setattr(probes, "TWIN_MAX_BYTES", 1000)
    assert probes.batch_mixing(nn.Linear(20, 3), (torch.randn(8, 20),))["mixed_samples"] == 0


class _TimeFirst(nn.Module):
    """Reads ``[T, B, F]``, as ``batch_first=False`` expects; answers from the last step (`seq=False`,
    ``[B, 3]``) or at every step, time first (``[T, B, 3]``, a decoder's layout)."""

    def __init__(self, seq: bool) -> None:
        super().__init__()
        self.rnn, self.fc, self.seq = nn.GRU(4, 16), nn.Linear(16, 3), seq

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(out if self.seq else out[-1])


@pytest.mark.parametrize("seq", [False, True])
def test_a_time_first_model_whose_sequence_is_as_long_as_the_batch_keeps_samples_apart(seq: bool) -> None:
    # T == B: axis 0 of the input (time) has the batch's size, so the probe cannot take it for the batch
    torch.manual_seed(0)
    model, n = _TimeFirst(seq), 16
    x = torch.randn(n, n, 4)
    y = (x.sum((0, 2)) > 0).long()
    opt = torch.optim.Adam(model.parameters(), 1e-2)

    def loop() -> None:
        for _ in range(5):
            opt.zero_grad()
            out = model(x)
            loss = nn.functional.cross_entropy(out[-1] if seq else out, y)
            loss.backward()
            opt.step()

    report = watched(model, loop)
    assert finding(report, "batch_mixing") is None
    probe = report.record.events("batch_mixing_probe")
    assert probe and "cannot be told" in probe[0].data["skipped"], probe


class _CentreOverBatch(nn.Module):
    """Subtracts the batch mean of its output: every output column sums to 0 over the batch."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.fc = nn.Linear(20, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        return h - h.mean(0)


def test_mixing_over_a_batch_as_wide_as_the_output_is_still_found() -> None:
    # [8, 8] out: read along output axis 1 the gradient is 0 everywhere (each column sums to 0), which is
    # not "samples kept apart": that reading sees nothing, so it cannot clear the mix found along axis 0
    torch.manual_seed(0)
    model = _CentreOverBatch(8)
    d = classification(n=256)
    report = watched(model, lambda: train(model, Data(d.x, d.y % 8, nn.CrossEntropyLoss()), steps=5, batch=8))
    f = finding(report, "batch_mixing")
    assert f is not None and f.evidence["fraction_mixed"] == 1.0
    assert f.location == "_CentreOverBatch: after fc" and "code after fc" in f.description


def test_attention_across_a_batch_as_long_as_the_sequence_is_still_found() -> None:
    # [B, T, E] with B == T into batch_first=False: axis 0 follows the batch, so it is the batch
    torch.manual_seed(0)
    model = _AttendAcrossBatch(batch_first=False)
    x, y = torch.randn(12, 12, 6), torch.randint(0, 3, (12,))
    report = watched(model, lambda: train(model, Data(x, y, nn.CrossEntropyLoss()), steps=5, batch=12, lr=1e-3))
    f = finding(report, "batch_mixing")
    assert f is not None and f.severity == "high"


class _BatchStandardise(nn.Module):
    """Standardises each batch with its own statistics inside forward, also in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - x.mean(0)) / x.std(0))


def test_normalising_with_batch_statistics_in_forward_mixes_samples() -> None:
    torch.manual_seed(0)
    model = _BatchStandardise()
    f = finding(watched(model, lambda: train(model, classification(), steps=5)), "batch_mixing")
    assert f is not None and f.location == "_BatchStandardise: before net"
    model, d = healthy_cnn()  # BatchNorm mixes in training only: eval mode keeps samples apart
    assert finding(watched(model, lambda: train(model, d, steps=5)), "batch_mixing") is None


# -- data_leakage -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("leak", [True, False])
def test_validation_samples_drawn_from_the_training_samples(leak: bool) -> None:
    model, d = healthy_mlp()

    def run() -> None:
        loop(model, lambda s: (d.x[(s % 4) * 64:(s % 4 + 1) * 64], d.y[(s % 4) * 64:(s % 4 + 1) * 64]), d.loss_fn, steps=24)
        val = d.x[:128] if leak else d.x[256:384]  # the leak: validation from the first 256 training samples
        with torch.no_grad():
            model(val)

    report = watched(model, run)
    f = finding(report, "data_leakage")
    if leak:
        assert f is not None and f.evidence["overlap"] >= 64 and has_fix(f)
    else:
        assert f is None


@pytest.mark.parametrize("leak", [True, False])
def test_fingerprints_under_bfloat16_autocast_keep_samples_apart(leak: bool) -> None:
    """blind7's healthy regressor under `torch.autocast("cpu", dtype=torch.bfloat16)`: the fingerprint's matmul
    ran in bfloat16 too, and 62% of a disjoint validation set shared a fingerprint with a training row."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 64), nn.ReLU(), nn.Linear(64, 1))
    x, y = torch.randn(3000, 24), torch.randn(3000, 1)
    train_x, train_y = x[:2000], y[:2000]
    val_x = (train_x[:500] if leak else x[2000:2500]).clone()
    loader = DataLoader(TensorDataset(train_x, train_y), batch_size=64, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def run() -> None:
        for _ in range(3):
            for xb, yb in loader:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = nn.functional.mse_loss(model(xb).float(), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                for i in range(0, 500, 250):
                    model(val_x[i:i + 250])

    f = finding(watched(model, run), "data_leakage")
    if leak:
        assert f is not None and f.evidence["overlap"] >= 50
    else:
        assert f is None, f.title


@pytest.mark.parametrize("leak", [True, False])
def test_a_validation_tensor_after_a_dataloader_loop_is_judged(leak: bool) -> None:
    """The loader's data set is the source of the batches read from it, not of whatever runs after the
    loop is exhausted: a plain validation tensor evaluated then is judged on its own."""
    from torch.utils.data import DataLoader, TensorDataset

    model, d = healthy_mlp()
    train_x, train_y = d.x[:256], d.y[:256]
    loader = DataLoader(TensorDataset(train_x, train_y), batch_size=64, shuffle=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def run() -> None:
        for _ in range(6):  # epochs
            for x, y in loader:
                opt.zero_grad()
                d.loss_fn(model(x), y).backward()
                opt.step()
            with torch.no_grad():  # the validation pass after each epoch: copies, not slices
                model((train_x[:128] if leak else d.x[256:384]).clone())

    f = finding(watched(model, run), "data_leakage")
    if leak:
        assert f is not None and f.evidence["overlap"] >= 64
    else:
        assert f is None


def test_training_accuracy_on_the_whole_tensor_of_a_tensordataset_is_not_leakage() -> None:
    """`model(train_x)` under no_grad after the loop over `TensorDataset(train_x, ...)`: the training
    set evaluated (its accuracy), not a validation set that shares samples with it."""
    from torch.utils.data import DataLoader, TensorDataset

    model, d = healthy_mlp()
    train_x, train_y = d.x[:256].clone(), d.y[:256].clone()
    loader = DataLoader(TensorDataset(train_x, train_y), batch_size=64, shuffle=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def run() -> None:
        for _ in range(6):
            for x, y in loader:
                opt.zero_grad()
                d.loss_fn(model(x), y).backward()
                opt.step()
            with torch.no_grad():
                model(train_x)  # training accuracy, on the very tensor the data set holds

    assert finding(watched(model, run), "data_leakage") is None


# -- the crash messages, and the catalogue --------------------------------------------------------------------------------
@pytest.mark.parametrize("message, kind", [
    ("Target 10 is out of bounds.", "label_issue"),
    ("Target -1 is out of bounds.", "label_issue"),
    ("all elements of target should be between 0 and 1", "label_issue"),
    ("Given groups=1, weight of size [16, 3, 3, 3], expected input[64, 32, 32, 3] to have 3 channels, but got 32 channels instead",
     "channel_order"),
    ("Given groups=1, weight of size [16, 3, 3, 3], expected input[64, 1, 28, 28] to have 3 channels, but got 1 channels instead", None),
    ("Target size (torch.Size([64])) must be the same as input size (torch.Size([64, 1]))", "loss_shape_mismatch"),
    ("0D or 1D target tensor expected, multi-target not supported", "loss_shape_mismatch"),
    ("mat1 and mat2 shapes cannot be multiplied (64x400 and 256x10)", None),
])
def test_crash_kind_names_data_and_loss_crashes_only(message: str, kind: str | None) -> None:
    assert crash_kind("RuntimeError", message) == kind


def test_broadcast_shape() -> None:
    assert broadcast_shape([64, 1], [64]) == [64, 64]
    assert broadcast_shape([64, 3], [3]) == [64, 3]
    assert broadcast_shape([64, 3], [4]) is None


def test_healthy_models_have_no_serious_data_or_loss_finding() -> None:
    for build in (healthy_mlp, healthy_cnn, healthy_regression):
        model, d = build(seed=2)
        report = watched(model, lambda: train(model, d, steps=40))
        mine = {r.kind for r in (data.InputNotNormalized, data.ChannelOrder, data.BatchMixing, data.DataLeakage,
                                 labels.LabelIssue, labels.ClassImbalance, lossfn.DoubleSoftmax, lossfn.LossShapeMismatch)}
        assert [s for s in serious(report) if s.split(":")[0] in mine] == []



@pytest.mark.parametrize("split", ["shuffled", "chronological", "chronological_with_gap"])
def test_overlapping_windows_shuffled_before_the_split_leak_into_validation(split: str) -> None:
    """blind6's forecaster: a series cut into stride-1 windows, shuffled, then split: each validation
    window is a training window moved by one step. A chronological split shares at most one window's
    length of such pairs (at its boundary), and none with a gap."""
    torch.manual_seed(0)
    t = torch.arange(1600, dtype=torch.float32)
    series = torch.sin(t / 7) + 0.3 * torch.randn(1600)
    lookback = 24
    xs = torch.stack([series[i:i + lookback] for i in range(len(series) - lookback - 1)])
    ys = series[lookback:len(series) - 1].unsqueeze(1)
    if split == "shuffled":
        perm = torch.randperm(len(xs))
        xs, ys = xs[perm], ys[perm]
    n_tr = int(0.8 * len(xs))
    gap = lookback if split == "chronological_with_gap" else 0
    x_tr, y_tr, x_va = xs[:n_tr], ys[:n_tr], xs[n_tr + gap:]
    model = nn.Sequential(nn.Linear(lookback, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def run() -> None:
        for epoch in range(4):
            for i in range(0, n_tr, 64):
                opt.zero_grad()
                F.mse_loss(model(x_tr[i:i + 64]), y_tr[i:i + 64]).backward()
                opt.step()
            with torch.no_grad():
                for i in range(0, len(x_va), 128):
                    model(x_va[i:i + 128])

    f = finding(watched(model, run), "data_leakage")
    if split == "shuffled":
        assert f is not None and f.severity in ("medium", "high") and "moved by one step" in f.title
        assert "gap" in f.recommendations[0].implementation
    else:
        assert f is None
