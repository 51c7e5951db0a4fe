"""The tool loop (dspy.ReAct) calling our REAL tools and run queries, driven by a scripted fake model."""

from __future__ import annotations

import pytest
import torch

import modeldebug as md
from modeldebug.agent import AnalysisOptions, DebuggingRequest, ModelDebuggingAgent
from modeldebug.agent.request import Workload
from modeldebug.testing import healthy_mlp, train

pytest.importorskip("dspy")
from modeldebug.llm import attach_explanation, explain_report  # noqa: E402
from modeldebug.llm.testing import FakeCall, fake_lm  # noqa: E402


def loop_script(steps: list[tuple[str, dict[str, str]]], final: dict[str, object]):  # type: ignore[no-untyped-def]
    """ReAct steps in order (tool name, arguments), then `finish`, then the final answer."""
    def answer(call: FakeCall) -> dict[str, object]:
        if call.is_tool_step:
            done = len(call.tool_calls_so_far())
            name, args = steps[done] if done < len(steps) else ("finish", {})
            return {"next_thought": f"step {done}", "next_tool_name": name, "next_tool_args": args}
        return {k: final.get(k, "checked the tools") for k in call.output_fields}
    return answer


def dead_relu_mlp() -> tuple[torch.nn.Module, object]:
    torch.set_num_threads(1)
    model, data = healthy_mlp()
    with torch.no_grad():
        model[0].bias.fill_(-10.0)
    return model, data


def test_the_loop_runs_the_real_tools_on_the_model_and_leaves_it_unchanged() -> None:
    model, data = dead_relu_mlp()
    x, y = data.batch(0, 64)
    request = DebuggingRequest(model=model, batch=(x, y), loss_fn=data.loss_fn, issue="loss is not decreasing",
                               options=AnalysisOptions(probe_steps=20, verify_fixes=False))
    response = ModelDebuggingAgent().debug_model(request)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    final = {"root_cause": "ReLU 1 is dead: layer 0's bias pushes every pre-activation below zero.",
             "answer": "The first ReLU passes no gradient.", "finding_order": ["F1"],
             "issues": [{"type": "activation", "severity": "high", "description": "dead", "finding": "F1"}],
             "recommendations": []}
    lm = fake_lm(loop_script([("layer_analyzer", {}), ("gradient_debugger", {}), ("layer_analyzer", {})], final))

    e = attach_explanation(response, lm, work=Workload(request))

    assert response.explanation is e and e.ok, e.fallback_reason
    assert [c.name for c in e.tool_calls] == ["layer_analyzer", "gradient_debugger", "layer_analyzer"]
    assert all(c.ok for c in e.tool_calls)
    # what the REAL tools measured reached the model: the dead layer and the zero gradients
    seen = lm.engine.calls[-1].inputs
    assert "1 (ReLU)" in seen["observation_0"] and "dead_units=100%" in seen["observation_0"]
    assert "0.weight" in seen["observation_1"] and "<- zero" in seen["observation_1"]
    assert seen["observation_2"] == seen["observation_0"]  # a tool runs once per analysis
    assert e.question == "loss is not decreasing" and e.tokens.calls == len(lm.engine.calls) == 5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert e.findings[0].kind == response.findings[0].kind == "dead_activations"


def test_the_loop_queries_a_stored_run_and_survives_bad_calls() -> None:
    model, data = dead_relu_mlp()
    with md.watch(model, db=":memory:") as session:
        train(model, data, steps=30)
    report = session.report()
    steps = [("series_summary", {"entity": "1", "stat": "dead_frac"}),
             ("finding_details", {"finding_id": "F1"}),
             ("series_summary", {"entity": "decoder", "stat": "mean"}),
             ("loss_curve", {"verbose": "yes"})]
    lm = fake_lm(loop_script(steps, {"root_cause": "dead ReLU", "answer": "it never learned", "issues": [],
                                     "recommendations": [], "finding_order": []}))

    e = explain_report(report, lm, "why did it not learn?")

    assert e.ok and e.answer == "it never learned"
    assert [(c.name, c.ok) for c in e.tool_calls] == [("series_summary", True), ("finding_details", True),
                                                       ("series_summary", True), ("loss_curve", False)]
    seen = lm.engine.calls[-1].inputs
    assert seen["observation_0"].startswith("module 1.dead_frac:") and "max 1 at step" in seen["observation_0"]
    assert seen["observation_1"].startswith("F1 ACT001 dead_activations")
    assert "no entity named 'decoder'" in seen["observation_2"]
    assert "unexpected argument(s) verbose" in seen["observation_3"]
    assert [f.kind for f in e.findings] == [f.kind for f in report.findings]
