"""Loss wiring: what the loss function is fed, probabilities where logits belong, and shapes that broadcast.

Reads the loss call statistics (input range, whether rows are probabilities, input and target
shapes; docs/record.md) and crashes whose message says the loss's target and input sizes differ
(`data.crash_kind`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..record import Entity
from .base import Finding, Recommendation, Rule
from .context import Context, fmt
from .runtime import crash_findings
from .labels import loss_stat, single_output, train_losses

__all__ = ["DoubleSoftmax", "LossShapeMismatch", "broadcast_shape"]

# Thresholds (each read through ctx.threshold, so DebuggingConfig.thresholds can override it).
PROBABILITY_ROWSUM = 1e-3     # |row sum - 1| at or below this: the loss input rows are probabilities


# -- loss inputs --------------------------------------------------------------------------------------------
_REMOVE_SOFTMAX = Recommendation(
    "fix", "Return raw logits from the model; the loss normalises them itself.",
    "def forward(self, x):\n    return self.head(x)          # no softmax/sigmoid here\n"
    "probs = model(x).softmax(dim=1)   # apply it only where you need probabilities (inference)")


class DoubleSoftmax(Rule):
    """The loss gets probabilities where it expects logits (or logits where it expects log-probabilities).

    ## What it detects
    On sampled steps, what the loss function receives: `cross_entropy` inputs whose rows are
    already probability distributions (all values in [0, 1], every row summing to 1 within
    `probability_rowsum`, default 1e-3), i.e. a softmax before a loss that applies log-softmax
    itself; `cross_entropy` or `binary_cross_entropy_with_logits` inputs that all lie in [0, 1] on
    every sampled step (a sigmoid in front of a loss that applies its own; judged on 16 values or
    more); `nll_loss` inputs with positive values, which a log-probability never has (softmax
    output, or raw logits, where `log_softmax` was needed).

    ## Why is this bad?
    Squashed inputs make the loss nearly flat: a softmax'ed row fed to cross-entropy can only move
    the loss between log(C) and log(C) - 1 + small, so gradients vanish and training stalls. A
    `nll_loss` on raw logits is unbounded below and rewards making one logit huge.

    ## Example
    ```python
    return F.softmax(self.fc(x), dim=1)          # then nn.CrossEntropyLoss()(out, y)
    return torch.sigmoid(self.fc(x))             # then nn.BCEWithLogitsLoss()(out, y)
    ```

    ## Recommended fix
    Return logits from `forward` and let `CrossEntropyLoss`/`BCEWithLogitsLoss` normalise; use
    `log_softmax` (not `softmax`) before `nll_loss`.

    ## Known problems
    Only the functional losses are seen (loss modules call them too); a hand-written loss is not.
    A model whose logits all happen to lie in [0, 1] on every sampled batch would be flagged.
    """

    code = "LSS001"
    kind = "double_softmax"
    category = "loss"
    explains = ("loss_not_decreasing", "vanishing_gradients", "saturated_activations", "loss_diverging")

    def check(self, ctx: Context) -> Iterator[Finding]:
        tol = ctx.threshold("probability_rowsum", PROBABILITY_ROWSUM)
        last = single_output(ctx)
        for e in train_losses(ctx, ("cross_entropy", "nll_loss", "binary_cross_entropy_with_logits")):
            shape = e.info.get("input_shape") or []
            frac01, rowdev, hi = loss_stat(ctx, e, "in_frac_01"), loss_stat(ctx, e, "in_rowsum_dev"), loss_stat(ctx, e, "in_max")
            if not len(frac01) or not shape:
                continue
            in01 = bool(np.all(frac01 >= 1.0)) and int(np.prod(shape)) >= 16
            classes = shape[1] if len(shape) >= 2 else 1
            rows = classes >= 2 and in01 and len(rowdev) and bool(np.all(rowdev <= tol))
            ev = {"loss": e.name, "input_shape": shape, "in_frac_01": float(frac01.min()),
                  "in_rowsum_dev": float(rowdev.max()) if len(rowdev) else None, "in_max": float(hi.max()) if len(hi) else None}
            where = last.name if last is not None and last.type in ("Softmax", "Sigmoid", "LogSoftmax") else None
            if e.type == "cross_entropy" and rows:
                yield self._softmax_ce(e, ev, classes, where)
            elif e.type == "cross_entropy" and in01 and classes >= 2:
                yield self._squashed(e, ev, "cross_entropy", "a sigmoid (or another squashing)", where)
            elif e.type == "binary_cross_entropy_with_logits" and in01:
                yield self._squashed(e, ev, "binary_cross_entropy_with_logits", "a sigmoid", where)
            elif e.type == "nll_loss" and len(hi) and hi.max() > 1e-4:
                yield self._nll(e, ev, bool(rows), float(hi.max()), where)

    def _softmax_ce(self, e: Entity, ev: dict[str, Any], classes: int, where: str | None) -> Finding:
        floor = math.log(classes) - math.log(1 + (classes - 1) / math.e) if classes > 1 else 0.0
        return self.finding(
            severity="high", confidence=0.9, title="Softmax before cross_entropy: the loss applies log_softmax to probabilities",
            description=(f"Every row cross_entropy received sums to 1 (largest deviation {fmt(ev['in_rowsum_dev'])}) with all values "
                         f"in [0, 1]: the model already applies softmax, and cross_entropy applies log_softmax again. With {classes} "
                         f"classes the loss can then only fall from log(C) = {fmt(math.log(classes))} by about {fmt(floor)}, and "
                         "its gradients are tiny."),
            location=where, step=0, evidence=ev | {"classes": classes}, recommendations=[_REMOVE_SOFTMAX])

    def _squashed(self, e: Entity, ev: dict[str, Any], loss: str, what: str, where: str | None) -> Finding:
        return self.finding(
            severity="high", confidence=0.85, title=f"{loss} gets values squashed into [0, 1]: {what} is applied before a loss that expects logits",
            description=(f"On every sampled step, all inputs of {loss} lay in [0, 1]. It expects unbounded logits and applies "
                         f"its own {'sigmoid' if 'binary' in loss else 'log_softmax'}; squashing them first caps how confident "
                         "the model can get and shrinks the gradients."),
            location=where, step=0, evidence=ev, recommendations=[_REMOVE_SOFTMAX])

    def _nll(self, e: Entity, ev: dict[str, Any], probs: bool, hi: float, where: str | None) -> Finding:
        what = "probabilities (softmax output)" if probs else "raw logits"
        return self.finding(
            severity="high", confidence=0.9, title=f"nll_loss gets {what}, not log-probabilities",
            description=(f"nll_loss expects log_softmax output, which is never positive; its inputs reach {fmt(hi)}. "
                         + ("On probabilities the loss is -p, bounded and nearly flat." if probs else
                            "On raw logits the loss is unbounded below: the model is rewarded for making one logit huge.")),
            location=where, step=0, evidence=ev,
            recommendations=[Recommendation("fix", "Feed nll_loss log-probabilities, or give cross_entropy the logits.",
                                            "loss = F.nll_loss(F.log_softmax(logits, dim=1), y)\n# equivalent: loss = F.cross_entropy(logits, y)")])


# -- loss shapes ------------------------------------------------------------------------------------------
_ELEMENTWISE = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "poisson_nll_loss", "soft_margin_loss")


def broadcast_shape(a: list[int], b: list[int]) -> list[int] | None:
    """The shape `a` and `b` broadcast to, or None when they do not."""
    out = []
    for x, y in zip(reversed([1] * (len(b) - len(a)) + a), reversed([1] * (len(a) - len(b)) + b)):
        if x != y and 1 not in (x, y):
            return None
        out.append(max(x, y) if 0 not in (x, y) else 0)
    return out[::-1]


class LossShapeMismatch(Rule):
    """The loss compares tensors of different shapes that broadcast, or classifies over one class.

    ## What it detects
    Elementwise losses (`mse_loss`, `l1_loss`, `smooth_l1_loss`, `huber_loss`, `kl_div`, ...) whose
    input and target shapes differ and broadcast to a shape other than the input's, such as
    (N, 1) against (N,), which compares every prediction with every target; `cross_entropy` or
    `nll_loss` over an input with one class, whose loss is always 0; and crashes whose message says
    the loss's target and input sizes differ.

    ## Why is this bad?
    Broadcasting silently computes a different loss: with (N, 1) against (N,) the best the model
    can do is predict the batch mean, so the loss plateaus at the target variance. Cross-entropy over
    one class is identically zero and passes no gradient.

    ## Example
    ```python
    loss = F.mse_loss(model(x), y)           # model(x): (64, 1), y: (64,)
    head = nn.Linear(128, 1); loss = nn.CrossEntropyLoss()(head(h), y)
    ```

    ## Recommended fix
    Make the shapes equal (`y.view_as(pred)`, or `pred.squeeze(1)`); for a binary task use one
    logit with `BCEWithLogitsLoss`, or two logits with `CrossEntropyLoss`.

    ## Known problems
    The shapes are those of the first call of each loss in each phase; a shape that changes later
    (a last, smaller batch) is not re-read. A target broadcast on purpose across the batch
    (a fixed reference vector) is not flagged.
    """

    code = "LSS002"
    kind = "loss_shape_mismatch"
    category = "loss"
    explains = ("loss_not_decreasing", "params_not_updating", "vanishing_gradients")

    def check(self, ctx: Context) -> Iterator[Finding]:
        yield from crash_findings(self, ctx, self._crash)
        flagged: set[str] = set()
        for e in ctx.record.entities("loss"):  # training calls first, then validation ones
            a, b = e.info.get("input_shape"), e.info.get("target_shape")
            if not a or e.type in flagged:
                continue  # the same loss wired the same way in validation: one bug, reported once
            out = broadcast_shape(a, b) if b and e.type in _ELEMENTWISE and a != b else None
            ev = {"loss": e.name, "input_shape": a, "target_shape": b, "phase": e.info.get("phase")}
            if out is not None and out != a:
                flagged.add(e.type)
                yield self.finding(
                    severity="high", confidence=0.9,
                    title=f"{e.name} compares input {tuple(a)} with target {tuple(b)}: they broadcast to {tuple(out)}",
                    description=(f"{e.type} got an input of shape {tuple(a)} and a target of shape {tuple(b)}; PyTorch broadcasts "
                                 f"them to {tuple(out)}, so every prediction is compared with every target of the batch. The "
                                 "best the model can then do is predict the mean target: the loss stalls at the target variance."),
                    step=0, evidence=ev | {"broadcast_shape": out},
                    recommendations=[Recommendation("fix", "Give the prediction and the target the same shape.",
                                                    "loss = loss_fn(pred, y.view_as(pred))   # or loss_fn(pred.squeeze(1), y)")])
            elif e.type in ("cross_entropy", "nll_loss") and len(a) >= 2 and a[1] == 1:
                flagged.add(e.type)
                yield self.finding(
                    severity="high", confidence=0.9, title=f"{e.name} over a single class: the loss is always 0",
                    description=(f"{e.type} got an input of shape {tuple(a)}: one class. The softmax over one value is 1, so the "
                                 "loss is exactly 0 and no gradient flows. A binary task needs one logit with "
                                 "binary_cross_entropy_with_logits, or two logits with cross_entropy."),
                    step=0, evidence=ev,
                    recommendations=[Recommendation("fix", "Use a binary loss on the single logit (or two output units).",
                                                    "loss = nn.BCEWithLogitsLoss()(logits.squeeze(1), y.float())\n"
                                                    "# or: model.head = nn.Linear(hidden, 2); nn.CrossEntropyLoss()(logits, y)")])

    def _crash(self, d: dict[str, Any]) -> tuple[str, str, list[Recommendation]]:
        msg = d.get("message", "")
        if "multi-target" in msg:
            return ("Class targets have an extra axis: cross_entropy needs (N,) class indices",
                    "The targets are (N, 1) (or one-hot); class-index losses take one integer per sample.",
                    [Recommendation("fix", "Drop the extra axis, or turn one-hot rows into indices.",
                                    "y = y.squeeze(1)          # (N, 1) -> (N,)\ny = y.argmax(1)           # one-hot -> indices")])
        m = re.search(r"target size \(torch\.Size\(\[([\d, ]*)\]\)\).*input size \(torch\.Size\(\[([\d, ]*)\]\)\)", msg, re.I)
        shapes = f" (target [{m.group(1)}], input [{m.group(2)}])" if m else ""
        return (f"Loss target and input sizes differ{shapes}",
                "The loss compares elementwise, so target and input must have the same shape.",
                [Recommendation("fix", "Give the prediction and the target the same shape.",
                                "loss = loss_fn(pred, y.view_as(pred))   # or loss_fn(pred.squeeze(1), y.float())")])
