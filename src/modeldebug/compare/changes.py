"""What changed between two runs: code, arguments, hyperparameters, seed, data, versions, device.

Works on the facts the journal keeps (`journal.facts`): a record alone gives everything but the
git state, the script's text and the seed. An argument whose old and new values are those of a
changed hyperparameter is folded into it ("learning rate 0.01 -> 0.3, from argument --lr").
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Change", "changes", "words_in"]


@dataclass
class Change:
    """One difference between run A and run B."""

    category: str  # lr | optimizer | groups | batch | seed | data | code | args | versions | device | level
    what: str
    a: Any
    b: Any
    text: str
    detail: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)  # modules it is about, when known
    words: set[str] = field(default_factory=set)  # identifiers it mentions (to link it to its effects)
    score: float = 0.0
    explains: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"category": self.category, "what": self.what, "a": self.a, "b": self.b, "text": self.text,
                "detail": self.detail, "score": round(self.score, 2), "explains": self.explains}


def words_in(text: str) -> set[str]:
    """Identifiers in `text`, lower-case, split on non-word characters and on '_' too: 'zero_grad' ->
    {'zero_grad', 'zero', 'grad'}; '--no-zero-grad' -> {'no_zero_grad', 'zero', 'grad', ...}."""
    out = set()
    for token in re.findall(r"[A-Za-z_][A-Za-z0-9_\-]*", text):
        token = token.strip("-_").replace("-", "_").lower()
        if len(token) >= 2:
            out.add(token)
            out.update(p for p in token.split("_") if len(p) >= 3)
    return out


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _num(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _fmt(value: Any) -> str:
    if value is None:  # the group exists in one run only (another optimizer): not the word None
        return "(no such optimizer)"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _groups(facts: dict[str, Any], other: list[Any] | None = None) -> dict[str, Any]:
    """'Adam 0 group 0 lr' -> value, and 'holder <param>' -> 'Adam 0 group 0'. An optimizer whose type
    differs from `other`'s at its index (the other run's types) is named 'optimizer 0': its groups are
    still compared with the other run's, so SGD -> Adam is one optimizer change, not every parameter
    moved to another group."""
    out: dict[str, Any] = {}
    for i, opt in enumerate(facts.get("hyperparameters", {}).get("optimizers", [])):
        same = other is None or (i < len(other) and other[i] == opt.get("type"))
        for j, g in enumerate(opt.get("groups", [])):
            prefix = f"{opt.get('type') if same else 'optimizer'} {i} group {j}"
            for k, v in g.items():
                if k == "params":
                    for p in v:
                        out[f"holder {p}"] = prefix
                elif k not in ("initial_lr", "capturable", "differentiable", "foreach", "fused"):
                    out[f"{prefix} {k}"] = v
    return out


def _module(param: str) -> str:
    return param.rsplit(".", 1)[0] if "." in param else param


def _hyper(fa: dict[str, Any], fb: dict[str, Any]) -> list[Change]:
    out = []
    ta = [o.get("type") for o in fa.get("hyperparameters", {}).get("optimizers", [])]
    tb = [o.get("type") for o in fb.get("hyperparameters", {}).get("optimizers", [])]
    took_no_step = (not ta and fa.get("steps") == 0) or (not tb and fb.get("steps") == 0)
    if ta != tb and not took_no_step:  # a run that ended before its first step cannot tell its optimizer
        out.append(Change("optimizer", "optimizer", ta, tb, f"optimizer: {', '.join(map(str, ta)) or 'none'} -> "
                          f"{', '.join(map(str, tb)) or 'none'}", words=words_in(" ".join(map(str, ta + tb)))))
    if ta and tb:  # when one run had no optimizer at all, its type says it: group by group would not
        out += _group_changes(_groups(fa, tb), _groups(fb, ta))
    ba, bb = fa.get("hyperparameters", {}).get("batch_size"), fb.get("hyperparameters", {}).get("batch_size")
    if ba is not None and bb is not None and ba != bb:
        out.append(Change("batch", "batch size", ba, bb, f"batch size: {ba} -> {bb}", words={"batch", "batch_size", "bs"}))
    return out


def _group_changes(ga: dict[str, Any], gb: dict[str, Any]) -> list[Change]:
    out = []
    moved = []
    for key in [*ga, *(k for k in gb if k not in ga)]:  # model order
        va, vb = ga.get(key), gb.get(key)
        if _same(va, vb):
            continue
        if key.startswith("holder "):
            moved.append((key.split(" ", 1)[1], va, vb))
        elif key.endswith(" lr"):
            ratio = f" (x{vb / va:.3g})" if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and va else ""
            out.append(Change("lr", "learning rate", va, vb, f"learning rate ({key[:-3]}): {_fmt(va)} -> {_fmt(vb)}{ratio}",
                              words={"lr", "learning", "rate"}))
        elif va is not None and vb is not None:
            name = key.rsplit(" ", 1)[1]
            out.append(Change("optimizer", name, va, vb, f"optimizer setting {key}: {_fmt(va)} -> {_fmt(vb)}",
                              words=words_in(name)))
    if moved:
        gone = [p for p, _, b in moved if b is None]
        text = "; ".join(f"{p}: {a or 'no optimizer'} -> {b or 'no optimizer'}" for p, a, b in moved[:4])
        if gone and len(gone) == len(moved):
            text = f"{', '.join(gone[:6])} no longer held by any optimizer (not trained)"
        out.append(Change("groups", "parameter groups", [p for p, a, _ in moved if a], [p for p, _, b in moved if b],
                          f"parameter groups: {text}", modules=sorted({_module(p) for p, _, _ in moved}),
                          words={"freeze", "frozen", "requires_grad", "optimizer", "param", "params"}))
    return out


def _options(argv: list[str]) -> dict[str, str | None]:
    """'--lr 0.3 --flag data.csv' -> {'--lr': '0.3', '--flag': None, '#0': 'data.csv'} (values of options
    that start with '-' followed by a number are values, not options)."""
    out: dict[str, str | None] = {}
    i, pos = 0, 0
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("-") and _num(tok) is None and len(tok) > 1:
            if "=" in tok:
                key, value = tok.split("=", 1)
                out[key] = value
            elif i + 1 < len(argv) and (not argv[i + 1].startswith("-") or _num(argv[i + 1]) is not None):
                out[tok] = argv[i + 1]
                i += 1
            else:
                out[tok] = None
        else:
            out[f"#{pos}"] = tok
            pos += 1
        i += 1
    return out


def _argv_changes(fa: dict[str, Any], fb: dict[str, Any], hyper: list[Change]) -> list[Change]:
    a, b = list(fa.get("argv") or [])[1:], list(fb.get("argv") or [])[1:]
    if a == b:
        return []
    oa, ob = _options(a), _options(b)
    parts = []
    for key in [*oa, *(k for k in ob if k not in oa)]:
        x, y = oa.get(key, ...), ob.get(key, ...)
        if x == y:
            continue
        shown = "argument" if key.startswith("#") else key
        old = "(not given)" if x is ... else (x if x is not None else "(set)")
        new = "(not given)" if y is ... else (y if y is not None else "(set)")
        xv, yv = (_num(x) if isinstance(x, str) else None), (_num(y) if isinstance(y, str) else None)
        linked = next((h for h in hyper if isinstance(h.b, (int, float)) and yv is not None
                       and math.isclose(yv, h.b, rel_tol=1e-9)
                       and (xv is None or (isinstance(h.a, (int, float)) and math.isclose(xv, h.a, rel_tol=1e-9)))),
                      None)
        if linked is not None:  # the argument is where the hyperparameter came from
            linked.text += f", from argument {shown} {old} -> {new}"
            linked.words |= words_in(key)
            continue
        parts.append((f"{shown} {old} -> {new}", words_in(key if not key.startswith("#") else f"{x} {y}")))
    if not parts:
        return []
    words = set().union(*(w for _, w in parts))
    return [Change("args", "arguments", a, b, "arguments: " + "; ".join(t for t, _ in parts), words=words)]


def _code(fa: dict[str, Any], fb: dict[str, Any], source_a: str | None, source_b: str | None) -> list[Change]:
    out = []
    sa, sb = fa.get("script"), fb.get("script")
    if sa and sb and sa != sb:
        out.append(Change("code", "script", sa, sb, f"script: {sa} -> {sb}", words=set()))
    gita, gitb = fa.get("git") or {}, fb.get("git") or {}
    if gita.get("commit") and gitb.get("commit") and gita["commit"] != gitb["commit"]:
        out.append(Change("code", "commit", gita["commit"], gitb["commit"],
                          f"code: commit {gita['commit'][:10]} -> {gitb['commit'][:10]}"))
    elif gita.get("commit") and gitb.get("commit") and gita.get("diff_sha256") != gitb.get("diff_sha256"):
        def state(g: dict[str, Any]) -> str:
            return f"uncommitted diff {g['diff_sha256'][:10]}" if g.get("diff_sha256") else "no uncommitted changes"
        out.append(Change("code", "uncommitted changes", gita.get("diff_sha256"), gitb.get("diff_sha256"),
                          f"code: same commit {gita['commit'][:10]}, {state(gita)} -> {state(gitb)}"))
    ha, hb = fa.get("script_sha256"), fb.get("script_sha256")
    if ha and hb and ha != hb:
        detail: list[str] = []
        if source_a is not None and source_b is not None:
            lines = difflib.unified_diff(source_a.splitlines(), source_b.splitlines(), lineterm="", n=0)
            detail = [ln for ln in lines if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
        shown = f" ({len(detail)} line(s) differ)" if detail else ""
        out.append(Change("code", "script content", ha[:12], hb[:12], f"script content changed{shown}",
                          detail=detail[:20], words=words_in(" ".join(detail))))
    return out


def _data(fa: dict[str, Any], fb: dict[str, Any]) -> list[Change]:
    da, db = fa.get("data") or {}, fb.get("data") or {}
    out = []
    if da.get("fingerprint") and db.get("fingerprint") and da["fingerprint"] != db["fingerprint"]:
        parts = [("inputs", _short(da), _short(db))]
        ta, tb = _targets(da), _targets(db)
        if ta != "?" and tb != "?":  # a run that never reached its loss has no target to compare
            parts.append(("targets", ta, tb))
        shown = "; ".join(f"{what} {x} -> {y}" for what, x, y in parts if x != y)
        if shown:
            out.append(Change("data", "data form", da["fingerprint"], db["fingerprint"], f"data: {shown}",
                              words={"data", "dataset", "input"}))
    for ia, ib in zip(da.get("inputs", []), db.get("inputs", [])):
        for stat in ("mean", "std"):
            x, y = ia.get(stat), ib.get(stat)
            if x is None or y is None:
                continue
            # against the spread, not 10% of it: one batch's mean of unit-scale data strays ~0.1 (was a "change")
            scale = max(abs(x), abs(y), ia.get("std") or 0, 1e-6)
            if abs(x - y) > 0.25 * scale:
                out.append(Change("data", f"input {stat}", x, y, f"data: input {stat} {x:.4g} -> {y:.4g}",
                                  words={"data", "input", "normalize", "norm", "scale", stat}))
    return out


def _short(d: dict[str, Any]) -> str:
    return ", ".join(f"{i.get('dtype')}{i.get('shape')}" for i in d.get("inputs", [])) or "?"


def _targets(d: dict[str, Any]) -> str:
    seen = [t for t in d.get("targets", []) if t.get("target_dtype")]
    return ", ".join(f"{t['target_dtype']}{t.get('target_shape')}"
                     + (f" {t['classes']} classes" if t.get("classes") else "") for t in seen) or "?"


def changes(fa: dict[str, Any], fb: dict[str, Any], source_a: str | None = None,
            source_b: str | None = None) -> list[Change]:
    """Every difference between run A's and run B's facts, unranked."""
    hyper = _hyper(fa, fb)
    out = [*hyper, *_argv_changes(fa, fb, hyper), *_code(fa, fb, source_a, source_b), *_data(fa, fb)]
    seed_a, seed_b = (fa.get("seed") or {}).get("torch"), (fb.get("seed") or {}).get("torch")
    if seed_a is not None and seed_b is not None and seed_a != seed_b:
        out.append(Change("seed", "seed", seed_a, seed_b, f"torch seed: {seed_a} -> {seed_b}", words={"seed"}))
    va = {**(fa.get("versions") or {}), **(fa.get("libraries") or {})}
    vb = {**(fb.get("versions") or {}), **(fb.get("libraries") or {})}
    diffs = [f"{k} {va[k]} -> {vb[k]}" for k in sorted(set(va) & set(vb)) if va[k] != vb[k]]
    if diffs:
        out.append(Change("versions", "versions", va, vb, "versions: " + "; ".join(diffs)))
    for key, category in (("device", "device"), ("level", "level")):
        if fa.get(key) and fb.get(key) and fa[key] != fb[key]:
            out.append(Change(category, key, fa[key], fb[key], f"{key}: {fa[key]} -> {fb[key]}"))
    return out
