"""Loss arguments that change what is learned (LSS003, LSS004): each fault in a tiny seeded model, and a healthy twin."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from helpers import serious, watched
from torch import nn

from modeldebug.capture.losses import ctc_symbol_counts
from modeldebug.rules import lossargs  # noqa: F401  (importing registers the rules)


def finding(report, kind: str):  # type: ignore[no-untyped-def]
    return next((f for f in report.findings if f.kind == kind), None)


# -- kl_div reduction='mean' ------------------------------------------------------------------------------
CLASSES, FEATURES, TEMP = 20, 16, 4.0


def distill(reduction: str, *, optimizer: str = "SGD", with_labels: bool = False, steps: int = 60):  # type: ignore[no-untyped-def]
    """Knowledge distillation of a fixed 20-class teacher into a small student, T = 4, loss * T * T
    (plus cross-entropy on the teacher's labels when `with_labels`)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    teacher = nn.Sequential(nn.Linear(FEATURES, 64), nn.ReLU(), nn.Linear(64, CLASSES)).requires_grad_(False)
    teacher[2].weight.mul_(8)  # confident teacher: soft targets that say something at T = 4
    x = torch.randn(1024, FEATURES, generator=g)
    labels = teacher(x).argmax(1)
    student = nn.Sequential(nn.Linear(FEATURES, 32), nn.ReLU(), nn.Linear(32, CLASSES))
    opt = (torch.optim.SGD(student.parameters(), lr=0.1, momentum=0.9) if optimizer == "SGD"
           else torch.optim.Adam(student.parameters(), lr=1e-2))
    kd = nn.KLDivLoss(reduction=reduction)

    def train() -> None:
        for _ in range(steps):
            i = torch.randint(0, len(x), (64,), generator=g)
            soft = F.softmax(teacher(x[i]) / TEMP, dim=1)
            logits = student(x[i])
            loss = kd(F.log_softmax(logits / TEMP, dim=1), soft) * TEMP * TEMP
            if with_labels:
                loss = 0.5 * loss + 0.5 * F.cross_entropy(logits, labels[i])
            opt.zero_grad()
            loss.backward()
            opt.step()

    with warnings.catch_warnings():  # torch warns about reduction='mean' itself: that is the fault under test
        warnings.simplefilter("ignore", UserWarning)
        return watched(student, train)


def test_distillation_with_kl_div_mean_and_sgd_is_a_high_finding_that_names_the_classes() -> None:
    f = finding(distill("mean"), "kl_div_mean_reduction")
    assert f is not None and f.code == "LSS003" and f.severity == "high"
    assert "reduction='mean'" in f.title and "20 classes" in f.title and "20x too small" in f.title
    ev = f.evidence
    assert ev["values_per_sample"] == 20 and ev["optimizer"] == "SGD" and ev["only_loss"] and ev["loss_fall"] < 0.5
    assert ev["effective_lr"] == pytest.approx(0.1 / 20)
    fix = f.recommendations[0]
    assert fix.type == "fix" and 'reduction="batchmean"' in (fix.implementation or "")


def test_distillation_with_batchmean_is_not_flagged() -> None:
    report = distill("batchmean")
    assert finding(report, "kl_div_mean_reduction") is None and serious(report) == []


def test_kl_div_mean_mixed_with_cross_entropy_is_medium_and_names_the_other_loss() -> None:
    f = finding(distill("mean", with_labels=True), "kl_div_mean_reduction")
    assert f is not None and f.severity == "medium" and f.evidence["other_losses"] == ["cross_entropy"]


def test_kl_div_mean_as_the_only_loss_under_adam_is_only_a_note() -> None:
    f = finding(distill("mean", optimizer="Adam"), "kl_div_mean_reduction")
    assert f is not None and f.severity == "low" and f.evidence["optimizer"] == "Adam"


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_kl_div_with_other_reductions_is_not_flagged(reduction: str) -> None:
    torch.manual_seed(0)
    model = nn.Linear(8, 5)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, p = torch.randn(32, 8), torch.rand(32, 5).softmax(1)

    def train() -> None:
        for _ in range(25):
            opt.zero_grad()
            F.kl_div(F.log_softmax(model(x), dim=1), p, reduction=reduction).sum().backward()
            opt.step()

    assert finding(watched(model, train), "kl_div_mean_reduction") is None


# -- CTC targets holding the blank ------------------------------------------------------------------------
SYMBOLS, FRAMES, FEAT = 10, 24, 8


def ctc_run(shift: int, layout: str, steps: int = 30, *, blank: object = 0, keywords: bool = False):  # type: ignore[no-untyped-def]
    """A Conv1d + CTC recogniser of digit strings; digit d is encoded as d + shift, blank=0.
    `layout`: 'padded' (N, S) targets padded with 0, or 'concatenated' 1-d targets."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    glyphs = torch.randn(SYMBOLS, FEAT, generator=g)
    model = nn.Sequential(nn.Conv1d(FEAT, 32, 3, padding=1), nn.ReLU(), nn.Conv1d(32, SYMBOLS + 1, 1))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    ctc = nn.CTCLoss(blank=blank)  # type: ignore[arg-type]

    def batch(n: int = 16) -> tuple[torch.Tensor, list[list[int]]]:
        x, texts = torch.zeros(n, FRAMES, FEAT), []
        for k in range(n):
            digits = torch.randint(0, SYMBOLS, (int(torch.randint(2, 5, (1,), generator=g)),), generator=g).tolist()
            for j, d in enumerate(digits):
                x[k, 1 + 5 * j: 4 + 5 * j] = glyphs[d]
            texts.append(digits)
        return x + 0.3 * torch.randn(x.shape, generator=g), texts

    def train() -> None:
        for _ in range(steps):
            x, texts = batch()
            lengths = torch.tensor([len(t) for t in texts])
            if layout == "padded":
                targets = torch.zeros(len(texts), int(lengths.max()), dtype=torch.long)  # 0-padding, as is common
                for k, t in enumerate(texts):
                    targets[k, : len(t)] = torch.tensor(t) + shift
            else:
                targets = torch.tensor([d + shift for t in texts for d in t])
            log_probs = model(x.transpose(1, 2)).log_softmax(1).permute(2, 0, 1)  # (T, N, C)
            if keywords:
                loss = F.ctc_loss(log_probs=log_probs, targets=targets, input_lengths=torch.full((len(texts),), FRAMES),
                                  target_lengths=lengths, blank=blank)  # type: ignore[arg-type]
            else:
                loss = ctc(log_probs, targets, torch.full((len(texts),), FRAMES), lengths)
            opt.zero_grad()
            loss.backward()
            opt.step()

    return watched(model, train)


@pytest.mark.parametrize("layout", ["padded", "concatenated"])
def test_digit_zero_encoded_as_the_ctc_blank_is_a_high_label_finding(layout: str) -> None:
    f = finding(ctc_run(0, layout), "ctc_blank_in_targets")
    assert f is not None and f.code == "LSS004" and f.severity == "high"
    assert "blank index 0" in f.title and "%" in f.title
    ev = f.evidence
    assert ev["blank"] == 0 and ev["classes"] == SYMBOLS + 1 and ev["targets_equal_blank"] > 0
    assert 0.03 < ev["blank_share"] < 0.3  # one digit of ten
    assert "labels + 1" in (f.recommendations[0].implementation or "")


@pytest.mark.parametrize("layout", ["padded", "concatenated"])
def test_digits_shifted_by_one_keep_the_blank_free_even_with_zero_padding(layout: str) -> None:
    report = ctc_run(1, layout)
    assert finding(report, "ctc_blank_in_targets") is None and serious(report) == []


def test_ctc_symbol_counts_read_only_the_symbols_within_target_lengths() -> None:
    log_probs = torch.randn(12, 3, 6).log_softmax(2)
    padded = torch.tensor([[1, 2, 0, 0], [0, 3, 3, 0], [5, 5, 5, 9]])
    lengths = [2, 3, 4]
    symbols = [1, 2, 0, 3, 3, 5, 5, 5, 9]  # the 9 is outside [0, 6): the last bin
    expected = [float(symbols.count(c)) for c in range(6)] + [1.0]
    assert ctc_symbol_counts(log_probs, padded, torch.tensor(lengths)).tolist() == expected
    concatenated = torch.tensor([*symbols, 0, 0])  # trailing values beyond sum(target_lengths) are not read
    assert ctc_symbol_counts(log_probs, concatenated, lengths).tolist() == expected
    assert ctc_symbol_counts(log_probs, padded.float(), lengths) is None


def test_a_numpy_blank_is_read_and_keyword_calls_are_watched() -> None:
    """A review's cases: `nn.CTCLoss(blank=np.int64(10))` read as blank 0 (a high false alarm on valid
    targets 0..9), and `F.ctc_loss(log_probs=..., targets=...)` by keyword not judged at all."""
    import numpy as np

    healthy = ctc_run(0, "padded", blank=np.int64(SYMBOLS))  # digits 0..9, the blank is 10: valid
    assert finding(healthy, "ctc_blank_in_targets") is None
    broken = ctc_run(0, "concatenated", keywords=True)  # digit 0 is the blank 0
    assert finding(broken, "ctc_blank_in_targets") is not None


def test_a_reduction_passed_by_position_is_read() -> None:
    """F.kl_div(input, target, None, None, "batchmean"): the reduction is the fifth argument."""
    torch.manual_seed(0)
    student = nn.Linear(FEATURES, CLASSES)
    opt = torch.optim.SGD(student.parameters(), lr=0.1)

    def train() -> None:
        for _ in range(30):
            x = torch.randn(64, FEATURES)
            soft = F.softmax(torch.randn(64, CLASSES), dim=1)
            loss = F.kl_div(F.log_softmax(student(x), dim=1), soft, None, None, "batchmean")
            opt.zero_grad()
            loss.backward()
            opt.step()

    assert finding(watched(student, train), "kl_div_mean_reduction") is None
