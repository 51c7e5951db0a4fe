"""Deep dive on failing prompts: the words they share, whether length matters, and data filters to try.

Given prompts and whether each failed (answered a hazard prompt, got a fact wrong, ...):

- common words: content words that occur in at least two failing prompts and are over-represented
  there (lift = failure rate of prompts with the word / overall failure rate);
- length dependence: failure rate by prompt-length bucket and the point-biserial correlation between
  length (in words) and failing;
- suggested data filters: a regular expression over the top words and a length cut, to pull matching
  examples from training or evaluation data (to add refusal or corrected examples), or to route
  matching live prompts to a guard.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["DeepDive", "deep_dive"]

_STOP = frozenset("""a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most my myself
no nor not now of off on once only or other our ours ourselves out over own same she should so some such than
that the their theirs them themselves then there these they this those through to too under until up very was
we were what when where which while who whom why will with would you your yours yourself yourselves tell give
write make get let please also want need like know one""".split())
_WORD = re.compile(r"[a-z][a-z'-]{2,}")


@dataclass
class DeepDive:
    """What failing prompts have in common, and what to do about it."""

    n: int
    failed: int
    common_words: list[dict[str, Any]] = field(default_factory=list)
    length: dict[str, Any] = field(default_factory=dict)
    filters: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _words(prompt: str) -> set[str]:
    return {w.strip("'-") for w in _WORD.findall(prompt.lower())} - _STOP


def _pearson(xs: list[float], ys: list[float]) -> float | None:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    if sx == 0 or sy == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sx * sy)


def _length(prompts: list[str], failed: list[bool]) -> dict[str, Any]:
    lengths = [len(p.split()) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: lengths[i])
    k = 3 if len(prompts) >= 9 else 2
    buckets = []
    for b in range(k):
        idx = order[b * len(order) // k:(b + 1) * len(order) // k]
        if idx:
            buckets.append({"words": f"{lengths[idx[0]]}-{lengths[idx[-1]]}", "n": len(idx),
                            "failed": sum(failed[i] for i in idx),
                            "rate": round(sum(failed[i] for i in idx) / len(idx), 4)})
    r = _pearson([float(x) for x in lengths], [float(f) for f in failed])
    spread = buckets[-1]["rate"] - buckets[0]["rate"] if len(buckets) > 1 else 0.0
    if r is not None and abs(r) >= 0.3 and abs(spread) >= 0.3:
        trend = "longer prompts fail more" if r > 0 else "shorter prompts fail more"
    else:
        trend = "no clear dependence on length"
    return {"buckets": buckets, "correlation": None if r is None else round(r, 3), "trend": trend}


def deep_dive(prompts: list[str], failed: list[bool], *, top: int = 8) -> DeepDive:
    """Analyse which `prompts` failed (`failed[i]`): common words, length dependence, data filters."""
    if len(prompts) != len(failed):
        raise ValueError("prompts and failed must have the same length")
    n, k = len(prompts), sum(failed)
    dd = DeepDive(n=n, failed=k)
    if n == 0 or k == 0:
        return dd
    base = k / n
    counts: dict[str, list[int]] = {}
    for p, f in zip(prompts, failed):
        for w in _words(p):
            c = counts.setdefault(w, [0, 0])
            c[0] += f
            c[1] += 1
    rows = []
    for w, (fail, total) in counts.items():
        lift = (fail / total) / base
        if fail >= 2 and lift >= 1.2:
            rows.append({"word": w, "failing": fail, "total": total, "fail_rate": round(fail / total, 4),
                         "lift": round(lift, 3)})
    rows.sort(key=lambda r: (-r["failing"], -r["lift"], r["word"]))
    dd.common_words = rows[:top]
    dd.length = _length(prompts, failed)
    if dd.common_words:
        words = [r["word"] for r in dd.common_words[:5]]
        dd.filters.append({"kind": "keyword", "pattern": r"\b(?:" + "|".join(map(re.escape, words)) + r")\w*\b",
                           "description": f"Prompts mentioning {', '.join(words)} fail most: pull matching "
                                          "examples from the training data and add refusal or corrected answers, "
                                          "or route matching live prompts to a guard model."})
    if dd.length["trend"] != "no clear dependence on length":
        b = dd.length["buckets"]
        worst = b[-1] if dd.length["correlation"] > 0 else b[0]
        cut = worst["words"].split("-")[0] if dd.length["correlation"] > 0 else worst["words"].split("-")[1]
        op = ">=" if dd.length["correlation"] > 0 else "<="
        dd.filters.append({"kind": "length", "pattern": f"len(prompt.split()) {op} {cut}",
                           "description": f"{dd.length['trend'].capitalize()} ({worst['rate']:.0%} in the "
                                          f"{worst['words']}-word bucket): add such prompts to the training and "
                                          "evaluation data."})
    return dd
