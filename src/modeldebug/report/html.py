"""A self-contained HTML report: summary, ranked findings and plots drawn from the run record.

The file opens offline: no fonts, CDNs or external files; plots are inline SVG (histograms are PNG
data: URIs inside them). Its one small script (copy buttons, the step picker) is static text whose
hash the page's Content-Security-Policy names, so no other script can run even if some text were
ever left unescaped. Every string that comes from the run goes through ``html.escape``.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .activations import fractions_plot, histogram_plot
from .gradflow import grad_bars, grad_norm_plot, heatmap
from .plots import loss_plot, lr_plot, memory_plot, timing_plot, update_ratio_plot
from .svg import clip, esc, num
from .verdict import NO_STEP_HINT
from .verdict import verdict as verdict_of

if TYPE_CHECKING:
    from ..rules.base import Finding
    from .model import Report

__all__ = ["render_html", "SCRIPT"]

_SEV_COLOR = {"high": "#c0392b", "medium": "#d68910", "low": "#2e86c1"}
_MAX_ITEMS = 8          # items shown of a long list or dict in evidence
_MAX_TEXT = 300         # characters shown of a long string in evidence

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:980px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px}h3{font-size:15px;margin:0}
nav{font-size:13px;margin:0 0 14px}nav a{margin-right:14px;color:#2e86c1;text-decoration:none}
.verdict{font-size:17px;font-weight:600;margin:8px 0 14px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:14px 16px;margin:0 0 14px}
.finding{border-left:5px solid var(--sev)}
.badge{display:inline-block;color:#fff;border-radius:4px;padding:1px 7px;font-size:12px;font-weight:700;
text-transform:uppercase}
.meta{color:#5b6472;font-size:13px;margin:4px 0 8px}
table{border-collapse:collapse;font-size:13px}
td,th{border-top:1px solid #eceff3;padding:3px 8px;text-align:left;vertical-align:top}
th{color:#5b6472;font-weight:600;white-space:nowrap}code,pre{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
table.ranked{width:100%;margin:0 0 14px}table.ranked a{color:inherit}
.rec{position:relative}pre{background:#1f2430;color:#e6e6e6;padding:10px 12px;border-radius:6px;overflow-x:auto}
button.copy{position:absolute;right:8px;margin-top:6px;font:12px system-ui,sans-serif;padding:2px 8px;
border:1px solid #5b6472;border-radius:4px;background:#2c3342;color:#e6e6e6;cursor:pointer}
.note{color:#7a8391;font-style:italic;font-size:13px}.muted{fill:#7a8391;color:#7a8391}
figure{margin:0 0 14px}figcaption{font-weight:600;margin-bottom:6px}
svg{width:100%;height:auto;font-size:11px;font-family:inherit;display:block}.axis{stroke:#9aa3af}.grid{stroke:#eceff3}
.legend{font-size:12px;margin:4px 0 0 70px}.legend span{margin-right:14px;white-space:nowrap}
.legend i{display:inline-block;width:14px;height:3px;margin:0 5px 3px 0;vertical-align:middle}
.pick{font-size:13px;display:block;margin:0 0 6px}[hidden]{display:none!important}
h1,h3,p,li,.meta,.verdict,th+td,.ranked td:nth-child(4),.ranked td:nth-child(5){overflow-wrap:anywhere}
"""

# Static: it must never contain anything from the run (the CSP below allows exactly this text).
SCRIPT = """(function(){
function copy(pre,button){
  var text=pre.textContent;
  function done(){button.textContent='Copied';setTimeout(function(){button.textContent='Copy';},1500);}
  function fallback(){var r=document.createRange();r.selectNodeContents(pre);var s=window.getSelection();
    s.removeAllRanges();s.addRange(r);button.textContent='Press Ctrl+C';}
  if(navigator.clipboard&&window.isSecureContext){navigator.clipboard.writeText(text).then(done,fallback);}
  else{fallback();}
}
document.querySelectorAll('pre.code').forEach(function(pre){
  var b=document.createElement('button');b.type='button';b.className='copy';b.textContent='Copy';
  b.addEventListener('click',function(){copy(pre,b);});pre.parentNode.insertBefore(b,pre);
});
document.querySelectorAll('select[data-choose]').forEach(function(sel){
  var panels=document.querySelectorAll('[data-choice="'+sel.getAttribute('data-choose')+'"]');
  function show(){panels.forEach(function(p){p.hidden=p.getAttribute('data-key')!==sel.value;});}
  sel.addEventListener('change',show);show();
});
document.documentElement.setAttribute('data-ready','1');
})();"""
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
_CSP = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}'; "
        "base-uri 'none'; form-action 'none'")

# run/meta keys shown in the metadata table (or deliberately not shown); others are listed after it
_KNOWN = {"script", "argv", "cwd", "started", "duration_s", "steps", "status", "exit_code", "models", "optimizers",
          "level", "device", "python", "torch", "modeldebug", "platform", "overhead_s", "first_loss", "final_loss",
          "final_loss_finite", "final_loss_value", "last_finite_step", "record", "config", "mode", "magic", "schema_version", "created"}


# -- small formatting helpers ------------------------------------------------------------------
def _compact(value: Any, depth: int = 0) -> str:
    """Escaped, compact HTML for an evidence value: nested containers inline, long ones cut."""
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, dict):
        if depth >= 3:
            return f"{{… {len(value)} keys}}"
        items = list(value.items())
        parts = [f"<b>{esc(k)}</b>: {_compact(v, depth + 1)}" for k, v in items[:_MAX_ITEMS]]
        if len(items) > _MAX_ITEMS:
            parts.append(f"… +{len(items) - _MAX_ITEMS} more")
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, (list, tuple)):
        if depth >= 3:
            return f"[… {len(value)} items]"
        parts = [_compact(v, depth + 1) for v in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            parts.append(f"… +{len(value) - _MAX_ITEMS} more")
        return "[" + ", ".join(parts) + "]"
    if value is None or isinstance(value, (bool, int, float)):
        return esc(num(value))
    return esc(clip(str(value), _MAX_TEXT))


def _badge(severity: str) -> str:
    """A coloured severity badge."""
    color = _SEV_COLOR.get(severity, "#7a8391")
    return f'<span class="badge" style="background:{color}">{esc(severity)}</span>'


def _rows(pairs: Iterable[tuple[str, str]]) -> str:
    """A two-column table from (escaped header, escaped value) pairs."""
    return "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in pairs) + "</table>"


# -- summary ---------------------------------------------------------------------------------------
def _ranked(findings: list[Finding]) -> str:
    """The findings at a glance, most important first, each linked to its card."""
    rows = []
    for i, f in enumerate(findings, 1):
        rows.append(f"<tr><td>{i}</td><td>{_badge(f.severity)}</td><td><code>{esc(f.code)}</code></td>"
                    f'<td><a href="#finding-{i}">{esc(f.title)}</a></td>'
                    f"<td>{'<code>' + esc(f.location) + '</code>' if f.location else '—'}</td>"
                    f"<td>{esc(f.step) if f.step is not None else '—'}</td></tr>")
    return ('<table class="ranked"><tr><th>#</th><th>severity</th><th>code</th><th>problem</th><th>where</th>'
            f'<th>since step</th></tr>{"".join(rows)}</table>')


def _metadata(report: Report) -> list[tuple[str, str]]:
    """(escaped label, escaped value) rows: the run dict first, the record's meta where it is silent."""
    run = report.run
    meta = report.record.meta if report.record is not None else {}

    def get(key: str) -> Any:
        return run[key] if run.get(key) is not None else meta.get(key)

    def listed(value: Any) -> str | None:
        return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) and value else None

    argv, started, dur, over = get("argv"), get("started"), get("duration_s"), get("overhead_s")
    versions = ", ".join(f"{k} {get(k)}" for k in ("python", "torch", "modeldebug") if get(k) is not None)
    overhead = None
    if isinstance(over, (int, float)):
        share = f" ({over / dur:.0%} of the run)" if isinstance(dur, (int, float)) and dur > 0 else ""
        overhead = f"{num(float(over))} s in modeldebug's hooks{share}"
    code = get("exit_code")
    status = " ".join(str(v) for v in (get("status"), None if code is None else f"(exit code {code})") if v is not None)
    final = num(run.get("final_loss"))
    if run.get("final_loss_finite") is False:  # the run ended NaN/Inf: final_loss is its last finite value
        final = f"{run.get('final_loss_value', 'nan')} (last finite {final} at step {run.get('last_finite_step')})"
    loss = None if run.get("first_loss") is None else f"{num(run.get('first_loss'))} → {final}"
    fields: list[tuple[str, Any]] = [
        ("script", get("script")),
        ("arguments", shlex.join(map(str, argv[1:])) if isinstance(argv, list) and len(argv) > 1 else None),
        ("working directory", get("cwd")),
        ("started", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
         if isinstance(started, (int, float)) else None),
        ("duration", None if dur is None else f"{num(dur)} s"), ("steps", get("steps")), ("status", status or None),
        ("models", listed(get("models"))), ("optimizers", listed(get("optimizers"))), ("level", get("level")),
        ("device", get("device")), ("versions", versions or None), ("platform", get("platform")),
        ("modeldebug overhead", overhead), ("loss", loss), ("run record", get("record")),
    ]
    rows = [(esc(k), esc(num(v))) for k, v in fields if v is not None]
    rows += [(esc(k), _compact(v, 1)) for k, v in run.items() if k not in _KNOWN and v is not None]
    return rows


def _summary(report: Report) -> str:
    """Verdict, the ranked findings and the run's metadata."""
    v = verdict_of(report)
    if v.code == "problems_found":
        color = _SEV_COLOR.get(report.worst() or "low", "#333")
        verdict = (f'<div class="verdict" data-verdict="{v.code}" style="color:{color}">{esc(v.text)}</div>'
                   + _ranked(report.findings))
    elif v.code == "no_training_step":
        verdict = (f'<div class="verdict" data-verdict="{v.code}" style="color:#b9770e">{esc(v.text)}</div>'
                   f"<p>{esc(v.detail or '')}</p><p class=\"note\">{esc(NO_STEP_HINT)}</p>")
    elif v.code == "too_short":  # not a pass: neutral, never the green of a clean run
        verdict = (f'<div class="verdict" data-verdict="too_short" style="color:#5d6d7e">Too short to judge</div>'
                   f"<p>{esc(v.text)}</p><p class=\"note\">{esc(v.detail or '')}</p>")
    else:
        verdict = f'<div class="verdict" data-verdict="{v.code}" style="color:#1e8449">{esc(v.text)}</div>'
    return (f'<section id="summary" class="card"><h2 style="margin-top:0">Summary</h2>{verdict}'
            f"{_rows(_metadata(report))}</section>")


# -- findings --------------------------------------------------------------------------------------
def _symptoms(symptoms: Any) -> str:
    """The findings this one explains (evidence["symptoms"])."""
    if not symptoms:
        return ""
    items = []
    for s in symptoms if isinstance(symptoms, list) else [symptoms]:
        if isinstance(s, dict):
            title = str(s.get("title", ""))
            step = "" if s.get("step") is None or f"step {s['step']}" in title else f" (step {esc(s['step'])})"
            items.append(f"<li>{_badge(str(s.get('severity', '')))} <code>{esc(s.get('code', ''))}</code> "
                         f"{esc(title)}{step}</li>")
        else:
            items.append(f"<li>{_compact(s)}</li>")
    return f'<div class="symptoms"><b>Explains:</b><ul>{"".join(items)}</ul></div>'


def _finding(i: int, f: Finding) -> str:
    """One finding as a card: header, where/when, description, evidence, recommendations."""
    where = [f"kind <code>{esc(f.kind)}</code>", f"category {esc(f.category)}"]
    if f.location:
        where.append(f"at <code>{esc(f.location)}</code>")
    if f.step is not None:
        where.append(f"since step {esc(f.step)}")
    try:
        where.append(f"confidence {float(f.confidence):.0%}")
    except (TypeError, ValueError):
        where.append(f"confidence {esc(f.confidence)}")
    evidence = {k: v for k, v in (f.evidence or {}).items() if k != "symptoms"}
    ev = (f"<details open><summary>Evidence</summary>"
          f"{_rows((esc(k), _compact(v, 1)) for k, v in evidence.items())}</details>") if evidence else ""
    recs = []
    for rec in f.recommendations:
        code = f'<pre class="code"><code>{esc(rec.implementation)}</code></pre>' if rec.implementation else ""
        label = esc(str(rec.type).replace("_", " ").capitalize())
        recs.append(f'<div class="rec"><p><b>{label}:</b> {esc(rec.description)}</p>{code}</div>')
    color = _SEV_COLOR.get(f.severity, "#7a8391")
    return (f'<article class="card finding" id="finding-{i}" style="--sev:{color}">'
            f"<h3>{i}. {_badge(f.severity)} <code>{esc(f.code)}</code> {esc(f.title)}</h3>"
            f'<div class="meta">{", ".join(where)}</div><p>{esc(f.description)}</p>'
            f"{ev}{_symptoms((f.evidence or {}).get('symptoms'))}{''.join(recs)}</article>")


# -- plots -----------------------------------------------------------------------------------------
_SECTIONS = [("loss", "Loss and learning rate"), ("gradients", "Gradient flow"),
             ("activations", "Activations"), ("updates", "Optimizer updates"), ("resources", "Memory and time")]


def _plots(report: Report) -> str:
    """Every plot, grouped in sections; one note when the report carries no run record."""
    rec = report.record
    if rec is None:
        return ('<section id="plots"><h2>Plots</h2><p class="note">No run record attached: plots are '
                "unavailable.</p></section>")
    bodies = {
        "loss": loss_plot(rec, report.findings) + lr_plot(rec),
        "gradients": grad_norm_plot(rec, report.findings) + heatmap(rec) + grad_bars(rec, report.findings),
        "activations": histogram_plot(rec) + fractions_plot(rec),
        "updates": update_ratio_plot(rec),
        "resources": memory_plot(rec) + timing_plot(rec),
    }
    parts = "".join(f'<section id="sec-{key}"><h2>{esc(title)}</h2>{bodies[key]}</section>' for key, title in _SECTIONS)
    return f'<div id="plots">{parts}</div>'


def render_html(report: Report) -> str:
    """The whole report as one self-contained HTML document."""
    script = report.run.get("script") or (report.record.meta.get("script") if report.record is not None else None) or "run"
    findings = "".join(_finding(i, f) for i, f in enumerate(report.findings, 1))
    findings = findings or '<p class="note">No findings.</p>'
    nav = ['<a href="#summary">Summary</a>', '<a href="#findings">Findings</a>']
    if report.record is not None:
        nav += [f'<a href="#sec-{key}">{esc(title)}</a>' for key, title in _SECTIONS]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{esc(_CSP)}">'
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>modeldebug report: {esc(script)}</title><style>{_CSS}</style></head><body><main>"
            f"<h1>modeldebug report: <code>{esc(script)}</code></h1><nav>{''.join(nav)}</nav>"
            f"{_summary(report)}<section id=\"findings\"><h2>Findings</h2>{findings}</section>{_plots(report)}"
            f"</main><script>{SCRIPT}</script></body></html>\n")
