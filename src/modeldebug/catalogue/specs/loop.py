"""Catalogue entries: loop."""

from __future__ import annotations

from ..spec import Option, Spec

SPECS = (
    Spec(
        code='LOP001', kind='missing_zero_grad', category='optimizer', family='training', name='missing-zero-grad',
        summary='Gradients are not cleared between optimizer steps: every update uses the sum of all past gradients.',
        explains=('exploding_gradients', 'loss_diverging', 'loss_oscillating', 'loss_not_decreasing', 'nonfinite', 'lr_too_high'),
        options=(
            Option('carried_grad_fraction', 0.01, "gradient norm still present at a step's first backward pass, as a fraction of the previous step's, that counts as not cleared."),
            Option('missing_zero_grad_fraction', 0.2, 'share of optimizer steps that must start with old gradients.'),
        ),
        doc="""
## What it detects
Optimizer steps whose first backward pass found the previous step's gradients still in place:
no `zero_grad()` ran since the last `optimizer.step()` and the carried gradient norm is at least
`carried_grad_fraction` (default 1%) of the previous step's gradient norm. Flagged when at least
`missing_zero_grad_fraction` (default 20%) of the optimizer steps start that way. Deliberate
gradient accumulation (several backward passes per optimizer step, `zero_grad()` after the step)
is healthy and not flagged; neither is clearing by hand (`p.grad = None`, `p.grad.zero_()`).
In a loop without an optimizer object, only gradients that are never cleared at all are flagged.

## Why is this bad?
`backward()` adds into `.grad`. Without clearing, the gradient of step t is the sum of the
gradients of steps 0..t, so updates grow with the run: the gradient norm climbs, the loss
oscillates and then diverges, often to NaN. It looks like a too-high learning rate, but no
learning rate fixes it.

## Example
```python
for x, y in loader:
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()          # no optimizer.zero_grad() anywhere in the loop
```

## Recommended fix
Call `optimizer.zero_grad(set_to_none=True)` once per optimizer step, before `backward()` (or
right after `optimizer.step()`). To accumulate gradients on purpose, divide the loss by the
number of micro-batches and clear right after the step they feed.

## Known problems
`zero_grad()` on the wrong object (a sub-module, another optimizer) counts as a call, so
gradients left on the other parameters are not seen. A loop that updates weights by hand and
clears them only every few backward passes is taken for gradient accumulation.
""",
    ),
    Spec(
        code='LOP002', kind='train_mode_misuse', category='model', family='training', name='train-mode-misuse',
        summary='Dropout/BatchNorm in the wrong mode: training in eval mode, or validating in train mode.',
        explains=('overfitting',),
        options=(
            Option('train_mode_persistence', 0.5, 'share of steps since the first eval-mode training pass that must also be in eval mode.'),
        ),
        doc="""
## What it detects
A BatchNorm layer built with `momentum=0` (and `track_running_stats`, the default) is reported
first, whatever the modes: its running mean and variance never leave their initial 0 and 1, so
training (batch statistics) looks healthy and every evaluation normalises with 0 and 1; high when
the run records validation losses, medium otherwise (`momentum=None`, a cumulative average, is
fine; running statistics that were not 0 and 1 when the model was first seen, loaded from a
checkpoint and frozen with `momentum=0` on purpose, are not judged). Then only models that contain Dropout or BatchNorm layers are judged; in a model without
them the mode changes nothing. Two mistakes:
(1) training forward passes (autograd on, followed by an optimizer step) while the model is in
eval mode, on at least `train_mode_persistence` (default 50%) of the steps since the first one,
typically from the first step after a validation pass that called `model.eval()` and never
`model.train()`. The per-layer `training` flag recorded on sampled steps names the layers, and
rules out a frozen second model (a teacher whose parameters no optimizer holds) and a frozen part
kept in eval mode on purpose (layers whose parameters, or those of the nearest enclosing module
with some, stopped moving before the eval-mode passes while the rest still trains: a pretrained
encoder frozen with `requires_grad = False` and `model.encoder.eval()`). A module called in eval
mode inside the forward pass of a module in train mode is part of that training pass: it is not
counted as an evaluation with autograd on (`fwd_eval_mode`), which MEM001 would otherwise read as
a validation pass that may keep its graph;
(2) forward passes under `torch.no_grad()` while the model is in train mode: validation or
inference without `model.eval()`; when every such pass recorded (the first 8) fed the whole training
set at once (a batch as long as the shuffled training DataLoader's dataset, at least twice its
batch size), it recomputes BatchNorm's running statistics on purpose (momentum 0, a flow's
BatchNorm) and the finding is low;
(3) BatchNorm layers of a frozen part still in train mode (reported medium): their parameters (or
those of the nearest enclosing module with some) stopped moving while the rest trains (judged from
the update ratios an optimizer's steps record: parameters no optimizer ever held, such as an EMA
teacher moved by hand, are not judged), yet the
sampled `training` flags after that are on, so each normalises with the batch in hand and
overwrites the running statistics its frozen weights were trained with (the batch size named from
the loader of that period); the fix puts the frozen part back in eval mode after `model.train()`;
(4) whatever the layers, a functional dropout that ignores `model.eval()`: at the first forward
pass in eval mode without gradients, a private copy of the model runs that batch in eval mode
with `F.dropout` and its kin (`dropout1d/2d/3d`, `alpha_dropout`, `feature_alpha_dropout`)
watched, and each call that still drops is recorded with the user's line (`eval_dropout`
event). One that left `training` at a default of True (`F.dropout(x, 0.5)` in `forward`; the
alpha dropouts default to False and do not drop) is reported, high, with that line; one given
`training=True` on purpose (Monte Carlo dropout) is not. A dropout imported by name (`from torch.nn.functional import dropout`) is not seen.

## Why is this bad?
(1) In eval mode Dropout is off (no regularisation) and BatchNorm normalises with frozen running
statistics instead of the batch's, so training silently changes after the first epoch.
(2) In train mode Dropout drops units during validation (a noisy, too-high validation loss) and
BatchNorm updates its running statistics with validation data, changing the model you evaluate.

## Example
```python
model.train()                   # once, before the epoch loop
for epoch in range(10):
    for x, y in train_loader:
        ...
    model.eval()                # validation switches it off ... and nothing switches it back
for p in model.encoder.parameters():
    p.requires_grad = False     # (3) frozen, but model.train() keeps its BatchNorm updating
h = F.dropout(h, 0.5)           # (4) in forward: training=True by default, model.eval() does not reach it
```

## Recommended fix
Call `model.train()` at the top of every epoch (or right after validation), and wrap
validation in `model.eval()` plus `torch.no_grad()`.

## Known problems
The per-layer flags exist only on sampled steps; without one, every Dropout/BatchNorm layer of
the model is listed. A Dropout with `p=0` is not told apart. Adapting a frozen part's BatchNorm
statistics to new data on purpose (AdaBN) looks like (3). Recomputing BatchNorm statistics on purpose
(`torch.optim.swa_utils.update_bn`) and Monte-Carlo dropout look like (2).
""",
    ),
    Spec(
        code='LOP003', kind='ineffective_grad_clipping', category='optimizer', family='training', name='clip-after-step',
        summary='Gradient clipping that bounds no update: it runs after optimizer.step(), or is given no gradient (an iterator already used up).',
        explains=('exploding_gradients', 'lr_too_high', 'loss_diverging', 'nonfinite', 'loss_oscillating'),
        doc="""
## What it detects
`clip_grad_norm_` called after an optimizer step and followed by a backward pass before any other
optimizer step (the watch records the first ten such calls with their line: the `clip_after_step`
event; a clipping followed by a step, as two optimizers over one backward pass each clipping their
own parameters do, is that step's clipping). The step has
already used the gradients, and the next `zero_grad()` clears the clipped ones, so the clipping
never bounds an update. Reported when it would have acted: the gradient norm the steps used (the
per-step `grad_norm`, unclipped here) was above `max_norm` on some step; high when it was on at
least 20% of the steps or reached 10x `max_norm`, medium otherwise. When the norm never exceeded
`max_norm`, the misplaced call changed nothing on this run and nothing is reported.

Also: `clip_grad_norm_` that returns 0 (the total norm of the gradients it was given) on at least
90% of the steps that clipped, while the optimizer's gradients were not zero: it was given no
parameter with a gradient. The watch records the run's first call (its line and the type of what
it was given: a `filter` or a generator is an iterator, which yields the parameters once, to the
optimizer's constructor or to the first call) and a later call given the same iterator object.
Severity as above: high or medium when the gradient norm went above `max_norm` (the clipping
should have acted), low when it never did (nothing changed on this run).

## Why is this bad?
Clipping is there to bound the step when a batch produces a huge gradient. Called after the step,
it bounds nothing: the spikes it was meant to absorb go straight into the weights, which looks
like a learning rate that is too high or gradients that explode.

## Example
```python
loss.backward()
optimizer.step()
torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)   # too late

trainable = filter(lambda p: p.requires_grad, model.parameters())
optimizer = torch.optim.SGD(trainable, lr=0.1)            # reads the iterator to its end
torch.nn.utils.clip_grad_norm_(trainable, 1.0)            # every step: nothing left, returns 0
```

## Recommended fix
`loss.backward()`, then `clip_grad_norm_(...)`, then `optimizer.step()` (with a GradScaler:
`scaler.unscale_(optimizer)` before clipping); give it a list of the parameters, which can be read
every step, not a `filter(...)` or generator.

## Known problems
Only `torch.nn.utils.clip_grad_norm_` is watched (`clip_grad_value_` is not).
""",
    ),
)
