"""Update ratios and weight norms from the kept CPU copies (views into one flat buffer per dtype, the
update norms a block of same-size tensors at a time) equal ||w_after - w_before|| / ||w_after|| and
||w_after|| of every parameter, whatever the order, sizes and dtypes of the parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import modeldebug as md


class _Mixed(nn.Module):
    """Many small tensors of a few sizes, declared out of size order, and a float64 branch."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(*[m for _ in range(15) for m in (nn.Linear(6, 6), nn.Tanh())])
        self.wide = nn.Linear(6, 9)
        self.b = nn.Sequential(nn.Linear(9, 6), nn.Tanh(), nn.Linear(6, 6)).double()
        self.head = nn.Linear(6, 3)
        self.scale = nn.Parameter(torch.ones(()))  # a 0-d parameter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.wide(self.a(x))
        return self.head(self.b(h.double()).float()) * self.scale


@pytest.mark.parametrize("path", ["small", "large", "singletons", "fresh"])
def test_every_parameters_update_ratio_and_norm_are_their_true_values(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from modeldebug.capture import updates

    if path in ("large", "singletons"):  # one kept copy, the weights' norms per tensor
        monkeypatch.setattr(updates, "_SMALL_MAX_BYTES", 0)
    elif path == "fresh":  # nothing kept: copies made afresh every sampled step
        monkeypatch.setattr(updates, "_KEEP_MAX_BYTES", 0)
    torch.manual_seed(0)
    model: nn.Module = _Mixed()
    if path == "singletons":  # every tensor of its own size: the update norms in one fused call
        model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    names = {p: n for n, p in model.named_parameters()}
    want: dict[tuple[int, str], tuple[float, float]] = {}
    g = torch.Generator().manual_seed(2)
    with md.watch(model, optimizer=opt, db=":memory:", level="detailed") as s:
        s.tracer.sampler.sampled = lambda step: step % 2 == 0
        for step in range(8):
            if step == 4:  # new storage for one weight (same Parameter object): the copies must follow
                first = next(model.parameters())
                with torch.no_grad():
                    first.data = first.data.clone()
            before = {p: p.detach().clone() for p in model.parameters()}
            x, y = torch.randn(10, 6, generator=g), torch.randint(0, 3, (10,), generator=g)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            for p, w0 in before.items():
                w1 = p.detach()
                want[(step, names[p])] = (float((w0 - w1).norm() / w1.norm()), float(w1.norm()))
    rec = s.record
    checked = moved = 0
    for name in names.values():
        ratio, norm = rec.series(name, "update_ratio"), rec.series(name, "param_norm")
        assert ratio.steps.tolist() == norm.steps.tolist() and len(ratio) >= 3, name
        for step, r, w in zip(ratio.steps.tolist(), ratio.values.tolist(), norm.values.tolist()):
            assert r == pytest.approx(want[(step, name)][0], rel=1e-5), (step, name)
            assert w == pytest.approx(want[(step, name)][1], rel=1e-6), (step, name)
            checked += 1
            moved += r > 0.0
    assert checked >= 3 * len(names) and moved >= checked // 2  # the weights did move
    if path != "fresh":
        assert s.tracer.updates._kept is None  # let go with the session


def test_the_kept_copies_of_several_optimizers_share_one_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two models stepped in turn, each with its own optimizer: each optimizer's weights get kept
    copies while all of them together fit the bound; past it, the next optimizer's are copied afresh
    each sampled step, and its update ratios are the same true values."""
    from modeldebug.capture import updates

    torch.manual_seed(0)
    nets = [nn.Linear(64, 64), nn.Linear(64, 64)]
    one = sum(p.numel() * p.element_size() for p in nets[0].parameters())
    monkeypatch.setattr(updates, "_KEEP_MAX_BYTES", one + one // 2)  # room for one optimizer's copies
    opts = [torch.optim.SGD(n.parameters(), lr=0.1) for n in nets]
    before: list[dict[str, torch.Tensor]] = []
    with md.watch(*nets, db=":memory:") as s:
        for _ in range(4):
            for net, opt in zip(nets, opts):
                x = torch.randn(8, 64)
                opt.zero_grad()
                net(x).square().mean().backward()
                before.append({n: p.detach().clone() for n, p in net.named_parameters()})
                opt.step()
        kept = list(s.tracer.updates._kept_by.values())
        assert len(kept) == 1 and kept[0].nbytes == one
    ratios = s.record.stat("update_ratio", kind="param")
    params = s.record.entities("param")
    checked = 0
    for i, net in enumerate(nets):  # net i steps on steps i, i + 2, ...: its weights after a step are those before its next
        for (local, _), e in zip(net.named_parameters(), [p for p in params if p.model == params[2 * i].model]):
            r = ratios[e.name]
            assert len(r) >= 2
            for step, value in zip(r.steps.tolist(), r.values.tolist()):
                if step + 2 < len(before):
                    w0, w1 = before[step][local], before[step + 2][local]
                    assert value == pytest.approx(float((w0 - w1).norm() / w1.norm()), rel=1e-4)
                    checked += 1
    assert checked >= 8
