"""The HTML report in a real headless browser (Debian's chromium), driven over the DevTools
protocol on a pipe (``--remote-debugging-pipe``: stdlib only, no socket): the page loads, every plot
has a size and its pixels, the script ran, nothing is logged to the console, a screenshot is not
blank, hostile names render as text, and the page's CSP stops a script that escaping missed.

Skipped, with the reason, where no chromium is installed (`.ci/run` installs it on Debian).
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import modeldebug
from modeldebug import Report
from modeldebug.rules.base import Finding, Recommendation

EVIL = "<script>alert(1)</script>"
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-extensions", "--mute-audio", "--disable-dev-shm-usage", "--remote-debugging-pipe"]


def _chromium() -> str | None:
    for name in (os.environ.get("MODELDEBUG_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    return None


class Chrome:
    """A headless chromium spoken to with the DevTools protocol over fds 3 and 4 (NUL-framed JSON)."""

    def __init__(self, binary: str, profile: str) -> None:
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()

        def child() -> None:  # chromium reads commands on fd 3 and writes replies on fd 4
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)  # above 4, so dup2 cannot clobber them
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.log = Path(profile) / "chromium.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([binary, *_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         preexec_fn=child, close_fds=False)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 15.0) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            self.events.append(m)

    def wait_for(self, method: str, session: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for e in self.events[seen:]:
                if e.get("method") == method and e.get("sessionId") == session:
                    return e
            seen = len(self.events)
            self.events.append(self._read(deadline))

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time (a blocking dialog?)")
            if select.select([self._r], [], [], left)[0]:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise EOFError("chromium closed the DevTools pipe")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
            self.proc.wait(timeout=5)
        except Exception:  # noqa: BLE001 -- whatever went wrong, do not leave our chromium running
            self.proc.kill()
            self.proc.wait(timeout=5)
        finally:
            os.close(self._w)
            os.close(self._r)


class Page:
    """One loaded page: evaluate JavaScript, read its console, take screenshots."""

    def __init__(self, chrome: Chrome, path: Path, width: int = 1100) -> None:
        self.chrome = chrome
        target = chrome.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = chrome.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self._first_event = len(chrome.events)
        for method in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.send(method)
        self.width = width
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                         "mobile": False})
        self.send("Page.navigate", {"url": path.resolve().as_uri()})
        chrome.wait_for("Page.loadEventFired", self.session)

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 15.0) -> dict[str, Any]:
        return self.chrome.send(method, params, self.session, timeout)

    def js(self, expression: str) -> Any:
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        assert "exceptionDetails" not in r, r["exceptionDetails"]
        return r["result"].get("value")

    def messages(self) -> list[str]:
        """Console and log messages of warning level and above, exceptions and dialogs."""
        out = []
        for e in self.chrome.events[self._first_event:]:
            if e.get("sessionId") != self.session:
                continue
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                out.append(f"console.{p['type']}: {[a.get('value', a.get('description')) for a in p.get('args', [])]}")
            elif m == "Log.entryAdded" and p["entry"].get("level") in ("error", "warning"):
                out.append(f"log {p['entry']['level']}: {p['entry'].get('text')}")
            elif m == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('text')}")
            elif m == "Page.javascriptDialogOpening":
                out.append(f"dialog {p.get('type')}: {p.get('message')}")
        return out

    def screenshot(self) -> bytes:
        """The whole page as a PNG (the viewport grown to the page's height, 1 px per CSS px)."""
        height = int(self.js("document.documentElement.scrollHeight"))
        self.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": height,
                                                         "deviceScaleFactor": 1, "mobile": False})
        data = self.send("Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True}, timeout=30)["data"]
        return base64.b64decode(data)


def decode_png(data: bytes) -> np.ndarray:
    """An 8-bit RGB or RGBA PNG as an (h, w, 3) uint8 array (stdlib zlib and numpy only)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    w = h = channels = 0
    while pos < len(data):
        (n,), tag = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if tag == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
            channels = 3 if ctype == 2 else 4
        elif tag == b"IDAT":
            idat += body
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, w * channels + 1)
    out = np.zeros((h, w * channels), dtype=np.int32)
    prev = np.zeros(w * channels, dtype=np.int32)
    for y in range(h):
        f, line = int(rows[y, 0]), rows[y, 1:].astype(np.int32)
        if f == 0:
            cur = line
        elif f == 1:  # Sub: a running sum per channel
            cur = np.cumsum(line.reshape(w, channels), axis=0).reshape(-1) % 256
        elif f == 2:  # Up
            cur = (line + prev) % 256
        else:  # Average and Paeth depend on the reconstructed left pixel: pixel by pixel
            cur = np.zeros_like(line)
            for x in range(len(line)):
                a = int(cur[x - channels]) if x >= channels else 0
                b, c = int(prev[x]), (int(prev[x - channels]) if x >= channels else 0)
                if f == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (int(line[x]) + pred) % 256
        out[y], prev = cur, cur
    return out.reshape(h, w, channels)[:, :, :3].astype(np.uint8)


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chrome() -> Iterator[Chrome]:
    binary = _chromium()
    if binary is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; .ci/run installs it): "
                    "the report is checked without a browser in test_html_report.py")
    with tempfile.TemporaryDirectory(prefix="modeldebug-chromium-") as profile:
        browser = Chrome(binary, profile)
        try:
            try:
                browser.send("Target.getTargets", timeout=30)  # started and listening
            except (EOFError, TimeoutError, OSError) as exc:
                tail = browser.log.read_text(errors="replace")[-2000:]
                pytest.fail(f"chromium at {binary} is installed but did not start ({exc}):\n{tail}")
            yield browser
        finally:
            browser.close()


def _run(model: nn.Module, *, lr: float, steps: int, scale: float, level: str) -> Report:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 8, generator=gen), torch.randn(64, 1, generator=gen) * scale
    with modeldebug.watch(model, optimizer=opt, db=":memory:", level=level) as session:
        for step in range(steps):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            if step % 5 == 4:
                with torch.no_grad():
                    nn.functional.mse_loss(model(x[:16]), y[:16])
    return session.report()


@pytest.fixture(scope="module")
def exploding_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose gradients explode until the loss is NaN, at the comprehensive level (histograms)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
    report = _run(model, lr=0.5, steps=30, scale=100.0, level="comprehensive")
    assert report.findings
    path = tmp_path_factory.mktemp("browser") / "exploding.html"
    report.to_html(path)
    return path


@pytest.fixture(scope="module")
def evil_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of a model with a module named like a script tag, plus a finding and metadata that
    carry the same string."""
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("fc", nn.Linear(8, 16))
    model.add_module(EVIL, nn.ReLU())
    model.add_module("out", nn.Linear(16, 1))
    report = _run(model, lr=0.05, steps=12, scale=1.0, level="comprehensive")
    finding = Finding(code="GRD999", kind="exploding_gradients", category="gradient", severity="high",
                      confidence=0.9, title=f"title {EVIL}", description=f"desc {EVIL}", location=EVIL, step=3,
                      evidence={EVIL: EVIL}, recommendations=[Recommendation("fix", EVIL, f"print('{EVIL}')")])
    run = {**report.run, "script": f"/tmp/{EVIL}.py", "argv": [EVIL, EVIL]}
    path = tmp_path_factory.mktemp("browser") / "evil.html"
    Report([finding, *report.findings], run, report.record).to_html(path)
    return path


# -- tests ------------------------------------------------------------------------------------------
_FIGURES = ["plot-loss", "plot-lr", "plot-grad-norm", "plot-heatmap", "plot-grad-bars", "plot-histograms",
            "plot-fractions", "plot-update", "plot-memory", "plot-timing"]


def _near(img: np.ndarray, box: dict[str, float], rgb: tuple[int, int, int], tol: int = 40) -> int:
    """Pixels within `tol` of colour `rgb` inside a CSS-pixel box of the screenshot."""
    y0, x0 = int(box["top"]), int(box["left"])
    part = img[y0:y0 + int(box["height"]), x0:x0 + int(box["width"])].astype(int)
    return int((np.abs(part - np.array(rgb)).sum(axis=2) < tol).sum())


def test_plots_render_without_console_errors(chrome: Chrome, exploding_html: Path, tmp_path: Path) -> None:
    page = Page(chrome, exploding_html)
    assert page.js("document.documentElement.getAttribute('data-ready')") == "1", "the page's script did not run"
    # every figure drew a visible SVG with content (nothing hidden is counted: the step picker hides all but one)
    sizes = page.js("""JSON.stringify([...document.querySelectorAll('figure')].map(f => {
        const svgs = [...f.querySelectorAll('svg')].filter(s => s.getBoundingClientRect().height > 0);
        return [f.id, svgs.length, Math.min(...svgs.map(s => s.getBoundingClientRect().width)),
                svgs.reduce((n, s) => n + s.querySelectorAll('polyline,rect,image,circle').length, 0)]; }))""")
    drawn = {fid: (n, width, shapes) for fid, n, width, shapes in json.loads(sizes)}
    for fid in _FIGURES:
        n, width, shapes = drawn[fid]
        assert n >= 1 and width > 600 and shapes > 0, (fid, drawn[fid])
    # the polylines have real geometry, not just markup
    assert page.js("document.querySelector('#plot-loss polyline[data-series=loss]').getTotalLength()") > 100
    assert page.js("document.querySelectorAll('#plot-loss polyline').length") == 2  # training and validation
    # the histogram images decoded (an <image> with a broken data: URI has no natural size to paint)
    assert page.js("document.querySelectorAll('#plot-histograms image').length") == 5
    assert page.messages() == []

    shot = tmp_path / "report.png"
    shot.write_bytes(page.screenshot())
    img = decode_png(shot.read_bytes())
    assert img.shape[1] == 1100 and img.shape[0] > 2000
    flat = img.reshape(-1, 3)
    background = np.all(flat == flat[0], axis=1).mean()
    assert background < 0.9, "the screenshot is (almost) blank"
    assert len(np.unique(flat[:: 97], axis=0)) > 50, "the screenshot has too few colours to hold plots"
    boxes = json.loads(page.js("""JSON.stringify(Object.fromEntries(['plot-loss', 'plot-histograms', 'plot-heatmap']
        .map(id => { const r = document.querySelector('#' + id + ' svg').getBoundingClientRect();
                     return [id, {top: r.top + scrollY, left: r.left, width: r.width, height: r.height}]; })))"""))
    assert _near(img, boxes["plot-loss"], (46, 134, 193)) > 100        # the blue loss line
    assert _near(img, boxes["plot-histograms"], (253, 231, 37)) > 20   # bright viridis in the histograms
    assert _near(img, boxes["plot-heatmap"], (231, 76, 60)) > 100      # red non-finite heatmap cells
    assert page.messages() == []


def test_step_picker_and_copy_buttons_work(chrome: Chrome, exploding_html: Path) -> None:
    page = Page(chrome, exploding_html)
    options = page.js("[...document.querySelectorAll('#plot-grad-bars option')].map(o => o.value)")
    assert len(options) >= 3
    visible = ("[...document.querySelectorAll('#plot-grad-bars .choice')]"
               ".filter(p => p.getBoundingClientRect().height > 0).map(p => p.dataset.key)")
    assert page.js(visible) == [page.js("document.querySelector('#plot-grad-bars select').value")]
    page.js(f"(() => {{ const s = document.querySelector('#plot-grad-bars select'); s.value = '{options[-1]}';"
            "s.dispatchEvent(new Event('change')); })()")
    assert page.js(visible) == [options[-1]]
    buttons = page.js("document.querySelectorAll('pre.code').length")
    assert buttons > 0 and page.js("document.querySelectorAll('button.copy').length") == buttons
    page.js("document.querySelector('button.copy').click()")
    page.js("new Promise(r => setTimeout(r, 100))")
    state = page.js("[document.querySelector('button.copy').textContent, String(getSelection())]")
    code = page.js("document.querySelector('pre.code').textContent")
    # clipboard access may be refused in a headless page: then the code is selected for Ctrl+C
    assert state[0] == "Copied" or (state[0] == "Press Ctrl+C" and state[1] == code), state
    assert page.messages() == []


def test_hostile_names_render_as_text(chrome: Chrome, evil_html: Path) -> None:
    page = Page(chrome, evil_html)
    assert page.js("document.documentElement.getAttribute('data-ready')") == "1"
    assert page.js("document.scripts.length") == 1  # ours, nothing injected
    text = page.js("document.body.innerText")
    assert text.count(EVIL) >= 4  # title, location, script path, arguments, evidence, code ...
    # the module name is drawn as SVG text in the plots (heatmap and activation rows)
    labels = page.js("[...document.querySelectorAll('#plots svg text, #plots svg title')].map(t => t.textContent)")
    assert any(EVIL in t for t in labels)
    assert page.messages() == []


def test_csp_blocks_a_script_that_escaping_missed(chrome: Chrome, evil_html: Path, tmp_path: Path) -> None:
    """Defence in depth, and proof that console errors are seen: raw markup spliced into a report
    does not run, and the browser reports the blocked script."""
    html = evil_html.read_text(encoding="utf-8")
    hacked = tmp_path / "hacked.html"
    hacked.write_text(html.replace("<main>", "<main><script>document.title='pwned'</script>"
                                             "<img src=x onerror=\"document.title='pwned'\">", 1), encoding="utf-8")
    page = Page(chrome, hacked)
    assert page.js("document.title") != "pwned"
    assert page.js("document.documentElement.getAttribute('data-ready')") == "1"  # ours still ran
    assert any("Content Security Policy" in m for m in page.messages()), page.messages()


def test_a_run_too_short_to_judge_is_not_shown_as_a_green_pass(chrome: Chrome, tmp_path: Path) -> None:
    from modeldebug.testing import healthy_regression, train

    pages = {}
    for steps in (3, 40):  # below and above min_steps (20), the same healthy model
        torch.manual_seed(0)
        model, data = healthy_regression()
        with modeldebug.watch(model, db=":memory:") as session:
            train(model, data, steps=steps)
        report = session.report()
        assert not report.findings
        path = tmp_path / f"steps{steps}.html"
        report.to_html(path)
        pages[steps] = Page(chrome, path)
    state = ("(() => { const v = document.querySelector('#summary .verdict');"
             " return [v.dataset.verdict, v.innerText, getComputedStyle(v).color,"
             " document.querySelector('#summary').innerText]; })()")
    code, headline, color, summary = pages[3].js(state)
    assert code == "too_short" and headline == "Too short to judge"
    assert color != "rgb(30, 132, 73)" and "too short to judge" in summary and "at least 20" in summary
    code, headline, color, _ = pages[40].js(state)
    assert code == "no_problems_found" and headline == "No problems found." and color == "rgb(30, 132, 73)"
    assert pages[3].messages() == [] and pages[40].messages() == []
