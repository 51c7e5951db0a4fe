"""The HTML report without a browser: real runs rendered, parsed back with the stdlib parser, checked
for structure, plot content against the record, offline-ness and escaping."""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import xml.etree.ElementTree as ET
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import modeldebug
from modeldebug import Report
from modeldebug.record import Record, RunWriter
from modeldebug.report.html import SCRIPT, render_html
from modeldebug.report.svg import MAX_POINTS, Line, line_chart, png_data_uri, tick_labels, ticks
from modeldebug.rules.base import Finding, Recommendation
from modeldebug.testing import build_record

VOID = {"meta", "br", "hr", "img", "input", "link", "wbr"}
EVIL = "<script>alert(1)</script>"
FIGURES = ["plot-loss", "plot-lr", "plot-grad-norm", "plot-heatmap", "plot-grad-bars", "plot-histograms",
           "plot-fractions", "plot-update", "plot-memory", "plot-timing"]


class Doc(HTMLParser):
    """Every element with its attributes and the ids of its ancestors; checks tags balance."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str], tuple[str, ...]]] = []
        self.stack: list[tuple[str, str]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
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
        if self.stack and self.stack[-1][0] == "script":
            self.scripts.append(data)
        else:
            self.text.append(data)

    def find(self, tag: str, within: str | None = None) -> list[dict[str, str]]:
        return [a for t, a, ids in self.elements if t == tag and (within is None or within in ids)]

    def ids(self) -> set[str]:
        return {a["id"] for _, a, _ in self.elements if "id" in a}


def _train(lr: float, steps: int, scale: float = 1.0, *, level: str = "basic", val_every: int = 0,
           model: nn.Module | None = None) -> Report:
    torch.manual_seed(0)
    model = model or nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = torch.randn(64, 8), torch.randn(64, 1) * scale
    with modeldebug.watch(model, optimizer=opt, db=":memory:", level=level) as session:
        for step in range(steps):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            if val_every and step % val_every == val_every - 1:
                with torch.no_grad():
                    for part in (x[:32], x[32:]):  # two calls per pass: drawn as their mean
                        nn.functional.mse_loss(model(part), y[: len(part)])
    return session.report()


@pytest.fixture(scope="module")
def healthy() -> Report:
    return _train(lr=0.05, steps=40, val_every=8)


@pytest.fixture(scope="module")
def exploding() -> Report:
    """lr far too high for targets of scale 100: the gradients explode, the loss becomes inf/NaN."""
    return _train(lr=0.5, steps=40, scale=100.0, level="comprehensive")


def _points(doc: Doc, series: str, within: str = "plot-loss") -> list[tuple[float, float]]:
    (line,) = [a for a in doc.find("polyline", within=within) if a.get("data-series") == series]
    return [tuple(map(float, p.split(","))) for p in line["points"].split()]  # type: ignore[misc]


def _svg_of(text: str, fig: str) -> str:
    return re.search(rf'id="{fig}".*?</figure>', text, flags=re.S).group(0)  # type: ignore[union-attr]


@pytest.mark.parametrize("which", ["healthy", "exploding"])
def test_real_run_structure(which: str, request: pytest.FixtureRequest) -> None:
    report: Report = request.getfixturevalue(which)
    text = report.to_html()
    doc = Doc(text)
    assert text.startswith("<!DOCTYPE html>")
    sections = {"sec-loss", "sec-gradients", "sec-activations", "sec-updates", "sec-resources"}
    assert {"summary", "findings", "plots", *sections, *FIGURES} <= doc.ids()
    for fig in FIGURES:
        if fig != "plot-histograms" or which == "exploding":  # histograms: comprehensive level only
            assert doc.find("svg", within=fig), fig
    # one point per finite loss, in step order, inside the plot area
    losses = report.record.column("loss").values
    pts = _points(doc, "loss")
    assert len(pts) == int(np.isfinite(losses).sum()) > 0
    assert [x for x, _ in pts] == sorted(x for x, _ in pts)
    assert all(0 <= x <= 900 and 0 <= y <= 260 for x, y in pts)
    # the summary carries the run's metadata
    summary = "".join(doc.text)
    for value in ("Sequential", "40", report.run["level"], report.run["device"], report.run["torch"],
                  "modeldebug overhead", "versions", "python "):
        assert value in summary
    # every SVG is well-formed XML on its own
    for svg in re.findall(r"<svg.*?</svg>", text, flags=re.S):
        ET.fromstring(svg)


def test_offline_one_static_script_pinned_by_csp(exploding: Report) -> None:
    text = exploding.to_html()
    doc = Doc(text)
    assert doc.scripts == [SCRIPT] and len(doc.find("script")) == 1
    assert not doc.find("link") and not doc.find("img") and not doc.find("iframe")
    (csp,) = [a["content"] for a in doc.find("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp
    # links stay inside the page; images are data: URIs
    for tag, attrs, _ in doc.elements:
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key].startswith("#") or attrs[key].startswith("data:image/png;base64,"), (tag, attrs)
    assert "http://" not in text and "https://" not in text
    assert "@import" not in text and "url(" not in text


def test_exploding_run_findings_and_markers(exploding: Report) -> None:
    assert exploding.findings, "the exploding run should produce findings"
    text_html = exploding.to_html()
    doc = Doc(text_html)
    text = " ".join(doc.text)
    assert "problem" in text and "worst: high" in text
    articles = doc.find("article", within="findings")
    assert len(articles) == len(exploding.findings)
    # the ranked table at the top links each finding's card, in order
    links = [a["href"] for a in doc.find("a", within="summary")]
    assert links == [f"#finding-{i}" for i in range(1, len(exploding.findings) + 1)]
    assert {a["id"] for a in articles} == {h[1:] for h in links}
    for f in exploding.findings:
        assert f.code in text and f.kind in text
    # recommendations with code come as <pre class="code"> (the page adds a copy button to each)
    impls = [r.implementation for f in exploding.findings for r in f.recommendations if r.implementation]
    assert impls and [p["class"] for p in doc.find("pre", within="findings")] == ["code"] * len(impls)
    # a vertical marker labelled with the finding code at each finding's step, on the loss plot
    loss_svg = _svg_of(text_html, "plot-loss")
    for f in exploding.findings:
        if f.step is not None:
            assert f">{f.code}</text>" in loss_svg
    # the loss spans >100x before it goes non-finite: log scale, and the skipped values are noted
    assert "Loss: training (log scale)" in text
    assert "non-finite value(s) skipped" in text
    assert doc.find("rect", within="plot-loss")  # the red non-finite ticks
    # the total gradient norm shades the exploding zone
    assert "exploding: above 100x" in _svg_of(text_html, "plot-grad-norm")


def test_validation_loss_is_drawn_per_pass(healthy: Report) -> None:
    doc = Doc(healthy.to_html())
    series = [a["data-series"] for a in doc.find("polyline", within="plot-loss")]
    assert series == ["loss", "validation mse_loss[val]"]
    val = healthy.record.series("mse_loss[val]", "val_loss", kind="loss")
    assert len(val) == 10  # 5 passes of 2 calls
    pts = _points(doc, "validation mse_loss[val]")
    assert len(pts) == 5 and len(doc.find("circle", within="plot-loss")) == 5
    # the drawn height follows the per-pass means: lower loss is lower on screen (higher y)
    means = [val.values[val.steps == s].mean() for s in np.unique(val.steps)]
    order = np.argsort(means)
    assert [pts[i][1] for i in order] == sorted((y for _, y in pts), reverse=True)
    assert "Loss: training and validation" in "".join(doc.text)


def test_gradient_bars_for_chosen_steps(exploding: Report) -> None:
    text = exploding.to_html()
    doc = Doc(text)
    options = doc.find("option", within="plot-grad-bars")
    panels = [a for a in doc.find("div", within="plot-grad-bars") if a.get("data-choice") == "grad-bars"]
    assert len(options) == len(panels) >= 3
    assert [o["value"] for o in options] == [p["data-key"] for p in panels]
    # exactly one panel shown without script: the selected option's
    shown = [p["data-key"] for p in panels if "hidden" not in p]
    selected = [o["value"] for o in options if "selected" in o]
    assert shown == selected and len(shown) == 1
    labels = " ".join(doc.text)
    onsets = [f for f in exploding.findings if f.step is not None]
    assert all(f"{f.code} onset" in labels for f in onsets[:5])
    # one row per parameter in every panel; the last step's gradients are NaN: all red bars there
    params = len(exploding.record.stat("grad_norm", kind="param"))
    last = re.search(rf'data-key="{panels[-1]["data-key"]}".*?</svg>', text, flags=re.S).group(0)  # type: ignore[union-attr]
    assert last.count('class="bar"') == params and last.count('fill="#e74c3c"') == params
    first = re.search(rf'data-key="{panels[0]["data-key"]}".*?</svg>', text, flags=re.S).group(0)  # type: ignore[union-attr]
    assert first.count('fill="#2e86c1"') >= params  # finite bars (blue), plus the zone's
    assert ">vanishing</text>" in first and ">exploding</text>" in first


def _decode_own_png(uri: str) -> np.ndarray:
    data = base64.b64decode(uri.split(",", 1)[1])
    w, h = struct.unpack(">II", data[16:24])
    raw = zlib.decompress(data[41:data.index(b"IEND") - 8])  # our PNGs: one IDAT, filter 0 per row
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(h, 3 * w + 1)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(h, w, 3)


def test_activation_histograms_and_fractions(exploding: Report) -> None:
    doc = Doc(exploding.to_html())
    images = doc.find("image", within="plot-histograms")
    leaves = [e for e in exploding.record.entities("module") if e.info.get("leaf")]
    assert len(images) == len(leaves) == 3
    img = _decode_own_png(images[0]["href"])
    assert img.shape == (56, 40, 3)  # value rows x one column per step
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 5
    text = "".join(doc.text)
    assert "Dead units" in text and "(symlog)" in text  # the exploding layers span orders of magnitude


def test_histogram_rows_place_the_mass_at_its_value() -> None:
    """A hand-written record: every step's values sit in one bin around 0.5 of [-1, 1]; the brightest
    pixel row must be the one showing 0.5, and an empty record says why it has no histograms."""
    w = RunWriter(":memory:")
    eid = w.entity("module", "act", type="ReLU", info={"leaf": True, "params": 0})
    for step in range(6):
        counts = [0] * 16
        counts[12] = 100  # bin 12 of 16 over [-1, 1] is [0.5, 0.625)
        w.add_step(step, loss=1.0)
        w.add_histogram(step, eid, -1.0, 1.0, counts)
    w.flush()
    record = Record(w.conn)
    doc = Doc(Report([], {}, record).to_html())
    (image,) = doc.find("image", within="plot-histograms")
    img = _decode_own_png(image["href"]).astype(int).sum(axis=2)
    # pixel row r (from the top) covers values 1 - 2 * (r + [0, 1]) / 56: [0.5, 0.625) fills rows
    # 11 to 13 and a third of row 10; every other row is empty (the colour of 0)
    for col in img.T:
        assert set(np.flatnonzero(col == col.max()).tolist()) == {11, 12, 13}
        assert col.min() < col[10] < col.max()
        assert (np.delete(col, [10, 11, 12, 13]) == col.min()).all()
    basic = Doc(Report([], {}, Record(RunWriter(":memory:").conn)).to_html())
    assert "captured at the comprehensive level" in "".join(basic.text)


def test_dead_relu_bar_crosses_the_threshold() -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    nn.init.constant_(model[0].bias, -10.0)
    dead = Doc(_train(lr=0.05, steps=12, model=model).to_html())
    rows = "".join(dead.text)
    assert "100% (max 100%)" in rows
    assert any(a.get("fill") == "#c0392b" and a.get("class") == "bar" for a in dead.find("rect", within="plot-fractions"))
    healthy = Doc(_train(lr=0.05, steps=12).to_html())
    assert not any(a.get("fill") == "#c0392b" and a.get("class") == "bar"
                   for a in healthy.find("rect", within="plot-fractions"))


def test_update_ratio_lines_and_zones(healthy: Report) -> None:
    text = healthy.to_html()
    doc = Doc(text)
    lines = [a["data-series"] for a in doc.find("polyline", within="plot-update")]
    stats = healthy.record.stat("update_ratio", kind="param")
    assert lines[:2] == ["0.weight", "2.weight"] and sorted(lines) == sorted(stats)
    svg = _svg_of(text, "plot-update")
    assert "lr_too_high" in svg and "lr_too_low" in svg
    for name in lines:  # one dot per sampled step
        assert len(_points(doc, name, "plot-update")) == int(np.isfinite(stats[name].values).sum())


def test_metadata_lists_arguments_versions_and_overhead(healthy: Report) -> None:
    run = {**healthy.run, "argv": ["train.py", "--lr", "0.1", "two words"], "duration_s": 2.0, "overhead_s": 0.5}
    text = "".join(Doc(Report(healthy.findings, run, healthy.record).to_html()).text)
    assert "--lr 0.1 'two words'" in text
    assert "0.5 s in modeldebug's hooks (25% of the run)" in text
    assert f"torch {healthy.run['torch']}" in text and "python 3." in text


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
           "torch": EVIL, "overhead_s": 0.1, "record": EVIL, EVIL: [EVIL, 2]}
    return Report(findings=[finding], run=run, record=None)


def test_everything_from_the_run_is_escaped() -> None:
    text = render_html(_evil_report())
    assert text.lower().count("<script") == 1  # ours
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<b>1" not in text and "GRD&lt;b&gt;1" in text
    doc = Doc(text)  # still parses and balances: nothing injected a tag
    assert doc.scripts == [SCRIPT]
    joined = "".join(doc.text)
    assert EVIL in joined and "x = 1 < 2 and 3 > 2" in joined and "& more" in joined


def test_no_record_renders_findings_of_other_features() -> None:
    """ONNX and behaviour checks render through Report(findings, run) with no record: their own run
    fields are listed, and there are no plots."""
    report = _evil_report()
    report.run.update({"model": "model.onnx", "provider": "CPUExecutionProvider", "opset": 17})
    doc = Doc(report.to_html())
    assert not doc.find("svg")
    assert {"summary", "findings", "plots"} <= doc.ids()
    assert len(doc.find("article", within="findings")) == 1
    text = "".join(doc.text)
    assert "No run record attached" in text and "1 problem found (worst: high)" in text
    assert "model.onnx" in text and "CPUExecutionProvider" in text and "opset" in text
    # evidence: nested containers inline, long lists truncated, symptoms listed
    assert "+92 more" in text and "Explains:" in text


def test_empty_report() -> None:
    doc = Doc(Report(findings=[], run={}, record=None).to_html())
    text = "".join(doc.text)
    assert "No problems found." in text and "No findings." in text


def test_to_html_writes_the_file(tmp_path: Path, healthy: Report) -> None:
    path = tmp_path / "report.html"
    text = healthy.to_html(path)
    assert path.read_text(encoding="utf-8") == text
    Doc(path.read_text(encoding="utf-8"))


def test_heatmap_cells_tell_small_zero_nonfinite_and_missing_apart() -> None:
    nan = float("nan")
    record = build_record(loss=[1.0] * 5, grad_norm=[1.0] * 5,
                          params={"a.weight": {"grad_norm": [1e-3, 1.0, 0.0, float("inf"), 10.0]},
                                  "b.weight": {"grad_norm": [1.0, nan, 1.0, 1.0, 1.0]}})
    text = Report([], {}, record).to_html()
    svg = re.search(r'aria-label="heatmap".*?</svg>', text, flags=re.S).group(0)  # type: ignore[union-attr]
    rows = re.findall(r"<g><title>(.*?)</title>(.*?)</g>", svg, flags=re.S)
    fills = {name: re.findall(r'fill="(#[0-9a-f]{6})"', body) for name, body in rows}
    small, one, zero, inf, big = fills["a.weight"]
    assert zero == "#000000" and inf == "#e74c3c" and len({small, one, big, zero}) == 4
    assert small == "#440154" and big == "#fde725"  # the ends of the log colour scale
    assert fills["b.weight"][1] == "#e74c3c"  # NaN counts as non-finite


def test_long_runs_are_binned_and_decimated() -> None:
    report = _train(lr=0.05, steps=260, level="comprehensive")  # per-parameter norms on every step
    doc = Doc(report.to_html())
    (svg,) = doc.find("svg", within="plot-heatmap")
    assert int(svg["data-cols"]) <= 200
    assert int(svg["data-rows"]) == 4  # two weights, two biases
    assert "binned into" in "".join(doc.text)
    # a long line keeps at most MAX_POINTS-ish points, and its one spike survives
    steps = np.arange(20_000)
    values = np.ones(20_000)
    values[12_345] = 50.0
    chart = Doc(line_chart([Line("x", steps, values)], log=False, label="x"))
    (line,) = chart.find("polyline")
    ys = [float(p.split(",")[1]) for p in line["points"].split()]
    assert len(ys) <= MAX_POINTS + 2 and min(ys) < 30  # the spike reaches the top margin


def test_tick_labels_tell_ticks_apart() -> None:
    for lo, hi, log in [(319.69, 319.77, False), (0.2, 1.05, True), (1e-7, 1e5, True), (0.5, 0.5000001, False)]:
        labels = tick_labels(ticks(lo, hi, log), log)
        assert len(set(labels)) == len(labels) >= 4, labels
    assert tick_labels([1e-6, 1e-3, 1.0, 1e4], True) == ["1e-06", "0.001", "1", "1e+04"]


def test_png_round_trip() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    assert (_decode_own_png(png_data_uri(rgb)) == rgb).all()
