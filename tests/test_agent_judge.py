"""The agent measures, the catalogue judges: the user's config reaches every verdict, and a tool's
finding is the rule's finding, worded as a watched run words it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import agent_models as am
from helpers import found, watched
from modeldebug import DebuggingConfig
from modeldebug.agent import AnalysisOptions, DebuggingRequest, GradientDebugger, LayerAnalyzer, ModelDebuggingAgent, probes
from modeldebug.agent.request import Workload

CE = nn.CrossEntropyLoss()
TITLE = "75% of the units of 1 (ReLU) are dead: zero for every sample"


def partly_dead() -> nn.Sequential:
    """Three quarters of the first ReLU's units are dead from the start (bias -10), the rest alive."""
    model = am.mlp()
    with torch.no_grad():
        model[0].bias[:48] = -10.0
    return model


def watched_title() -> str:
    """ACT001's title for the same model trained on the same batch under `watch` (what `modeldebug run` sees)."""
    model = partly_dead()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = am.batch()

    def loop() -> None:
        for _ in range(12):
            opt.zero_grad()
            CE(model(x), y).backward()
            opt.step()

    finding = next(f for f in watched(model, loop).findings if f.code == "ACT001")
    assert finding.location == "1"
    return finding.title


def test_layer_analyzer_finding_is_the_rule_finding_of_a_watched_run() -> None:
    assert watched_title() == TITLE
    report = LayerAnalyzer().run(partly_dead(), am.batch(), CE)
    assert [(f.code, f.location, f.title) for f in report.findings] == [("ACT001", "1", TITLE)]
    assert report.findings[0].evidence["feeding_layer"] == "0"  # the rule's own evidence, from our measurement
    assert report.layers[1].dead_fraction == pytest.approx(0.75)


def test_tool_thresholds_and_selection_come_from_the_config() -> None:
    strict = LayerAnalyzer(config=DebuggingConfig(thresholds={"dead_fraction": 0.99})).run(partly_dead(), am.batch(), CE)
    assert strict.findings == [] and strict.layers[1].dead_fraction == pytest.approx(0.75)  # measured, not judged dead
    ignored = LayerAnalyzer(config=DebuggingConfig(ignore=["dead_activations"])).run(am.dead_relu(), am.batch(), CE)
    assert ignored.findings == [] and ignored.layers[1].dead_fraction == 1.0
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(12):
        layers += [nn.Linear(20, 20), nn.Sigmoid()]
    deep = nn.Sequential(*layers, nn.Linear(20, 3))
    assert [f.code for f in GradientDebugger().run(deep, am.batch(), CE).findings] == ["GRD002"]
    lenient = DebuggingConfig(thresholds={"vanishing_ratio": 1e-9})
    assert GradientDebugger(config=lenient).run(deep, am.batch(), CE).findings == []


def test_probe_thresholds_come_from_the_config() -> None:
    hot = am.mlp()
    with torch.no_grad():
        hot[4].weight.mul_(100)  # confident, wrong logits at step 0

    def work(model: nn.Module, **thresholds: float) -> Workload:
        return Workload(DebuggingRequest(model=model, batch=am.batch(), loss_fn=CE),
                        config=DebuggingConfig(thresholds=thresholds))

    assert probes.loss_at_init(work(hot)).verdict == "fail"
    assert probes.loss_at_init(work(hot, init_loss_factor=1e3)).verdict == "pass"
    assert probes.batch_mixing_probe(work(am.BatchMixing())).verdict == "fail"
    assert probes.batch_mixing_probe(work(am.BatchMixing(), mixing_fraction=1.0)).verdict == "pass"


def test_agent_thresholds_change_its_verdict() -> None:
    def agent_on(config: DebuggingConfig):  # type: ignore[no-untyped-def]
        request = DebuggingRequest(model=partly_dead(), batch=am.batch(), loss_fn=CE, issue="loss is stuck",
                                   options=AnalysisOptions(probe_steps=20, verify_fixes=False))
        return ModelDebuggingAgent(config=config).debug_model(request)

    default = agent_on(DebuggingConfig())
    dead = found(default.report(), "dead_activations")
    assert dead is not None and dead.code == "ACT001" and dead.title == TITLE
    assert {"watched_run", "layer_analyzer"} <= set(dead.evidence["found_by"])  # one rule judged both
    strict = agent_on(DebuggingConfig(thresholds={"dead_fraction": 0.99}))
    assert found(strict.report(), "dead_activations") is None
    assert strict.tool_results["layer_analyzer"].layers[1].dead_fraction == pytest.approx(0.75)
    assert strict.model_unchanged
