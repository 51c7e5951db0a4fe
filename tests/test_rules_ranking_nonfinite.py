"""Ranking a NaN against the loss it spoils: the NaN's origin is the root cause when the loss never rose
while finite (a NaN fed in the input batch), and only a symptom when the loss diverged first (lr too high)."""

from __future__ import annotations

import json

import torch
from torch import nn

import modeldebug as md
from modeldebug.catalogue import CATALOGUE
from modeldebug.export import Exportable
from modeldebug.llm.evidence import Evidence
from modeldebug.report import Report
from modeldebug.report.terminal import render_text
from modeldebug.rules.context import fmt
from modeldebug.rules.ranking import rank


def _report(nan_input_at: int | None = None, lr_growth: float = 1.0) -> Report:
    """A tiny MLP fitting a sum; a NaN fed in one input batch, or the lr raised 20% a step from step 30."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.01) if lr_growth == 1.0 else \
        torch.optim.SGD(model.parameters(), lr=0.01)
    x_all = torch.randn(64, 8)
    y = x_all.sum(1, keepdim=True)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for step in range(80):
            x = x_all.clone()
            if step == nan_input_at:
                x[0, 0] = float("nan")
            if step >= 30:
                for group in opt.param_groups:
                    group["lr"] *= lr_growth
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return s.report()


def _symptoms(f: md.Finding) -> list[str]:
    return [s["code"] for s in f.evidence.get("symptoms", [])]


def test_nan_fed_in_the_input_is_the_root_cause_of_the_nan_loss() -> None:
    report = _report(nan_input_at=30)
    top = report.findings[0]
    assert top.code == "NUM001" and top.evidence["origin"]["where"] == "input", [f.code for f in report.findings]
    assert "LOS001" in _symptoms(top)  # it explains the loss that "diverged" to NaN...
    assert "LOS001" not in [f.code for f in report.findings]  # ...which is folded into it, not listed beside
    advice = " ".join(r.description for f in report.findings for r in f.recommendations).lower()
    assert "learning rate" not in advice  # the lr was fine: the data was not


def test_loss_that_diverged_before_its_nan_keeps_the_lr_first() -> None:
    report = _report(lr_growth=1.2)  # the twin: the loss climbs while finite for steps, then turns NaN
    top = report.findings[0]
    assert top.code == "LRN001" and {"LOS001", "NUM001"} <= set(_symptoms(top)), [f.code for f in report.findings]
    # without the lr and gradient rules, the divergence still comes first and the NaN does not claim it
    alone = Report.from_record(report.record, md.DebuggingConfig(ignore=["LRN001", "GRD001"]))
    codes = [f.code for f in alone.findings]
    assert "LOS001" in codes and "NUM001" in codes and codes.index("LOS001") < codes.index("NUM001"), codes
    num = next(f for f in alone.findings if f.code == "NUM001")
    assert "LOS001" not in _symptoms(num)


def _finding(code: str, step: int, **evidence: object) -> md.Finding:
    return CATALOGUE[code].finding(severity="high", confidence=0.9, title=code, description="", step=step,
                                   evidence=dict(evidence))


def test_the_finding_of_the_effect_a_symptom_rests_on_explains_it_without_cycles() -> None:
    # LOS001 writes rests_on ["nonfinite"] only when the loss never rose while finite (the real runs above)
    ranked = rank([_finding("LOS001", 29, went_nonfinite=True, rests_on=["nonfinite"]), _finding("NUM001", 30)], 60)
    assert [f.code for f in ranked] == ["NUM001"] and _symptoms(ranked[0]) == ["LOS001"]
    ranked = rank([_finding("LOS001", 29, went_nonfinite=True), _finding("NUM001", 30)], 60)
    assert [f.code for f in ranked] == ["LOS001", "NUM001"] and not _symptoms(ranked[1])
    # a class imbalance resting on a stuck loss also explains a stuck loss: the stuck loss does not fold it
    ranked = rank([_finding("DAT003", 0, rests_on=["loss_not_decreasing"]), _finding("LOS002", 0)], 60)
    assert [f.code for f in ranked] == ["DAT003"] and _symptoms(ranked[0]) == ["LOS002"]


def test_headline_of_a_run_that_ended_nan_says_so() -> None:
    report = _report(nan_input_at=30)
    run = report.run
    assert run["final_loss_finite"] is False and run["final_loss_value"] == "nan" and run["last_finite_step"] == 29
    assert isinstance(run["final_loss"], float)  # still the last finite loss, a JSON number
    head = render_text(report).splitlines()[0]
    assert f"-> nan (last finite {fmt(run['final_loss'])} at step 29)" in head, head
    assert json.loads(report.to_json())["run"]["final_loss_finite"] is False
    assert "last finite" in report.to_html()
    # what a language model is shown and what a tracker receives say so too: no "final_loss: 0.0123" alone
    summary = Evidence.from_report(report).run_summary
    assert f"final_loss: nan (the run ended non-finite; last finite loss {run['final_loss']:.4g} at step 29)" \
        in summary.splitlines(), summary
    scalars = Exportable(report.record, report, "nan").scalars()
    assert "modeldebug/final_loss" not in scalars and scalars["modeldebug/final_loss_finite"] == 0.0
    assert scalars["modeldebug/last_finite_loss"] == run["final_loss"]


def test_headline_of_a_healthy_run_shows_its_final_loss() -> None:
    report = _report()
    run = report.run
    assert run["final_loss_finite"] is True and "last_finite_step" not in run
    head = render_text(report).splitlines()[0]
    assert f"-> {fmt(run['final_loss'])}" in head and "nan" not in head and "last finite" not in head, head
    assert f"final_loss: {run['final_loss']:.4g}" in Evidence.from_report(report).run_summary.splitlines()
    scalars = Exportable(report.record, report, "ok").scalars()
    assert scalars["modeldebug/final_loss"] == run["final_loss"]
    assert "modeldebug/final_loss_finite" not in scalars and "modeldebug/last_finite_loss" not in scalars


def test_a_nan_gradient_long_after_the_loss_was_best_is_the_root_cause() -> None:
    """blind6's contrastive loss: sqrt of a zero distance (a pair of identical samples) gives a NaN gradient
    at step 60, long after the loss reached its best (it only wobbled since). The loss "diverged" only by
    turning NaN, so it begins there and is folded into the NaN's origin, not ranked before it."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x_all = torch.randn(64, 8)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for step in range(90):
            a = x_all[(step * 8) % 64:(step * 8) % 64 + 8]
            b = a.flip(0) if step != 60 else a  # the bug shows when a pair holds the same sample twice
            d = ((model(a) - model(b)) ** 2).sum(1).sqrt()  # d/dx sqrt at 0 is inf: NaN gradients
            loss = (d - 1.0).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    report = s.report()
    top = report.findings[0]
    assert top.code == "NUM001" and top.evidence["origin"]["where"] == "backward", [f.code for f in report.findings]
    assert "LOS001" not in [f.code for f in report.findings]


def test_a_nan_gradient_after_an_ordinary_stretch_is_not_an_explosion_from_a_spike_at_step_0() -> None:
    """blind9's ArcFace head: a large gradient at step 0 (a scaled cosine loss starts high), ordinary
    norms for a long stretch, then a NaN gradient from one step's backward (acos at a cosine of exactly 1;
    here a sqrt of a zero distance). The spike at step 0 did not grow into the NaN: the NaN's origin is
    the root cause, named with the operation the graph holds, not a learning rate or an explosion."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x_all = torch.randn(64, 8)
    with md.watch(model, optimizer=opt, db=":memory:") as s:
        for step in range(120):
            a = x_all[(step * 8) % 64:(step * 8) % 64 + 8] * (10.0 if step == 0 else 1.0)
            b = a.flip(0) if step != 100 else a
            d = ((model(a) - model(b)) ** 2).sum(1).sqrt()
            loss = (d - 1.0).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    report = s.report()
    g = s.record.column("grad_norm").values
    assert g[0] > 10 * float(torch.tensor(g[1:50]).median())  # the spike at step 0 is there
    top = report.findings[0]
    assert top.code == "NUM001" and top.step == 100, [(f.code, f.step) for f in report.findings]
    assert top.evidence["edge_ops"] == {"sqrt": 1} and "sqrt's derivative" in top.description
    assert "clamp_min" in (top.recommendations[0].implementation or "")
    assert not {"lr_too_high", "exploding_gradients"} & {f.kind for f in report.findings}


def test_which_nans_end_a_growth() -> None:
    """The gradient norm over its baseline: a NaN after norms 10x up is the end of a growth; one within
    the first steps too (no ordinary stretch came first); one after 200 ordinary steps is not."""
    import numpy as np

    from modeldebug.rules.measures import nonfinite_after_growth

    ordinary = np.ones(300)
    grown = ordinary.copy()
    grown[250:260] = np.geomspace(2, 200, 10)
    grown[260:] = np.nan
    sudden = ordinary.copy()
    sudden[0], sudden[260:] = 80.0, np.nan
    early = ordinary.copy()
    early[8:] = np.nan
    assert nonfinite_after_growth(grown, 5) and nonfinite_after_growth(early, 5)
    assert not nonfinite_after_growth(sudden, 5) and not nonfinite_after_growth(ordinary, 5)
