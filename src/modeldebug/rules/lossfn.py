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

from .. import measures as M
from ..record import Entity
from .base import Finding, Recommendation, Rule
from .context import RELU_LIKE, Context, fmt
from .runtime import crash_findings
from .labels import loss_stat, single_output, train_losses

__all__ = ["DoubleSoftmax", "LossShapeMismatch", "broadcast_shape"]


# -- loss inputs --------------------------------------------------------------------------------------------
# logits exactly 0 at their smallest on this many sampled steps (and never below): clamped, not chance
_CLAMPED_MIN_SAMPLES = 3
_REMOVE_SOFTMAX = Recommendation(
    "fix", "Return raw logits from the model; the loss normalises them itself.",
    "def forward(self, x):\n    return self.head(x)          # no softmax/sigmoid here\n"
    "probs = model(x).softmax(dim=1)   # apply it only where you need probabilities (inference)")


#: sampled calls in a row whose every input row is a probability distribution: one phase of a run fed softmax
_STRETCH_CALLS = 3


def _probability_stretch(ctx: Context, e: Entity, tol: float) -> tuple[int, int, int] | None:
    """The longest run of consecutive sampled calls (at least `_STRETCH_CALLS`) whose inputs all lie in [0, 1]
    with rows summing to 1, as (first step, last step, calls); None when there is none. A run that trains two
    models in turn with the same loss (a teacher, then a student) shares one loss entity: the softmax fed in
    by one phase only shows as such a stretch."""
    f = ctx.record.series(e.name, "in_frac_01", kind="loss")
    r = ctx.record.series(e.name, "in_rowsum_dev", kind="loss")
    if len(f) != len(r) or not len(f) or not np.array_equal(f.steps, r.steps):
        return None
    ok = (np.nan_to_num(f.values) >= 1.0) & (np.nan_to_num(r.values, nan=np.inf) <= tol)
    best, start = None, None
    for i, good in enumerate([*ok.tolist(), False]):
        if good and start is None:
            start = i
        elif not good and start is not None:
            if i - start >= _STRETCH_CALLS and (best is None or i - start > best[1] - best[0]):
                best = (start, i)
            start = None
    if best is None:
        return None
    return int(f.steps[best[0]]), int(f.steps[best[1] - 1]), best[1] - best[0]


class DoubleSoftmax(Rule):
    """Detects LSS001; its documentation and options are in the catalogue (`modeldebug explain LSS001`)."""

    code = "LSS001"
    requires = (M.LOSS_CALLS, M.IN_FRAC_01, M.IN_ROWSUM_DEV, M.IN_MIN, M.IN_MAX, M.MODEL_INPUT, M.DEAD_FRAC,
                M.CATEGORICAL_PROBS_AS_LOGITS)

    def check(self, ctx: Context) -> Iterator[Finding]:
        for ev in ctx.record.events(M.CATEGORICAL_PROBS_AS_LOGITS.name)[:1]:
            yield self._categorical(ev.step, ev.data)
        tol = ctx.option("probability_rowsum")
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
            dead = None if rows or where is not None else _dead_layer(ctx)
            if in01 and dead is not None:
                continue  # constant logits of a dead network that happen to lie in [0, 1]: no squashing seen
            lo = loss_stat(ctx, e, "in_min")
            if (e.type in ("cross_entropy", "binary_cross_entropy_with_logits") and not rows and where is None and dead is None
                    and len(lo) >= _CLAMPED_MIN_SAMPLES and bool(np.all(lo == 0.0)) and len(hi) and hi.max() > 0):
                yield self._clamped(ctx, e, ev | {"in_min": 0.0, "sampled_steps": len(lo)}, classes, last)
                continue
            stretch = None if rows or classes < 2 or e.type != "cross_entropy" else _probability_stretch(ctx, e, tol)
            if e.type == "cross_entropy" and (rows or stretch is not None):
                yield self._softmax_ce(e, ev, classes, where, stretch)
            elif e.type == "cross_entropy" and in01 and classes >= 2:
                yield self._squashed(e, ev, "cross_entropy", "a sigmoid (or another squashing)", where)
            elif e.type == "binary_cross_entropy_with_logits" and in01:
                yield self._squashed(e, ev, "binary_cross_entropy_with_logits", "a sigmoid", where)
            elif e.type == "nll_loss" and len(hi) and hi.max() > 1e-4:
                yield self._nll(e, ev, bool(rows), float(hi.max()), where)

    def _categorical(self, step: int | None, ev: dict[str, Any]) -> Finding:
        dist = ev.get("distribution") or "Categorical"
        k = (ev.get("shape") or [0])[-1]
        return self.finding(
            severity="high", confidence=0.9,
            title=f"{dist}(logits=...) is given probabilities: it applies a softmax to them again",
            description=(f"A {dist} was built with logits whose values lie in [{ev.get('min', 0):.3g}, {ev.get('max', 1):.3g}] "
                         f"and whose rows sum to 1 (within {ev.get('rowsum_dev', 0):.1e}) over its {k} outcomes: a "
                         "softmax's output. `logits=` takes unnormalised scores and applies the softmax itself, so the "
                         f"distribution sampled is softmax(probabilities), squeezed towards uniform (at most e = 2.72 "
                         "times between the likeliest and the least likely outcome), whatever the network learns, and "
                         "the log-probabilities a policy gradient follows are flattened the same way."),
            location=None, step=step,
            evidence={"distribution": dist, "shape": ev.get("shape"), "logits_min": ev.get("min"),
                      "logits_max": ev.get("max"), "rowsum_dev": ev.get("rowsum_dev")},
            recommendations=[
                Recommendation("fix", "Pass the probabilities as probs=, or drop the network's softmax and pass its scores as logits=.",
                               f"dist = torch.distributions.{dist}(probs=probs)        # the network ends in a softmax\n"
                               "# or: return scores from the network (no softmax) and\n"
                               f"dist = torch.distributions.{dist}(logits=scores)"),
            ],
        )

    def _softmax_ce(self, e: Entity, ev: dict[str, Any], classes: int, where: str | None,
                    stretch: tuple[int, int, int] | None = None) -> Finding:
        floor = math.log(classes) - math.log(1 + (classes - 1) / math.e) if classes > 1 else 0.0
        when = "Every row cross_entropy received sums to 1"
        if stretch is not None:  # one phase of the run: another model, or another loop, gave it scores
            first, last, n = stretch
            when = (f"From step {first} to step {last} ({n} sampled calls in a row), every row cross_entropy received "
                    "sums to 1, while its other calls took unnormalised scores (a second model, or a second phase of "
                    "the script such as a student trained after its teacher)")
            ev = ev | {"from_step": first, "to_step": last, "sampled_calls": n, "in_rowsum_dev": 0.0}
        return self.finding(
            severity="high", confidence=0.9 if stretch is None else 0.8,
            title="Softmax before cross_entropy: the loss applies log_softmax to probabilities",
            description=(f"{when} (largest deviation {fmt(ev['in_rowsum_dev'])}) with all values "
                         f"in [0, 1]: the model already applies softmax, and cross_entropy applies log_softmax again. With {classes} "
                         f"classes the loss can then only fall from log(C) = {fmt(math.log(classes))} by about {fmt(floor)}, and "
                         "its gradients are tiny."),
            location=where, step=0 if stretch is None else stretch[0], evidence=ev | {"classes": classes},
            recommendations=[_REMOVE_SOFTMAX])

    def _clamped(self, ctx: Context, e: Entity, ev: dict[str, Any], classes: int, last: Entity | None) -> Finding:
        """Logits that are never negative: a ReLU (or a clamp at 0) on the model's output."""
        relu = last if last is not None and last.type in RELU_LIKE else None
        dead = ctx.module_stat("dead_frac").get(relu.name) if relu is not None else None
        dead_frac = float(np.median(dead.finite().values)) if dead is not None and len(dead.finite()) else 0.0
        binary = e.type == "binary_cross_entropy_with_logits"
        if binary:
            harm = ("A logit of 0 is a probability of 0.5, so no prediction can fall below 0.5: the model cannot say "
                    "'negative' with any confidence, and every logit clamped at 0 gets no gradient.")
        else:
            outputs = classes if classes >= 2 else 0
            harm = ("Softmax does not need negative logits (it ignores a shift), but the clamp stops the gradient of "
                    "every logit it holds at 0: a class whose output unit stops firing gets no signal to recover")
            if dead_frac > 0 and outputs:
                n_dead = max(1, round(dead_frac * outputs))
                harm += (f", and {n_dead} of the {outputs} output units of {relu.name} "  # type: ignore[union-attr]
                         f"{'is' if n_dead == 1 else 'are'} already zero for every sample: "
                         f"{'that class' if n_dead == 1 else 'those classes'} can never be predicted over the others")
            harm += "."
        where = relu.name if relu is not None else None
        return self.finding(
            severity="high" if binary or dead_frac > 0 else "medium", confidence=0.85 if relu is not None else 0.7,
            title=(f"{e.type} gets logits clamped at 0: "
                   + (f"the model ends in {relu.type} ({relu.name})" if relu is not None else "a ReLU or clamp on the model's output")),
            description=(f"On all {ev['sampled_steps']} sampled steps the smallest input of {e.type} was exactly 0 (largest "
                         f"{fmt(ev['in_max'])}): the logits are never negative. {harm}"),
            location=where, step=0, evidence=ev | {"clamping_module": where, "dead_output_fraction": dead_frac},
            recommendations=[Recommendation(
                "fix", "End the model with the Linear layer: the loss takes raw logits.",
                "self.head = nn.Sequential(nn.Linear(n_hidden, n_classes))   # no nn.ReLU() after the last Linear\n"
                "loss = criterion(self.head(h), y)")])

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


def _dead_layer(ctx: Context) -> str | None:
    """A ReLU-like layer whose every unit is zero for every sample (median over the sampled steps).

    Everything after it is the same for every input: the model's outputs are its later biases, so
    outputs that lie in [0, 1] say nothing about a squashing (the dead layer is the cause to fix).
    """
    for name, s in ctx.module_stat("dead_frac").items():
        e = ctx.modules.get(name)
        v = s.finite().values
        if e is not None and e.type in RELU_LIKE and len(v) and float(np.median(v)) >= 0.99:
            return name
    return None


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
    """Detects LSS002; its documentation and options are in the catalogue (`modeldebug explain LSS002`)."""

    code = "LSS002"
    requires = (M.EXCEPTION, M.LOSS_CALLS)

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
