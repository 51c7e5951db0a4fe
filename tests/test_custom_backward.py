"""GRD003: a custom autograd.Function whose backward breaks the chain rule (blind8's Swish whose backward never
multiplies by grad_output), against a correct one and two that differ from the forward's derivative on purpose
(a straight-through estimator and a gradient reversal layer)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import modeldebug as md
from modeldebug.capture.custom_backward import check_function, custom_functions


class _Swish(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def]
        s = torch.sigmoid(x)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[no-untyped-def]
        x, s = ctx.saved_tensors
        return grad_output * s * (1 + x * (1 - s))


class _SwishNoChainRule(_Swish):
    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[no-untyped-def]
        x, s = ctx.saved_tensors
        return s * (1 + x * (1 - s))  # the bug: grad_output is never used


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def]
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[no-untyped-def]
        return grad_output


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def]
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[no-untyped-def]
        return -0.5 * grad_output


class _TwoInputs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y):  # type: ignore[no-untyped-def]
        return x * y

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[no-untyped-def]
        return grad_output, grad_output


def test_the_check_tells_a_broken_chain_rule_from_deliberate_differences() -> None:
    broken, right = check_function(_SwishNoChainRule), check_function(_Swish)
    assert broken["nonlinear_in_grad_output"] > 0.1 and broken["relative_error"] > 0.5
    assert right["nonlinear_in_grad_output"] < 1e-12 and right["relative_error"] < 1e-6
    for deliberate in (_StraightThrough, _GradientReversal):  # linear in grad_output, unlike the derivative
        d = check_function(deliberate)
        assert d["nonlinear_in_grad_output"] < 1e-12 and d["relative_error"] > 0.5
    other = check_function(_TwoInputs)
    assert other["checked"] is False and "TypeError" in other["why"]
    y = (_Swish.apply(torch.randn(3, requires_grad=True)) * torch.tanh(torch.randn(3, requires_grad=True))).sum()
    assert custom_functions(y.grad_fn) == [_Swish]


class _Net(nn.Module):
    def __init__(self, act: type) -> None:
        super().__init__()
        self.act = act
        self.fc1, self.fc2 = nn.Linear(8, 32), nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act.apply(self.fc1(x)))


@pytest.mark.parametrize("act,severity", [(_SwishNoChainRule, "high"), (_Swish, None),
                                          (_StraightThrough, "low"), (_GradientReversal, "low")])
def test_a_watched_run_names_the_function_whose_backward_breaks_the_chain_rule(act: type,
                                                                              severity: str | None) -> None:
    torch.manual_seed(0)
    model = _Net(act)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(256, 8)
    y = x[:, :1] - x[:, 1:2] ** 2
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for step in range(40):
            j = (step * 32) % 256
            loss = F.mse_loss(model(x[j:j + 32]), y[j:j + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    report = session.report()
    f = next((f for f in report.findings if f.code == "GRD003"), None)
    if severity is None:
        assert f is None
        return
    assert f is not None and f.severity == severity and act.__qualname__ in str(f.location)
    if severity == "high":
        assert report.findings[0] is f and "grad_output" in f.recommendations[0].implementation


def test_the_check_leaves_what_a_function_prints_out_of_the_users_output(capsys: pytest.CaptureFixture[str]) -> None:
    class _Loud(_Swish):
        @staticmethod
        def forward(ctx, x):  # type: ignore[no-untyped-def]
            print("forward ran")
            return _Swish.forward(ctx, x)

    assert check_function(_Loud)["checked"] is True
    assert capsys.readouterr().out == ""
