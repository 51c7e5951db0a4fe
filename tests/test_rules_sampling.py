"""DAT005: a WeightedRandomSampler given fewer weights than the data set has samples (blind5's call
detector: the two class weights passed where one weight per sample was meant)."""

from __future__ import annotations

import pytest
import torch
from helpers import found, serious, watched
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler


def _run(weights: str, *, epochs: int = 3, replacement: bool = True, num_samples: int = 1200):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(1200, generator=g) < 0.1).long()
    x = torch.randn(1200, 12, generator=g) + y[:, None].float()
    class_weights = 1.0 / torch.bincount(y).float()
    w = class_weights if weights == "per_class" else class_weights[y]
    sampler = WeightedRandomSampler(w, num_samples=num_samples, replacement=replacement, generator=g)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, sampler=sampler)
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loop() -> None:
        for _ in range(epochs):
            for xb, yb in loader:
                loss = nn.functional.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()

    return watched(model, loop)


@pytest.mark.parametrize("weights", ["per_class", "per_sample"])
def test_class_weights_given_to_the_sampler_draw_only_the_first_samples(weights: str) -> None:
    report = _run(weights)
    f = found(report, "sampler_misuse")
    if weights == "per_sample":  # the fix: one weight per sample
        assert f is None and not serious(report), serious(report)
        return
    assert f is not None and f.severity == "high" and report.findings[0] is f
    assert f.evidence["sampler_weights"] == 2 and f.evidence["dataset_length"] == 1200 and f.evidence["weights_per_class"]
    assert "samples 0 and 1" in f.title and "class_weights[train_labels]" in f.recommendations[0].implementation


def test_a_validation_loader_with_few_weights_is_not_judged() -> None:
    """Only loaders read with autograd on are training loaders."""
    torch.manual_seed(0)
    x, y = torch.randn(400, 12), torch.randint(0, 2, (400,))
    model = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    val = DataLoader(TensorDataset(x, y), batch_size=50, sampler=WeightedRandomSampler(torch.ones(10), 50))

    def loop() -> None:
        for i in range(40):
            loss = nn.functional.cross_entropy(model(x[i * 10:i * 10 + 10]), y[i * 10:i * 10 + 10])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            for xb, _ in val:
                model(xb)

    assert found(watched(model, loop), "sampler_misuse") is None


def test_a_weighted_sampler_without_replacement_rebalances_nothing() -> None:
    """replacement=False over the whole data set draws each sample once: the rare class keeps its 10%, and
    the weights only put its samples first (the batches come sorted by label)."""
    report = _run("per_sample", replacement=False)
    f = found(report, "sampler_misuse")
    assert f is not None and f.severity == "high" and report.findings[0] is f
    assert f.evidence["replacement"] is False and f.evidence["distinct_weights"] == 2
    assert "replacement=True" in f.recommendations[0].implementation


@pytest.mark.parametrize("how", ["with_replacement", "a_weighted_subset"])
def test_a_weighted_sampler_that_rebalances_or_draws_a_subset_is_left_alone(how: str) -> None:
    report = _run("per_sample", replacement=how == "with_replacement", num_samples=1200 if how == "with_replacement" else 300)
    assert found(report, "sampler_misuse") is None


def test_zero_one_weights_without_replacement_shuffle_a_subset_and_are_left_alone() -> None:
    """0/1 weights drop some samples and shuffle the rest: without replacement that is what they are for."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(1000, 12, generator=g), torch.randint(0, 2, (1000,), generator=g)
    keep = (torch.rand(1000, generator=g) > 0.05).float()
    loader = DataLoader(TensorDataset(x, y), batch_size=64,
                        sampler=WeightedRandomSampler(keep, num_samples=int(keep.sum()), replacement=False, generator=g))
    model = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def loop() -> None:
        for _ in range(2):
            for xb, yb in loader:
                loss = nn.functional.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()

    assert found(watched(model, loop), "sampler_misuse") is None
