"""OPT002 unregistered_module: layers a model uses in forward() but does not register.

Each fault is built the way people write it (a plain list of layers, a layer built inside forward),
with a healthy twin; the cases that look alike but are not the fault (a frozen teacher, a layer an
optimizer holds, a module of another watched model) keep a real fault beside them in the same model,
so that the test shows the check ran and left them out, not that it never looked.
"""

from __future__ import annotations

import pytest
import torch
from helpers import found, serious, watched
from torch import nn

import modeldebug as md
from modeldebug.capture.unregistered import UnregisteredWatch, locate
from modeldebug.testing import classification, train


def _hidden(n_hid: int = 32, n_layers: int = 3) -> list[nn.Module]:
    return [nn.Sequential(nn.Linear(n_hid, n_hid), nn.ReLU()) for _ in range(n_layers)]


class ListNet(nn.Module):
    """The benchmark's bug in small: the hidden layers in a plain list (or, healthy, an nn.ModuleList)."""

    def __init__(self, *, registered: bool = False) -> None:
        super().__init__()
        self.inp = nn.Linear(20, 32)
        self.hids = nn.ModuleList(_hidden()) if registered else _hidden()
        self.out = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.inp(x))
        for layer in self.hids:
            x = layer(x)
        return self.out(x)


def _list_net(*, registered: bool = False) -> tuple[nn.Module, md.testing.Data]:
    torch.manual_seed(0)
    return ListNet(registered=registered), classification(seed=0)


def _layers_of(report: md.Report) -> list[str]:
    f = found(report, "unregistered_module")
    return [] if f is None else f.evidence["modules"]


# -- the fault and its twin ----------------------------------------------------------------------------
def test_layers_in_a_plain_list_are_found_high_and_named() -> None:
    model, data = _list_net()
    report = watched(model, lambda: train(model, data, steps=40))
    top = report.findings[0]
    assert top.code == "OPT002" and top.kind == "unregistered_module" and top.severity == "high"
    assert top.location == "hids" and top.evidence["modules"] == ["hids[0]", "hids[1]", "hids[2]"]
    hidden = sum(p.numel() for layer in model.hids for p in layer.parameters())
    assert top.evidence["numel"] == hidden  # checked against the model itself
    own = sum(p.numel() for p in model.parameters())
    assert top.evidence["fraction_of_weights"] == pytest.approx(hidden / (hidden + own))
    assert "`hids`" in top.title and "never trained" in top.title
    fix = top.recommendations[0].implementation or ""
    assert "self.hids = nn.ModuleList(" in fix
    # once per layer, at the second sampled step: the first one it could have been updated by hand since
    events = report.record.events("unregistered_module")
    assert [e.data["module"] for e in events] == ["hids[0]", "hids[1]", "hids[2]"]
    assert {e.step for e in events} == {1} and {e.data["type"] for e in events} == {"Sequential"}


def test_the_same_layers_in_a_module_list_are_clean() -> None:
    model, data = _list_net(registered=True)
    report = watched(model, lambda: train(model, data, steps=40))
    assert found(report, "unregistered_module") is None
    assert serious(report) == []


def test_a_plain_dict_of_layers_gets_a_module_dict_fix() -> None:
    class DictNet(ListNet):
        def __init__(self) -> None:
            super().__init__(registered=True)
            self.heads = {"a": nn.Linear(32, 3), "b": nn.Linear(32, 3)}

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = super().forward(x)
            return h + self.heads["a"](torch.relu(self.inp(x))) + self.heads["b"](torch.relu(self.inp(x)))

    torch.manual_seed(0)
    model = DictNet()
    report = watched(model, lambda: train(model, classification(seed=0), steps=20))
    f = found(report, "unregistered_module")
    assert f is not None and f.evidence["modules"] == ["heads['a']", "heads['b']"]
    assert "nn.ModuleDict(" in (f.recommendations[0].implementation or "")


class BuiltInForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp, self.out = nn.Linear(20, 32), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(x))
        return self.out(h + nn.Linear(32, 32)(h))  # a new random layer at every call


def test_a_layer_built_inside_forward_is_found() -> None:
    torch.manual_seed(0)
    model = BuiltInForward()
    report = watched(model, lambda: train(model, classification(seed=0), steps=12))
    f = found(report, "unregistered_module")
    assert f is not None and f.severity == "high"
    assert f.evidence["built_in_forward"] == ["BuiltInForward"] and f.evidence["types"] == ["Linear"]
    assert "at every step" in f.title
    events = report.record.events("unregistered_module")  # said at the first sample, then once more: a new one
    assert [e.data["objects"] for e in events] == [1, 2] and {e.data["module"] for e in events} == {None}


# -- what looks alike and is not this fault ---------------------------------------------------------------
class Student(nn.Module):
    """Distillation: the teacher is kept out of the student's parameters on purpose (in a list), and
    called inside the student's forward; `hids` is a real fault beside it."""

    def __init__(self, teacher: nn.Module, how: str) -> None:
        super().__init__()
        self.teacher, self.how = [teacher], how
        self.inp, self.out = nn.Linear(20, 32), nn.Linear(32, 3)
        self.hids = [nn.Linear(32, 32)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "no_grad":
            with torch.no_grad():
                soft = self.teacher[0](x)
        else:  # frozen with requires_grad_(False), called with autograd on
            soft = self.teacher[0](x)
        return self.out(self.hids[0](torch.relu(self.inp(x)))) + 0.1 * soft


@pytest.mark.parametrize("how", ["no_grad", "frozen"])
def test_a_teacher_called_inside_the_student_is_not_reported(how: str) -> None:
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))
    if how == "frozen":
        teacher.requires_grad_(False)
    model = Student(teacher, how)
    report = watched(model, lambda: train(model, classification(seed=0), steps=20))
    assert _layers_of(report) == ["hids[0]"]  # the real fault, and only it
    assert all(p.grad is None for p in teacher.parameters())


def test_a_layer_the_optimizer_holds_is_not_this_finding() -> None:
    """Trained through the optimizer (built from both): not saved by state_dict, but it learns."""
    torch.manual_seed(0)
    model, side = ListNet(), nn.Linear(32, 32)
    model.side = [side]
    base = model.forward
    model.forward = lambda x: base(x) + model.out(side(torch.relu(model.inp(x))))  # type: ignore[method-assign]
    opt = torch.optim.Adam([*model.parameters(), *side.parameters()], lr=1e-2)  # built before watching, not passed
    before = side.weight.detach().clone()
    report = watched(model, lambda: train(model, classification(seed=0), steps=20, optimizer=opt))
    assert _layers_of(report) == ["hids[0]", "hids[1]", "hids[2]"]  # not side[0]
    assert not torch.equal(side.weight, before)  # it did learn


def test_a_module_of_another_watched_model_is_not_reported() -> None:
    """A shared encoder registered in a second watched model, called through a list in the first."""
    torch.manual_seed(0)
    other = nn.Sequential(nn.Linear(20, 32), nn.ReLU())
    model = ListNet()
    model.shared = [other]
    base = model.forward
    model.forward = lambda x: base(x) + model.out(model.shared[0](x))  # type: ignore[method-assign]
    opt = torch.optim.Adam([*model.parameters(), *other.parameters()], lr=1e-2)
    with md.watch(model, other, optimizer=opt, db=":memory:") as s:
        train(model, classification(seed=0), steps=10, optimizer=opt)
    assert _layers_of(s.report()) == ["hids[0]", "hids[1]", "hids[2]"]


def test_unregistered_layers_are_looked_at_on_sampled_steps_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No work on unsampled steps: the module hooks are off there (roots.py)."""
    model, data = _list_net()
    seen: list[bool] = []
    called = UnregisteredWatch.called

    def spy(self: UnregisteredWatch, module: nn.Module, caller: nn.Module) -> None:
        seen.append(self.tracer.sampled())
        called(self, module, caller)

    monkeypatch.setattr(UnregisteredWatch, "called", spy)
    report = watched(model, lambda: train(model, data, steps=40))
    assert found(report, "unregistered_module") is not None
    assert seen and all(seen)
    sampled = int(report.record.column("sampled").values.sum())
    assert 0 < sampled < 20 and len(seen) == 9 * sampled  # each step: the 3 Sequentials, their Linear and ReLU


def test_selecting_other_rules_takes_no_module_calls_for_it() -> None:
    model, data = _list_net()
    with md.watch(model, db=":memory:", config=md.DebuggingConfig(select=["LOS"])) as s:
        train(model, data, steps=10)
    assert not s.tracer.unregistered.on and s.record.events("unregistered_module") == []


def test_locate_names_nested_containers_and_says_none_for_a_stranger() -> None:
    model = ListNet()
    model.inp.extra = {"k": [nn.ReLU(), model.hids[1]]}  # type: ignore[assignment]
    assert locate(model, model.hids[2]) == "hids[2]"
    model.hids = []
    assert locate(model, model.inp.extra["k"][1]) == "inp.extra['k'][1]"  # type: ignore[index]
    assert locate(model, nn.Linear(2, 2)) is None


def test_layers_in_a_list_trained_by_hand_are_not_called_untrained() -> None:
    """A review's case: the list's layers are updated by hand (p -= lr * p.grad): they train."""
    model, data = _list_net()
    opt = torch.optim.SGD([*model.inp.parameters(), *model.out.parameters()], lr=0.05)

    def loop() -> None:
        for step in range(40):
            x, y = data.batch(step, 32)
            opt.zero_grad()
            loss = data.loss_fn(model(x), y)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for layer in model.hids:
                    for p in layer.parameters():
                        p -= 0.05 * p.grad
                        p.grad.zero_()

    assert found(watched(model, loop), "unregistered_module") is None


class WithTeacher(nn.Module):
    """A distillation student that keeps its teacher in a plain list, on purpose, and calls it with autograd on."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3))
        self._teacher = [nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + 0.0 * self._teacher[0](x)


def test_one_whole_model_kept_aside_in_a_list_is_medium() -> None:
    torch.manual_seed(0)
    model = WithTeacher()
    report = watched(model, lambda: train(model, classification(seed=0), steps=40))
    f = found(report, "unregistered_module")
    assert f is not None and f.severity == "medium" and "torch.no_grad()" in f.description
