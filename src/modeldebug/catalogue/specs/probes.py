"""Catalogue entries: probes."""

from __future__ import annotations

from ..spec import Spec

SPECS = (
    Spec(
        code='MEM002', kind='high_memory', category='memory', family='probe', name='high-memory',
        summary='One training step needs more memory than the budget given (agent MemoryTracker).',
        doc="""
## What it detects
Parameters + gradients + optimizer state + saved activations (CUDA: the allocator's peak) above
`AnalysisOptions.memory_threshold_mb`.

## Why is this bad?
The run will not fit (or will not fit a larger batch) on the target device.

## Example
A 1B-parameter model with Adam: 4 GB weights, 4 GB gradients, 8 GB optimizer state before any
activation.

## Recommended fix
Whatever dominates: activation checkpointing or a smaller batch for activations; a leaner
optimizer for optimizer state; mixed precision for both.

## Known problems
On a CPU the figure is a tensor estimate; the process RSS is shown beside it.
""",
    ),
    Spec(
        code='PRB001', kind='input_ignored', category='model', family='probe', name='input-ignored',
        summary='The model learns as well with its inputs zeroed as with the real ones (agent probe).',
        doc="""
## What it detects
The agent trains two copies on the same batch for the same steps, one with every input set to
zero. If the zeroed copy ends no worse than 1.1x the real one, the inputs do not matter.

## Why is this bad?
The output does not depend on the input: the input path is detached or overwritten, or the targets
can be predicted without it (constant labels, labels leaked into a bias).

## Example
```python
def forward(self, x):
    return self.net(torch.zeros_like(x))   # a leftover placeholder replaces the input
```

## Recommended fix
Trace the input through `forward()`: check that it is used and not detached or replaced.

## Known problems
Skipped when the model does not learn with real inputs either (dead units, a far-off learning
rate): those causes are reported instead, and explain this one when both fire.
""",
    ),
    Spec(
        code='PRB002', kind='nondeterminism', category='runtime', family='probe', name='nondeterminism',
        summary='Two runs with the same seed produce different losses (agent probe).',
        doc="""
## What it detects
The agent trains two copies for a few steps with the same seed, data and optimizer and compares
the losses exactly.

## Why is this bad?
Runs cannot be reproduced, so comparing two configurations measures noise as well as the change.

## Example
```python
return self.net(x) * (1 + random.random())   # Python's RNG is not seeded by torch.manual_seed
```

## Recommended fix
Seed every generator (`random`, `numpy`, `torch`) and, while debugging,
`torch.use_deterministic_algorithms(True)`.

## Known problems
Some CUDA kernels are non-deterministic by design; the probe reports them too.
""",
    ),
)
