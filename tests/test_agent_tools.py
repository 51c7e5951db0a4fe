"""Each agent tool alone, on real models: the fault found, the healthy twin clean, numbers checked."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import agent_models as am
from modeldebug.agent import AnalysisOptions, ErrorDiagnoser, GradientDebugger, LayerAnalyzer, MemoryTracker, PerformanceProfiler
from modeldebug.agent.tools import diagnose_exception
from modeldebug.errors import BadInputError

CE = nn.CrossEntropyLoss()


def test_layer_analyzer_finds_dead_units_and_not_in_a_healthy_twin() -> None:
    sick = LayerAnalyzer().run(am.dead_relu(), am.batch(), CE)
    assert [f.kind for f in sick.findings] == ["dead_activations"] * len(sick.findings) and sick.findings
    assert sick.findings[0].location == "1" and sick.layers[1].dead_fraction == 1.0
    healthy = LayerAnalyzer().run(am.mlp(), am.batch(), CE)
    assert healthy.findings == []
    relu = next(s for s in healthy.layers if s.name == "1")
    x, _ = am.batch()
    with torch.no_grad():
        direct = torch.relu(am.mlp()[0](x))
    assert relu.zero_fraction == pytest.approx(float((direct == 0).float().mean()))
    assert relu.mean == pytest.approx(float(direct.mean()), rel=1e-5)
    assert sum(relu.histogram["counts"]) == direct.numel()
    assert all(s.grad_norm is not None and s.grad_norm > 0 for s in healthy.layers)


def test_layer_analyzer_saturation_and_single_layer() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 3))
    with torch.no_grad():
        model[0].weight.mul_(50)
    report = LayerAnalyzer().run(model, am.batch(), CE)
    assert any(f.kind == "saturated_activations" and f.location == "1" for f in report.findings)
    one = LayerAnalyzer(layer="1").run(model, am.batch(), CE)
    assert [s.name for s in one.layers] == ["1"]
    with pytest.raises(BadInputError, match="no layer named 'nope'"):
        LayerAnalyzer(layer="nope").run(model, am.batch(), CE)


def test_gradient_debugger_names_why_a_parameter_gets_no_gradient() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.used = nn.Linear(20, 3)
            self.unused = nn.Linear(20, 3)  # registered, never called
            self.frozen = nn.Linear(20, 20)
            self.frozen.requires_grad_(False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(self.frozen(x))

    flow = GradientDebugger().run(Net(), am.batch(), CE)
    problems = {p.name: p.problem for p in flow.params}
    assert problems["unused.weight"] == "unused" and problems["frozen.weight"] == "frozen"
    assert problems["used.weight"] is None
    # The verdict is OPT001's, judged on what the tool measured; frozen by intent is not a finding.
    assert [(f.code, f.kind, f.location) for f in flow.findings] == [("OPT001", "params_not_updating", "unused")]
    assert flow.findings[0].evidence["params"] == ["unused.weight", "unused.bias"]
    detached = GradientDebugger().run(am.Detached(), am.batch(), CE)
    assert {p.problem for p in detached.params if p.module.startswith("encoder")} == {"detached"}
    assert [(f.code, f.location) for f in detached.findings] == [("OPT001", "encoder.0")]
    x, y = am.batch()
    model = am.mlp()
    CE(model(x), y).backward()
    direct = math.sqrt(sum(float(p.grad.norm()) ** 2 for p in model.parameters()))
    assert GradientDebugger().run(am.mlp(), (x, y), CE).total_norm == pytest.approx(direct, rel=1e-5)
    assert GradientDebugger().run(am.mlp(), (x, y), CE).findings == []


def test_gradient_debugger_vanishing_through_a_deep_sigmoid_stack() -> None:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(12):
        layers += [nn.Linear(20, 20), nn.Sigmoid()]
    deep = nn.Sequential(*layers, nn.Linear(20, 3))
    flow = GradientDebugger().run(deep, am.batch(), CE)
    assert [(f.code, f.location) for f in flow.findings] == [("GRD002", "0")]
    # AnalysisOptions.gradient_threshold names the parameters whose gradient is too small to learn from.
    first = next(p for p in flow.params if p.name == "0.weight")
    assert first.problem == "tiny" and 0 < first.grad_norm < 1e-7
    lenient = GradientDebugger(AnalysisOptions(gradient_threshold=0.0)).run(deep, am.batch(), CE)
    assert not any(p.problem for p in lenient.params)


def test_error_diagnoser_explains_common_crashes() -> None:
    assert not ErrorDiagnoser().run(am.mlp(), am.batch(), CE).failed
    shape = ErrorDiagnoser().run(am.shape_mismatch(), am.batch(), CE)
    assert shape.failed and shape.module == "2" and shape.findings[0].kind == "shape_mismatch"
    inplace = ErrorDiagnoser().run(am.InPlace(), am.batch(), CE)
    assert inplace.findings[0].kind == "inplace_modification" and inplace.findings[0].location == "InPlace"
    assert "test_agent_tools.py" not in (inplace.forward_origin or "") and "agent_models.py" in inplace.forward_origin
    torch.manual_seed(0)
    bn = nn.Sequential(nn.Linear(20, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    x, y = am.batch()
    one = ErrorDiagnoser().run(bn, (x[:1], y[:1]), CE)
    assert one.findings[0].title == "BatchNorm got a batch of one sample in training mode in 1"
    assert "drop_last=True" in one.findings[0].recommendations[0].implementation
    wrong_target = ErrorDiagnoser().run(am.mlp(), (x, y.float()), CE)
    assert wrong_target.failed and wrong_target.findings


def test_diagnose_exception_uses_the_same_rules_as_run() -> None:
    try:
        torch.zeros(2, 3) @ torch.zeros(4, 5)
    except RuntimeError as exc:
        findings = diagnose_exception(exc, module="encoder.fc")
    assert findings[0].kind == "shape_mismatch" and findings[0].location == "encoder.fc"


def test_memory_tracker_counts_tensors_exactly() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))
    x, y = am.batch(32)
    r = MemoryTracker().run(model, (x, y), CE)
    n_params = sum(p.numel() for p in model.parameters())
    mb = 2**20
    assert r.params_mb == pytest.approx(n_params * 4 / mb)
    assert r.grads_mb == pytest.approx(n_params * 4 / mb)
    # Adam: exp_avg and exp_avg_sq per parameter, plus one step counter per parameter tensor.
    assert r.optimizer_mb == pytest.approx((2 * n_params + 4) * 4 / mb)
    # Saved for backward: the input (by Linear 0) and the ReLU output (shared with Linear 2), once each.
    assert r.activations_by_module["0"] == pytest.approx(32 * 20 * 4 / mb)
    assert r.activations_by_module["1"] == pytest.approx(32 * 64 * 4 / mb)
    assert r.activations_mb == pytest.approx(sum(r.activations_by_module.values()))
    assert [p for p, _ in r.timeline] == ["start", "after forward", "after backward", "after optimizer step"]
    assert r.findings == []
    over = MemoryTracker(AnalysisOptions(memory_threshold_mb=0.01)).run(model, (x, y), CE)
    assert over.findings[0].kind == "high_memory"


class SlowCollate:
    """Real CPU work per batch, far more than the model's training step."""

    def __call__(self, items):  # type: ignore[no-untyped-def]
        a = torch.randn(256, 256)
        for _ in range(12):
            a = torch.tanh(a @ a)
        return torch.utils.data.default_collate(items)


def test_profiler_splits_the_step_and_measures_a_slow_loader() -> None:
    x, y = am.batch(256)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, collate_fn=SlowCollate())
    slow = PerformanceProfiler(AnalysisOptions(max_batches=1)).run(am.mlp(), None, CE, data=loader)
    assert slow.phases_ms["data"] > slow.phases_ms["forward"]
    assert any("num_workers" in (s.implementation or "") for s in slow.suggestions)
    # Five iterations are too few for PRF001 (it judges at least `min_steps` timed steps): the share is
    # a measurement here, not a second verdict in other words.
    assert slow.findings == []
    fast = PerformanceProfiler().run(am.mlp(), (x[:32], y[:32]), CE)
    assert fast.findings == [] and fast.phases_ms["data"] == 0.0
    assert fast.iterations == 5 and set(fast.phases_ms) == {"data", "forward", "backward", "optimizer"}
    assert any(o["name"].startswith("aten::") for o in fast.operators)
    assert fast.modules_ms and all(v > 0 for v in fast.modules_ms.values())


def test_profiler_iterations_are_judged_by_the_dataloader_rule() -> None:
    from modeldebug import DebuggingConfig

    x, y = am.batch(256)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, collate_fn=SlowCollate())
    config = DebuggingConfig(thresholds={"min_steps": 10})  # the rule's own floor: 10 timed steps
    slow = PerformanceProfiler(AnalysisOptions(profile_iterations=12, max_batches=1), config=config).run(
        am.mlp(), None, CE, data=loader)
    assert [f.code for f in slow.findings] == ["PRF001"]
    assert slow.findings[0].title.startswith("Training waits for data: ")
    assert slow.findings[0].evidence["steps"] == 11  # the rule leaves out the first (warm-up) step
    fast = PerformanceProfiler(AnalysisOptions(profile_iterations=12), config=config).run(am.mlp(), (x[:32], y[:32]), CE)
    assert fast.findings == []
