"""Catalogue entries: activations."""

from __future__ import annotations

from ..spec import Option, Spec

SPECS = (
    Spec(
        code='ACT001', kind='dead_activations', category='activation', family='training', name='dead-activations',
        summary='Units of a ReLU layer output zero for every sample: they pass no signal and get no gradient.',
        explains=('vanishing_gradients', 'loss_not_decreasing', 'params_not_updating', 'input_ignored'),
        options=(
            Option('dead_fraction', 0.5, "fraction of an activation layer's units that output zero for every sample in the batch (median over the sampled steps of the run's second half)."),
        ),
        doc="""
## What it detects
On sampled steps, the fraction of a ReLU-like layer's units (features, or channels of a
convolution) that are zero for every sample and position of the batch. A layer is flagged when
the median of that fraction over the samples of the run's second half (by step: the sampler
takes the first steps densely, so a share of all samples would mostly be the run's start) is
at least `dead_fraction` (default 50%); with fewer than two samples there, the last two. The
layer is judged as training left it: one whose units come back to life as the layers before it
move was not dead, and is not flagged. The
pre-activation statistics of the layer feeding it are cited, and whether the units were dead
from the first step (initialisation) or died later (an update knocked them out).

Severity: high when 90% or more of the layer is dead; medium when a smaller part is dead from
the first step (an initialisation that wastes width, with a known fix); low when a smaller part
goes quiet after training began. Units that stop firing on a batch while the network trains on
are mostly not why a run fails: a unit that fires on 2% of the samples is zero on a whole batch
of 64 a quarter of the time, and a healthy box regressor (blind6) ends with half of a 128-unit
layer quiet. A learning rate that kills units has findings of its own (LRN, GRD).

Partly dead units (most units inactive on nearly every sample, few on every sample) are judged
from the share of the layer's outputs that are exactly zero, where the record has it (level
`detailed`): 90% or more (and at least `dead_fraction`) on at least half of the sampled steps is flagged medium although fewer
than `dead_fraction` of the units are zero on every sample. Detection range: a bias of -2.2 on
pre-activations of std 1 (each unit fires on ~1.4% of samples; 98% zeros, 45% of units fully
dead) is found at `detailed`; a zero bias is silent. At `basic` only fully dead units are seen.

A layer with fewer dead units than `dead_fraction` is not flagged, on purpose: a quarter of a
layer's units dead is a quarter less width, which the other units mostly make up for. Measured
on the sweep's 3-class MLP (a -10 bias on a share of the second ReLU layer's units, 60 steps of
Adam 1e-3): the final loss is 0.80 with none dead, 0.86 with 25% (not flagged), 0.92 with 50%
(medium) and 1.03 with 90% (high).

## Why is this bad?
A dead unit's gradient is zero, so it can never recover; the network loses that capacity, and
the layers before it stop receiving gradient through it.

## Example
```python
nn.init.constant_(model.fc1.bias, -10.0)   # every pre-activation < 0 -> every ReLU unit dead
```

## Recommended fix
He initialisation with zero bias; a lower learning rate if units died during training;
LeakyReLU/GELU if units keep dying; BatchNorm before the activation.

## Known problems
Only module activations are seen (`nn.ReLU`); `F.relu` inside `forward` is invisible here.
With a very small batch, a unit can be zero on every sample by chance.
""",
    ),
)
