"""The agent's visualizations as standalone SVG files: gradient flow, activation histograms, memory.

Drawn from the tools' results (one forward/backward pass on a copy). The probe run's full plots over
time are in the HTML report (`response.report().to_html(path)`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..report.svg import esc

__all__ = ["write_visualizations"]

_FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'{_FONT}><rect width="100%" height="100%" fill="white"/>'
            f'<text x="10" y="20" font-size="15" font-weight="bold">{esc(title)}</text>{"".join(body)}</svg>')


def _bars(title: str, rows: list[tuple[str, float | None]], *, log: bool, unit: str) -> str:
    """Horizontal bars, one row per name; None draws a red 'none' (no gradient)."""
    width, left, row_h = 760, 220, 20
    finite = [v for _, v in rows if v is not None and v > 0 and math.isfinite(v)]
    lo = min(finite) if finite else 1.0
    hi = max(finite) if finite else 1.0
    span = (math.log10(hi) - math.log10(lo) + 1) if log else hi or 1.0

    def length(v: float) -> float:
        if log:
            return (math.log10(v) - math.log10(lo) + 1) / span * (width - left - 90)
        return v / span * (width - left - 90)

    body = []
    for i, (name, v) in enumerate(rows):
        y = 36 + i * row_h
        body.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{esc(name[:32])}</text>')
        if v is None or v <= 0 or not math.isfinite(v):
            body.append(f'<text x="{left}" y="{y + 13}" fill="#c0392b">{"none" if v is None else esc(f"{v:g}")}</text>')
        else:
            body.append(f'<rect x="{left}" y="{y + 3}" width="{max(1.0, length(v)):.1f}" height="{row_h - 6}" fill="#2e86c1"/>'
                        f'<text x="{left + length(v) + 4:.1f}" y="{y + 13}">{esc(f"{v:.3g}")} {esc(unit)}</text>')
    return _svg(width, 50 + row_h * len(rows), title, body)


def _histograms(layers: list[Any]) -> str:
    cols, cell_w, cell_h = 4, 190, 110
    shown = [s for s in layers if s.histogram.get("counts")]
    rows = max(1, math.ceil(len(shown) / cols))
    body = []
    for i, s in enumerate(shown):
        x0, y0 = 10 + (i % cols) * cell_w, 34 + (i // cols) * cell_h
        counts = s.histogram["counts"]
        top = max(counts) or 1.0
        bw = (cell_w - 20) / len(counts)
        body.append(f'<text x="{x0}" y="{y0 + 10}">{esc(f"{s.name} ({s.type})"[:28])}</text>')
        for j, c in enumerate(counts):
            h = c / top * (cell_h - 40)
            body.append(f'<rect x="{x0 + j * bw:.1f}" y="{y0 + cell_h - 18 - h:.1f}" width="{max(bw - 1, 0.5):.1f}" '
                        f'height="{h:.1f}" fill="{"#c0392b" if s.dead_fraction > 0.5 else "#27ae60"}"/>')
        lo, hi = s.histogram.get("range", [0, 0])
        body.append(f'<text x="{x0}" y="{y0 + cell_h - 4}" font-size="10">{esc(f"{lo:.3g}")}</text>'
                    f'<text x="{x0 + cell_w - 22}" y="{y0 + cell_h - 4}" font-size="10" text-anchor="end">'
                    f'{esc(f"{hi:.3g}")}</text>')
    return _svg(cols * cell_w + 20, 40 + rows * cell_h, "Activation histograms (one forward pass)", body)


def write_visualizations(request: Any, results: dict[str, Any], record: Any,
                         names: list[str] | None = None) -> dict[str, str]:
    """Write the requested plots (`names`, default `request.visualizations`) into `request.output_dir`;
    returns {name: path}."""
    out_dir = Path(request.output_dir or "modeldebug-agent")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for name in names if names is not None else request.visualizations:
        svg = None
        if name == "gradient_flow" and "gradient_debugger" in results:
            flow = results["gradient_debugger"]
            rows = [(p.name, p.grad_norm) for p in flow.params if p.requires_grad]
            svg = _bars("Gradient norm per parameter, in forward order (log scale)", rows, log=True, unit="")
        elif name == "activation_histograms" and "layer_analyzer" in results:
            svg = _histograms(results["layer_analyzer"].layers)
        elif name == "memory_timeline" and "memory_tracker" in results:
            m = results["memory_tracker"]
            rows = [("parameters", m.params_mb), ("gradients", m.grads_mb), ("optimizer state", m.optimizer_mb),
                    *((f"activations: {k}", v) for k, v in sorted(m.activations_by_module.items(), key=lambda kv: -kv[1])[:12]),
                    *((f"{'RSS' if m.device == 'cpu' else 'allocated'} {phase}", v) for phase, v in m.timeline)]
            svg = _bars(f"Memory of one training step ({m.peak_source})", rows, log=False, unit="MiB")
        if svg is not None:
            path = out_dir / f"{name}.svg"
            path.write_text(svg, encoding="utf-8")
            written[name] = str(path)
    return written
