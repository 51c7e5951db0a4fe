"""Three patterns of healthy public scripts that read as bugs (benchmarks/REALWORLD.md, eighth round), each
with the bug it was mistaken for as its twin:

- a DQN whose target network is not detached: the target network gets gradients through the loss's target
  and no optimizer holds it (minimalRL's dqn.py) -- against a second model whose optimizer was forgotten;
- a layer built in __init__ and never called (a distillation teacher's unused BatchNorm) -- against a layer
  cut off by .detach();
- a no-grad pass in train mode over the whole training set to recompute BatchNorm statistics
  (pytorch-flows) -- against validation without model.eval().
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import found
from torch import nn

import modeldebug as md


def _severities(report, code: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.severity for f in report.findings if f.code == code]


@pytest.mark.parametrize("case", ["target_network", "forgotten_optimizer"])
def test_a_target_network_trained_through_the_target_is_not_a_model_left_out(case: str) -> None:
    torch.manual_seed(0)
    q, other = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2)), nn.Sequential(
        nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    other.load_state_dict(q.state_dict())
    opt = torch.optim.Adam(q.parameters(), lr=1e-3)
    s, s_next = torch.randn(512, 4), torch.randn(512, 4)
    a, r = torch.randint(0, 2, (512, 1)), torch.randn(512, 1)
    with md.watch(q, other, optimizer=opt, db=":memory:") as session:
        for step in range(120):
            j = (step * 32) % 512
            q_a = q(s[j:j + 32]).gather(1, a[j:j + 32])
            if case == "target_network":  # r + gamma * max Q_target(s'), the target not detached
                target = r[j:j + 32] + 0.99 * other(s_next[j:j + 32]).max(1)[0].unsqueeze(1)
                loss = F.smooth_l1_loss(q_a, target)
            else:  # the second model feeds the prediction: its optimizer was forgotten
                loss = F.smooth_l1_loss(q_a + other(s[j:j + 32]).gather(1, a[j:j + 32]), r[j:j + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if case == "target_network" and step % 40 == 39:
                other.load_state_dict(q.state_dict())
    report = session.report()
    f = found(report, "params_not_updating")
    assert f is not None
    if case == "target_network":
        assert f.severity == "low" and "loss target" in f.title and "no_grad" in f.recommendations[0].implementation
        assert not [x for x in report.findings if x.severity != "low"], [x.title for x in report.findings]
    else:
        assert f.severity == "high" and "in no optimizer" in f.title


class _Teacher(nn.Module):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)  # 16 weights, left over from an earlier version unless `detached`
        self.extra = nn.Linear(8 * 8 * 8, 8 * 8 * 8)  # 262k weights
        self.head = nn.Linear(8 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "detached":  # bn runs; extra runs but is cut off
            h = F.relu(self.bn(self.conv(x))).flatten(1)
            return self.head(h + self.extra(h).detach())
        h = F.relu(self.conv(x)).flatten(1)
        return self.head(h + self.extra(h)) if self.mode == "small_unused" else self.head(h)


@pytest.mark.parametrize("mode,severity", [("small_unused", "low"), ("large_unused", "medium"), ("detached", "high")])
def test_a_layer_forward_never_calls_is_named_unused_and_graded_by_its_size(mode: str, severity: str) -> None:
    torch.manual_seed(0)
    model = _Teacher(mode)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(256, 1, 8, 8), torch.randint(0, 3, (256,))
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for step in range(40):
            j = (step * 32) % 256
            loss = F.cross_entropy(model(x[j:j + 32]), y[j:j + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    f = found(session.report(), "params_not_updating")
    assert f is not None and "never received a gradient" in f.title and f.severity == severity
    unused = {"small_unused": {"bn"}, "large_unused": {"bn", "extra"}, "detached": {"extra"}}[mode]
    assert set(f.evidence["modules"]) == unused
    assert ("never ran in forward()" in f.description) == (mode != "detached")
    assert (".detach()" in f.description) == (mode == "detached")


@pytest.mark.parametrize("batch", ["whole_training_set", "validation_set"])
def test_a_statistics_pass_over_the_training_set_is_not_validation_without_eval(batch: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(1024, 6), torch.randint(0, 2, (1024,))
    x_val = torch.randn(200, 6)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=True)
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for _ in range(3):
            for xb, yb in loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():  # train mode on purpose: the running statistics of the whole set
                model(x if batch == "whole_training_set" else x_val)
    f = found(session.report(), "train_mode_misuse")
    assert f is not None
    if batch == "whole_training_set":
        assert f.severity == "low" and "whole training set" in f.title and f.evidence["batch"] == 1024
    else:
        assert f.severity == "medium" and "validation without model.eval()" in f.title


@pytest.mark.parametrize("student_softmax", [True, False])
def test_softmax_before_cross_entropy_in_a_second_phase_is_found(student_softmax: bool) -> None:
    """A teacher trained on logits, then a student whose hard-label term is given softmax outputs (the distillation
    script of the real-world corpus): one loss entity holds both phases, and the student's is a stretch of probability
    rows."""
    torch.manual_seed(0)
    x, y = torch.randn(512, 10), torch.randint(0, 4, (512,))
    teacher, student = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4)), nn.Linear(10, 4)
    opt_t, opt_s = torch.optim.Adam(teacher.parameters(), lr=1e-2), torch.optim.Adam(student.parameters(), lr=1e-2)
    with md.watch(teacher, student, optimizer=[opt_t, opt_s], db=":memory:") as session:
        for step in range(160):  # the student's phase holds the sampler's dense window at step 100
            j = (step * 32) % 512
            xb, yb = x[j:j + 32], y[j:j + 32]
            if step < 30:
                opt, out = opt_t, teacher(xb)
            else:
                opt, out = opt_s, student(xb)
                with torch.no_grad():
                    soft = F.softmax(teacher(xb) / 2, dim=1)
                kd = F.kl_div(F.log_softmax(out / 2, dim=1), soft, reduction="batchmean") * 4
                out = F.softmax(out, dim=1) if student_softmax else out
            loss = F.cross_entropy(out, yb) + (kd if step >= 30 else 0)
            opt.zero_grad()
            loss.backward()
            opt.step()
    f = found(session.report(), "double_softmax")
    if student_softmax:
        assert f is not None and f.severity == "high" and f.step >= 30 and f.evidence["sampled_calls"] >= 3
    else:
        assert f is None


@pytest.mark.parametrize("anomaly", [True, False])
def test_anomaly_detection_left_on_for_training_is_a_slow_step(anomaly: bool) -> None:
    """blind8's two-tower recommender: `torch.autograd.set_detect_anomaly(True)` at the top of the script."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(256, 8), torch.randn(256, 1)
    previous = torch.is_anomaly_enabled()
    torch.autograd.set_detect_anomaly(anomaly)
    try:
        with md.watch(model, optimizer=opt, db=":memory:") as session:
            for step in range(120):
                j = (step * 32) % 256
                loss = F.mse_loss(model(x[j:j + 32]), y[j:j + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        torch.autograd.set_detect_anomaly(previous)
    f = next((f for f in session.report().findings if f.code == "PRF002"), None)
    if anomaly:
        assert f is not None and f.severity == "medium" and "Anomaly detection" in f.title
        assert "set_detect_anomaly(False)" in f.recommendations[0].implementation
    else:
        assert f is None


@pytest.mark.parametrize("rebuilt", [True, False])
def test_an_adaptive_optimizer_built_anew_every_step_is_named(rebuilt: bool) -> None:
    """blind8's quantile regression: `torch.optim.Adam(model.parameters(), lr)` inside the batch loop."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 1))
    x = torch.randn(512, 6)
    y = x[:, :1] * 2 + 0.1 * torch.randn(512, 1)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    with md.watch(model, db=":memory:") as session:
        for step in range(80):
            if rebuilt:
                opt = torch.optim.Adam(model.parameters(), lr=2e-3)
            j = (step * 32) % 512
            loss = F.mse_loss(model(x[j:j + 32]), y[j:j + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    f = next((f for f in session.report().findings if f.code == "LRN001"), None)
    if rebuilt:
        assert f is not None and f.severity == "high" and "built at" in f.title and f.evidence["constructions"] >= 79
    else:
        assert f is None


@pytest.mark.parametrize("how", ["random_shuffle", "randperm"])
def test_a_tensor_shuffled_with_random_shuffle_reads_as_partly_sorted_and_says_why(how: str) -> None:
    """blind8's land-cover table: rows sorted by class, then `random.shuffle(table)` on the tensor, which swaps rows
    through views (rows duplicated and lost, runs of the sorted order left), against a permutation index."""
    import random

    random.seed(0)
    torch.manual_seed(0)
    y_sorted = torch.arange(5).repeat_interleave(400)
    table = torch.cat([torch.randn(2000, 6) + y_sorted[:, None].float(), y_sorted[:, None].float()], 1)
    if how == "random_shuffle":
        random.shuffle(table)  # the bug
    else:
        table = table[torch.randperm(len(table))]
    x, y = table[:, :6], table[:, 6].long()
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 5))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with md.watch(model, optimizer=opt, db=":memory:") as session:
        for step in range(125):
            j = (step * 64) % 1984
            loss = F.cross_entropy(model(x[j:j + 64]), y[j:j + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    f = found(session.report(), "label_issue")
    if how == "random_shuffle":
        assert f is not None and "random.shuffle" in f.description and "randperm" in f.recommendations[0].implementation
    else:
        assert f is None
