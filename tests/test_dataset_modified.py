"""DAT006: a training data set whose cached samples change from epoch to epoch (augmentation or
normalisation written into the cache), and the data sets that change for no fault of the code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import found, watched
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset


def _data(n: int = 192) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, 8, generator=g)
    return x, (x[:, 0].mean(1) > 0).long()


class Cached(Dataset):
    """Spectrogram-like samples held in one tensor; `mode` says how `__getitem__` augments them."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mode: str) -> None:
        self.features, self.labels, self.mode = x.clone(), y, mode
        self.mean = self.features.mean(0)
        self.rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        x = self.features[i]
        if self.mode == "copy":
            x = x.clone()
        if self.mode in ("mask", "copy"):
            f0 = int(self.rng.integers(0, 6))
            x[:, f0:f0 + 2] = 0  # a time mask: into the cache unless copied
        elif self.mode == "normalise":
            x -= self.mean  # an in-place normalisation: the cache shifts again every epoch
        return x, self.labels[i]


class NumpyCache(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.data, self.labels = x.numpy().copy(), y

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        x = self.data[i]
        x *= 0.9  # a gain "augmentation", in place on a view of the array
        return torch.from_numpy(x.copy()), self.labels[i]


class LazyCache(Dataset):
    """Samples computed on first use and cached: the cache's empty cells fill over the first epochs."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.source, self.labels = x, y
        self.cache = torch.zeros_like(x)
        self.filled = torch.zeros(len(x), dtype=torch.bool)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        if not self.filled[i]:
            self.cache[i] = self.source[i] * 2  # "decoding" the sample once
            self.filled[i] = True
        return self.cache[i], self.labels[i]


def _train(dataset: Dataset, epochs: int = 6, sampler=None):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loader = DataLoader(dataset, batch_size=32, shuffle=sampler is None, sampler=sampler)

    def loop() -> None:
        for _ in range(epochs):
            for x, y in loader:
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()

    return watched(model, loop)


@pytest.mark.parametrize("mode", ["mask", "normalise"])
def test_augmentation_written_into_the_cached_samples_is_found_with_the_fix(mode: str) -> None:
    x, y = _data()
    f = found(_train(Cached(x, y, mode)), "dataset_modified")
    assert f is not None and f.code == "DAT006" and f.severity == "high"
    assert f.location == "Cached.features" and f.evidence["model_input"]
    assert f.evidence["epochs"] == [2, 3, 4, 5]  # every epoch compared (the first is not)
    if mode == "mask":
        zeros = f.evidence["zero_frac"]
        assert zeros[-1] > zeros[0] and "Zeros among the sampled cells" in f.description
    assert ".clone()" in f.recommendations[0].implementation


def test_a_numpy_cache_edited_in_place_is_found() -> None:
    x, y = _data()
    f = found(_train(NumpyCache(x, y)), "dataset_modified")
    assert f is not None and f.location == "NumpyCache.data" and f.evidence["data_changed_frac"][0] > 0.5


@pytest.mark.parametrize("dataset", ["copy", "tensor_dataset", "lazy_cache"])
def test_data_sets_that_keep_their_samples_or_only_fill_a_cache_are_not_flagged(dataset: str) -> None:
    x, y = _data()
    sampler = None
    if dataset == "copy":  # the same augmentation on a copy of the sample: the healthy twin
        ds: Dataset = Cached(x, y, "copy")
    elif dataset == "tensor_dataset":
        ds = TensorDataset(x, y)
    else:  # a third of the samples a "epoch": the cache keeps filling for several epochs
        ds = LazyCache(x, y)
        sampler = RandomSampler(ds, replacement=False, num_samples=64, generator=torch.Generator().manual_seed(0))
    report = _train(ds, sampler=sampler)
    assert found(report, "dataset_modified") is None
    if dataset == "lazy_cache":
        assert bool(ds.filled.any()) and not bool(ds.filled.all())  # it was still filling at the end
