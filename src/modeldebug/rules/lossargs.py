"""Loss arguments that silently change what is learned: a ``kl_div`` reduction that also divides by the
classes, and CTC targets that use the blank index.

Reads the loss call entities (keyword arguments, input shape; for ``ctc_loss`` the ``blank`` index),
the sampled steps of each loss call, the per-symbol counts of CTC targets (`capture.losses.
ctc_symbol_counts`), the optimizer events and the step loss. Each check is a function of the rule
that reports it, so another code could report the same path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import measures as M
from ..record import Entity
from .base import Finding, Recommendation, Rule
from .context import Context, fmt
from .labels import train_losses
from .lossfn import broadcast_shape
from .measures import ADAPTIVE_OPTIMIZERS

__all__ = ["CtcBlankInTargets", "KlDivMeanReduction", "ctc_blank_targets", "kl_mean_reduction"]

#: Optimizers whose step is proportional to the gradient: a term C times smaller moves the weights C times less.
_PLAIN_STEP = ("SGD", "ASGD")


# -- kl_div reduction='mean' -------------------------------------------------------------------------------
def _call_steps(ctx: Context, e: Entity) -> np.ndarray:
    """The steps a loss call's input was measured at: its first call, then the sampled steps."""
    return ctx.record.series(e.name, M.IN_MIN.name, kind="loss").steps


def _optimizer_at(ctx: Context, step: int) -> dict[str, Any] | None:
    """The optimizer that trains from `step`: the latest to take its first step at or before it (a
    student's optimizer, built after a teacher's), else the first; None when that is ambiguous."""
    events = sorted(ctx.record.events(M.OPTIMIZER.name), key=lambda ev: ev.step)
    if not events:
        return None
    before = [ev for ev in events if ev.step <= step]
    mine = [ev for ev in before if ev.step == before[-1].step] if before else events[:1]
    if len({str(ev.data.get("type")) for ev in mine}) != 1:
        return None
    return dict(mine[0].data)


def _fall(ctx: Context, first: int, last: int) -> tuple[float, float, int] | None:
    """(loss at the start, at the end, steps) of the step loss over [first, last]: the median of its
    first twentieth (3 steps at least) and of its last quarter; None on fewer than `min_steps` steps."""
    s = ctx.loss.finite()
    v = s.values[(s.steps >= first) & (s.steps <= last)]
    if len(v) < ctx.t.min_steps:
        return None
    return float(np.median(v[: max(3, len(v) // 20)])), float(np.median(v[-max(1, len(v) // 4):])), len(v)


def kl_mean_reduction(rule: Rule, ctx: Context) -> Iterator[Finding]:
    """A training ``kl_div`` call with reduction='mean' over more than one value per sample."""
    for e in train_losses(ctx, ("kl_div",)):
        if e.info.get("kwargs", {}).get("reduction", "mean") != "mean":
            continue
        shape = list(e.info.get("input_shape") or [])
        if len(shape) < 2 or not shape[0]:
            continue
        out = broadcast_shape(shape, list(e.info.get("target_shape") or shape)) or shape
        per_sample = int(np.prod(out[1:]))
        if per_sample <= 1:
            continue
        steps = _call_steps(ctx, e)
        first, last = (int(steps.min()), int(steps.max())) if len(steps) else (0, max(ctx.n_steps - 1, 0))
        others = sorted({o.name for o in train_losses(ctx) if o.name != e.name
                         and np.any((_call_steps(ctx, o) >= first) & (_call_steps(ctx, o) <= last))})
        yield _kl_finding(rule, ctx, e, shape, per_sample, first, last, others)


def _kl_finding(rule: Rule, ctx: Context, e: Entity, shape: list[int], c: int, first: int, last: int,
                others: list[str]) -> Finding:
    opt = _optimizer_at(ctx, first)
    kind = str(opt.get("type")) if opt else None
    group = (opt.get("groups") or [{}])[0] if opt else {}
    lr = group.get("lr") if isinstance(group.get("lr"), (int, float)) else None
    wd = float(group.get("weight_decay") or 0.0)
    fall = _fall(ctx, first, last)
    drop = 1 - fall[1] / fall[0] if fall is not None and fall[0] > 0 else None
    slow = drop is not None and drop < ctx.option("kl_slow_fall")
    alone = not others
    moved = (f" The loss fell {fmt(100 * drop)}% over {fall[2]} steps ({fmt(fall[0])} -> {fmt(fall[1])})."
             if fall is not None and drop is not None else "")
    opt_said = f"{kind} (lr {fmt(lr)})" if kind and lr is not None else (kind or "an unknown optimizer")
    if alone and kind in _PLAIN_STEP and slow:
        severity, confidence = "high", 0.9
        harm = (f"It is the only loss the model trains on from step {first}, and {opt_said} moves the weights in "
                f"proportion to the gradient: every step is {c}x shorter than intended, as if the learning rate were "
                f"{fmt(lr / c) if lr else f'{c}x lower'}.{moved} With a distillation loss the student then barely "
                "learns from the teacher.")
    elif not alone:
        severity, confidence = "medium", 0.85
        harm = (f"It is added to {', '.join(others)} in the same steps, which then outweighs it {c}x more than "
                "intended: the model learns mostly from the other term (in distillation: from the labels, hardly "
                "from the teacher).")
    elif kind in ADAPTIVE_OPTIMIZERS and (wd == 0 or kind == "AdamW"):
        severity, confidence = "low", 0.8
        harm = (f"As the only loss its scale matters little to {kind}, which divides each gradient by its running "
                f"size; the value logged is still {c}x below the divergence, and any loss or L2 penalty added to it "
                "later would outweigh it.")
    elif kind in ADAPTIVE_OPTIMIZERS:
        severity, confidence = "medium", 0.8
        harm = (f"{kind} rescales gradients, but its weight_decay ({fmt(wd)}) is added to the gradient before that "
                f"and now outweighs the KL term {c}x more than intended.")
    else:
        severity, confidence = "medium", 0.8
        harm = (f"With {opt_said} the steps this term drives are up to {c}x shorter than intended." + moved
                + (" The loss still fell, so the learning rate may already make up for it." if drop is not None and not slow
                   else ""))
    per = f"the {c} classes" if len(shape) == 2 else f"the {c} values of each sample"
    return rule.finding(
        severity=severity, confidence=confidence,  # type: ignore[arg-type]
        title=f"kl_div with reduction='mean' divides by {per} as well as the batch: the KL term and its gradient are {c}x too small",
        description=(f"{e.name} was called with reduction='mean' (the default of nn.KLDivLoss() and F.kl_div) on an input of "
                     f"shape {tuple(shape)}. PyTorch's 'mean' divides the summed divergence by every element, batch x {c}, "
                     f"not by the batch: the value is not the KL divergence ('batchmean' is; torch warns about this), and "
                     f"it and its gradient are {c}x smaller. {harm}"),
        step=first,
        evidence={"loss": e.name, "reduction": "mean", "input_shape": shape, "values_per_sample": c, "scale": 1 / c,
                  "first_step": first, "optimizer": kind, "lr": lr, "effective_lr": lr / c if lr else None,
                  "weight_decay": wd, "only_loss": alone, "other_losses": others,
                  "loss_start": fall[0] if fall else None, "loss_end": fall[1] if fall else None, "loss_fall": drop},
        recommendations=[
            Recommendation("fix", "Use reduction='batchmean': it divides by the batch only and gives the KL divergence.",
                           'kd_criterion = nn.KLDivLoss(reduction="batchmean")   # was nn.KLDivLoss(): reduction="mean"\n'
                           'loss = F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean") * T * T'),
            Recommendation("best_practice", f"The KL term becomes {c}x larger: recheck a learning rate or loss weight "
                                            "(alpha) tuned around the small one."),
        ])


class KlDivMeanReduction(Rule):
    """Detects LSS003; its documentation and options are in the catalogue (`modeldebug explain LSS003`)."""

    code = "LSS003"
    requires = (M.LOSS_CALLS, M.IN_MIN, M.OPTIMIZER, M.LOSS)

    def check(self, ctx: Context) -> Iterator[Finding]:
        yield from kl_mean_reduction(self, ctx)


# -- CTC targets holding the blank ----------------------------------------------------------------------
def _symbol_counts(ctx: Context, e: Entity) -> tuple[np.ndarray, int] | None:
    """(counts of symbols 0..C-1 summed over the sampled calls, the first step with a blank) of a CTC loss."""
    hists = ctx.record.histograms(e.name, kind="loss")
    if not hists:
        return None
    width = len(hists[0][3])
    kept = [(int(s), np.asarray(c, dtype=float)) for s, _, _, c in hists if len(c) == width]
    blank = e.info.get("kwargs", {}).get("blank", 0)
    if blank is None:
        return None  # a blank index that could not be read as an integer: not judged
    if width < 2 or not 0 <= blank < width - 1:
        return None
    hit = [s for s, c in kept if c[blank] > 0]
    return np.sum([c for _, c in kept], axis=0)[:-1], (hit[0] if hit else kept[0][0])


def ctc_blank_targets(rule: Rule, ctx: Context) -> Iterator[Finding]:
    """CTC targets (within their target_lengths) that equal the blank index; one finding per loss."""
    train = train_losses(ctx, ("ctc_loss",))
    losses = train or [e for e in ctx.record.entities("loss") if e.type == "ctc_loss"]
    for e in losses[:1]:
        got = _symbol_counts(ctx, e)
        if got is None:
            continue
        counts, step = got
        blank, total = int(e.info["kwargs"].get("blank", 0)), float(counts.sum())
        n = float(counts[blank])
        if n <= 0 or total <= 0:
            continue
        share = n / total
        others = np.delete(counts, blank)
        used = others[others > 0]
        typical = float(np.median(used)) / total if len(used) else 0.0
        loss = ctx.loss.finite()
        lowest = float(loss.values.min()) if train and len(train_losses(ctx)) == 1 and len(loss) else None
        negative = lowest is not None and lowest < 0
        ev = {"loss": e.name, "blank": blank, "classes": len(counts), "targets_equal_blank": int(n),
              "target_symbols": int(total), "blank_share": share, "typical_symbol_share": typical,
              "sampled_calls": len(ctx.record.histograms(e.name, kind="loss")), "lowest_loss": lowest}
        like = (f", as often as a typical symbol ({fmt(100 * typical)}%): a real symbol is encoded as the blank"
                if typical and 0.33 <= share / typical <= 3 else "")
        neg = (f" The training loss went below zero (lowest {fmt(lowest)}), which a CTC negative log-likelihood "
               "with valid targets cannot do." if negative else "")
        yield rule.finding(
            severity="high" if share >= 0.005 or negative else "medium", confidence=0.95 if negative else 0.9,
            title=(f"CTC targets contain the blank index {blank}: {fmt(100 * share)}% of the target symbols "
                   f"({int(n)} of {int(total)})"),
            description=(f"{e.name} was called with blank={blank}, and {int(n)} of the {int(total)} target symbols within "
                         f"target_lengths on the sampled calls equal {blank}{like}. CTC requires that no target is the blank, "
                         "and raises no error when one is: the model is taught to emit the blank where that symbol stands, "
                         "which the decoder drops, so the symbol can never be read, and the loss is no longer the "
                         f"probability of the targets (it trains on a wrong objective).{neg}"),
            step=step, evidence=ev, recommendations=[_ctc_fix(blank)])


def _ctc_fix(blank: int) -> Recommendation:
    if blank == 0:
        return Recommendation(
            "fix", "Shift every symbol up by one so that 0 stays the blank, and give the model C + 1 outputs.",
            "targets = labels + 1                           # symbols 1..C; 0 is only the blank\n"
            "ctc = nn.CTCLoss(blank=0)\n"
            "self.out = nn.Linear(hidden, num_symbols + 1)  # C + 1 outputs: the blank and every symbol\n"
            "# decoding: drop 0 (the blank), then symbol = index - 1")
    return Recommendation(
        "fix", f"Keep the symbols off index {blank}: put the blank on an index no symbol uses (the last output).",
        "ctc = nn.CTCLoss(blank=num_symbols)            # labels stay 0..num_symbols - 1\n"
        "self.out = nn.Linear(hidden, num_symbols + 1)  # C + 1 outputs: every symbol, then the blank")


class CtcBlankInTargets(Rule):
    """Detects LSS004; its documentation and options are in the catalogue (`modeldebug explain LSS004`)."""

    code = "LSS004"
    requires = (M.LOSS_CALLS, M.LABEL_COUNTS, M.LOSS)

    def check(self, ctx: Context) -> Iterator[Finding]:
        yield from ctc_blank_targets(self, ctx)
