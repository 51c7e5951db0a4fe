"""Synthetic replacements for torchvision.datasets: MNIST, FashionMNIST, CIFAR10, FakeData."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = ["CIFAR10", "MNIST", "FakeData", "FashionMNIST"]


def _patterns(n_classes: int, channels: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n_classes, channels, 7, 7, generator=g)
    coarse = (coarse > 0.6).float()
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


class _Synthetic(Dataset):
    channels = 1
    size = 28
    n_classes = 10

    def __init__(self, root=None, train=True, download=False, transform=None, target_transform=None, **_):
        n = int(os.environ.get("SYNTH_TRAIN" if train else "SYNTH_TEST", "2048" if train else "512"))
        g = torch.Generator().manual_seed(1 if train else 2)
        pats = _patterns(self.n_classes, self.channels, self.size, seed=0)
        self.targets = torch.randint(0, self.n_classes, (n,), generator=g)
        shifts = torch.randint(-2, 3, (n, 2), generator=g)
        imgs = torch.empty(n, self.channels, self.size, self.size)
        for i in range(n):
            imgs[i] = torch.roll(pats[self.targets[i]], shifts=tuple(shifts[i].tolist()), dims=(1, 2))
        imgs = (imgs + 0.15 * torch.randn(imgs.shape, generator=g)).clamp(0, 1)
        self.data = (imgs * 255).to(torch.uint8)
        self.transform, self.target_transform = transform, target_transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        img, target = self.data[i], int(self.targets[i])
        if self.channels == 1:
            img = img[0]  # HxW like a greyscale PIL image
        else:
            img = img.permute(1, 2, 0)  # HxWxC like an RGB PIL image
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


class MNIST(_Synthetic):
    """28x28 greyscale, 10 classes."""


class FashionMNIST(_Synthetic):
    """28x28 greyscale, 10 classes."""


class CIFAR10(_Synthetic):
    """32x32 RGB, 10 classes."""

    channels = 3
    size = 32


class FakeData(Dataset):
    """Random images, as torchvision's FakeData."""

    def __init__(self, size=1000, image_size=(3, 224, 224), num_classes=10, transform=None, **_):
        self.n = int(os.environ.get("SYNTH_TRAIN", str(size)))
        self.image_size, self.num_classes, self.transform = image_size, num_classes, transform

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        img = (torch.rand(self.image_size, generator=g) * 255).to(torch.uint8).permute(1, 2, 0)
        if self.transform is not None:
            img = self.transform(img)
        return img, int(torch.randint(0, self.num_classes, (1,), generator=g))
