"""Catalogue entries: schedule."""

from __future__ import annotations

from ..spec import Option, Spec

SPECS = (
    Spec(
        code='CLP001', kind='excessive_grad_clipping', category='optimizer', family='training', name='excessive-grad-clipping',
        summary='Gradient clipping acts on most steps by a large factor: the effective learning rate is far smaller.',
        explains=('lr_too_low', 'loss_not_decreasing'),
        options=(
            Option('clip_fraction', 0.5, 'fraction of steps that were clipped.'),
            Option('clip_factor', 10.0, 'median factor by which clipping shrank the gradient.'),
            Option('clip_min_improvement', 0.1, 'the loss falling by at least this fraction over the clipped steps means clipping is a policy that trains.'),
        ),
        doc="""
## What it detects
From `clip_grad_norm_` calls: the fraction of steps where the total norm was above `max_norm`
is at least `clip_fraction` (default 50%) and the median factor total norm / `max_norm` over
those steps is at least `clip_factor` (default 10x), and the loss does not improve while
clipping acts: over the clipped steps its running median fell by less than
`clip_min_improvement` (default 10%) from the first quarter. Clipping hard with a large
learning rate is a policy (pytorch/examples' word language model clips at 0.25 with learning
rate 20) and is not flagged while the loss falls under it. Detection range: clipping by 20x on
every step with a learning rate that then cannot move the loss is found; the same clipping with
a learning rate 100x larger that trains is silent.

## Why is this bad?
Clipping is meant to catch rare spikes. When it acts on every step, every update is rescaled to
`max_norm`: the step no longer scales with the gradient, and the learning rate you set is in
effect divided by the clipping factor, so training crawls.

## Example
```python
torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.01)   # typical norms here are ~1
```

## Recommended fix
Raise `max_norm` above the typical gradient norm (the finding suggests the 90th percentile of
the norms seen, and says how much larger the updates become), so that only outliers are
clipped; or normalise the loss scale.

## Known problems
Large-model training sometimes clips most steps by a factor of 2-3 on purpose; that stays below
the default factor. With adaptive optimizers (Adam, AdamW, RMSprop, Adagrad, ...) the step is
divided by the gradient's running RMS, so a steady rescale cancels out: those runs are not
judged.
""",
    ),
    Spec(
        code='LOS003', kind='loss_oscillating', category='loss', family='training', name='loss-oscillating',
        summary='The training loss swings up and down without trend, by a large fraction of its level.',
        options=(
            Option('osc_amplitude', 0.25, "smoothed swing as a fraction of the loss's scale."),
            Option('osc_reversals', 4, 'reversals of the smoothed loss needed (two full cycles).', type=int),
        ),
        doc="""
## What it detects
Over the second half of the run, the running median of the loss (window 2.5% of the run) swings by
at least `osc_amplitude` (default 25%) of the loss's scale (its first value or its level,
whichever is larger) and reverses at least `osc_reversals` times (default 4: two full cycles)
by half that swing, by more than twice what averaging independent minibatch noise would leave
and with a trend smaller than half the swing. A loss that alternates up and down every step
(lag-1 autocorrelation below -0.5) with that amplitude counts too. The minibatch noise and the
occasional spike of a converging run are small next to its starting loss or average out, so
they are not flagged. A loss that jumps with the batch (LRN001's test: rare huge errors in the
targets) is judged on the running lower quartile of its windows and the level, trend and noise of
its batches up to the 75th percentile, the typical batch: its median moves with the share of
outlier batches each window holds. A loss whose target carries a gradient (computed by a network
in the same step: a DQN's bootstrapped target, a teacher's output) moves with that network, so
its swings are expected: the finding is then low.

## Why is this bad?
An oscillating loss makes no progress: the optimizer bounces across a valley instead of going
down it. It usually means steps that are too large for the curvature (learning rate, momentum),
sometimes batches that are not shuffled.

## Example
```python
optimizer = torch.optim.SGD(model.parameters(), lr=3.0)   # bounces across the valley
```

## Recommended fix
Lower the learning rate (or momentum), decay it over the run, use larger batches, and shuffle
the training data.

## Known problems
Cyclic learning-rate schedules make the loss go up and down by design. Runs where several
optimizers over disjoint parameters take turns, each step with its own backward pass (a GAN), are
not judged: their losses alternate by design; nor are losses that go below zero or that sum a
varying number of one-sample calls (see LRN001). Runs shorter than `min_steps` (and 20 steps) are
not judged.
""",
    ),
    Spec(
        code='LRN001', kind='lr_too_high', category='optimizer', family='training', name='lr-too-high',
        summary='The learning rate is too high: updates move the weights by a large fraction and the run goes unstable.',
        explains=('exploding_gradients', 'loss_diverging', 'nonfinite', 'loss_oscillating', 'loss_not_decreasing', 'dead_activations', 'saturated_activations', 'input_ignored', 'class_imbalance'),
        options=(
            Option('lr_high_update_ratio', 0.05, 'update/weight ratio on the sampled steps before trouble began that counts as large (~1e-3 is healthy).'),
            Option('lr_jump_factor', 2.0, 'a loss above this multiple of its first value counts as a jump.'),
            Option('lr_high_weight_growth', 3.0, "with an Adam-like optimizer and no sign of instability: the weight tensors' norms growing by this median factor over the run (last sample over first)."),
            Option('lr_high_step_share', 0.1, "and one step at the run's peak rate (lr * sqrt(numel), Adam's step) at least this share of the weights' final norm (median over tensors)."),
        ),
        doc="""
## What it detects
A sign of overshooting: the loss jumping above `lr_jump_factor` (default 2x) its first value,
the gradient norm exploding (`grad_growth`), the smoothed loss diverging from its best, a spike
that undoes more than half of the progress made, or the loss oscillating (see LOS003). It is
blamed on the learning rate when the update-to-weight ratio ‖Δw‖/‖w‖ (median over weight
tensors, on the sampled steps just before the trouble began; over the oscillating window for
an oscillation) is at least `lr_high_update_ratio` (default 0.05; about 1e-3 is healthy). A run
whose weights are collapsing (WGT001) is left out.

When no update ratio was measured (weights updated by hand with `p.data.add_(p.grad, alpha=-lr)`
and no optimizer object, or an LBFGS-style closure optimizer run for a few steps), the loss
stands for the update size: it is blamed when the loss (or the gradient norm) blew up at least
10x within the first tenth of the run (or from step 1 on a run shorter than `min_steps`), or
the run diverged and never got back below its start. Closure steps are judged by the losses
their closure evaluations produced (the step's loss and backward count). The fix is written
for the script's own update code ("lower lr where you apply p.grad"; LBFGS: `lr=1` with
`line_search_fn='strong_wolfe'`). Detection range: hand-written SGD at 100x a working rate on
a tanh MLP (loss 1.2 -> 36) is found high; LBFGS at lr=100 (loss 0.7 -> 1e33 in 2 steps) is
found high; the same scripts at their working rate are silent.

A loss that is finite and then NaN/Inf, with nothing finite rising first (Adam at 100x: the
first update moves every weight by about its own norm and an `exp` or `log1p(exp(.))` of the
moved weights overflows at the next step), is blamed on the rate when the optimizer is adaptive
(Adam-like: its step is about the rate per weight whatever the gradient), the update ratio on
the sampled steps just before is at least `lr_high_update_ratio`, the gradients before were
finite, and the loss went non-finite within the first three updates or after rising 1.5x. The
finding then explains NUM001. A NaN much later after a flat loss (a corrupt sample), or with
plain SGD (where a huge first update can be a huge gradient's: GRD001), is left to NUM001.
Detection range: a forward-forward layer with Adam at 100x its working rate (NaN at step 1) and
a RealNVP flow at 100x (NaN at step 1) are found high; the same at the working rate is silent.
A loss that jumps with the batch is not read as overshooting: when at least 5 points, and 5% of
the steps, are an order of magnitude above the trailing median and 70% of them are back under
1.5x it within 3 steps, while the last window's lower quartile is below half the start (the
typical batch kept improving), the loss measures which batch came (targets with rare huge errors,
such as a sensor's glitch readings), not what the updates did: its jumps and spikes are not
signals, and a rise of the smoothed loss counts only if its lower quartile rose too (a median
over batches of which a varying share are outliers moves with that share). Two optimizers taking
turns (a GAN) make a spiky series by construction and are not judged this way.
A transient of the first steps that the run got over is low, not medium: every sign an event
(not an oscillation) within the first tenth of the run, nothing severe, no units knocked out, the
update ratio of the run's second half below `lr_high_update_ratio` (median), and the loss ending
under half of its level before the first sign (SGD with momentum 0.9 at 0.5 on a sigmoid MLP jumps
3x in its first steps and then trains best of the rates tried; at 2.0 it never recovers: high).
An adaptive optimizer (Adam, AdamW, RMSprop, Adagrad, ...) built anew over the same parameters on
at least half the steps (20 or more: `torch.optim.Adam(model.parameters())` inside the batch loop)
is reported first and alone (high): every step is its first, whose bias-corrected update moves each
weight by about the learning rate in the gradient's sign whatever its size, and the moment
estimates that would shrink it never build up.

## Why is this bad?
Steps that large overshoot the minimum: the loss jumps, oscillates or diverges, gradients
explode and the run ends in NaN, or ReLU units are knocked dead. The gradients, the NaN and the
divergence are symptoms; the learning rate is the knob.

## Example
```python
optimizer = torch.optim.Adam(model.parameters(), lr=0.5)   # Adam moves each weight by ~lr per step
```

## Recommended fix
Lower the learning rate (the finding suggests a value from the measured update ratio), add a
warm-up, and clip the gradient norm as a safety net.

## Known problems
A model whose gradients explode for another reason (an RNN with a recurrent gain above 1) has
large update ratios only once the gradients have grown, so it is not blamed here. Runs without
update ratios are judged from the loss only, so only a blow-up from the first steps is found
there, not a rate that is merely too high to converge. GANs and other
adversarial losses go up and down by design.

The spike a finding cites can be another step than the run's repro bundle (`loss spike`): the
bundle is saved while the run goes, at the first spike a live check sees, which judges only after
`min_steps` losses and against the losses seen until then; the rule judges the whole run
afterwards. When they differ, the finding says which step the bundle holds and why.

Losses that are not one objective going down are judged by what no such loss explains. A loss
that goes below zero has no floor, so its ratios say nothing (a policy-gradient surrogate
`-log_prob * advantage`, whose sign and scale follow the returns): only a non-finite loss counts.
When every model is fed one sample per call, a step's loss adds up however many calls the step
made (an episode), so its level follows the episode's length: only a jump of 10x within the first
tenth of the run counts (no rise, spike or oscillation later on). A third sign covers policies
that collapse: the gradient norm falling from its early level to below 1e-4 of it in one step and
staying there (a softmax saturated on one action, every unit dead), unless it exploded first (above
10x its first step's norm) or a layer was saturated or dead from the first step (the
initialisation's story); a REINFORCE policy at 100x its rate (Adam lr 1.0) is found this way.

With an Adam-like optimizer (Adam, AdamW, RMSprop, Adagrad, Adadelta, ...) a rate far too high
often blows nothing up: the step is about the learning rate per weight whatever the gradient,
and clipping bounds it, so the loss falls and settles higher. When no sign above was seen (or
none with a large update ratio before it), the rule then reads the weights' size: the weight
tensors' norms (median over tensors of the last sample over the first, weights directly followed
by a normalisation layer left out, over at least `min_steps` steps) growing by
`lr_high_weight_growth` (default 3x) or more, while one step at the run's peak rate (about
`lr * sqrt(numel)` for Adam) is still at least `lr_high_step_share` (default 10%) of their final
norm (median over tensors): weights made of a few steps, not grown by the data. It is reported at
medium severity, with the peak rate of the run's schedule. Detection range: AdamW on small GPTs at 100x their rate (nanoGPT, minGPT,
a GPT-2 config under the HF Trainer, makemore) grew their weights 4.9-13x in 150-550 steps and are
found (one peak step: 17-59% of the final norm); the same scripts at their working rate grew them
1.15-1.45x (2-5%), policy-gradient scripts with Adam up to 2x (12%), and a small CNN with Adam at
lr 0.01 3-3.5x with steps of 6%, which is not flagged. makemore at 100x (harmless there: 7%) is not
flagged either.
""",
    ),
    Spec(
        code='LRN002', kind='lr_too_low', category='optimizer', family='training', name='lr-too-low',
        summary='The learning rate is too low: gradients are healthy but each update barely moves the weights.',
        explains=('loss_not_decreasing', 'input_ignored'),
        options=(
            Option('warmup_reached', 0.5, "a schedule still rising at the end of the run that peaked below this share of its base rate, stepped far less often than the optimizer, never finished its warmup."),
            Option('lr_low_update_ratio', 0.0001, 'median update/weight ratio below this counts as tiny.'),
            Option('lr_low_improvement', 0.05, 'the loss moving less than this fraction counts as flat.'),
            Option('lr_low_min_grad', 0.01, 'relative gradient |g|/|w| at or above this means there is signal to follow.'),
            Option('lr_decayed_share', 0.001, 'a learning rate under this share of its peak so far, from the first half of the run to its end, has decayed to nothing.'),
        ),
        doc="""
## What it detects
First, a schedule stepped once per backward pass under gradient accumulation (`scheduler.step()` next
to `loss.backward()`, not next to `optimizer.step()`): the `lr_scheduler` event's scheduler steps over
optimizer steps within a quarter of the median backward passes per step (2 or more), and the rate at
1% of its peak or less for the last 20% of the run or more (high). A schedule sized in optimizer steps
then runs as many times too fast as there are micro-batches, and the rate reaches 0 long before the
run ends. One sized in micro-batches on purpose spans the run and is not flagged.

The training loss stays within `lr_low_improvement` (default 5%) of its start: the medians of
the first and last quarter of the run, and the best running median over a quarter, differ by
less than that. Meanwhile the update-to-weight ratio ‖Δw‖/‖w‖ (median over weight tensors and
over the sampled steps run at the full learning rate, i.e. at least half the run's largest) is
below `lr_low_update_ratio` (default 1e-4; about 1e-3 is healthy), and the gradients are not the
problem: the relative gradient |g|/|w| is at least `lr_low_min_grad` (default 1e-2), above the
minibatch noise left in a converged model's gradient. For cross-entropy losses the loss must
also still be above half the loss of a uniform prediction (ln C): a model that has fitted is
not stuck. Frozen tensors (ratio 0) are left to OPT001.

A warmup that never finished: every learning-rate scheduler built while watching is described at
the end of the run (its base rates, how many times it was stepped, the optimizer steps taken).
When the rate rose all run long (never falling, ending at its peak) and peaked below
`warmup_reached` (default 50%) of the scheduler's base rate, and the scheduler was stepped at
most a quarter as often as the optimizer, the schedule is sized in optimizer steps but stepped
once an epoch (`LambdaLR(lambda step: step / warmup_steps)` with `sched.step()` per epoch), and
the whole run trained at a fraction of its rate (medium: a run stopped long before its warmup
ends reads the same, and is told so).

A rate that decayed to nothing: the recorded learning rate falls under `lr_decayed_share`
(default 1/1000) of its peak so far in the first half of the run and stays there to the end,
and over the steps from then on the loss moves by less than `lr_low_improvement` (first and last
quarter, best running median), while it had not learned before (a cross-entropy loss still above
half of ln C; another loss above half of its start), and it was still falling when the decay began:
with at least `min_steps` steps at the full rate, the last quarter of them must have brought a
quarter of what the three before did (a loss already flat at the full rate, labels it cannot
learn, stalled first). That is a decay sized in epochs but stepped
after every batch (`StepLR(step_size=5, gamma=0.1)` stepped in the batch loop divides the rate by
10 every 5 batches), or a per-step decay far too fast. High; the finding says how often the
scheduler was stepped against the optimizer. A `ReduceLROnPlateau` is left out (its cuts answer
a metric that had stalled first), and so is a schedule that reaches zero in the second half (a
cosine or one-cycle schedule ending the run) or a cyclic one whose rate comes back.

A third path names a cause the learning rate's own numbers cannot: every
`ReduceLROnPlateau.step(metric)` call is recorded (the metric, the scheduler's `mode`, the
learning rates before and after it). With at least three calls, the rule also fires when the
metric moves the way the mode calls worse over the run (a rank correlation with time of 0.5 or
more: rising under `mode='min'`, falling under `mode='max'`) and the scheduler cut the learning
rate at a call where the metric had just reached its best so far in that other direction, while
the scheduler's own best is its first value and the training loss fell over the same span: an
accuracy passed to a scheduler left at its default `mode='min'`, or a loss with `mode='max'`.
Every epoch that improves the metric then counts as "no improvement", and the learning rate is
cut every `patience + 1` epochs while training goes well. High when that happened twice or
more. Each scheduler is judged on its own calls. A validation loss that improves first and then
turns up (overfitting) has its best after the first call, and a loss that rises from the start
while the training loss rises too is a divergence: both are left alone.

## Why is this bad?
With steps 10x-1000x smaller than needed, the model needs 10x-1000x more steps to learn the
same thing; within the budget it looks as if it cannot learn at all.

## Example
```python
optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)   # typical SGD rates are 1e-2..1e-1
scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)   # mode='min' ...
scheduler.step(val_accuracy)                                          # ... stepped with an accuracy
```

## Recommended fix
Raise the learning rate (the finding suggests a value that would bring the update ratio to
about 1e-3), or run a learning-rate range test.

## Known problems
Runs without an optimizer object (hand-written updates) record no update ratios and are not
judged. A run that starts at its optimum (fine-tuning a converged model) has small gradients and
is left alone by the gradient condition.
""",
    ),
)
