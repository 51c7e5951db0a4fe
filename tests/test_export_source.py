"""What every exporter writes: summary series, the series behind each finding, the findings as text.

`make_run` (used by the other test_export_* modules) trains a small MLP whose second ReLU is dead
from the start, under a module name that must come out as text everywhere.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import modeldebug as md
from modeldebug.errors import BadInputError
from modeldebug.export import Exportable, load
from modeldebug.report import Report
from modeldebug.rules import Finding, Recommendation
from modeldebug.testing import build_record, classification, train

HOSTILE = "<script>alert(1)</script>"


def make_run(path: Path, *, dead: bool = True, steps: int = 30) -> Path:
    """A real run record: an MLP whose ReLU named HOSTILE is dead (`dead=False`: its healthy twin)."""
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict([("fc1", nn.Linear(20, 64)), ("act1", nn.ReLU()), ("fc2", nn.Linear(64, 64)),
                                       (HOSTILE, nn.ReLU()), ("out", nn.Linear(64, 3))]))
    if dead:
        with torch.no_grad():
            model.fc2.bias.fill_(-10.0)
    with md.watch(model, db=path):
        train(model, classification(), steps=steps)
    return path


@pytest.fixture(scope="module")
def dead_run(tmp_path_factory: pytest.TempPathFactory) -> Exportable:
    return load(make_run(tmp_path_factory.mktemp("source") / "dead.db"))


def test_the_summary_series_are_the_records_own(dead_run: Exportable) -> None:
    series = dead_run.summary_series()
    assert set(series) == {"modeldebug/loss", "modeldebug/grad_norm", "modeldebug/lr"}
    assert dead_run.record is not None
    loss = dead_run.record.column("loss")
    assert series["modeldebug/loss"].steps.tolist() == loss.steps.tolist() == list(range(30))
    np.testing.assert_array_equal(series["modeldebug/loss"].values, loss.values)


def test_only_the_statistics_behind_the_finding_are_weird(dead_run: Exportable) -> None:
    assert [f.code for f in dead_run.report.findings] == ["ACT001"]
    weird = dead_run.weird_series()
    assert set(weird) == {f"modeldebug/weird/ACT001/{HOSTILE}/dead_frac", f"modeldebug/weird/ACT001/{HOSTILE}/zero_frac"}
    dead = weird[f"modeldebug/weird/ACT001/{HOSTILE}/dead_frac"]
    assert len(dead) >= 5 and (dead.values == 1.0).all()


def _report_with(record: md.Record, *findings: Finding) -> Report:
    return Report(list(findings), {"script": "hand.py"}, record)


def _finding(kind: str, location: str | None, code: str = "XXX001") -> Finding:
    return Finding(code=code, kind=kind, category="gradient", severity="high", confidence=0.9,
                   title="t", description="d", location=location, step=3)


def test_a_module_finding_exports_its_parameters_and_a_step_finding_its_column() -> None:
    n = 12
    record = build_record(loss=[1.0] * n, grad_norm=[1.0] * n,
                          params={name: {"grad_norm": [float(i) for i in range(n)]}
                                  for name in ("fc1.weight", "fc1.bias", "fc10.weight", "fc2.weight")})
    record.conn.execute("UPDATE steps SET clip_norm = step * 2.0")
    report = _report_with(record, _finding("exploding_gradients", "fc1", "GRD001"),
                          _finding("excessive_grad_clipping", None, "CLP001"),
                          _finding("vanishing_gradients", "fc2.weight", "GRD002"),
                          _finding("label_issue", None, "LBL001"))
    weird = Exportable(record, report, "hand").weird_series()
    assert set(weird) == {"modeldebug/weird/GRD001/fc1.weight/grad_norm", "modeldebug/weird/GRD001/fc1.bias/grad_norm",
                          "modeldebug/weird/CLP001/clip_norm", "modeldebug/weird/GRD002/fc2.weight/grad_norm"}
    assert weird["modeldebug/weird/CLP001/clip_norm"].values.tolist() == [2.0 * i for i in range(n)]


def test_a_finding_at_a_module_with_many_parameters_exports_a_bounded_number() -> None:
    params = {f"big.p{i}": {"grad_norm": [1.0, 2.0]} for i in range(20)}
    record = build_record(loss=[1.0, 1.0], params=params)
    weird = Exportable(record, _report_with(record, _finding("vanishing_gradients", "big")), "hand").weird_series()
    assert len(weird) == 8


def test_a_report_without_a_record_exports_findings_only() -> None:
    report = Report([_finding("exploding_gradients", "fc1")], {"script": "/x/train.py"})
    run = load(report)
    assert run.name == "train" and run.all_series() == {} and "XXX001" in run.findings_markdown()


def test_the_findings_markdown_renders_user_strings_as_text(dead_run: Exportable) -> None:
    text = dead_run.findings_markdown()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "| 1 | high | ACT001 | dead\\_activations |" in text
    assert "```python\n" in text  # the fix, as code
    ugly = Finding(code="RUN001", kind="runtime_error", category="runtime", severity="high", confidence=1.0,
                   title="a | b", description="x", recommendations=[Recommendation("fix", "do", "s = '```'")])
    md_text = load(Report([ugly], {})).findings_markdown()
    assert "a \\| b" in md_text and "````python\ns = '```'\n````" in md_text


def test_summary_numbers_and_tags(dead_run: Exportable) -> None:
    scalars = dead_run.scalars()
    assert scalars["modeldebug/findings"] == 1 and scalars["modeldebug/findings_high"] == 1
    assert scalars["modeldebug/steps"] == 30
    assert dead_run.tags() == {"modeldebug.worst": "high", "modeldebug.codes": "ACT001", "modeldebug.status": "finished"}


def test_what_cannot_be_exported_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="cannot export a int"):
        load(3)
    with pytest.raises(BadInputError, match="does not exist"):
        load(tmp_path / "nope.db")


def test_a_watch_session_exports_directly(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 3))
    with md.watch(model, db=":memory:") as session:
        train(model, classification(), steps=5)
    run = load(session)
    assert run.record is not None and run.record.n_steps == 5 and len(run.summary_series()["modeldebug/loss"]) == 5


def test_validation_losses_are_a_summary_series() -> None:
    from modeldebug.record import RunWriter

    w = RunWriter(":memory:")
    for step in range(6):
        w.add_step(step, loss=1.0 / (step + 1))
    val = w.entity("loss", "cross_entropy[val]", type="cross_entropy")
    for step in (2, 5):
        w.add_stats(step, [(val, "val_loss", 0.5 + step)])
    w.flush()
    record = md.Record(w.conn)
    series = load(record).summary_series()
    assert set(series) == {"modeldebug/loss", "modeldebug/val_loss"}
    assert series["modeldebug/val_loss"].steps.tolist() == [2, 5]
    assert series["modeldebug/val_loss"].values.tolist() == [2.5, 5.5]
    other = w.entity("loss", "mse_loss[val]", type="mse_loss")
    w.add_stats(5, [(other, "val_loss", 0.1)])
    w.flush()
    assert {"modeldebug/val_loss/cross_entropy", "modeldebug/val_loss/mse_loss"} <= set(load(md.Record(w.conn)).summary_series())
