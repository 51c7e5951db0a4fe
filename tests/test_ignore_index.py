"""Background passed as `ignore_index` (blind7's conveyor segmentation: `CrossEntropyLoss(ignore_index=0)` where 0
is the belt, 86% of the pixels): the class is never trained (LBL001). Twins: no ignore_index, a void border
label (255), and a padded sequence whose padding is the most common target."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import found, serious
from torch import nn

import modeldebug as md


def _scenes(n: int = 256, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey images with a bright square (class 1) or a dark disc (class 2) on a background (class 0)."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    cy, cx = (torch.randint(4, size - 4, (n, 2), generator=g).float()).unbind(1)
    kind = torch.randint(1, 3, (n,), generator=g)
    square = ((yy[None] - cy[:, None, None]).abs() < 3) & ((xx[None] - cx[:, None, None]).abs() < 3)
    disc = (yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2 < 9
    shape = torch.where((kind == 1)[:, None, None], square, disc)
    target = shape.long() * kind[:, None, None]
    image = 0.5 + 0.4 * (target == 1).float() - 0.4 * (target == 2).float() + 0.05 * torch.randn(n, size, size, generator=g)
    return image[:, None], target


def _segment(model: nn.Module, loss_fn, x: torch.Tensor, target: torch.Tensor) -> md.Report:  # type: ignore[no-untyped-def]
    """60 watched Adam steps on batches of 32 of the 256 scenes."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for i in range(60):
            j = (i * 32) % 256
            loss = loss_fn(model(x[j:j + 32]), target[j:j + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return session.report()


@pytest.mark.parametrize("ignore", [0, None, 255, "positional"])
def test_background_as_ignore_index(ignore: int | str | None) -> None:
    x, target = _scenes()
    if ignore == 255:  # a void border, as in VOC: a thin frame no metric counts
        target = target.clone()
        target[:, 0, :] = target[:, -1, :] = target[:, :, 0] = target[:, :, -1] = 255
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    if ignore == "positional":  # F.cross_entropy(input, target, weight, size_average, ignore_index), a NumPy int
        loss_fn = lambda out, t: nn.functional.cross_entropy(out, t, None, None, np.int64(0))
    else:
        loss_fn = nn.CrossEntropyLoss() if ignore is None else nn.CrossEntropyLoss(ignore_index=ignore)
    report = _segment(model, loss_fn, x, target)
    f = found(report, "label_issue")
    if ignore not in (0, "positional"):
        assert f is None and not serious(report), [x.title for x in report.findings]
        return
    assert f is not None and f.code == "LBL001" and f.severity == "high" and "ignore_index=0" in f.title
    assert f.evidence["ignored_share"] > 0.7 and "CrossEntropyLoss()" in f.recommendations[0].implementation


def test_scribbles_with_zero_as_unlabelled_are_only_medium() -> None:
    """Scribble supervision: 0 means 'unlabelled' and covers 97% of the pixels; the labelled strokes hold
    background (1) and the two shapes (2, 3). The same numbers as a background left out, so medium, and said."""
    x, target = _scenes()
    g = torch.Generator().manual_seed(1)
    stroke = torch.zeros_like(target, dtype=torch.bool)
    rows = torch.randint(2, 14, (target.shape[0],), generator=g)
    for i, r in enumerate(rows.tolist()):
        stroke[i, r, 4:12] = True  # a stroke of 8 labelled pixels per 16x16 image
    scribbles = torch.where(stroke, target + 1, 0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))
    report = _segment(model, nn.CrossEntropyLoss(ignore_index=0), x, scribbles)
    f = found(report, "label_issue")
    assert f is not None and f.severity == "medium" and f.evidence["ignored_share"] > 0.95
    assert "sparse annotation" in f.description
    assert not [x for x in report.findings if x.severity == "high"], [x.title for x in report.findings]


def test_padding_of_a_sequence_as_ignore_index_is_left_alone() -> None:
    """Tags per token with pad 0 ignored: padding is the most common target, and that is what ignore_index is for."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(2, 6, (256,), generator=g)
    ids = torch.randint(1, 10, (256, 16), generator=g)
    pad = torch.arange(16)[None] >= lengths[:, None]
    ids[pad] = 0
    tags = torch.where(pad, 0, 1 + (ids % 3))
    torch.manual_seed(0)
    emb, head = nn.Embedding(10, 16), nn.Linear(16, 4)
    model = nn.Sequential(emb, head)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for i in range(40):
            j = (i * 32) % 256
            loss = nn.functional.cross_entropy(model(ids[j:j + 32]).transpose(1, 2), tags[j:j + 32], ignore_index=0)
            opt.zero_grad()
            loss.backward()
            opt.step()
    f = found(session.report(), "label_issue")
    assert f is None or "ignore_index" not in f.title
