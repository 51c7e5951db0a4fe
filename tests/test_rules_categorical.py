"""LSS001's distribution path: `Categorical(logits=...)` given a softmax's output (blind5's REINFORCE
agent: the policy ends in a softmax and its output is passed as logits)."""

from __future__ import annotations

import pytest
import torch
from helpers import found, watched
from torch import nn
from torch.distributions import Categorical


def _policy_gradient(how: str):  # type: ignore[no-untyped-def]
    """A contextual bandit trained by REINFORCE: the reward is 1 when the action matches the context's class."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    softmax_head = how in ("probs_as_logits", "probs")
    policy = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 3), *([nn.Softmax(-1)] if softmax_head else []))
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)

    def loop() -> None:
        for _ in range(60):
            x = torch.randn(32, 6, generator=g)
            best = x[:, :3].argmax(1)
            out = policy(x)
            if how == "probs_as_logits":
                dist = Categorical(logits=out)  # the bug: probabilities as logits
            elif how == "probs":
                dist = Categorical(probs=out)
            elif how == "log_softmax":
                dist = Categorical(logits=torch.log_softmax(out, -1))  # normalised logits: fine
            else:
                dist = Categorical(logits=out)
            a = dist.sample()
            reward = (a == best).float()
            loss = -(dist.log_prob(a) * (reward - reward.mean())).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    return watched(policy, loop)


@pytest.mark.parametrize("how", ["probs_as_logits", "probs", "logits", "log_softmax"])
def test_a_categorical_given_probabilities_as_logits_is_a_double_softmax(how: str) -> None:
    report = _policy_gradient(how)
    f = found(report, "double_softmax")
    if how != "probs_as_logits":
        assert f is None, f.title
        return
    assert f is not None and f.severity == "high" and report.findings[0] is f
    assert "Categorical(logits=...) is given probabilities" in f.title and f.evidence["shape"] == [32, 3]
    assert "Categorical(probs=probs)" in f.recommendations[0].implementation


def test_a_learnable_mixtures_uniform_logits_are_not_a_softmax() -> None:
    """A review's case: `Categorical(logits=nn.Parameter(torch.full((K,), 1 / K)))` in a mixture model."""
    torch.manual_seed(0)
    mix = nn.Parameter(torch.full((4,), 0.25))
    head = nn.Linear(3, 4)
    opt = torch.optim.Adam([mix, *head.parameters()], lr=1e-2)

    def loop() -> None:
        for _ in range(30):
            x = torch.randn(16, 3)
            dist = Categorical(logits=mix)  # a leaf: no network's output
            scaled = Categorical(logits=mix * 1.0)  # uniform rows: a second softmax changes nothing
            loss = -(dist.log_prob(head(x).argmax(1)) + scaled.entropy()).mean() + head(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    assert found(watched(head, loop), "double_softmax") is None
