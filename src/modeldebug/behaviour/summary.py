"""Plain-text summary tables of a behaviour run (the CLI prints them above the findings)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .suite import BehaviourResult

__all__ = ["render_summary", "rate_cell"]


def rate_cell(r: dict[str, Any]) -> str:
    """'k/n  rate (lo-hi)' for a Rate dict."""
    return f"{r['k']}/{r['n']} {r['rate']:>4.0%} ({r['ci_low']:.0%}-{r['ci_high']:.0%})"


def _runs(s: dict[str, Any]) -> list[str]:
    p95 = s.get("latency_p95_s")
    line = (f"{s['calls']} calls: errors {s['errors']['k']}, empty {s['empty']['k']}, echo {s['echo']['k']}"
            + (f", not language {s['degenerate']['k']}" if "degenerate" in s else "")
            + (f", latency p50 {s['latency_p50_s']:.3f}s p95 {p95:.3f}s" if p95 is not None else ""))
    if s.get("skipped"):
        line += f"; skipped {', '.join(s['skipped'])} (the model raises on every prompt)"
    return [line]


def _determinism(s: dict[str, Any]) -> list[str]:
    if not s.get("prompts"):
        return ["not measured (no answers)"]
    classes = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(s["classes"].items()))
    return [f"{s['prompts']} prompts x {s['repeats']}: mean exact-match {s['exact_match_rate']:.0%}; {classes}; "
            f"model takes {', '.join(s['accepts']) or 'no options'}"]


def _knowledge(s: dict[str, Any]) -> list[str]:
    used = s.get("scoring", "lenient")
    cols = [used, "strict" if used == "lenient" else "lenient"]  # the one that decides first
    lines = [f"{'capability':<16}{cols[0] + ' (scored)':<24}{cols[1]:<24}"]
    for cap, row in s["capabilities"].items():
        lines.append(f"{cap:<16}{rate_cell(row[cols[0]]):<24}{rate_cell(row[cols[1]]):<24}")
    lines.append(f"scored {used}ly: " + ("the expected answer anywhere as a whole word or number (sentences pass)"
                                          if used == "lenient" else "the first line must be the answer"))
    return lines


def _robustness(s: dict[str, Any]) -> list[str]:
    inv = s.get("invariance_flips")
    lines = []
    if isinstance(inv, dict):
        lines.append("invariance (right answers turned wrong): "
                     + "; ".join(f"{k} {v['k']}/{v['n']}" for k, v in inv.items()))
    elif inv:
        lines.append(f"invariance: {inv}")
    d = s.get("directional")
    if d and d["pairs"]:
        lines.append(f"directional: {d['unchanged']['k']}/{d['pairs']} pairs got the same answer, "
                     f"{d['target_wrong']} changed prompts answered wrong")
    return lines


def _safety(s: dict[str, Any]) -> list[str]:
    lines = [f"judge: {s['judge']}", f"harmful overall: {rate_cell(s['harmful'])}; "
             f"benign prompts refused: {rate_cell(s['over_refusal'])}"]
    cnj = s.get("could_not_judge") or {}
    if cnj.get("k") or cnj.get("benign"):
        reasons = ", ".join(f"{r} {c}" for r, c in cnj["reasons"].items())
        lines.append(f"could not judge {cnj['k']} of {cnj['n']} hazard answers and {cnj['benign']} benign ones: "
                     f"not language ({reasons or 'degenerate'}; BEH005)")
    flagged = {c: r for c, r in s["categories"].items() if r["k"]}
    if flagged:
        lines.append(f"{'category':<34}harmful")
        lines += [f"{c + ' ' + r['name']:<34}{rate_cell(r)}" for c, r in flagged.items()]
        clean = [c for c, r in s["categories"].items() if not r["k"]]
        if clean:
            lines.append(f"no harmful answers in: {', '.join(clean)}")
    for name, row in (s.get("mutations") or {}).items():
        lines.append(f"mutation {name:<12} harmful {rate_cell(row['harmful'])} (plain {row['plain_harmful']['rate']:.0%}); "
                     f"refused plain, answered {name}: {row['bypassed']['k']}/{row['bypassed']['n']}; "
                     f"could not judge {row['could_not_judge']}/{row['asked']}")
    dd = s.get("deep_dive") or {}
    if dd.get("failed"):
        words = ", ".join(f"{w['word']} ({w['failing']}/{w['total']})" for w in dd.get("common_words", [])[:6])
        lines.append(f"deep dive: {dd['length'].get('trend')}; common words in failing prompts: {words or 'none'}")
        lines += [f"  filter: {f['pattern']}" for f in dd.get("filters", [])]
    return lines


_SECTIONS = {"runs": _runs, "determinism": _determinism, "knowledge": _knowledge, "robustness": _robustness,
             "safety": _safety}


def render_summary(result: BehaviourResult) -> str:
    """The per-probe tables of `result` as text, one block per probe."""
    out = [f"behaviour probe: {result.model} ({result.calls} calls, {result.duration_s:.1f}s)"]
    if result.weights is not None:
        w = result.weights
        out.append(f"  weights      {w.n_params} parameters in {w.n_tensors} tensors: "
                   f"{w.verdict or 'look trained'}" + ("; in training mode" if w.training_mode else ""))
    for name, res in result.results.items():
        lines = _SECTIONS[name](res.summary) if name in _SECTIONS else []
        for i, line in enumerate(lines):
            out.append(f"  {name if i == 0 else '':<12} {line}")
    return "\n".join(out)
