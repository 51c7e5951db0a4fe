"""Sampling rules: what the training DataLoader's sampler lets the model see."""

from __future__ import annotations

from collections.abc import Iterator

from .. import measures as M
from .base import Finding, Recommendation, Rule
from .context import Context

__all__ = ["SamplerCoverage"]

#: At most this many distinct sample weights: weights derived from the class (one value per class).
_PER_CLASS_WEIGHTS = 20


class SamplerCoverage(Rule):
    """Detects DAT005; its documentation and options are in the catalogue (`modeldebug explain DAT005`)."""

    code = "DAT005"
    requires = (M.DATALOADER, M.LOADER_ITERATOR_PER_BATCH)

    def check(self, ctx: Context) -> Iterator[Finding]:
        yield from self._first_batch_only(ctx)
        yield from self._without_replacement(ctx)
        for ev in ctx.record.events(M.DATALOADER.name):
            d = ev.data
            n, k = d.get("length"), d.get("sampler_weights")
            if not d.get("grad_enabled") or d.get("sampler") != "WeightedRandomSampler" or not n or not k or k >= n:
                continue  # a training loader whose WeightedRandomSampler has fewer weights than samples
            share = k / n
            per_class = d.get("sampler_distinct_weights") == k and k <= 1000
            yield self.finding(
                severity="high" if share <= ctx.option("sampler_min_share") else "medium",
                confidence=0.9,
                title=(f"WeightedRandomSampler was given {k} weights for a data set of {n}: it only ever draws "
                       f"samples {'0 and 1' if k == 2 else f'0 to {k - 1}'}"),
                description=(f"WeightedRandomSampler draws indices below the number of weights it is given, one weight "
                             f"per sample. Given {k} weights, it draws {d.get('sampler_num_samples') or 'its'} samples "
                             f"a pass from the first {k} of the {n} in {d.get('dataset')} ({share:.1%}), so the model "
                             "sees only those and can only memorise them: the training loss falls towards zero while "
                             "nothing generalises."
                             + (" The weights look like one per class (each distinct): they are meant to be indexed by "
                                "each sample's label." if per_class else "")),
                step=ev.step,
                evidence={"dataset": d.get("dataset"), "dataset_length": n, "sampler_weights": k,
                          "sampler_num_samples": d.get("sampler_num_samples"), "share_drawn_from": share,
                          "weights_per_class": per_class},
                recommendations=[Recommendation(
                    "fix", "Give the sampler one weight per sample: the class weight indexed by each sample's label.",
                    "class_weights = 1.0 / torch.bincount(train_labels).float()   # one per class\n"
                    "sample_weights = class_weights[train_labels]                # one per sample\n"
                    "sampler = WeightedRandomSampler(sample_weights, num_samples=len(sample_weights), replacement=True)")],
            )

    def _without_replacement(self, ctx: Context) -> Iterator[Finding]:
        """A training WeightedRandomSampler with `replacement=False` that draws (nearly) every sample each pass:
        each sample comes once, so the pass holds the data set's own class shares; the weights only decide
        the order (the heavy samples first)."""
        for ev in ctx.record.events(M.DATALOADER.name):
            d = ev.data
            k, drawn, distinct = d.get("sampler_weights"), d.get("sampler_num_samples"), d.get("sampler_distinct_weights")
            if not d.get("grad_enabled") or d.get("sampler") != "WeightedRandomSampler" \
                    or d.get("sampler_replacement", True) or not k or not drawn or not distinct:
                continue
            if drawn < 0.9 * k or distinct < 2 or d.get("sampler_distinct_nonzero", 2) < 2:
                continue  # a weighted subset without duplicates (a smaller draw), or equal weights (0/1 weights
                # too: the samples kept, shuffled): a plain shuffle
            per_class = distinct <= _PER_CLASS_WEIGHTS  # a handful of values: class weights indexed by label
            yield self.finding(
                severity="high" if per_class else "medium", confidence=0.85,
                title=(f"WeightedRandomSampler(replacement=False) draws each of the {k} samples once a pass: the "
                       "weights change the order, not the class shares"),
                description=(f"Without replacement a sample drawn once cannot be drawn again, so a pass of {drawn} draws "
                             f"over {k} weights takes {'every' if drawn >= k else 'nearly every'} sample once: the "
                             "classes come in the data set's own shares, as without the sampler. The weights only "
                             "decide which samples come first: the heavy ones (the rare class, when the weights "
                             "balance classes), so the pass starts with batches of the rare class and ends with "
                             "batches of the common one."
                             + (f" The weights take {distinct} distinct values: one per class, meant to rebalance "
                                "the classes, which needs replacement=True." if per_class else "")),
                step=ev.step,
                evidence={"dataset": d.get("dataset"), "sampler_weights": k, "sampler_num_samples": drawn,
                          "distinct_weights": distinct, "replacement": False,
                          # the order it makes is what the label-order check sees, and the shares are unchanged
                          "explains": ["label_issue", "class_imbalance"]},
                recommendations=[Recommendation(
                    "fix", "Draw with replacement: the rare samples then come about as often as the common ones.",
                    "sampler = WeightedRandomSampler(sample_weights, num_samples=len(sample_weights), replacement=True)\n"
                    "loader = DataLoader(train_set, batch_size=64, sampler=sampler)   # no shuffle= with a sampler")],
            )

    def _first_batch_only(self, ctx: Context) -> Iterator[Finding]:
        """A new iterator for every batch (`next(iter(loader))` in the step loop) over a loader that does not
        shuffle: every step gets the data set's first batch."""
        for ev in ctx.record.events(M.LOADER_ITERATOR_PER_BATCH.name):
            d = ev.data
            if d.get("sampler") != "SequentialSampler" or not d.get("same_batch"):
                continue  # shuffled, or a data set that draws its samples itself: another batch each time
            loader = next((e.data for e in ctx.record.events(M.DATALOADER.name)
                           if e.data.get("grad_enabled") and e.data.get("dataset") == d.get("dataset")), {})
            n, b = loader.get("length"), loader.get("batch_size")
            share = b / n if n and b else None
            where = f"{d['file'].rsplit('/', 1)[-1]}:{d['line']}" if d.get("file") else None
            yield self.finding(
                severity="high", confidence=0.9,
                title=("Every step trains on the same first batch: a new iterator over a loader that does not shuffle "
                       + (f"({where}: `{d.get('code')}`)" if where else "(next(iter(loader)) in the step loop)")),
                description=(f"{d.get('new_iterators')} of the first {d.get('batches')} training batches each came from a "
                             "new iterator, and the loader reads its data set in order (SequentialSampler: "
                             "shuffle=False), so every iterator starts over at sample 0: every one of those batches "
                             "held the same values, the data set's first batch"
                             + (f": {b} of the {n} samples of {d.get('dataset')} ({share:.1%})" if share else "")
                             + ". The model memorises that batch; the rest of the data is never seen."),
                step=ev.step,
                evidence={"dataset": d.get("dataset"), "dataset_length": n, "batch_size": b, "share_drawn_from": share,
                          "line": where, "code": d.get("code")},
                recommendations=[Recommendation(
                    "fix", "Make one iterator per epoch and read every batch from it.",
                    "for epoch in range(epochs):\n    for x, y in train_loader:      # every batch, once an epoch\n"
                    "        ...\n# and shuffle the training data: DataLoader(train_set, batch_size=..., shuffle=True)")],
            )

