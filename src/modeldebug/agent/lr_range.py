"""The learning-rate range test (Smith; fastai's and Lightning's `lr_find`), run on a copy.

The rate rises exponentially from `lo` to `hi` over the steps. The copy trains on the request's
batches but the loss is read on data it never trains on (the last batch, or the second half of a
single batch): trained and scored on the same few samples, the loss keeps falling at any rate as
they are memorised (Adam's step shrinks with the gradient), and the suggestion used to run off to
the end of the range (1.0 for Adam on a small MLP). That loss is smoothed; the rate of its minimum,
where it starts to rise, divided by ten is suggested (fastai's "minimum / 10"), and the rate where
the smoothed loss passes four times its minimum (or goes non-finite) is where it blows up. On the
healthy models of the tests (MLPs, a BatchNorm CNN, an LSTM, a small GPT, a regression MLP) this
suggests 7e-4 to 3e-2 for Adam and 1e-2 to 0.23 for SGD, each at most a tenth of its blow-up rate. A verdict against the
current rate (past the blow-up: LRN001 lr_too_high; over 1000x below the suggestion while the
loss clearly falls, by more than 1% and three times its noise at the lowest rates: LRN002 lr_too_low) is repeated with the other probe seeds and stands only when
every repeat agrees; otherwise the probe is "inconclusive". So is a test that found no minimum (the
loss never fell clearly below its start, or was still falling at the top of the range: no rate is
suggested from the edge of the range), and one whose current rate lies above the tested range
with no blow-up inside it. A crash of the model on the test's batches is named, not called a blow-up.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..rules.base import Recommendation
from .intervals import tail_noise
from .probes import ProbeResult, _batch_size
from .request import Workload
from .tools.base import make_finding
from .trainer import short_run

__all__ = ["range_test"]


def _rows(v: Any, sl: slice, n: int) -> Any:
    """`v` with `sl` taken along the batch axis of every tensor whose first axis has length `n`."""
    if isinstance(v, torch.Tensor):
        if v.dim() == 0 or v.shape[0] != n:
            raise ValueError("no batch axis")
        return v[sl]
    if isinstance(v, dict):
        return {k: _rows(u, sl, n) for k, u in v.items()}
    if isinstance(v, (tuple, list)):
        return type(v)(_rows(u, sl, n) for u in v)
    if v is None:
        return None
    raise ValueError("not a tensor")


def held_out(work: Workload) -> tuple[list[tuple[Any, Any]], tuple[Any, Any]] | None:
    """(batches to train on, a batch to score on) that the training never sees.

    Several batches: the last is held out. One batch of at least 8 samples: its second half.
    Trained and scored on the same samples, the loss keeps falling at any rate as the copy memorises
    them (an adaptive optimizer's step shrinks with the gradient), and the test never finds the rate
    where training breaks down.
    """
    if len(work.batches) >= 2:
        return work.batches[:-1], work.batches[-1]
    x, y = work.batch
    n = _batch_size(work)
    if n < 8:
        return None
    half = n // 2
    try:
        return [(_rows(x, slice(0, half), n), _rows(y, slice(0, half), n))], (_rows(x, slice(half, n), n),
                                                                               _rows(y, slice(half, n), n))
    except ValueError:
        return None


def _range_run(work: Workload, lrs: list[float], seed: int) -> dict[str, Any]:
    """One range test: the losses, the rate of the lowest smoothed loss, and where it blows up."""
    n = len(lrs)
    split = held_out(work)
    if split is None:
        run = short_run(work, steps=n, one_batch=False, lr_schedule=lambda i: lrs[min(i, n - 1)], seed=seed)
        losses = run.losses
    else:
        run = short_run(work, steps=n, batches=split[0], score_on=split[1], one_batch=False,
                        lr_schedule=lambda i: lrs[min(i, n - 1)], seed=seed)
        losses = run.extras["scored"]
    smooth, avg = [], 0.0
    for i, v in enumerate(losses):
        if not math.isfinite(v):
            break
        avg = 0.8 * avg + 0.2 * v
        smooth.append(avg / (1 - 0.8 ** (i + 1)))
    out: dict[str, Any] = {"lrs": lrs[:len(losses)], "losses": losses, "smooth": smooth, "held_out": split is not None}
    if run.error is not None:
        out["error"] = f"{type(run.error).__name__}: {str(run.error).strip().splitlines()[0][:200] if str(run.error).strip() else ''}"
    if len(smooth) < 10:
        return out
    best_i = min(range(len(smooth)), key=smooth.__getitem__)
    blowup_i = next((i for i in range(best_i, len(smooth)) if smooth[i] > 4 * smooth[best_i]), None)
    if blowup_i is None and len(smooth) < n:
        blowup_i = min(len(smooth), n - 1)  # the loss went non-finite at this step
    falls = smooth[0] - smooth[best_i] > max(3 * tail_noise(losses[:max(3, n // 5)]), 0.01 * abs(smooth[0]))
    # A minimum that is no clear fall from the start (the loss never fell: its lowest point is noise at
    # the first rates), or that is the last rate tested (still falling there) is no minimum: no rate is
    # suggested from it.
    edge = None if falls and not (best_i == len(smooth) - 1 and len(smooth) == n) else ("top" if falls else "none")
    out.update(best_i=best_i, suggested_lr=lrs[best_i] / 10 if edge is None else None, min_loss_lr=lrs[best_i],
               blowup_lr=lrs[blowup_i] if blowup_i is not None else None, falls=falls, edge=edge)
    return out


def _lr_verdict(t: dict[str, Any], current: float | None) -> str | None:
    """"lr_too_high", "lr_too_low" or None for one range test."""
    if current is None or "best_i" not in t:
        return None
    if t["blowup_lr"] is not None and current >= t["blowup_lr"]:
        return "lr_too_high"
    if t["suggested_lr"] is not None and current < t["suggested_lr"] / 1000 and t["falls"]:
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
    current = work.lr()
    data: dict[str, Any] = {"lrs": first["lrs"], "losses": first["losses"], "current_lr": current}
    if "best_i" not in first:
        if "error" in first:  # the model crashed on the range test's batches (a half batch, a held-out one)
            data["error"] = first["error"]
            return ProbeResult("lr_range_test", "skipped", f"training crashed after {len(first['losses'])} steps "
                               f"of the range test ({first['error']}): the test trains on part of the batch "
                               "(its first half, or all but the last loader batch)", data)
        if first["losses"] and not math.isfinite(first["losses"][0]):
            return ProbeResult("lr_range_test", "skipped", "the loss was non-finite from the first step, at the "
                               f"lowest rate ({lo:.0e}): no rate is to blame", data)
        return ProbeResult("lr_range_test", "skipped", f"the loss blew up within {len(first['losses'])} steps, "
                           f"below {first['lrs'][-1]:.1e}: too few steps to find a minimum", data)
    suggested, best, blowup = first["suggested_lr"], first["min_loss_lr"], first["blowup_lr"]
    data.update({"suggested_lr": suggested, "min_loss_lr": best, "blowup_lr": blowup})
    blows = f"blows up from {blowup:.1e}" if blowup else ""
    if first["edge"] == "none":
        summary = f"no minimum found: the loss never fell clearly below its start at any rate from {lo:.0e}" \
                  + (f"; it {blows}" if blowup else f" to {hi:.0e}")
    elif first["edge"] == "top":
        summary = f"no minimum found: the loss was still falling at the top of the tested range ({hi:.0e})"
    else:
        summary = f"suggested lr {suggested:.1e} (loss lowest at {best:.1e}" + (f", {blows})" if blowup else ")")
    verdict = _lr_verdict(first, current)
    if verdict is None:
        if current is not None and current > hi and blowup is None:
            return ProbeResult("lr_range_test", "inconclusive", f"the current rate {current:.1e} is outside the tested "
                               f"range ({lo:.0e} to {hi:.0e}), where the loss never blew up: no verdict on it; "
                               + summary, data)
        if suggested is None:
            return ProbeResult("lr_range_test", "inconclusive", summary, data)
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
            description=(f"In a range test the loss was lowest near {best:.1e} and diverged from {blowup:.1e}" if suggested
                         else f"In a range test the loss never fell clearly and diverged from {blowup:.1e}")
                        + (f" (from {min(known):.1e} to {max(known):.1e} over {len(repeats)} seeds)" if len(repeats) > 1 else "")
                        + f"; training at {current:.1e} overshoots.",
            evidence=data, recommendations=[Recommendation("fix", f"Use a learning rate near {suggested:.0e}",
                                                           f"for g in optimizer.param_groups: g['lr'] = {suggested:.0e}")
                                            if suggested is not None else
                                            Recommendation("fix", f"Use a learning rate well below {edge:.0e} (the "
                                                           "range test found no minimum to suggest one from)",
                                                           f"for g in optimizer.param_groups: g['lr'] = {edge / 100:.0e}")])
    else:
        f = make_finding(
            "LRN002", "lr_too_low", "optimizer", severity="medium", confidence=0.65,
            title=f"The learning rate {current:.1e} is over 1000x below the range test's suggestion {suggested:.1e}",
            description="The loss keeps falling faster at much higher rates: training at this rate crawls"
                        + (f" (all {len(repeats)} seeded range tests agree)." if len(repeats) > 1 else "."),
            evidence=data, recommendations=[Recommendation("fix", f"Try a learning rate near {suggested:.0e}",
                                                           f"for g in optimizer.param_groups: g['lr'] = {suggested:.0e}")])
    return ProbeResult("lr_range_test", "fail", summary, data, [f])
