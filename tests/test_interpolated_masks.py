"""LBL001's dense-target reading: segmentation masks resized by bilinear interpolation (and rounded) put a
class that is not there on the borders of classes two ids apart; nearest-neighbour masks do not."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from modeldebug.capture.losses import mask_edges
from modeldebug.config import DebuggingConfig
from modeldebug.record import Record, RunWriter
from modeldebug.rules.context import Context
from modeldebug.rules.labels import LabelIssue

from helpers import watched


def _scenes(n: int, mode: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of 64x64 with rectangles of classes 1-3 on background 0, masks resized to 32x32 with `mode`."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, 64, 64)
    for i in range(n):
        for c in (1, 2, 3):
            y, x = torch.randint(0, 44, (2,), generator=g).tolist()
            h, w = torch.randint(8, 20, (2,), generator=g).tolist()
            masks[i, y:y + h, x:x + w] = c
    images = masks[:, None] / 3 + 0.1 * torch.randn(n, 1, 64, 64, generator=g)
    small = F.interpolate(masks[:, None], size=(32, 32), mode=mode,
                          **({"align_corners": False} if mode == "bilinear" else {}))[:, 0]
    return F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False), small.round().long()


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_the_border_reading_tells_interpolated_masks_from_nearest_ones(mode: str) -> None:
    _, masks = _scenes(8, mode)
    d = mask_edges(masks, 4)
    assert d is not None and d["edges"] > 200
    share = d["between"] / d["edges"]
    assert (share > 0.2) if mode == "bilinear" else (share < 0.05), share


def test_void_labels_and_two_class_masks_are_not_read() -> None:
    masks = torch.full((2, 16, 16), 255)
    masks[:, 4:12, 4:12] = 1
    d = mask_edges(masks, 4)
    assert d is not None and d["edges"] == 0  # 255 is outside the classes: no border counted
    assert mask_edges(torch.zeros(2, 16, 16, dtype=torch.long), 2) is None


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_masks_resized_bilinearly_are_a_label_issue(mode: str) -> None:
    torch.manual_seed(0)
    x, y = _scenes(96, mode)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loop() -> None:
        for i in range(12):
            xb, yb = x[8 * i:8 * i + 8], y[8 * i:8 * i + 8]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()

    report = watched(model, loop)
    f = next((f for f in report.findings if f.kind == "label_issue" and "interpolation" in f.title), None)
    if mode == "nearest":
        assert f is None
        return
    assert f is not None and f.severity in ("medium", "high") and f.evidence["share"] > 0.2
    assert 'mode="nearest"' in (f.recommendations[0].implementation or "")


def test_a_boundary_class_drawn_between_objects_and_background_is_not_an_interpolation() -> None:
    """Cell masks with three classes by design: background 0, a 1-pixel border 1, interior 2. Every
    border of 0 and 2 holds class 1, but class 1 is nothing but those rings: not a resizing artefact."""
    masks = torch.zeros(8, 32, 32, dtype=torch.long)
    for i in range(8):
        y, x = 4 + i, 6 + i
        masks[i, y:y + 14, x:x + 12] = 1
        masks[i, y + 1:y + 13, x + 1:x + 11] = 2
    d = mask_edges(masks, 3)
    assert d is not None and d["between"] > 0.5 * d["edges"]  # the raw reading alone would fire
    w = RunWriter(":memory:")
    for step in range(3):
        w.add_event(step, "mask_edges", {"loss": "cross_entropy", **d})
    w.set_meta(steps=3)
    w.flush()
    assert LabelIssue()._interpolated_masks(Context(Record(w.conn), DebuggingConfig())) is None


def test_intensities_taken_as_classes_are_not_masks() -> None:
    """A PixelCNN's targets: each pixel's 8-bit intensity as one of 256 classes. Smooth images put a value
    between its neighbours' on most pixels, but the borders are everywhere, not around regions."""
    g = torch.Generator().manual_seed(0)
    smooth = F.interpolate(torch.rand(8, 1, 8, 8, generator=g), size=(32, 32), mode="bicubic", align_corners=False)
    d = mask_edges((smooth[:, 0].clamp(0, 1) * 255).round().long(), 256)
    assert d is not None and d["between"] >= 0.2 * d["edges"] and d["edges"] > 0.25 * d["positions"]
    w = RunWriter(":memory:")
    w.add_event(0, "mask_edges", {"loss": "cross_entropy", **d})
    w.set_meta(steps=1)
    w.flush()
    assert LabelIssue()._interpolated_masks(Context(Record(w.conn), DebuggingConfig())) is None
