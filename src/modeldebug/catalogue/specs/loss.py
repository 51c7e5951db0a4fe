"""Catalogue entries: loss."""

from __future__ import annotations

from ..spec import Option, Spec

SPECS = (
    Spec(
        code='LOS001', kind='loss_diverging', category='loss', family='training', name='loss-diverging',
        summary='The training loss climbed well above the best value it had reached.',
        options=(
            Option('loss_divergence', 2.0, 'final loss above this multiple of the best loss the run reached and above its own starting loss.'),
            Option('unbounded_factor', 1000.0, 'a loss that starts positive and whose smoothed value falls below -factor times that start has no floor.'),
        ),
        doc="""
## What it detects
The smoothed (running-median) training loss ends above `loss_divergence` (default 2x) times the
best smoothed loss of the run AND has given back more than half of what it had gained since the
start, or the loss turned non-finite after it had been finite. The step where it began is the step of the best smoothed loss.
It also finds a loss that falls without bound: one that starts positive (median of the first
window) and whose smoothed value falls below `unbounded_factor` (default 1,000) times that start
on the other side of zero, and below -1,000 whatever the start (a warm-started loss may begin near
0): a loss that may go negative with a floor (a Gaussian NLL with a learned variance, -log(sigma)
a value) settles within a few units, and one without a floor falls by orders of magnitude. Cross-entropy, squared error
and KL divergences are never negative, so a term has the wrong sign (a VAE's KL subtracted) or no
lower bound, and the optimizer drives it to -inf; that finding starts at the first negative loss
and explains the exploding gradients,
the non-finite values and the rising validation loss that follow (losses summed over one-sample
calls, such as a policy gradient's, are not judged this way).
For a loss that jumps with the batch (rare huge errors in the targets: the test is LRN001's), the
lower quartile of the loss must diverge the same way, since the median moves with the share of
outlier batches in its window; and the end must be above every level the smoothed loss had after it
first got half-way down to its best and before the best (a level it already went back to and left is
the run's own spread, and its best window a low extreme of it).

## Why is this bad?
A diverging loss means the updates overshoot: the rest of the run is wasted and any checkpoint
after the turn is worse than an earlier one.

## Example
```python
optimizer = torch.optim.SGD(model.parameters(), lr=5.0)   # 100x too high for this model
```

## Recommended fix
Lower the learning rate (by 10x as a first try), add warm-up, clip the gradient norm.

## Known problems
A deliberate learning-rate restart (cyclic schedules) that raises the loss for long enough can
look like divergence. Runs shorter than `min_steps` are not judged. Neither are runs where two
or more optimizers over disjoint parameters take turns, each step with its own backward pass (a
GAN's discriminator and generator): the loss recorded per step alternates between objectives that
oppose each other, and a generator's loss that rises as its discriminator improves is the game,
not divergence (`lr_too_high` still judges their update sizes). A loss that goes below zero (a
policy-gradient surrogate), or one summed over however many one-sample calls a step made (an
actor-critic's episode), is judged only by turning non-finite: its level follows the returns and
the episode's length, not progress.
""",
    ),
    Spec(
        code='LOS002', kind='loss_not_decreasing', category='loss', family='training', name='loss-not-decreasing',
        summary='The training loss never improved meaningfully on its starting value.',
        options=(
            Option('min_improvement', 0.01, "best smoothed loss must improve on the starting loss by at least this fraction, and by more than the loss's own step-to-step noise."),
            Option('chance_margin', 0.03, "a classifier's final loss within this fraction of chance (the entropy of its labels) has learned nothing from its inputs."),
            Option('min_movement', 0.1, "a run whose weights moved less than this fraction of their size in all (the median update ratio times the steps) trained too little to say its inputs carry no signal."),
        ),
        doc="""
## What it detects
After at least `min_steps` steps, the best smoothed loss improved on the starting loss (median
of the first window) by less than `min_improvement` (default 1%) relatively, or by no more than
the loss's own step-to-step noise (median absolute difference between consecutive steps).
For classifiers it also compares the loss with chance: the loss of predicting the label
frequencies and ignoring the input (the entropy of the labels seen by the loss, ln C for C
balanced classes). A final loss (median of the last fifth of the run) within `chance_margin`
(default 3%) of chance means the model has learned nothing from its inputs, even if the loss
fell from a badly calibrated start; but not while the loss is still falling at the end (a line
through the last half of the run falls with a t statistic below -3): a model early in its
training, such as a word model with thousands of classes that starts at ln V, reaches the label
entropy only after many steps, and a loss on its way down is not stuck.

At chance, it says the inputs carry no usable signal only when the weights had room to learn:
when they moved less than `min_movement` (default 10%) of their size over the whole run (the
median update-to-weight ratio of the sampled steps times the number of steps, an upper bound of
the distance travelled), the run trained too little to tell (a learning rate too low for its
length, such as Adam at 5e-5 for 50 steps): the finding is medium and says so, with the learning
rate first among its fixes.

## Why is this bad?
A model that cannot lower its training loss learns nothing; no amount of extra epochs helps.
Something upstream is broken: dead units, vanishing gradients, parameters that do not update,
a learning rate far too low, or a loss/label mismatch.

## Example
```python
model.fc1.bias.data.fill_(-10.0)   # every ReLU after fc1 is dead from the start
```

## Recommended fix
Look at the findings this one cites as its cause first. Otherwise: overfit a single batch (a
healthy model drives its loss near zero within a few hundred steps), check the learning rate,
and check that the labels match the inputs.

## Known problems
A run that starts from a converged checkpoint (fine-tuning at its optimum) is flat for good
reason; silence the rule with `ignore=["LOS002"]` there. Runs where several optimizers take turns
on opposing losses (a GAN), and losses that need not fall (a loss that goes below zero, such as a
policy-gradient surrogate; one summed over a varying number of one-sample calls), are not judged.
""",
    ),
)
