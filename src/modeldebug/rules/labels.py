"""What the loss is told to learn: class-index and binary targets, and how the classes are balanced.

The loss patch records, per functional loss call of the training phase, the range of its input
and target and the counts of class-index targets (docs/record.md); crashes that name a label
problem are read through `data.crash_kind`. Shared with lossfn.py: `train_losses`, `loss_stat`,
`single_output`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import measures as M
from ..record import Entity
from .base import Finding, Recommendation, Rule
from .context import Context, fmt, window
from .data import model_layers
from .loss import still_falling
from .runtime import crash_findings

__all__ = ["ClassImbalance", "LabelCounts", "LabelIssue", "label_counts", "loss_stat", "per_sample_labels", "single_output",
           "token_prediction", "train_losses"]


CLASS_LOSSES = ("cross_entropy", "nll_loss")
BINARY_LOSSES = ("binary_cross_entropy", "binary_cross_entropy_with_logits")


# -- shared views of the record ------------------------------------------------------------------
def train_losses(ctx: Context, types: tuple[str, ...] | None = None) -> list[Entity]:
    """Functional loss calls of the training phase (the ones whose inputs were recorded)."""
    return [e for e in ctx.record.entities("loss") if e.info.get("phase") == "train"
            and (types is None or e.type in types)]


def loss_stat(ctx: Context, e: Entity, stat: str) -> np.ndarray:
    return ctx.record.series(e.name, stat, kind="loss").finite().values


@dataclass
class LabelCounts:
    """Class-index targets of one loss over the sampled steps: per batch and in total."""

    loss: Entity
    per_batch: list[np.ndarray]  # counts of classes 0..C-1 per sampled batch
    steps: list[int]

    @property
    def classes(self) -> int:
        return len(self.per_batch[0])

    @property
    def total(self) -> np.ndarray:
        return np.sum(self.per_batch, axis=0)

    def one_class_per_batch(self) -> bool:
        """Most sampled batches hold a single class, where shuffled batches of these shares rarely would.

        With class shares p and batch size B, a shuffled batch is single-class with probability
        sum(p_c ** B); sorted, unshuffled data makes nearly every batch single-class.
        """
        sizes = np.array([b.sum() for b in self.per_batch])
        if len(self.per_batch) < 3 or np.median(sizes) < 8 or (self.total > 0).sum() < 2:
            return False
        single = np.mean([(b > 0).sum() == 1 for b in self.per_batch])
        p = self.total / self.total.sum()
        return bool(single >= 0.8 and np.sum(p ** np.median(sizes)) <= 0.2)


    def ordering(self) -> float | None:
        """How much of each batch's label mix comes from the data's order (0: shuffled, 1: one class a batch).

        The batches' class counts against the pooled shares: a chi-square test of homogeneity over
        the sampled batches; its dispersion phi = chi2 / df is about 1 for shuffled batches
        (multinomial draws) and 1 + (B - 1) * rho when a share rho of the label variance within a
        batch of B is shared by the whole batch (runs of one label: data sorted by label, partly
        shuffled). Returns rho, or None when the test cannot tell order from chance (fewer than
        3 batches of 8, one class, or a p-value above about 3e-7 by the Wilson-Hilferty normal
        approximation of the chi-square).
        """
        table = np.array(self.per_batch)
        table = table[:, table.sum(0) > 0]
        sizes = table.sum(1)
        if len(table) < 3 or table.shape[1] < 2 or np.median(sizes) < 8 or (sizes == 0).any():
            return None
        expected = np.outer(sizes, table.sum(0) / table.sum())
        chi2 = float(((table - expected) ** 2 / expected).sum())
        df = (table.shape[0] - 1) * (table.shape[1] - 1)
        z = ((chi2 / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))
        if z < 5:
            return None
        return float(min(1.0, max(0.0, (chi2 / df - 1) / (float(np.mean(sizes)) - 1))))


def label_counts(ctx: Context) -> list[LabelCounts]:
    """Label counts of each class-index loss (the last bin, targets outside [0, C), is dropped)."""
    out = []
    for e in train_losses(ctx, CLASS_LOSSES):
        hists = ctx.record.histograms(e.name, kind="loss")
        if not hists or len(hists[0][3]) < 3:  # at least 2 classes plus the out-of-range bin
            continue
        width = len(hists[0][3])
        kept = [(s, c) for s, _, _, c in hists if len(c) == width]
        out.append(LabelCounts(e, [np.array(c[:-1], dtype=float) for _, c in kept], [s for s, _ in kept]))
    return out


#: Intra-batch label correlation from which batches count as read in label order (medium), and as
#: mostly sorted (high): a tenth of each batch's label variance is shared by the whole batch, or a third.
_ORDERED_RHO = 0.1
_SORTED_RHO = 0.3


def per_sample_labels(ctx: Context, lc: LabelCounts) -> bool:
    """One label per sample (1-d targets), not next-token targets: per-token labels within a
    sequence are correlated by nature, so their batches differ without any ordering."""
    return len(lc.loss.info.get("target_shape") or []) == 1 and not token_prediction(ctx, lc)


def token_prediction(ctx: Context, lc: LabelCounts) -> bool:
    """Next-token or large-vocabulary targets: their skew is the language's (word frequencies).

    One class per input token (the loss sees as many targets as the model's integer input has
    elements, or a multiple), a class count equal to an embedding table's rows or to the width of a
    one-hot input (every value 0 or 1, at most one 1 per row: words fed as rows of an identity
    matrix), or 1000 classes or more.
    """
    if lc.classes >= 1000:
        return True
    vocab = {int(e.info["shape"][0]) for e in ctx.params.values()
             if len(e.info.get("shape") or []) == 2 and (ctx.modules.get(e.info.get("module", "")) or e).type
             in ("Embedding", "EmbeddingBag")}
    if lc.classes in vocab:
        return True
    targets = int(np.prod(lc.loss.info.get("target_shape") or [0]))
    for e in ctx.record.entities("input"):
        shape = e.info.get("shape") or []
        if str(e.type).startswith(("int", "uint")) and len(shape) >= 2 and targets and targets % int(np.prod(shape)) == 0:
            return True
        if len(shape) >= 2 and shape[-1] == lc.classes and _one_hot(ctx, e):
            return True
    return False


def _one_hot(ctx: Context, e: Entity) -> bool:
    """Every sampled batch of input `e` held only 0s and 1s, at most one 1 per row of its last axis."""
    lo, hi, mean = (ctx.record.series(e.name, s, kind="input").finite().values for s in ("min", "max", "mean"))
    width = int((e.info.get("shape") or [0])[-1])
    return bool(len(mean) and width > 1 and lo.min() == 0 and hi.max() == 1 and mean.max() <= 1.0 / width * (1 + 1e-6))


def single_output(ctx: Context) -> Entity | None:
    """The last leaf module of the run's only model (None when there are several models)."""
    inputs = ctx.record.entities("input")
    layers = model_layers(ctx, inputs[0].name) if len(inputs) == 1 else []
    return layers[-1] if layers else None


# -- labels ------------------------------------------------------------------------------------------
_BOUNDED = {"Sigmoid": (0.0, 1.0), "Softmax": (0.0, 1.0), "Hardsigmoid": (0.0, 1.0), "Tanh": (-1.0, 1.0), "Hardtanh": (-1.0, 1.0)}
_REGRESSION = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")


#: An ignored value on at least this share of a dense target's positions leaves under 1 in 20 labelled: sparse
#: annotation by design (scribbles, clicks), not a background left out of dense masks.
_SPARSE_SHARE = 0.95


#: `_interpolated_masks`: borders needed to judge, and the share of them holding a class in between.
_MASK_MIN_EDGES = 50
_MASK_BETWEEN = 0.2
#: A class at least this share of whose pixels (counted per axis) sit in between is a boundary class by design.
_RING_CLASS = 0.5
#: Borders on more than this share of the positions read are values that vary pixel to pixel (a PixelCNN's
#: 256 intensities as classes), not regions: object masks have their borders on a few percent.
_MASK_EDGE_DENSITY = 0.25


class LabelIssue(Rule):
    """Detects LBL001; its documentation and options are in the catalogue (`modeldebug explain LBL001`)."""

    code = "LBL001"
    requires = (M.EXCEPTION, M.LOSS_CALLS, M.LABEL_COUNTS, M.IN_MIN, M.IN_MAX, M.TGT_MIN, M.TGT_MAX, M.TGT_MEAN, M.MODEL_INPUT,
                M.FUTURE_LEAK_PROBE, M.LOSS, M.MASK_EDGES)

    def check(self, ctx: Context) -> Iterator[Finding]:
        yield from crash_findings(self, ctx, self._crash)
        yield from self._shifted_targets(ctx)
        for lc in label_counts(ctx):
            yield from self._single_class(ctx, lc)
            ignored = self._ignored_majority(lc)
            if ignored is not None:
                yield ignored
        for e in train_losses(ctx, BINARY_LOSSES):
            lo, hi = loss_stat(ctx, e, "tgt_min"), loss_stat(ctx, e, "tgt_max")
            if len(lo) and (lo.min() < 0 or hi.max() > 1):
                yield self._binary_range(e, float(lo.min()), float(hi.max()))
        for e in train_losses(ctx, _REGRESSION):
            f = self._unreachable(ctx, e) or self._off_scale(ctx, e)
            if f is not None:
                yield f
        f = self._validation_disagrees(ctx)
        if f is not None:
            yield f
        f = self._interpolated_masks(ctx)
        if f is not None:
            yield f

    def _interpolated_masks(self, ctx: Context) -> Finding | None:
        """Dense class targets resized by interpolation: on most borders between classes a and c (two or
        more ids apart) the pixel between them holds a class strictly between (`mask_edges`)."""
        events = ctx.record.events(M.MASK_EDGES.name)
        if not events:
            return None
        classes = int(events[0].data.get("classes", 0))
        events = [e for e in events if int(e.data.get("classes", 0)) == classes]  # (one loss's targets)
        edges = sum(int(e.data.get("edges", 0)) for e in events)
        by_class = np.sum([e.data.get("between_by_class") or [0] * classes for e in events], axis=0)
        pixels = np.sum([e.data.get("pixels_by_class") or [0] * classes for e in events], axis=0)
        # a class whose pixels are mostly such rings is a boundary class drawn by design (background, border,
        # interior: 0, 1, 2), not one that gained rings: its in-between positions are left out
        rings = (pixels > 0) & (by_class >= _RING_CLASS * np.maximum(pixels, 1))
        between = int(by_class[~rings].sum())
        positions = sum(int(e.data.get("positions", 0)) for e in events)
        if edges < _MASK_MIN_EDGES or between < _MASK_BETWEEN * edges:
            return None
        if positions and edges > _MASK_EDGE_DENSITY * positions:
            return None  # borders everywhere: ordered values per pixel (intensities as classes), not objects' masks
        d = events[0].data
        share = between / edges
        return self.finding(
            severity="high" if share >= 0.5 else "medium", confidence=0.8,
            title=(f"The segmentation masks were resized by interpolation: {share:.0%} of the borders between classes "
                   "two or more ids apart hold a class in between"),
            description=(f"The {d.get('loss')} target (a class per pixel, shape {tuple(d.get('shape') or [])}, "
                         f"{d.get('classes')} classes) has {edges} positions, over {len(events)} sampled batches, whose "
                         f"neighbours on either side belong to classes two or more ids apart; {between} of them "
                         f"({share:.0%}) hold a class strictly between the two. A mask resized with bilinear (or any "
                         "averaging) interpolation and rounded makes exactly that: the border of classes 1 and 4 "
                         "becomes a ring of class 2 or 3, a class that is not there. A mask resized by nearest "
                         "neighbour keeps one side's class on every border. The model is taught to draw rings of "
                         "wrong classes around objects, and the per-class scores of the in-between classes suffer."),
            step=events[0].step, evidence={"edges": edges, "between": between, "share": share,
                                            "target_shape": d.get("shape"), "classes": d.get("classes")},
            recommendations=[Recommendation(
                "fix", "Resize masks (class ids) with nearest-neighbour interpolation; only images get bilinear.",
                "mask = F.interpolate(mask[None, None].float(), size=size, mode=\"nearest\")[0, 0].long()\n"
                "# torchvision: T.Resize(size, interpolation=T.InterpolationMode.NEAREST) for the mask\n"
                "# PIL: mask.resize(size, Image.NEAREST)")])

    def _ignored_majority(self, lc: LabelCounts) -> Finding | None:
        """A dense target (a class per pixel: `[B, H, W]` or more) whose `ignore_index` is a class the model
        predicts and the most common one in the target: background passed as `ignore_index=0` ("0 =
        unlabelled"). The loss never sees most of the pixels and the model never learns to predict that class,
        so every background pixel is scored as something else. Void labels (255, or a class that is a small
        share) and sequences' padding (`[B, T]` targets) are what ignore_index is for, and are left alone."""
        info = lc.loss.info
        k = (info.get("kwargs") or {}).get("ignore_index")
        shape = info.get("target_shape") or []
        if not isinstance(k, int) or not 0 <= k < lc.classes or len(shape) < 3:
            return None
        total = np.sum(lc.per_batch, axis=0)
        if not total.sum() or int(np.argmax(total)) != k:
            return None
        share = float(total[k] / total.sum())
        if share < 0.25:
            return None
        # Fewer than 1 position in 20 labelled is sparse annotation by design (scribbles, clicks), where the
        # most common value may well mean "unlabelled": the same numbers, so medium, and it says so.
        sparse = share >= _SPARSE_SHARE
        return self.finding(
            severity="high" if 0.5 <= share < _SPARSE_SHARE else "medium", confidence=0.5 if sparse else 0.75,
            title=(f"ignore_index={k} is the most common class of the target: the loss skips {share:.0%} of the "
                   f"pixels, and the model never learns class {k}"),
            description=(f"{lc.loss.name} is given targets of shape {tuple(shape)} (a class per position) with "
                         f"ignore_index={k}, one of the {lc.classes} classes the model predicts, and {share:.0%} of the target "
                         f"positions in the sampled batches are class {k}, more than any other. Those positions add "
                         f"nothing to the loss: class {k} (usually the background) is never trained, so at inference "
                         f"its pixels are scored as one of the other classes. ignore_index is for void labels (255, a "
                         "border) that no metric counts."
                         + (f" Only {1 - share:.1%} of the positions are labelled, as in sparse annotation (scribbles, "
                            f"clicks): if {k} means 'unlabelled' there, this is intended, and a void value outside the "
                            "classes (255) says so." if sparse else "")),
            location=None, step=lc.steps[0] if lc.steps else None,
            evidence={"ignore_index": k, "ignored_share": share, "classes": lc.classes, "target_shape": shape,
                      "class_shares": (total / total.sum()).round(4).tolist()[:20]},
            recommendations=[Recommendation(
                "fix", f"Train class {k}: drop ignore_index (or keep it for a void label that no metric counts).",
                "criterion = nn.CrossEntropyLoss()                      # background is a class\n"
                "# criterion = nn.CrossEntropyLoss(ignore_index=255)    # only for void/border pixels")])

    def _off_scale(self, ctx: Context, e: Entity) -> Finding | None:
        """Regression targets on a scale the model's output starts far from (raw seconds, prices): at
        step 0 the targets' mean or half-range is at least 10 and 100 times the largest output, and
        at the end the loss is still above 5% of where it started, and either still falling or above
        half its start (a run that came down and settled at its noise floor, such as a count
        regression with a large mean, got there). The
        first epochs go into growing an output bias to the targets' mean; standardising removes that."""
        tmean, tlo, thi = (ctx.record.series(e.name, n, kind="loss").finite() for n in ("tgt_mean", "tgt_min", "tgt_max"))
        lo, hi = (ctx.record.series(e.name, n, kind="loss").finite() for n in ("in_min", "in_max"))
        if not (len(tmean) and len(tlo) and len(thi) and len(lo) and len(hi)) or int(tmean.steps[0]) != 0 \
                or int(lo.steps[0]) != 0:
            return None
        target = max(abs(float(tmean.values[0])), (float(thi.values[0]) - float(tlo.values[0])) / 2)
        output = max(abs(float(lo.values[0])), abs(float(hi.values[0])))
        loss = ctx.loss.finite()
        if target < ctx.option("target_scale") or target < 100 * output or len(loss) < ctx.t.min_steps:
            return None
        w = window(len(loss))
        smooth = ctx.running_median(loss.values, w)
        start, end = float(smooth[w - 1]), float(smooth[-1])
        if not start > 0 or end < 0.05 * start:
            return None  # it got there: the scale cost some steps, not the run
        if end < 0.5 * start and not still_falling(loss.values):
            return None  # it came down and settled (noisy counts at their floor): the scale did not hold it back
        return self.finding(
            severity="medium", confidence=0.75,
            title=(f"Regression targets on a scale of {fmt(target)} while the model's output starts within "
                   f"{fmt(output)}: standardise them"),
            description=(f"At step 0 the targets of {e.name} had a mean of {fmt(float(tmean.values[0]))} (range "
                         f"{fmt(float(tlo.values[0]))} to {fmt(float(thi.values[0]))}) and the model's outputs lay within "
                         f"+-{fmt(output)}. Training first has to grow the output to the targets' scale, a step size at a "
                         f"time, before it can learn how they vary: at the end the loss was still {end / start:.0%} of "
                         f"where it started ({fmt(start)} -> {fmt(end)})."),
            location=None, step=0,
            evidence={"loss": e.name, "target_mean": float(tmean.values[0]), "target_min": float(tlo.values[0]),
                      "target_max": float(thi.values[0]), "output_max_abs": output, "target_scale": target,
                      "loss_start": start, "loss_end": end,
                      "explains_only": ["loss_not_decreasing", "lr_too_low"]},  # (ranking.py)
            recommendations=[
                Recommendation("fix", "Standardise the targets with the training set's mean and std; map predictions back.",
                               "y_mean, y_std = y_train.mean(), y_train.std()\n"
                               "loss = F.mse_loss(model(x), (y - y_mean) / y_std)\n"
                               "pred_in_units = model(x) * y_std + y_mean"),
                Recommendation("fix", "Or start the output layer's bias at the targets' mean.",
                               "nn.init.constant_(model.head.bias, float(y_train.mean()))")])

    def _validation_disagrees(self, ctx: Context) -> Finding | None:
        """A classifier that learned its training set but was worse than guessing on validation from
        the first evaluation on: at its best, the validation loss was twice the chance level (the
        loss of predicting the label frequencies) while the training loss fell below half of it.
        Overfitting starts from a model that generalised a little (at or below chance on validation,
        then rising); confidently wrong from the start means validation's labels mean something else
        (a class-to-index mapping built per split) or validation is another task."""
        from .dynamics import per_evaluation
        from .loss import chance_loss

        chance = chance_loss(ctx)
        train = ctx.loss.finite()
        if chance is None or chance[0] <= 0 or len(train) < ctx.t.min_steps:
            return None
        level, how = chance
        end = float(ctx.running_median(train.values, window(len(train)))[-1])
        if end > 0.5 * level:
            return None  # the training set was not learned either: another story
        for e in ctx.record.entities("loss"):
            kwargs = e.info.get("kwargs", {})
            if e.info.get("phase") != "val" or e.type not in ("cross_entropy", "nll_loss") \
                    or kwargs.get("reduction", "mean") != "mean" or kwargs.get("label_smoothing", 0.0):
                continue  # a summed validation loss is on another scale than the chance level
            series = ctx.record.series(e.name, "val_loss", kind="loss")
            steps, vals = per_evaluation(series.steps, series.values)
            if len(vals) < 3 or float(vals.min()) < 2 * level:
                continue
            best = int(np.argmin(vals))
            return self.finding(
                severity="high", confidence=0.75,
                title=(f"Validation is worse than guessing from the first evaluation: its best loss {fmt(float(vals[best]))} "
                       f"is {fmt(float(vals[best]) / level)}x the chance level, while training reached {fmt(end)}"),
                description=(f"Over {len(vals)} validation passes ({e.name}) the loss never came below "
                             f"{fmt(float(vals[best]))} (step {int(steps[best])}), {fmt(float(vals[best]) / level)}x the "
                             f"{fmt(level)} of predicting the label frequencies ({how}), while the training loss fell to "
                             f"{fmt(end)}. A model that overfits first generalises a little; this one was confidently "
                             "wrong on validation from the start, so validation is not the task it trained on: most "
                             "often its labels are numbered differently (a class-to-index mapping built separately for "
                             "each split, from an unsorted directory listing or from the classes each split holds), "
                             "else its inputs are prepared differently (BGR against RGB, another normalisation)."),
                location=None, step=int(steps[0]),
                evidence={"val_loss": {"steps": steps.tolist()[-12:], "values": vals.tolist()[-12:]},
                          "chance_loss": level, "best_val_loss": float(vals[best]), "final_train_loss": end,
                          "loss": e.name},
                recommendations=[Recommendation(
                    "fix", "Build one class-to-index mapping, from the training split, and use it for every split.",
                    "classes = sorted(os.listdir(train_root))          # sorted, and from one split only\n"
                    "class_to_idx = {c: i for i, c in enumerate(classes)}\n"
                    "train_set = Folder(train_root, class_to_idx)\nval_set = Folder(val_root, class_to_idx)"),
                    Recommendation("fix", "Prepare both splits with the same code (channel order, scaling, normalisation).",
                                   "x_val = preprocess(raw_val)   # the very function the training batches go through")],
            )
        return None

    def _crash(self, d: dict[str, Any]) -> tuple[str, str, list[Recommendation]]:
        msg = d.get("message", "")
        m = re.search(r"Target (-?\d+) is out of bounds", msg)
        if "between 0 and 1" in msg:
            return ("Binary cross-entropy targets outside [0, 1]",
                    "binary_cross_entropy needs targets between 0 and 1; the labels are -1/+1 or class indices.",
                    [Recommendation("fix", "Map the labels to 0/1 (or use cross_entropy for class indices).",
                                    "y = (y > 0).float()          # -1/+1 -> 0/1\n# class indices 0..C-1: nn.CrossEntropyLoss() on C logits")])
        target = m.group(1) if m else "a target"
        why = (f"The class index {target} is not in [0, C): "
               + ("negative labels (an unmapped -1 'unknown' class) reach the loss." if m and int(target) < 0 else
                  "labels are 1-based, or the output layer has fewer units than there are classes."))
        return (f"Label {target} is out of range for the model's classes", why,
                [Recommendation("fix", "Check the label range against the output size, then shift the labels or widen the output layer.",
                                "print(y.min().item(), y.max().item(), logits.shape[1])\n"
                                "y = y - 1                                   # 1-based labels -> 0..C-1\n"
                                "# or: nn.Linear(hidden, int(y.max()) + 1)   # one output per class")])

    def _shifted_targets(self, ctx: Context) -> Iterator[Finding]:
        """Token targets that are the input ids shifted by 2 or 3 positions: labels shifted twice (once
        in the data, once more by a loss that shifts, as GPT2LMHeadModel's does)."""
        for ev in ctx.record.events(M.FUTURE_LEAK_PROBE.name):
            k = ev.data.get("target_shift")
            if not isinstance(k, int) or k < 2:
                continue
            yield self.finding(
                severity="high", confidence=0.85,
                title=f"The targets are the input tokens shifted by {k} positions, not 1: the model is taught to predict {k} tokens ahead",
                description=(f"At {ev.data.get('targets_shifted', 0):.0%} of the positions the training loss's target is the "
                             f"input token {k} positions later. A language model predicts the next token; a shift of {k} "
                             f"usually means the labels were shifted twice: once when the data was made "
                             "(`labels = seq[1:]`) and again by a loss that shifts them itself (`logits[:, :-1]` against "
                             "`labels[:, 1:]`, as Hugging Face's causal-LM heads do). The model then learns a much harder "
                             "task and generates poorly."),
                location=None, step=ev.step, evidence=dict(ev.data),
                recommendations=[Recommendation(
                    "fix", "Shift the labels once: pass labels = input_ids when the model's loss shifts them.",
                    "input_ids, labels = seq[:-1], seq[:-1]     # the model shifts: logits[:, :-1] vs labels[:, 1:]\n"
                    "# or shift in the data and compare position by position: F.cross_entropy(logits, seq[1:])")])

    def _single_class(self, ctx: Context, lc: LabelCounts) -> Iterator[Finding]:
        total = lc.total
        present = np.flatnonzero(total)
        if len(lc.per_batch) < 2 or total.sum() < 16:
            return
        ev = {"loss": lc.loss.name, "classes": lc.classes, "label_counts": total.astype(int).tolist(), "sampled_batches": len(lc.per_batch)}
        if len(present) == 1:
            c = int(present[0])
            yield self.finding(
                severity="high", confidence=0.85, title=f"Every target is class {c}: the model of {lc.classes} classes sees one",
                description=(f"All {int(total.sum())} targets on {len(lc.per_batch)} sampled batches of {lc.loss.name} are class {c} "
                             f"although the model outputs {lc.classes} classes. The model learns to answer {c} whatever the input."),
                location=None, step=lc.steps[0], evidence=ev,
                recommendations=[Recommendation("fix", "Check where the labels are built: they are constant.",
                                                "print(torch.bincount(train_labels))   # one count per class; expect several non-zero")])
        elif lc.one_class_per_batch():
            per = [int(np.argmax(b)) for b in lc.per_batch]
            yield self.finding(
                severity="high", confidence=0.85, title="Batches hold a single class each: the data is sorted by label and not shuffled",
                description=(f"Nearly every one of {len(per)} sampled batches of {lc.loss.name} has targets of one class only (classes {per[:8]} "
                             "at steps " + ", ".join(str(s) for s in lc.steps[:8]) + "). The model is pushed to one class per "
                             "stretch of batches and forgets the others: the loss swings instead of falling."),
                step=lc.steps[0], evidence=ev | {"class_per_batch": per[:50]},
                recommendations=[Recommendation("fix", "Shuffle the training data.",
                                                "loader = DataLoader(train_set, batch_size=64, shuffle=True)")])
        elif per_sample_labels(ctx, lc) and (rho := lc.ordering()) is not None and rho >= _ORDERED_RHO:
            mixes = "; ".join("/".join(str(int(c)) for c in b) for b in lc.per_batch[:6])
            yield self.finding(
                severity="high" if rho >= _SORTED_RHO else "medium", confidence=0.8,
                title=f"Batches are far more alike in label than shuffled batches would be: the data is read in label order ({rho:.0%} of each batch's label mix comes from its order)",
                description=(f"The class counts of {len(lc.per_batch)} sampled batches of {lc.loss.name} ({mixes} ...) differ from "
                             "batch to batch far more than random batches of these class shares could (chi-square test of "
                             f"homogeneity; intra-batch label correlation {rho:.2f}, 0 when shuffled, 1 when each batch holds one class). "
                             "The data is sorted or grouped by label and only partly shuffled: the model is pushed towards "
                             "one class per stretch of batches, so the loss swings as if the learning rate were too high, "
                             "and the sampled label shares look skewed. A tensor shuffled with Python's "
                             "random.shuffle(t) reads this way too: it swaps rows through views, so rows are "
                             "duplicated, others lost, and runs of the sorted order stay."),
                step=lc.steps[0], evidence=ev | {"batch_label_correlation": rho},
                recommendations=[Recommendation("fix", "Shuffle the training data (every epoch), with a permutation "
                                                "index for a tensor, never random.shuffle on it.",
                                                "loader = DataLoader(train_set, batch_size=64, shuffle=True)\n"
                                                "table = table[torch.randperm(len(table))]   # not random.shuffle(table)")])

    def _binary_range(self, e: Entity, lo: float, hi: float) -> Finding:
        minus = lo < 0
        return self.finding(
            severity="high", confidence=0.9, title=f"{e.type} targets range {fmt(lo)}..{fmt(hi)}, outside [0, 1]",
            description=(f"{e.type} treats its target as the probability of the positive class, so it must lie in [0, 1]; "
                         f"here targets reach {fmt(lo)}..{fmt(hi)}. "
                         + ("Labels -1/+1 make the loss reward pushing the negative class's logits to +infinity." if minus else
                            "These look like class indices: a multi-class problem needs cross_entropy.")),
            location=None, step=0, evidence={"loss": e.name, "tgt_min": lo, "tgt_max": hi, "target_shape": e.info.get("target_shape")},
            recommendations=[Recommendation("fix", "Map the targets into [0, 1]." if minus else "Use cross-entropy over C logits for class indices.",
                                            "y = (y + 1) / 2            # -1/+1 -> 0/1" if minus else
                                            "model.head = nn.Linear(hidden, num_classes)\nloss = nn.CrossEntropyLoss()(logits, y.long())")])

    def _unreachable(self, ctx: Context, e: Entity) -> Finding | None:
        last = single_output(ctx)
        if last is None or last.type not in _BOUNDED:
            return None
        lo, hi = _BOUNDED[last.type]
        in_lo, in_hi = loss_stat(ctx, e, "in_min"), loss_stat(ctx, e, "in_max")
        t_lo, t_hi = loss_stat(ctx, e, "tgt_min"), loss_stat(ctx, e, "tgt_max")
        if not (len(in_lo) and len(t_lo)) or in_lo.min() < lo - 1e-6 or in_hi.max() > hi + 1e-6:
            return None
        margin = 0.5 * (hi - lo)
        if not (t_hi.max() > hi + margin or t_lo.min() < lo - margin):
            return None
        return self.finding(
            severity="high", confidence=0.8,
            title=f"Targets reach {fmt(float(t_lo.min()))}..{fmt(float(t_hi.max()))} but the model ends in {last.type} ({fmt(lo)}..{fmt(hi)})",
            description=(f"{e.name} compares outputs of {ctx.label(last.name)}, which can only produce values in [{fmt(lo)}, {fmt(hi)}], "
                         f"with targets up to {fmt(float(t_hi.max()))}. The output saturates chasing values it can never reach."),
            location=last.name, step=0,
            evidence={"loss": e.name, "output_range": [lo, hi], "tgt_min": float(t_lo.min()), "tgt_max": float(t_hi.max())},
            recommendations=[Recommendation("fix", f"Drop the final {last.type} for regression, or scale the targets into its range.",
                                            f"# model = nn.Sequential(..., nn.Linear(h, 1))         # no {last.type} at the end\n"
                                            "y_scaled = (y - y_min) / (y_max - y_min)              # or scale targets to the output range")])


def _final_loss(losses: np.ndarray) -> float:
    """Median of the last quarter: a minibatch's loss swings with how many rare labels it holds."""
    return float(np.median(losses[-max(window(len(losses)), len(losses) // 4):]))


def _rare_class_loss(ctx: Context, lc: LabelCounts) -> tuple[float, int] | None:
    """An upper bound on the rare classes' mean per-sample loss late in the run, and the samples behind it.

    On a sampled step of the run's second half, a mean-reduced loss over B labels of which k are
    rare is at least k / B times the rare samples' mean loss (every per-sample loss is >= 0), so
    sum(B * loss) / sum(k) over those steps bounds it from above. Below ln 2, the model gives the
    right class more than half the probability on its rare samples (geometric mean): it predicts
    them. None when there is no such step, several losses, or a reduction other than the mean.
    """
    if len(train_losses(ctx)) != 1 or lc.loss.info.get("kwargs", {}).get("reduction", "mean") != "mean":
        return None
    total = lc.total
    rare = total < total.max() / math.sqrt(ctx.option("class_imbalance_ratio"))
    loss = ctx.loss
    if not len(loss) or not rare.any():
        return None
    by_step = dict(zip(loss.steps.tolist(), loss.values.tolist()))
    half = int(loss.steps[-1]) / 2
    num, k = 0.0, 0
    for step, counts in zip(lc.steps, lc.per_batch):
        value = by_step.get(step)
        n_rare = int(counts[rare].sum())
        if step < half or value is None or not np.isfinite(value) or n_rare == 0:
            continue
        num += float(counts.sum()) * value
        k += n_rare
    return (num / k, k) if k else None


def _weighted_for_it(weight: list[float] | None, counts: np.ndarray, limit: float) -> bool:
    """Is the loss weighted for the imbalance? Its class weights (`weight=`, or `[1, pos_weight]` for
    binary targets) times the counts of the classes seen: within the square root of `limit` of each
    other, or at most the square root of the raw ratio (weights that take out at least half of the skew
    on a log scale: the square root of the inverse frequency, a common softer choice, gives exactly
    that; the inverse frequency, the fix, gives 1:1)."""
    if not weight or len(weight) < len(counts):
        return False
    w = np.asarray(weight[:len(counts)], dtype=float)
    seen = counts > 0
    if not (np.isfinite(w[seen]).all() and (w[seen] > 0).all()):
        return False
    mass, raw = w[seen] * counts[seen], counts[seen]
    weighted = mass.max() / mass.min()
    return bool(weighted < math.sqrt(limit) or weighted <= math.sqrt(raw.max() / raw.min()) * 1.01)


# -- class balance ---------------------------------------------------------------------------------------
class ClassImbalance(Rule):
    """Detects DAT003; its documentation and options are in the catalogue (`modeldebug explain DAT003`)."""

    code = "DAT003"
    requires = (M.LOSS, M.LOSS_CALLS, M.LABEL_COUNTS, M.TGT_MIN, M.TGT_MAX, M.TGT_MEAN, M.MODEL_INPUT)

    def check(self, ctx: Context) -> Iterator[Finding]:
        limit = ctx.option("class_imbalance_ratio")
        for lc in label_counts(ctx):
            total = lc.total
            backwards = self._weights_follow_frequency(lc)
            if backwards is not None:
                yield backwards
                continue
            if len(lc.loss.info.get("target_shape") or []) != 1 or token_prediction(ctx, lc):
                continue  # per-token or per-pixel labels: skewed by nature (word frequencies, background)
            if (total > 0).sum() < 2 or lc.one_class_per_batch() or total.sum() < 20 * lc.classes:
                continue  # one class, or sorted data: LabelIssue's business; too few labels to judge
            if (rho := lc.ordering()) is not None and rho >= _ORDERED_RHO:
                continue  # batches read in label order: the sampled shares are the order's, not the data's
            seen = total[total > 0]  # an output no sampled label names has no count to take a ratio from
            ratio = float(seen.max() / seen.min())
            # A model that learned only the prior is judged from a milder skew: the effect is there. A loss
            # whose `weight=` lifts the rare classes already sees them nearly balanced: the fix is in.
            skewed = not _weighted_for_it(lc.loss.info.get("class_weight"), total, limit) and (
                ratio >= limit or (ratio >= math.sqrt(limit) and self._collapsed(ctx, lc.loss, total)))
            if skewed:
                yield self._finding(ctx, lc.loss, total, ratio, limit, lc.steps[0], _rare_class_loss(ctx, lc))
            elif not total.all():
                yield self._unlabelled_outputs(lc)
        for e in train_losses(ctx, BINARY_LOSSES):
            shape = e.info.get("input_shape") or []
            lo, hi, mean = loss_stat(ctx, e, "tgt_min"), loss_stat(ctx, e, "tgt_max"), loss_stat(ctx, e, "tgt_mean")
            if not (len(mean) and shape and int(np.prod(shape[1:])) == 1 and lo.min() == 0 and hi.max() == 1):
                continue
            p = float(np.mean(mean))
            ratio = max(p, 1 - p) / min(p, 1 - p)
            n = shape[0] * len(mean)
            counts = np.array([1 - p, p]) * n
            pos_weight = e.info.get("pos_weight")
            if pos_weight and _weighted_for_it([1.0, float(np.mean(pos_weight))], counts, limit):
                continue  # `pos_weight=` lifts the positives: the loss already sees the classes nearly balanced
            if (ratio >= limit or (ratio >= math.sqrt(limit) and self._collapsed(ctx, e, counts))) and min(p, 1 - p) * n >= 5:
                yield self._finding(ctx, e, counts, ratio, limit, 0)

    def _weights_follow_frequency(self, lc: LabelCounts) -> Finding | None:
        """Class weights given to the loss that grow with the class's frequency (`count / total` where
        the inverse was meant): the frequent classes count more, and the rare one, which the weights
        were there to lift, counts least. Per-pixel labels too: the user weighted them on purpose."""
        weight = lc.loss.info.get("class_weight")
        total = lc.total
        seen = np.flatnonzero(total > 0)
        if not weight or len(weight) < len(total) or len(seen) < 3:
            return None
        w, p = np.asarray(weight, dtype=float)[seen], total[seen] / total.sum()
        if w.min() <= 0 or w.max() / w.min() < 2 or p.max() / p.min() < 5:
            return None  # uniform weights, or classes balanced enough for weights not to matter
        rho = _rank_correlation(w, p)
        if rho < 0.8:
            return None
        rare, common = int(seen[np.argmin(p)]), int(seen[np.argmax(p)])
        lift = float(w[np.argmax(p)] / w[np.argmin(p)])
        inverse = total.sum() / (len(seen) * np.maximum(total, 1))
        return self.finding(
            severity="high", confidence=0.85,
            title=(f"The loss's class weights grow with class frequency: the rarest class ({rare}, {p.min():.1%} of labels) "
                   f"weighs {fmt(lift)}x less than the most frequent ({common})"),
            description=(f"{lc.loss.name} is given weight= per class, and the weights rise with how often each class "
                         f"occurs (rank correlation {rho:.2f} over {len(seen)} classes): class {common} ({p.max():.1%} of the "
                         f"labels) weighs {fmt(float(w.max()))}, class {rare} ({p.min():.1%}) {fmt(float(w.min()))}. Weights "
                         "meant to lift the rare classes (the inverse frequency) were computed as the frequency itself, so "
                         "they push the model further towards the frequent classes than no weights would."),
            location=None, step=int(lc.steps[0]),
            evidence={"loss": lc.loss.name, "class_weight": [float(v) for v in weight][:100],
                      "class_share": (total / total.sum()).tolist()[:100], "rank_correlation": rho},
            recommendations=[Recommendation(
                "fix", "Weight each class by the inverse of its frequency.",
                "weight = counts.sum() / (len(counts) * counts)   # was counts / counts.sum()\n"
                f"# here: [{', '.join(fmt(float(v)) for v in inverse[:10])}{', ...' if len(inverse) > 10 else ''}]\n"
                "loss_fn = nn.CrossEntropyLoss(weight=weight.float().to(device))")],
        )

    @staticmethod
    def _collapsed(ctx: Context, e: Entity, counts: np.ndarray) -> bool:
        """The final training loss is still at the label entropy: the model predicts the class prior.

        Not far above a uniform prediction's loss (ln C) either: a loss much worse than that is
        broken by something else (an initialisation, a rate), not settled on the prior.
        """
        p = counts / counts.sum()
        entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum())
        losses = ctx.loss.finite().values
        if len(losses) < ctx.t.min_steps or entropy <= 0 or len(train_losses(ctx)) != 1:
            return False
        if float(e.info.get("kwargs", {}).get("label_smoothing", 0.0) or 0.0):
            return False
        final = _final_loss(losses)
        return ctx.option("prior_loss_fraction") * entropy <= final <= 1.1 * math.log(max(len(counts), 2))

    def _finding(self, ctx: Context, e: Entity, counts: np.ndarray, ratio: float, limit: float, step: int,
                 rare_loss: tuple[float, int] | None = None) -> Finding:
        p = counts / counts.sum()
        entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum())
        binary = e.type in BINARY_LOSSES
        losses = ctx.loss.finite().values
        final = _final_loss(losses) if len(losses) >= ctx.t.min_steps else math.nan
        collapsed = self._collapsed(ctx, e, counts)
        # Severity from the effect: a model that only predicts the prior (the minority never predicted)
        # is high; a skew the model learns through is worth knowing, no more.
        rare = int(np.argmin(np.where(counts > 0, counts, np.inf)))
        absent = np.flatnonzero(counts == 0)
        learned = rare_loss is not None and rare_loss[0] < math.log(2)
        severity = "high" if collapsed else ("low" if learned else "medium" if ratio >= limit**2 else "low")
        if collapsed:
            effect = ""
        elif learned and rare_loss is not None:
            effect = (f" The model handles it: on the {rare_loss[1]} rare-class samples of the sampled batches of the run's second half, "
                      f"the loss is at most {fmt(rare_loss[0])} per sample (below ln 2: the model gives the right class more "
                      "than half the probability), so the rare classes are predicted.")
        else:
            effect = (" Whether the model predicts the rare class could not be measured (the record holds the loss per batch "
                      "and the labels of sampled batches, not the predicted classes): check its recall.")
        share = ", ".join(f"{c}: {v:.1%}" for c, v in enumerate(p[:10])) + (" ..." if len(p) > 10 else "")
        if len(absent):
            effect += (f" Output{'s' if len(absent) > 1 else ''} {_listed(absent)} never appeared among the {int(counts.sum())} "
                       f"sampled labels and {'are' if len(absent) > 1 else 'is'} left out of the ratio.")
        if binary:
            pos = float(counts[0] / max(counts[1], 1e-12))
            fix = f"loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([{pos:.3g}]))   # negatives / positives"
        else:
            w = counts.sum() / ((counts > 0).sum() * np.where(counts > 0, counts, np.inf))
            w[absent] = w.max()  # no sampled label: at least the rarest class's weight (moot if it is never a target)
            fix = ("weight = torch.tensor([" + ", ".join(f"{x:.3g}" for x in w) + "])   # total / (classes * count), from these counts"
                   + (f"; class{'es' if len(absent) > 1 else ''} {_listed(absent)}: no sampled label, the rarest's weight"
                      if len(absent) else "") + "\n"
                   "loss_fn = nn.CrossEntropyLoss(weight=weight.to(device))")
        flat = (f" The training loss ends at {fmt(final)}, {final / entropy:.0%} of the label entropy {fmt(entropy)}: "
                "what predicting the class frequencies gives, so the model ignores the input." if collapsed else "")
        return self.finding(
            severity=severity, confidence=0.8 if collapsed else 0.6,
            title=f"Classes are imbalanced {fmt(ratio)}:1 (class {rare} is {p[rare]:.1%} of {'targets' if binary else 'labels'})",
            description=(f"Over the sampled batches of {e.name}, the most frequent class is {fmt(ratio)}x as frequent as the "
                         f"rarest (shares {share}).{flat}{effect}"),
            step=step,
            evidence={"loss": e.name, "class_share": p.tolist()[:100], "imbalance_ratio": ratio, "label_entropy": entropy,
                      "unlabelled_outputs": absent.tolist()[:100],
                      "final_loss": final, "predicts_prior": collapsed,
                      "rare_class_loss_bound": rare_loss[0] if rare_loss else None, "rare_class_learned": learned}
            # found only because the model settled on the prior (a skew under the limit): the finding rests on a
            # loss stuck there, the input ignored; what stops the learning (dead units) explains it (rules/ranking.py)
            | ({"rests_on": ["input_ignored", "loss_not_decreasing"]} if collapsed and ratio < limit else {}),
            recommendations=[
                Recommendation("fix", "Weight the loss by inverse class frequency.", fix),
                Recommendation("best_practice", "Or oversample the rare classes, and judge with per-class recall or F1, not accuracy.",
                               "counts = torch.bincount(train_labels)\nsample_weight = (1.0 / counts.float())[train_labels]\n"
                               "sampler = torch.utils.data.WeightedRandomSampler(sample_weight, num_samples=len(sample_weight))\n"
                               "loader = DataLoader(train_set, batch_size=64, sampler=sampler)"),
            ])

    def _unlabelled_outputs(self, lc: LabelCounts) -> Finding:
        """Outputs that no sampled label names, the classes that do appear not skewed enough for an
        imbalance finding: more outputs than classes, or classes too rare to show up in the sample.
        The counts cannot tell which."""
        total = lc.total
        absent = np.flatnonzero(total == 0)
        n, present = int(total.sum()), int((total > 0).sum())
        which = f"output{'s' if len(absent) > 1 else ''} {_listed(absent)}"
        return self.finding(
            severity="low", confidence=0.5,
            title=f"No sampled label is class {_listed(absent, 'or')}: {lc.classes} outputs, {present} classes seen",
            description=(f"The loss {lc.loss.name} scores {lc.classes} outputs, but none of the {n} labels of its "
                         f"{len(lc.per_batch)} sampled batches names {which}. Either the output layer is wider than the "
                         f"data has classes (harmless to learning, but accuracy and per-class metrics count classes that "
                         f"do not exist), or {'these classes are' if len(absent) > 1 else 'the class is'} rarer than 1 "
                         f"in {n} labels: an imbalance too strong to measure from the sample, which the model will not learn "
                         "without weighting or oversampling."),
            step=lc.steps[0],
            evidence={"loss": lc.loss.name, "classes": lc.classes, "unlabelled_outputs": absent.tolist()[:100],
                      "label_counts": total.astype(int).tolist()[:100], "sampled_labels": n},
            recommendations=[
                Recommendation("fix", "Count the labels over the whole training set, then size the output layer to the classes there are.",
                               f"print(torch.bincount(train_labels, minlength={lc.classes}))   # a 0: an output with no class\n"
                               f"model.head = nn.Linear(hidden, {present})   # if the classes are {present}, relabelled 0..{present - 1}"),
                Recommendation("best_practice", "If the class exists but is that rare, oversample it and judge with per-class recall.",
                               "sampler = torch.utils.data.WeightedRandomSampler(sample_weight, num_samples=len(sample_weight))"),
            ])


def _listed(classes: np.ndarray, last: str = "and") -> str:
    names = [str(int(c)) for c in classes[:8]] + (["..."] if len(classes) > 8 else [])
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties given their average rank."""
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(len(a), dtype=float)
    for v in np.unique(a):
        tied = a == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two equally long arrays (ties at their average rank)."""
    ra, rb = _ranks(np.asarray(a, dtype=float)), _ranks(np.asarray(b, dtype=float))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den else 0.0

