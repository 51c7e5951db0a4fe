"""Catalogue entries: labels."""

from __future__ import annotations

from ..spec import Option, Spec

SPECS = (
    Spec(
        code='DAT003', kind='class_imbalance', category='data', family='training', name='class-imbalance',
        summary='Some classes are far rarer than others in the training batches, and the loss is not weighted for it.',
        explains=('loss_not_decreasing',),
        options=(
            Option('class_imbalance_ratio', 10.0, 'count of the majority class over the rarest class.'),
            Option('prior_loss_fraction', 0.9, 'a final loss at or above this multiple of the label entropy means the model only predicts the class frequencies.'),
        ),
        doc="""
## What it detects
Counts of class-index targets over the sampled batches (or the positive fraction of binary
0/1 targets), one label per sample: the majority class is at least `class_imbalance_ratio`
(default 10) times as frequent as the rarest. Judged only when the sampled batches hold at
least 20 labels per class (5 of the rarer class for binary targets). Severity comes from the
effect: high when the final training loss is still at `prior_loss_fraction` (default 90%) or
more of the entropy of the label distribution, the loss a model reaches by predicting the class
frequencies and ignoring the input (it has learned the prior and never predicts the minority),
and not above 1.1 x ln C (a loss far worse than a uniform prediction is broken by something
else, such as the initialisation, not settled on the prior);
then a milder skew, from the square root of `class_imbalance_ratio` (about 3.2:1), is enough.
Found at such a milder skew, the finding rests on the collapse (evidence `rests_on`:
`input_ignored`, `loss_not_decreasing`): a finding that explains either (dead units ACT001, a
learning rate, frozen weights) lists it as its symptom, since what stops the model learning
from its input leaves the prior as all it can learn.
A skew the model learns through is low (medium from the square of the ratio, 100:1).
Whether the model predicts the rare classes is measured where the record allows: on sampled
steps of the run's second half, a mean-reduced loss over B labels, k of them rare, bounds the
rare samples' mean loss by B x loss / k; below ln 2 the model gives their class more than half
the probability, so the finding is low whatever the ratio ("the model handles it"). When no
late sampled batch holds a rare label (a class of 1 in 1000), the effect cannot be measured
(predicted classes are not recorded): the finding says so and keeps the ratio's severity.
Detection range: a 3% minority on which the model collapses is found high; 10:1 that it learns
through is low; 3:1 that it learns through is silent; 100:1 that the model learns (minority
recall 0.93) is low; 1000:1 with 8 rare samples, never predicted, is medium (not measurable).
Batches read in label order (LBL001) are not judged: their sampled shares are the order's.
A loss already weighted for the imbalance is not judged either: class weights (`weight=`, or
`pos_weight=` of `BCEWithLogitsLoss` for binary targets, read at the loss's first call) that,
times the class counts, bring the classes within the square root of `class_imbalance_ratio` of
each other, or take out at least half of the skew on a log scale (the square root of the inverse
frequency). A weighted loss stays near the label entropy while the model learns, so the
collapse test would misread it.
An output that no sampled label names (a count of 0: a 3-output head on 2 classes, or a class
rarer than 1 in the labels sampled) has no count to take a ratio from: the ratio is that of
the classes seen, the fix gives such a class the rarest class's weight, and when the classes seen
are balanced the finding is low and says which outputs went unnamed and that the counts cannot
tell an output with no class from a class too rare to sample.
Class weights given to the loss (`weight=` of `cross_entropy`/`nll_loss`, read at its first call)
that grow with the class frequency (rank correlation at least 0.8 over at least 3 classes seen,
weights spread at least 2x, classes at least 5:1) are reported high, per-pixel labels included
(the user weighted them on purpose): weights meant to lift the rare classes were computed as the
frequency itself (`counts / counts.sum()`), so the rarest class counts least; the fix gives the
inverse-frequency weights from the counts.

## Why is this bad?
The rare classes contribute little to the loss, so the model can score well by always
predicting the majority; accuracy then hides that the rare classes are never recognised.

## Example
```python
y = (torch.rand(n) < 0.03).long()          # 3% positives
loss_fn = nn.CrossEntropyLoss()            # unweighted
```

## Recommended fix
Weight the loss by inverse class frequency (weights computed from the counts are in the
finding), or oversample rare classes with a `WeightedRandomSampler`; judge with per-class
recall, F1 or AUC rather than accuracy.

## Known problems
Counts come from sampled steps only. Per-token and per-pixel targets (language models,
segmentation) are not judged, nor next-token and large-vocabulary targets (one target per
integer input token, as many classes as an embedding table has rows or as a one-hot input is
wide (words fed as rows of an identity matrix), or 1000 classes and more, even when flattened to one dimension): their skew is the data's nature, and class weights are
no fix for it. A loss that is weighted already is still judged by its label counts (with low
severity unless it learned nothing beyond the prior).
""",
    ),
    Spec(
        code='LBL001', kind='label_issue', category='data', family='training', name='label-issue',
        summary='Targets that do not fit the loss: out of range, one class only, unsorted-by-shuffle batches, unreachable values.',
        explains=('loss_not_decreasing', 'loss_oscillating', 'saturated_activations', 'vanishing_gradients',
                  'lr_too_high', 'class_imbalance', 'loss_diverging', 'overfitting', 'validation_not_improving'),
        options=(
            Option('target_scale', 10.0, "regression targets whose mean or half-range at step 0 is at least this (and 100x the model's largest output) are off scale."),
        ),
        doc="""
## What it detects
(0) Token targets that are the model's input ids shifted by 2 or 3 positions instead of 1 (read
by DAT004's one-time probe, at least 90% of the positions): labels shifted twice, once in the
data and again by a loss that shifts them itself; high. (1) A crash `Target N is out of bounds` (class index not in [0, C)) or `all elements of target
should be between 0 and 1`. (2) Class-index targets of one class only on every sampled batch
(labels all zero), or a single class per batch on 80% of the sampled batches when shuffled
batches with these class shares would be single-class at most 20% of the time (a data set
sorted by label and not shuffled). Data only partly sorted (a stretch of each batch from one
class, the rest mixed) is found by how much more the sampled batches' class counts differ from
batch to batch than shuffled batches of the pooled shares could: a chi-square test of
homogeneity (p below about 3e-7) whose dispersion gives the intra-batch label correlation rho
(0 shuffled, 1 one class per batch); rho of 0.1 or more is medium, 0.3 or more high. Only for
one label per sample (not next-token targets, which are correlated within a sequence by
nature). Swings of the loss that look like a learning rate too high, and class shares skewed
by the order, are reported as its symptoms. Detection range (the sweep's 3-class MLP, batches of
32 read in order, Adam 1e-2): 90% of positions left in label order, rho 0.46, high; 50%, rho
0.17, medium; 25%, rho 0.06, not found; shuffled, silent. (3) Binary cross-entropy targets outside [0, 1]
(labels -1/+1, or class indices). (4) Regression targets the model's output can never reach:
the model ends in a Sigmoid/Tanh/Softmax and targets lie beyond its range by more than half of it.
(4b) Regression targets off the model's scale (raw seconds, prices): at step 0 their mean or
half-range is at least `target_scale` (default 10) and 100x the model's largest output, and the
smoothed loss still ends above 5% of where it started, either still falling at the end or above
half its start (medium): the run spends itself growing an output bias to the targets' mean. A
loss that came down and settled at the targets' noise (counts with a large mean) is not reported.
(5) Validation labels that mean something else: a classifier (`cross_entropy`/`nll_loss`, the
validation loss mean-reduced) whose
smoothed training loss fell below half the chance level (the loss of predicting the label
frequencies) while its validation loss, over at least 3 passes, never came below twice that level.
Overfitting starts from a model that generalised a little; one confidently wrong on validation from
the first pass on was trained on labels that validation numbers differently (a class-to-index
mapping built per split from an unsorted directory listing) or whose inputs are prepared
differently (BGR against RGB, another normalisation). It explains the overfitting finding the same
curve makes. (6) A class passed as `ignore_index` to a dense target: `cross_entropy`/`nll_loss` with
targets of a class per position (`[B, H, W]` or more), an `ignore_index` that is one of the classes
the model predicts, and that class the most common one in the sampled targets, at least 25% of the
positions (high from 50%): background passed as `ignore_index=0`. The class is never trained, and
its pixels are scored as others at inference. Void labels (255, a border) outside the model's
classes, a rare ignored class, and sequences' padding (`[B, T]` targets) are left alone. With 95%
of the positions ignored or more, fewer than 1 in 20 labelled, the annotation is sparse by design
(scribbles, clicks), where the ignored value may mean "unlabelled": the finding is then medium and
says so (a small object's masks with the background ignored read the same). (7) Segmentation
masks resized by interpolation: on the first 3 sampled training calls of `cross_entropy`/`nll_loss`
with a class per pixel (first 8 samples), of the positions whose neighbours on either side (along
H or W) belong to classes two or more ids apart, at least 20% (of at least 50 such positions) hold
a class strictly between the two: a mask resized with bilinear interpolation and rounded turns the
border of classes 1 and 4 into a ring of class 2 or 3; nearest-neighbour resizing keeps one side's
class there (1-2% read in between on such masks, from genuinely thin regions). Medium, high from 50%.
A class at least half of whose pixels sit in between is a boundary class drawn by design (background,
border, interior) and its rings are not counted; targets with borders on more than 25% of the
positions read are values that vary pixel to pixel (a PixelCNN's intensities as 256 classes), not
regions, and are not judged. Ordered layers a pixel thick in places (retinal layers, strata), but
not everywhere, can still read as interpolated.

## Why is this bad?
The loss optimises something other than the task: it crashes, learns one constant answer,
forgets everything each batch because every batch is one class, or chases unreachable values
with saturated units. (5) Every validation number is wrong, and early stopping or tuning on it
steers the run by noise.

## Example
```python
loader = DataLoader(train_set, batch_size=64)      # shuffle=False on data sorted by class
loss = nn.BCEWithLogitsLoss()(logits, y)           # y in {-1, +1}
self.classes = os.listdir(split_root)               # (5) each split numbers its classes its own way
```

## Recommended fix
Map labels to 0..C-1 (`y - 1` for 1-based labels) and size the output layer to the number of
classes; shuffle the training loader; map -1/+1 to 0/1; drop the output squashing or rescale
the targets into the output's range; build one class-to-index mapping (sorted, from the
training split) and use it for every split.

## Known problems
(5) cannot tell swapped validation labels from a validation set of another distribution, nor
from training labels that carry no signal (random labels memorised before the first validation
pass). Label counts are taken on sampled steps only, and only for class-index targets of
`cross_entropy`/`nll_loss`. On CUDA an out-of-range class is a device-side assert whose message
may not name the target; it is then reported as a runtime error.
""",
    ),
)
