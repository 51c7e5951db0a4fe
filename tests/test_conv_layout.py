"""Channels-last data given the channels-first shape by `.view`/`.reshape` (DAT002, capture/layout.py): blind7's
inertial windows `x.view(B, C, T)` of `[B, T, C]` and blind3's frames `reshape(3, H, W)` of `H x W x 3`. The
shape is right, the content scrambled; along the last axis the input repeats every in_channels values. Twins:
the same data permuted, white noise, a one-channel input."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import found, serious
from torch import nn

import modeldebug as md


def _windows(n: int = 512, t: int = 64, c: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth multichannel signals `[N, T, C]` (a sine per channel, its own frequency, offset and scale) and a
    label: which of two frequency sets made them, and a lift of channel 0."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=g)
    time = torch.arange(t).float()
    freq = 0.05 + 0.03 * torch.arange(c).float() + 0.04 * y[:, None].float()
    phase = torch.rand(n, c, generator=g) * 2 * math.pi
    x = torch.sin(time[None, :, None] * freq[:, None, :] + phase[:, None, :]) * (1 + torch.arange(c)) + torch.arange(c)
    x[:, :, 0] += 1.5 * y[:, None]  # the class also lifts channel 0
    return x + 0.05 * torch.randn(x.shape, generator=g), y


class _Net1d(nn.Module):
    def __init__(self, c: int, layout: str) -> None:
        super().__init__()
        self.layout = layout
        self.features = nn.Sequential(nn.Conv1d(c, 16, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, C]
        if self.layout == "view":
            x = x.view(x.size(0), x.size(2), x.size(1))
        elif self.layout == "permute":
            x = x.permute(0, 2, 1)
        return self.head(self.features(x))


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 60):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for i in range(steps):
            j = (i * 32) % len(x)
            loss = nn.functional.cross_entropy(model(x[j:j + 32]), y[j:j + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return session.report()


@pytest.mark.parametrize("layout", ["view", "permute"])
def test_sensor_windows_viewed_not_permuted(layout: str) -> None:
    torch.manual_seed(0)
    x, y = _windows()
    report = _fit(_Net1d(6, layout), x, y)
    f = found(report, "channel_order")
    if layout == "permute":
        assert f is None and not serious(report), [x.title for x in report.findings]
        return
    assert f is not None and f.code == "DAT002" and f.severity == "medium" and f.location == "features.0"
    assert "repeats every 6 values" in f.title and "permute(0, 2, 1)" in f.recommendations[0].implementation
    profile = f.evidence["lag_profile"]
    assert profile[5] < 0.8 * min(profile[4], profile[6]) and profile[11] < 0.8 * min(profile[10], profile[12])


@pytest.mark.parametrize("layout", ["reshape", "permute"])
def test_hwc_frames_reshaped_not_permuted(layout: str) -> None:
    """Frames of coloured blobs on a grey tray, stored H x W x 3 as a camera gives them."""
    g = torch.Generator().manual_seed(0)
    n, h, w = 256, 24, 24
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    centre = torch.randint(4, 20, (n, 2), generator=g).float()
    colour = torch.rand(n, 3, generator=g)
    blob = ((yy[None] - centre[:, :1, None]) ** 2 + (xx[None] - centre[:, 1:, None]) ** 2 < 16).float()
    frames = 0.5 + blob[..., None] * (colour[:, None, None, :] - 0.5)  # [N, H, W, 3]
    y = (colour[:, 0] > colour[:, 2]).long()
    x = frames.reshape(n, 3, h, w) if layout == "reshape" else frames.permute(0, 3, 1, 2).contiguous()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    report = _fit(model, x, y)
    f = found(report, "channel_order")
    if layout == "permute":
        assert f is None, f.title
    else:
        assert f is not None and f.severity == "medium" and f.location == "0" and "permute(0, 3, 1, 2)" in f.recommendations[0].implementation


@pytest.mark.parametrize("channels", [1, 6])
def test_noise_and_single_channel_inputs_are_left_alone(channels: int) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(512, channels, 64, generator=g), torch.randint(0, 2, (512,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(channels, 8, 5), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 2))
    report = _fit(model, x, y)
    assert found(report, "channel_order") is None
    events = report.record.events("conv_input_layout")
    assert (not events) if channels == 1 else (len(events) == 3 and all(e.data["module"] == "0" for e in events))
