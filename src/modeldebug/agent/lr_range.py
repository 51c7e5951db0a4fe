"""The learning-rate range test (Smith; fastai's and Lightning's `lr_find`), run on a copy.

The rate rises exponentially from `lo` to `hi` over the steps, on the request's batches; the loss is
smoothed, the rate of its minimum divided by ten is suggested, and the rate where the smoothed loss
passes four times its minimum (or goes non-finite) is where it blows up. A verdict against the
current rate (past the blow-up: LRN001 lr_too_high; over 1000x below the suggestion while the
loss clearly falls: LRN002 lr_too_low) is repeated with the other probe seeds and stands only when
every repeat agrees; otherwise the probe is "inconclusive".
"""

from __future__ import annotations

import math
from typing import Any

from ..rules.base import Recommendation
from .probes import ProbeResult
from .request import Workload
from .tools.base import make_finding
from .trainer import short_run

__all__ = ["range_test"]


def _range_run(work: Workload, lrs: list[float], seed: int) -> dict[str, Any]:
    """One range test: the losses, the rate of the lowest smoothed loss, and where it blows up."""
    n = len(lrs)
    run = short_run(work, steps=n, one_batch=False, lr_schedule=lambda i: lrs[min(i, n - 1)], seed=seed)
    smooth, avg = [], 0.0
    for i, v in enumerate(run.losses):
        if not math.isfinite(v):
            break
        avg = 0.8 * avg + 0.2 * v
        smooth.append(avg / (1 - 0.8 ** (i + 1)))
    out: dict[str, Any] = {"lrs": lrs[:len(run.losses)], "losses": run.losses, "smooth": smooth}
    if len(smooth) < 10:
        return out
    best_i = min(range(len(smooth)), key=smooth.__getitem__)
    blowup_i = next((i for i in range(best_i, len(smooth)) if smooth[i] > 4 * smooth[best_i]), None)
    if blowup_i is None and len(smooth) < n:
        blowup_i = min(len(smooth), n - 1)  # the loss went non-finite at this step
    out.update(best_i=best_i, suggested_lr=lrs[best_i] / 10, min_loss_lr=lrs[best_i],
               blowup_lr=lrs[blowup_i] if blowup_i is not None else None,
               falls=smooth[best_i] < 0.9 * smooth[0])
    return out


def _lr_verdict(t: dict[str, Any], current: float | None) -> str | None:
    """"lr_too_high", "lr_too_low" or None for one range test."""
    if current is None or "best_i" not in t:
        return None
    if t["blowup_lr"] is not None and current >= t["blowup_lr"]:
        return "lr_too_high"
    if current < t["suggested_lr"] / 1000 and t["falls"]:
        return "lr_too_low"
    return None


def range_test(work: Workload, *, lo: float = 1e-7, hi: float = 10.0, steps: int | None = None) -> ProbeResult:
    """Raise the learning rate exponentially each step; suggest the rate a decade below the loss minimum.

    A verdict against the current rate is confirmed by repeating the test with the other probe seeds
    (only then: a healthy rate costs one test): it stands when every repeat agrees, and is
    "inconclusive" otherwise.
    """
    n = steps or max(40, min(100, 2 * work.options.probe_steps))
    lrs = [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
    seed = work.options.seed
    first = _range_run(work, lrs, seed)
    current = work.lr(work.model)
    data: dict[str, Any] = {"lrs": first["lrs"], "losses": first["losses"], "current_lr": current}
    if "best_i" not in first:
        return ProbeResult("lr_range_test", "skipped", "the loss blew up almost at once", data)
    suggested, best, blowup = first["suggested_lr"], first["min_loss_lr"], first["blowup_lr"]
    data.update({"suggested_lr": suggested, "min_loss_lr": best, "blowup_lr": blowup})
    summary = f"suggested lr {suggested:.1e} (loss lowest at {best:.1e}" + (f", blows up from {blowup:.1e})" if blowup else ")")
    verdict = _lr_verdict(first, current)
    if verdict is None:
        return ProbeResult("lr_range_test", "pass", summary, data)
    repeats = [first] + [_range_run(work, lrs, seed + i) for i in range(1, max(1, work.options.probe_seeds))]
    verdicts = [_lr_verdict(t, current) for t in repeats]
    blowups = [t.get("blowup_lr") for t in repeats]
    suggestions = [t.get("suggested_lr") for t in repeats]
    data.update({"seeds": len(repeats), "verdicts": verdicts, "blowup_lrs": blowups, "suggested_lrs": suggestions})
    if any(v != verdict for v in verdicts):
        return ProbeResult("lr_range_test", "inconclusive", f"{summary}; the seeded repeats disagree about the current "
                           f"rate {current:.1e} ({', '.join(v or 'fine' for v in verdicts)})", data)
    known = [b for b in blowups if b is not None]
    if verdict == "lr_too_high":
        edge = min(known)
        f = make_finding(
            "LRN001", "lr_too_high", "optimizer", severity="high", confidence=0.8,
            title=f"The learning rate {current:.1e} is past the point where the loss blows up ({edge:.1e})",
            description=f"In a range test the loss was lowest near {best:.1e} and diverged from {blowup:.1e}"
                        + (f" (from {min(known):.1e} to {max(known):.1e} over {len(repeats)} seeds)" if len(repeats) > 1 else "")
                        + f"; training at {current:.1e} overshoots.",
            evidence=data, recommendations=[Recommendation("fix", f"Use a learning rate near {suggested:.0e}",
                                                           f"for g in optimizer.param_groups: g['lr'] = {suggested:.0e}")])
    else:
        f = make_finding(
            "LRN002", "lr_too_low", "optimizer", severity="medium", confidence=0.65,
            title=f"The learning rate {current:.1e} is over 1000x below the range test's suggestion {suggested:.1e}",
            description="The loss keeps falling faster at much higher rates: training at this rate crawls"
                        + (f" (all {len(repeats)} seeded range tests agree)." if len(repeats) > 1 else "."),
            evidence=data, recommendations=[Recommendation("fix", f"Try a learning rate near {suggested:.0e}",
                                                           f"for g in optimizer.param_groups: g['lr'] = {suggested:.0e}")])
    return ProbeResult("lr_range_test", "fail", summary, data, [f])
