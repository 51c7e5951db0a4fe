"""The HTML report: real runs rendered, parsed back with the stdlib parser, checked for structure,
offline-ness and escaping."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import modeldebug
from modeldebug import Report
from modeldebug.report.html import render_html
from modeldebug.rules.base import Finding, Recommendation

VOID = {"meta", "br", "hr", "img", "input", "link", "wbr"}
EVIL = "<script>alert(1)</script>"


class Doc(HTMLParser):
    """Every element with its attributes and the ids of its ancestors; checks tags balance."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str], tuple[str, ...]]] = []
        self.stack: list[tuple[str, str]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()
        assert not self.stack, f"unclosed elements: {self.stack}"

    def _ids(self) -> tuple[str, ...]:
        return tuple(i for _, i in self.stack if i)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a, self._ids()))
        if tag not in VOID:
            self.stack.append((tag, a.get("id", "")))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}, self._ids()))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1][0] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, within: str | None = None) -> list[dict[str, str]]:
        return [a for t, a, ids in self.elements if t == tag and (within is None or within in ids)]

    def ids(self) -> set[str]:
        return {a["id"] for _, a, _ in self.elements if "id" in a}


def _train(lr: float, steps: int, scale: float = 1.0) -> Any:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = torch.randn(64, 8), torch.randn(64, 1) * scale
    with modeldebug.watch(model, optimizer=opt, db=":memory:") as session:
        for _ in range(steps):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
    return session.report()


@pytest.fixture(scope="module")
def healthy() -> Report:
    return _train(lr=0.05, steps=40)


@pytest.fixture(scope="module")
def exploding() -> Report:
    """lr far too high for targets of scale 100: the gradients explode, the loss becomes inf/NaN."""
    return _train(lr=0.5, steps=40, scale=100.0)


def _points(doc: Doc, series: str) -> list[tuple[float, float]]:
    (line,) = [a for a in doc.find("polyline") if a.get("data-series") == series]
    return [tuple(map(float, p.split(","))) for p in line["points"].split()]  # type: ignore[misc]


@pytest.mark.parametrize("which", ["healthy", "exploding"])
def test_real_run_structure(which: str, request: pytest.FixtureRequest) -> None:
    report: Report = request.getfixturevalue(which)
    text = report.to_html()
    doc = Doc(text)
    assert text.startswith("<!DOCTYPE html>")
    assert {"summary", "findings", "plots", "plot-loss", "plot-grad-norm", "plot-heatmap", "plot-timing"} <= doc.ids()
    for fig in ("plot-loss", "plot-grad-norm", "plot-heatmap", "plot-timing"):
        assert doc.find("svg", within=fig), fig
    assert doc.find("polyline", within="plot-loss") and doc.find("polyline", within="plot-grad-norm")
    assert doc.find("path", within="plot-loss")
    assert doc.find("rect", within="plot-heatmap") and doc.find("rect", within="plot-timing")
    # one point per finite loss, in step order, inside the plot area
    losses = report.record.column("loss").values
    pts = _points(doc, "loss")
    assert len(pts) == int(np.isfinite(losses).sum()) > 0
    assert [x for x, _ in pts] == sorted(x for x, _ in pts)
    assert all(0 <= x <= 720 and 0 <= y <= 260 for x, y in pts)
    # the summary carries the run's metadata
    summary = "".join(doc.text)
    for value in ("Sequential", "40", "basic", report.run["device"], report.run["torch"], "overhead_s"):
        assert value in summary
    # every SVG is well-formed XML on its own
    for svg in re.findall(r"<svg.*?</svg>", text, flags=re.S):
        ET.fromstring(svg)


def test_offline_no_external_resources(exploding: Report) -> None:
    text = exploding.to_html()
    doc = Doc(text)
    assert not doc.find("script") and not doc.find("link") and not doc.find("img") and not doc.find("iframe")
    assert not re.search(r"(src|href)\s*=", text)
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text
    assert "@import" not in text and "url(" not in text


def test_exploding_run_findings_and_markers(exploding: Report) -> None:
    assert exploding.findings, "the exploding run should produce findings"
    doc = Doc(exploding.to_html())
    text = " ".join(doc.text)
    assert "problem" in text and "worst: high" in text
    articles = doc.find("article", within="findings")
    assert len(articles) == len(exploding.findings)
    for f in exploding.findings:
        assert f.code in text and f.kind in text
    # recommendations with code come as <pre><code>
    impls = [r.implementation for f in exploding.findings for r in f.recommendations if r.implementation]
    assert impls and len(doc.find("pre", within="findings")) == len(impls)
    # a vertical marker labelled with the finding code at each finding's step, on the loss plot
    loss_svg = re.search(r'id="plot-loss".*?</svg>', exploding.to_html(), flags=re.S).group(0)  # type: ignore[union-attr]
    for f in exploding.findings:
        if f.step is not None:
            assert f">{f.code}</text>" in loss_svg
    # the loss spans >100x before it goes non-finite: log scale, and the skipped values are noted
    assert "Training loss (log scale)" in text
    assert "non-finite value(s) skipped" in text
    assert doc.find("rect", within="plot-loss")  # the red non-finite ticks


def test_healthy_run_verdict(healthy: Report) -> None:
    text = " ".join(Doc(healthy.to_html()).text)
    if healthy.findings:
        assert f"{len(healthy.findings)} problem" in text
    else:
        assert "No problems found." in text


def test_heatmap_bins_long_runs() -> None:
    report = _train(lr=0.05, steps=260)
    doc = Doc(report.to_html())
    (svg,) = doc.find("svg", within="plot-heatmap")
    assert int(svg["data-cols"]) <= 200
    assert int(svg["data-rows"]) == 4  # two weights, two biases
    assert "binned into" in "".join(doc.text)


def _evil_report() -> Report:
    finding = Finding(
        code="GRD<b>1", kind=f"kind{EVIL}", category="gradient", severity="high", confidence=0.9,
        title=EVIL, description=f"desc {EVIL} & more", location=EVIL, step=3,
        evidence={EVIL: EVIL, "nested": {"a": [EVIL, 1.5, None], "b": {"c": EVIL}},
                  "long": list(range(100)),
                  "symptoms": [{"code": "NUM001", "kind": "x", "title": EVIL, "step": 4, "severity": "high"}]},
        recommendations=[Recommendation("fix", f"do {EVIL}", f"print('{EVIL}')\nx = 1 < 2 and 3 > 2")],
    )
    run = {"script": f"/tmp/{EVIL}.py", "steps": 10, "duration_s": 1.5, "level": EVIL, "device": EVIL,
           "torch": EVIL, "overhead_s": 0.1, "record": EVIL}
    return Report(findings=[finding], run=run, record=None)


def test_everything_from_the_run_is_escaped() -> None:
    text = render_html(_evil_report())
    assert "<script" not in text.lower()
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<b>1" not in text and "GRD&lt;b&gt;1" in text
    doc = Doc(text)  # still parses and balances: nothing injected a tag
    assert not doc.find("script")
    # the parser decodes the entities back into the original text
    joined = "".join(doc.text)
    assert EVIL in joined and "x = 1 < 2 and 3 > 2" in joined and "& more" in joined


def test_no_record_renders_findings_without_plots() -> None:
    report = _evil_report()
    doc = Doc(report.to_html())
    assert not doc.find("svg")
    assert {"summary", "findings", "plots"} <= doc.ids()
    assert len(doc.find("article", within="findings")) == 1
    text = "".join(doc.text)
    assert "No run record attached" in text and "1 problem found (worst: high)" in text
    # evidence: nested containers inline, long lists truncated, symptoms listed
    assert "+92 more" in text and "Explains:" in text


def test_empty_report() -> None:
    doc = Doc(Report(findings=[], run={}, record=None).to_html())
    text = "".join(doc.text)
    assert "No problems found." in text and "No findings." in text


def test_to_html_writes_the_file(tmp_path: Path, healthy: Report) -> None:
    path = tmp_path / "deep" / "er" / "report.html"
    text = healthy.to_html(path)
    assert path.read_text(encoding="utf-8") == text
    Doc(path.read_text(encoding="utf-8"))
