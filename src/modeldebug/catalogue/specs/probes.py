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
The agent trains copies on the same batch for the same steps, in pairs under the same seed: one
with the real inputs, one with every input set to zero, repeated over `AnalysisOptions.probe_seeds`
seeds (3 by default; the repeats stop after two when the seed changes nothing). It compares the
inputs' share of the learning, (zeroed final loss - real final loss) / (real first - real final
loss), and its 95% interval over the seeds, never narrower than the runs' own step-to-step noise.
It fires when the whole interval is below 10% (high severity below 2%: the inputs make no
difference at all), passes when the gap is positive beyond the noise and the share is 10% or
more, and is "inconclusive" (no finding) in between.

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
rate): those causes are reported instead, and explain this one when both fire. A slow learner is
judged by its share, not its pace: an LSTM whose loss fell only from 1.42 to 1.29 in 60 steps,
against 1.38 with zeroed inputs, uses its inputs for 71% of what it learned and passes.
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
    Spec(
        code='PRB003', kind='causality_leak', category='model', family='probe', name='causality-leak',
        summary='An autoregressive model sees the future: output t depends on inputs after t (agent probe).',
        doc="""
## What it detects
For a model whose inputs are sequences, (batch, time) integer tokens or (batch, time, features)
values, and whose output has the same time axis, the agent backpropagates from output position t
(a random projection of it, so that a softmax's constant row sum cannot hide a dependence) of a few
samples and measures the gradient on the inputs at every later position of the same sample. For
tokens the gradient is taken with respect to the output of the first `nn.Embedding` that embeds
them. A causal model gives exactly zero there; anything above 1e-6 of the gradient on positions up
to t is a leak. It checks t = 0, 1, T/2 and T-2 and reports the first position that leaks, the
later positions it sees, and the first module whose output already depends on the future.

The probe runs only when the model is known to be autoregressive, because a bidirectional encoder
(BERT, a tagger) looks at the whole sequence by design. Known means: the targets are the inputs
shifted by one (`y[:, :-1] == x[:, 1:]`, next-token prediction), or the model computes its own loss
from `labels` equal to `input_ids` (the Hugging Face convention), or the request's issue or context
says "causal", "autoregressive", "language model", "next token", "decoder-only" or "GPT". Otherwise
it is skipped and says why.

## Why is this bad?
Training next-token prediction on a model that can see the next token teaches it to copy: the
training loss falls fast and looks healthy, and generation (where the future does not exist yet)
produces garbage.

## Example
```python
h = self.blocks(x)                                     # no mask: every position attends to every other
h = self.blocks(x, mask=nn.Transformer.generate_square_subsequent_mask(T), is_causal=True)  # the fix
```

## Recommended fix
Mask attention to the past: pass a causal mask (`generate_square_subsequent_mask`,
`is_causal=True`, `F.scaled_dot_product_attention(..., is_causal=True)`), and check that no layer
mixes the time axis forwards (a bidirectional RNN, a non-causal convolution, a pooling over time).

## Known problems
Only the first embedding's output (tokens) or the input itself (values) is probed; a model that
takes its sequence in a mapping is probed through `input_ids`. A model whose output length differs
from its input length (an encoder-decoder, a pooled output) is skipped. A mask built from the
padding only is not causal and is reported.
""",
    ),
    Spec(
        code='PRB004', kind='zero_weights', category='model', family='probe', name='zero-weights',
        summary='Every weight of the model is exactly zero: all units compute the same thing and cannot differ (agent check).',
        explains=('dead_activations', 'params_not_updating', 'vanishing_gradients', 'loss_not_decreasing',
                  'input_ignored', 'poor_initialization', 'saturated_activations'),
        doc="""
## What it detects
Before anything runs, the agent looks at the model's weight tensors (parameters with two or more
dimensions: Linear, Conv, Embedding, RNN matrices). It fires when there are at least two and
every one of them is exactly zero.

## Why is this bad?
With every weight zero, every unit of a layer computes the same value (its bias) and gets the same
gradient, so they stay identical forever (the symmetry is never broken); behind a ReLU the
gradient of the earlier layers is exactly zero. The model cannot learn anything beyond the biases:
dead units, parameters that never update and a flat loss are the symptoms.

## Example
```python
for p in model.parameters():
    nn.init.zeros_(p)          # "start from zero": every unit identical
```

## Recommended fix
Initialise weights randomly with a fan-in-scaled scheme (PyTorch's default `reset_parameters()`,
He for ReLU, Xavier for tanh) and keep zeros for biases only; load the checkpoint you meant to load.

## Known problems
A single zero-initialised layer (a linear model, a zero-initialised output head, LoRA's B matrix)
learns fine and is not reported; only a model whose weights are all zero is. Weights that are
tiny but not zero are judged by the initialisation rules instead.
""",
    ),
    Spec(
        code='PRB005', kind='single_sample_batchnorm', category='model', family='probe',
        name='single-sample-batchnorm',
        summary='Every batch has one sample but the model normalises with BatchNorm (agent check).',
        doc="""
## What it detects
Every batch the agent was given has one sample and the model has BatchNorm layers. (When
BatchNorm1d then raises "Expected more than 1 value per channel when training", the crash finding
gets the same advice as its first fix.)

## Why is this bad?
BatchNorm normalises each channel with the statistics of the batch. With one sample they are the
statistics of that sample alone (over its spatial positions, or nothing at all for a vector, which
is the crash): training normalises per sample like InstanceNorm, while evaluation uses running
averages of those per-sample statistics, so train and eval behave differently and the batch
statistics are very noisy.

## Example
```python
model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), ...)
loader = DataLoader(dataset, batch_size=1)      # e.g. large images that only fit one at a time
```

## Recommended fix
Use a normalisation that does not depend on the batch: `nn.GroupNorm(num_groups, channels)` for
convolutions, `nn.LayerNorm(features)` for vectors and sequences. If more samples fit, use larger
batches (gradient accumulation does not help BatchNorm: it still sees one sample per forward).

## Known problems
Judged from the batches given to the agent: a loader whose last batch alone has one sample is not
reported (drop_last=True is the fix there, and the crash rule says so).
""",
    ),
)
