"""The torchvision.transforms the corpus uses, on uint8 HxW / HxWxC tensors standing for PIL images."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["CenterCrop", "Compose", "Lambda", "Normalize", "PILToTensor", "RandomCrop", "RandomHorizontalFlip", "Resize",
           "ToTensor"]


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


def _chw(x: torch.Tensor) -> torch.Tensor:
    return x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1)


class ToTensor:
    """uint8 image -> float CxHxW in [0, 1]."""

    def __call__(self, x):
        if x.dtype == torch.uint8:
            return _chw(x).float().div(255)
        return x


class PILToTensor:
    """uint8 image -> uint8 CxHxW (values 0..255), no scaling."""

    def __call__(self, x):
        return _chw(x) if x.dtype == torch.uint8 else x


class Normalize:
    def __init__(self, mean, std):
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __call__(self, x):
        # as torchvision's F.normalize: in place on a copy, so that statistics for more channels than
        # the image has fail as they do there ("output with shape [1, 28, 28] doesn't match the
        # broadcast shape [3, 28, 28]") instead of silently tripling the image
        return x.clone().sub_(self.mean).div_(self.std)


class Resize:
    """Resizes the image (uint8 HxW[xC] or float CxHxW) so that its side is `size`."""

    def __init__(self, size):
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def __call__(self, x):
        if x.dtype == torch.uint8:
            chw = _chw(x).float()
            out = F.interpolate(chw[None], size=self.size, mode="bilinear", align_corners=False)[0]
            out = out.round().clamp(0, 255).to(torch.uint8)
            return out[0] if x.dim() == 2 else out.permute(1, 2, 0)
        return F.interpolate(x[None], size=self.size, mode="bilinear", align_corners=False)[0]


class CenterCrop:
    def __init__(self, size):
        self.size = size

    def __call__(self, x):
        return x  # the synthetic images are square and already resized


class RandomCrop:
    """Pads the image by `padding` zeros on each side and crops `size` at a random place."""

    def __init__(self, size, padding=0):
        self.size, self.padding = size, padding

    def __call__(self, x):
        hw = x.permute(2, 0, 1) if x.dim() == 3 else x[None]  # C x H x W (uint8 HxWxC image)
        if self.padding:
            hw = F.pad(hw, (self.padding,) * 4)
        i, j = (int(v) for v in torch.randint(0, hw.shape[-1] - self.size + 1, (2,)))
        out = hw[:, i:i + self.size, j:j + self.size]
        return out.permute(1, 2, 0).contiguous() if x.dim() == 3 else out[0].contiguous()


class RandomHorizontalFlip:
    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, x):
        if float(torch.rand(())) < self.p:
            return x.flip(1 if x.dim() == 3 else -1)  # the width axis of HxWxC or HxW
        return x


class Lambda:
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, x):
        return self.fn(x)
