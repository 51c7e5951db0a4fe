"""The agent end to end: real faulty models must get the right issue first; healthy twins none."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import agent_models as am
from helpers import serious
from modeldebug.agent import DebuggingRequest, ModelDebuggingAgent
from modeldebug.errors import BadInputError
from modeldebug.testing import TASKS


def debug(model: nn.Module, batch=None, *, issue: str = "Model not converging", **kw):  # type: ignore[no-untyped-def]
    request = DebuggingRequest(model=model, batch=batch or am.batch(), loss_fn=kw.pop("loss_fn", nn.CrossEntropyLoss()),
                               issue=issue, **kw)
    return ModelDebuggingAgent().debug_model(request)


@pytest.mark.parametrize(("build", "kind", "location", "extra"), [
    (am.dead_relu, "dead_activations", "1", {}),
    (am.double_softmax, "double_softmax", None, {}),
    (am.BatchMixing, "batch_mixing", None, {}),
    (am.Detached, "params_not_updating", "encoder", {}),
    (am.mlp, "lr_too_high", None, {"optimizer_factory": am.sgd(50.0)}),
    (am.shape_mismatch, "shape_mismatch", "2", {}),
    (am.InPlace, "inplace_modification", "InPlace", {}),
])
def test_the_right_issue_comes_first(build, kind, location, extra) -> None:  # type: ignore[no-untyped-def]
    response = debug(build(), **extra)
    assert response.findings, "a faulty model must produce findings"
    top = response.findings[0]
    assert top.kind == kind, [f"{f.kind}@{f.location}" for f in response.findings]
    if location is not None:
        assert (top.location or "").startswith(location)
    assert response.issues[0].kind == kind and response.issues[0].type == top.category
    assert response.recommendations and response.recommendations[0].description
    assert response.model_unchanged


@pytest.mark.parametrize("task", sorted(TASKS))
def test_healthy_twins_come_out_clean(task: str) -> None:
    model, data = TASKS[task]()
    response = debug(model, data.batch(0, 64), loss_fn=data.loss_fn)
    assert serious(response.report()) == []
    assert response.probes["overfit_one_batch"].verdict in ("pass", "warn")
    assert response.probes["batch_mixing"].verdict in ("pass", "skipped")


def test_users_model_is_exactly_as_it_came() -> None:
    model, data = TASKS["cnn"]()  # BatchNorm: running statistics would move in any training forward
    model.eval()
    model[0].weight.requires_grad_(False)
    x, y = data.batch(0, 32)
    data.loss_fn(model(x), y).backward()  # leave gradients on the parameters, as a user might
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    rng = torch.random.get_rng_state()
    response = debug(model, (x, y), loss_fn=data.loss_fn)
    assert response.model_unchanged and response.changed == []
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(grads[n], p.grad) for n, p in model.named_parameters() if p.grad is not None)
    assert not any(m.training for m in model.modules())
    assert model[0].weight.requires_grad is False
    assert torch.equal(rng, torch.random.get_rng_state())


@pytest.mark.parametrize(("build", "extra", "fix"), [
    (am.dead_relu, {}, "reinitialize"),
    (am.double_softmax, {}, "remove_final_softmax"),
    (am.mlp, {"optimizer_factory": am.sgd(50.0)}, "lower_lr"),
    (am.mlp, {"optimizer_factory": am.sgd(1e-6)}, "raise_lr"),
])
def test_verified_fixes_really_improve_the_probe(build, extra, fix) -> None:  # type: ignore[no-untyped-def]
    response = debug(build(), **extra)
    tried = {v.fix: v for v in response.fixes}
    assert fix in tried, list(tried)
    v = tried[fix]
    assert v.helped and v.after < v.before or (v.before != v.before and v.after == v.after)  # NaN before, finite after
    assert any("tried on a copy" in r.description for r in response.recommendations)


def test_a_fix_that_does_not_help_is_said_so() -> None:
    # Clipping at 1e6 never touches a healthy model's gradient: the runs are identical, and the
    # verdict must say the fix did not help rather than claim success.
    from modeldebug.agent.fixes import _Candidate, verify
    from modeldebug.agent.request import Workload
    from modeldebug.rules.base import Finding

    work = Workload(DebuggingRequest(model=am.mlp(), batch=am.batch(), loss_fn=nn.CrossEntropyLoss()))
    finding = Finding("GRD001", "exploding_gradients", "gradient", "high", 0.9, "t", "d")
    v = verify(_Candidate("clip_grad_norm", "Clip at 1e6", "", {"clip": 1e6}), finding, work)
    assert not v.helped and "did not improve" in v.note


def test_input_normalisation_fix_is_judged_on_held_out_data() -> None:
    x, y = am.batch()
    response = debug(am.mlp(), (x * 300 + 50, y))
    assert response.findings[0].kind == "input_not_normalized"
    fix = next(v for v in response.fixes if v.fix == "normalize_inputs")
    assert fix.helped and "held-out" in fix.note


def test_bad_requests_say_what_is_wrong() -> None:
    agent = ModelDebuggingAgent()
    with pytest.raises(BadInputError, match="no loss function.*tensor\\(64, 3\\)"):
        agent.debug_model(DebuggingRequest(model=am.mlp(), batch=am.batch()))
    with pytest.raises(BadInputError, match="a batch must be \\(inputs, targets\\)"):
        agent.debug_model(DebuggingRequest(model=am.mlp(), batch=torch.zeros(3), loss_fn=nn.MSELoss()))  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match="no data"):
        agent.debug_model(DebuggingRequest(model=am.mlp(), loss_fn=nn.MSELoss()))
    with pytest.raises(BadInputError, match="torch.nn.Module"):
        agent.debug_model(DebuggingRequest(model="model.pt", batch=am.batch()))  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match="unknown visualization 'loss_landscape'"):
        agent.debug_model(DebuggingRequest(model=am.mlp(), batch=am.batch(), loss_fn=nn.CrossEntropyLoss(),
                                           visualizations=["loss_landscape"]))


def test_model_that_returns_its_own_loss_needs_no_loss_fn() -> None:
    class WithLoss(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = am.mlp()

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
            logits = self.net(x)
            return {"logits": logits, "loss": nn.functional.cross_entropy(logits, y)}

    x, y = am.batch()
    response = ModelDebuggingAgent().debug_model(DebuggingRequest(model=WithLoss(), batch=((x, y), None)))
    assert serious(response.report()) == []


def test_a_data_loader_works_like_a_batch() -> None:
    data = TASKS["mlp"]()[1]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data.x, data.y), batch_size=32)
    response = ModelDebuggingAgent().debug_model(DebuggingRequest(
        model=am.dead_relu(), data=loader, loss_fn=data.loss_fn, issue="loss is stuck"))
    assert response.findings[0].kind == "dead_activations"


def test_the_complaint_steers_tools_and_ranking() -> None:
    from modeldebug.agent.planner import plan
    from modeldebug.rules.base import Finding

    slow = plan("training is slow")
    assert slow.tools[:2] == ["error_diagnoser", "performance_profiler"]
    assert plan("out of memory on the GPU").tools[1] == "memory_tracker"
    perf = Finding("PRF001", "dataloader_bottleneck", "performance", "medium", 0.7, "t", "d")
    init = Finding("INI001", "poor_initialization", "model", "medium", 0.9, "t", "d")
    crash = Finding("RUN001", "shape_mismatch", "runtime", "high", 0.9, "t", "d")
    assert slow.order([init, perf, crash]) == [crash, perf, init]  # severity first, then the complaint
    assert plan("").order([init, perf]) == [init, perf]


def test_response_metrics_and_json() -> None:
    import json

    response = debug(am.dead_relu())
    m = response.metrics
    assert m.analysis_time_s > 0 and m.issues_found == len(response.findings)
    assert m.recommendations_given == len(response.recommendations) > 0
    assert {"error_diagnoser", "watched_run", "layer_analyzer", "lr_range_test"} <= set(m.tool_time_s)
    data = json.loads(response.to_json("out/agent.json"))
    assert data["issues"][0]["type"] == "activation" and data["issues"][0]["location"] == "1"
    assert set(data["tools"]) == {"error_diagnoser", "gradient_debugger", "layer_analyzer", "memory_tracker",
                                  "performance_profiler"}
    assert "dead_activations" in response.to_text()


def test_visualizations_are_written_as_svg_files() -> None:
    import xml.etree.ElementTree as ET

    response = debug(am.dead_relu(), visualizations=["gradient_flow", "activation_histograms", "memory_timeline"],
                     output_dir="viz")
    assert set(response.visualizations) == {"gradient_flow", "activation_histograms", "memory_timeline"}
    for path in response.visualizations.values():
        root = ET.parse(path).getroot()  # well-formed XML
        assert root.tag.endswith("svg") and len(list(root.iter())) > 10
    grad = Path(response.visualizations["gradient_flow"]).read_text()
    assert "0.weight" in grad and "4.weight" in grad


def test_a_gpt_without_its_causal_mask_is_found_and_its_twin_is_clean() -> None:
    from modeldebug.agent import AnalysisOptions

    def gpt(causal: bool):  # type: ignore[no-untyped-def]
        return ModelDebuggingAgent().debug_model(DebuggingRequest(
            model=am.TinyGPT(causal=causal), batch=am.token_batch(), loss_fn=am.next_token_loss,
            issue="loss falls suspiciously fast", options=AnalysisOptions(probe_steps=20, verify_fixes=False)))

    leaky = gpt(False)
    top = leaky.findings[0]
    assert (top.kind, top.location) == ("causality_leak", "blocks.layers.0.self_attn")
    assert top.evidence["first_leaking_position"] == 0
    healthy = gpt(True)
    assert serious(healthy.report()) == [] and healthy.probes["causality"].verdict == "pass"
    assert healthy.probes["batch_mixing"].verdict == "pass"  # token inputs are probed through the embedding now


def test_doctor_says_how_long_it_took_and_on_how_many_threads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modeldebug.cli import main

    (tmp_path / "net.py").write_text(
        "import torch\nfrom torch import nn\n"
        "def build():\n    torch.manual_seed(0)\n    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))\n"
        "def batch():\n    g = torch.Generator().manual_seed(0)\n    x = torch.randn(32, 4, generator=g)\n"
        "    return x, (x[:, 0] > 0).long()\n")
    assert main(["doctor", "--model", f"{tmp_path / 'net.py'}:build", "--batch", f"{tmp_path / 'net.py'}:batch",
                 "--loss", "CrossEntropyLoss", "--steps", "10"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "analysis took" in err and "on 1 thread (slowest:" in err
    assert main(["doctor", "--model", f"{tmp_path / 'net.py'}:build", "--batch", f"{tmp_path / 'net.py'}:batch",
                 "--loss", "CrossEntropyLoss", "--threads", "0"]) == 2
