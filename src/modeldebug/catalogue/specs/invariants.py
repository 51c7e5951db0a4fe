"""Catalogue entries: invariants learned from healthy runs (`modeldebug learn`, `--against`)."""

from __future__ import annotations

from ..spec import Spec

_STATS = ("invariant_loss_progress", "invariant_activation_envelope", "invariant_gradient_envelope",
          "invariant_grad_share", "invariant_data_envelope")
_LR_SYMPTOMS = ("loss_diverging", "loss_oscillating", "loss_not_decreasing", "exploding_gradients", "nonfinite",
                "lr_too_high", "lr_too_low")
_KNOWN = """
## Known problems
The invariants describe the runs `learn` was given: a run of another model, another data set or
another length of training is judged against the wrong runs. A change you made on purpose
(a new learning rate that is better) is reported as a violation until you learn again from the
new healthy runs. Statistics taken on different steps (another `--level`) are judged against
the phase's band, not the per-step bands.
"""


def _spec(code: str, kind: str, category: str, name: str, summary: str, doc: str,
          explains: tuple[str, ...] = ()) -> Spec:
    return Spec(code=code, kind=kind, category=category, family="invariant", name=name, summary=summary,
                doc=doc + _KNOWN, explains=explains)


SPECS = (
    _spec("INV001", "invariant_structure", "model", "invariant-structure",
          "The model's modules or parameters differ from the healthy runs': the other invariants cannot all be checked.",
          """
## What it detects
Leaf modules or parameters that every healthy run had and this run lacks (renamed, removed, or a
different model). Low when most of them are there, medium when fewer than half are.

## Why is this bad?
An invariant about a module the run does not have cannot be checked: the verdict covers less of
the model than it seems. It often means the invariants were learned from another model.

## Example
```text
modeldebug learn good1.db good2.db -o good.json     # a 3-layer MLP
modeldebug run --against good.json -- train.py --layers 4
```

## Recommended fix
Learn the invariants again from healthy runs of this model, or check the run against the file
learned for it.
"""),
    _spec("INV002", "invariant_hyperparameters", "optimizer", "invariant-hyperparameters",
          "A hyperparameter differs from every healthy run's: optimizer type or settings, parameter groups, batch size "
          "or learning rate.",
          """
## What it detects
The optimizer's type, a setting of a parameter group (momentum, betas, weight decay, ...), which
group holds each parameter, or the batch size differs from the value all healthy runs shared;
or the learning rate on some step lies outside the band the healthy runs used in that phase of
training, widened by a factor of 2 each way. High when the learning rate is off by 5x beyond
that band (10x from the healthy runs' values), else medium.

## Why is this bad?
A changed hyperparameter is the most common reason a run that used to train stops training, and
it explains the symptoms that follow it (a diverging loss, exploding gradients), so it is
listed first with them folded in.

## Example
```text
modeldebug run --against good.json -- train.py --lr 0.3      # healthy runs used 0.01
```

## Recommended fix
Put the value back to the healthy runs' one, or, when the change is on purpose, learn again from
healthy runs that use it.
""", explains=(*_STATS, "invariant_updates", *_LR_SYMPTOMS)),
    _spec("INV003", "invariant_updates", "optimizer", "invariant-updates",
          "An optimizer step left a trainable parameter unchanged, although in every healthy run every step changed it.",
          """
## What it detects
A parameter whose update ratio |dw|/|w| was above zero on every sampled step of every healthy
run, and that this run's optimizer step left unchanged (ratio 0, or no update at all because
the parameter requires no gradient or no optimizer holds it). Reported at the first such step.

## Why is this bad?
The layer stays at its initial values: a frozen layer that was meant to train, an optimizer
built before a layer was replaced, a parameter cut off from the loss.

## Example
```python
model[2].requires_grad_(False)
opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad])
```

## Recommended fix
Build the optimizer over `model.parameters()` after the model is final, and freeze only on
purpose; check `requires_grad` of the named parameter.
""", explains=_STATS),
    _spec("INV004", "invariant_zero_grad", "optimizer", "invariant-zero-grad",
          "Gradients were carried from one step into the next, although every healthy run cleared them before each backward.",
          """
## What it detects
A step whose first backward pass found more than 1% of the previous step's gradient norm still
in `.grad`, when no healthy run ever carried gradients over.

## Why is this bad?
`backward()` adds into `.grad`: without clearing, each update uses the sum of all past
gradients, and the run oscillates and diverges.

## Example
```python
for x, y in loader:
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()          # opt.zero_grad() was removed
```

## Recommended fix
Call `optimizer.zero_grad(set_to_none=True)` once per step, before `backward()`.
""", explains=(*_STATS, "invariant_finite", "loss_diverging", "exploding_gradients", "loss_oscillating")),
    _spec("INV005", "invariant_finite", "numerics", "invariant-finite",
          "The loss or the gradient norm became NaN/Inf, although every healthy run stayed finite.",
          """
## What it detects
The first step whose loss or total gradient norm is not finite, in a run checked against
healthy runs that stayed finite throughout.

## Why is this bad?
Once a NaN reaches the weights every later step is NaN: the rest of the run is lost.

## Example
```text
modeldebug run --against good.json -- train.py --lr 10
```

## Recommended fix
Look at what changed since the healthy runs (`modeldebug diff`); the NaN finding of the same
report names the module that produced it.
"""),
    _spec("INV006", "invariant_loss_progress", "loss", "invariant-loss-progress",
          "By step N the loss had not fallen as far as every healthy run's had.",
          """
## What it detects
At the checkpoints learned from the healthy runs (the ends of the early and middle thirds, and
the last step), the median loss of a short window over the median loss of the first steps. The
run must reach at most the larger of: the worst healthy ratio plus three robust standard
deviations, or half the healthy runs' smallest drop. High when the loss did not fall at all.

## Why is this bad?
A run that learns more slowly than every healthy run did is usually not healthy: a wrong
learning rate, frozen layers, a broken data pipeline.

## Example
```text
by step 40 the loss is still 86% of its start (healthy runs: at most 69%)
```

## Recommended fix
Find what changed (`modeldebug diff GOOD THIS`): the change that explains the slower loss is
listed first.
"""),
    _spec("INV007", "invariant_activation_envelope", "activation", "invariant-activation-envelope",
          "A module's output statistic left the envelope of the healthy runs in that phase of training.",
          """
## What it detects
The standard deviation of a leaf module's output, or its dead, saturated or zero fraction, on a
sampled step, outside the band of the healthy runs: per sampled step where every healthy run
sampled it, else per phase (early, middle, late thirds). Bands are the healthy range widened by
a margin (a factor of 3 for scales, 0.15 for fractions, from two runs or more). Reported at the
first step, in the first module in forward order; high when 3 margins beyond the band.

## Why is this bad?
The first module whose output changed is usually where the change is: an initialisation, a
normalisation, a layer that was edited.

## Example
```python
nn.init.normal_(model[2].weight, std=0.6)    # was the default (std 0.1)
```

## Recommended fix
Look at the module named and at what changed in it since the healthy runs.
"""),
    _spec("INV008", "invariant_gradient_envelope", "gradient", "invariant-gradient-envelope",
          "A parameter's gradient norm, weight norm or update ratio left the envelope of the healthy runs.",
          """
## What it detects
A parameter's gradient norm, weight norm or update ratio |dw|/|w| on a sampled step outside the
band of the healthy runs (per sampled step, else per phase), widened by a factor of 3 (5 when
learned from one run). Reported at the first step, in the first module in forward order.

## Why is this bad?
Update ratios far above the healthy ones mean the optimizer moves the weights too far per step;
far below, too little. Gradient norms out of band come before a diverging or stalled loss.

## Example
```text
update ratio of 0.weight is 0.92 at step 0, outside the healthy 0.026-0.23
```

## Recommended fix
Check the learning rate, the initialisation and the loss's scale against the healthy runs.
"""),
    _spec("INV009", "invariant_grad_share", "gradient", "invariant-grad-share",
          "The ratios of gradient norms between layers left the band of the healthy runs.",
          """
## What it detects
Each parameter's share of the total gradient norm (its gradient norm over the norm of all
gradients), on a sampled step, outside the healthy band (log scale, a factor of 3 margin).

## Why is this bad?
Healthy training keeps the gradient flowing through every layer in similar proportions. A layer
whose share jumps or collapses has a changed initialisation, a changed activation, or a broken
path to the loss.

## Example
```text
0.weight carries 93% of the gradient norm at step 0 (healthy: 9%-56%)
```

## Recommended fix
Look at the named layer and the layers around it: initialisation, normalisation, residual paths.
"""),
    _spec("INV010", "invariant_data_envelope", "data", "invariant-data-envelope",
          "The model's input statistics left the envelope of the healthy runs.",
          """
## What it detects
The standard deviation of the model's input batch, or its fraction of constant features, on a
sampled step outside the band of the healthy runs.

## Why is this bad?
A changed input scale (normalisation removed, another data set, another preprocessing) changes
everything after it.

## Example
```python
x = x * 255          # the healthy runs fed inputs in [0, 1]
```

## Recommended fix
Compare the data pipeline with the healthy runs': normalisation, transforms, the data set's path.
"""),
)
