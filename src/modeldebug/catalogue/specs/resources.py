"""Catalogue entries: resources."""

from __future__ import annotations

from ..spec import Option, Spec

SPECS = (
    Spec(
        code='MEM001', kind='memory_growth', category='memory', family='training', name='memory-growth',
        summary="Process or GPU memory keeps growing step after step: something holds on to every step's tensors.",
        options=(
            Option('memory_growth', 0.1, "steady growth as a fraction of the run's early memory level, flagged without a known cause."),
            Option('memory_growth_with_cause', 0.002, 'the same, when kept loss tensors or eval passes with autograd on are seen.'),
        ),
        doc="""
## What it detects
A steady rise of CUDA memory held by tensors (`cuda_mb`) or of the process's resident memory
(`rss_mb`) in the second half of the run: a positive Theil-Sen slope, rising from quarter to
quarter, larger than five times its own noise. Allocator warm-up at the start is ignored, and so
is one change of level: when a single quarter-to-quarter rise holds more than three quarters of
the rise and a single step at least half of it (a validation pass's graphs, a buffer allocated
once; a leak that starts late ramps, it does not jump), only what follows that jump is judged, against `memory_growth` unless loss tensors are kept (validation passes whose
graphs were kept would have raised memory at every validation, not once). The growth over the
run is compared with the run's own early level: flagged
from `memory_growth` (default 10%), or from `memory_growth_with_cause` (default 0.2%) when the
run shows why: loss tensors of earlier steps still alive (`history.append(loss)`), or forward
passes in eval mode with autograd on (validation without `torch.no_grad()`) while the memory
grew. Eval-mode passes that are the training passes themselves (a model left in eval mode after
validation: the sampled modules train in eval mode) are not such a cause; LOP002 judges them.
Loss tensors kept alive without measurable growth are reported at low severity.

## Why is this bad?
A leak grows without bound: a run that fits in memory for 100 steps runs out after 100,000,
hours in. A kept loss tensor keeps its autograd graph; a kept loss from a pass without
`no_grad()` keeps every activation of that pass.

## Example
```python
history.append(loss)              # the tensor and its graph, every step
total_val += loss_fn(model(xv), yv)   # validation with autograd on: every activation kept
```

## Recommended fix
Keep numbers, not tensors: `loss.item()`; run validation under `torch.no_grad()`; detach what
you store (`out.detach().cpu()`).

## Known problems
A cache filled on purpose during the first epoch looks like a leak when the run is that short.
Resident memory also grows with Python objects outside PyTorch; the cause is then not named.
""",
    ),
    Spec(
        code='PRF001', kind='dataloader_bottleneck', category='performance', family='training', name='dataloader-bottleneck',
        summary='Training waits for data: most of each step is spent fetching the next batch.',
        options=(
            Option('dataloader_share', 0.5, 'share of step time spent waiting for the next batch.'),
            Option('dataloader_min_wait_ms', 1.0, 'median wait per step below which waiting is not judged.'),
        ),
        doc="""
## What it detects
The share of step time spent waiting for the next batch: inside the `DataLoader` iterator when
the run uses one, otherwise the time between the end of a step and the next forward pass, less
the forward passes without gradients in it (`t_inference`: a distillation teacher's or a DQN target
network's inference on the batch, an evaluation), which are training work, not data loading.
Flagged when the total share or the median step's share is at least `dataloader_share`
(default 50%) and the other at least half of that, so that neither a few steps waiting long
(worker start-up) nor a few steps stalled by something else decide alone, and when
the median wait at least `dataloader_min_wait_ms` (default 1 ms; below it the wait is the
loop's own Python overhead, which no loader setting removes). The
first step, steps that include a validation pass and steps on which modeldebug sampled
activations are left out. When the gaps between steps hold much of the run, a stack sampler
names the lines of the user's code that held them (`gap_profile`, capture/gaps.py): without a
`DataLoader` the title then names the top line (`train.py:99: plt.draw(); plt.pause(0.05)`)
instead of saying "waits for data", and the first fix is that line, made rarer.

## Why is this bad?
The model (and the GPU) idles while the batch is prepared: the run takes 1 / (1 - share) times
longer than its compute needs.

## Example
```python
class Images(Dataset):
    def __getitem__(self, i):
        return heavy_decode_and_augment(self.files[i])     # in the training process
loader = DataLoader(Images(), batch_size=64)                # num_workers=0
```

## Recommended fix
`num_workers` > 0 (prepare batches in parallel) and `persistent_workers=True`, a larger
`prefetch_factor`, and `pin_memory=True` when the batches go to a GPU; move expensive per-sample
work out of `__getitem__` (decode once and cache, augment whole batches, on the GPU if there is one).
The advice starts from the loader the run used (the `dataloader` event: its worker processes,
batch size, whether workers persist, whether the data set holds its samples as tensors in memory).
A loader that already has workers is told so; when its data set holds its samples in memory (a
feature array with one row per sample, or a `Subset` of such a data set) and the median wait is
within 2 ms a batch, the first fix is `num_workers=0`: a batch made by indexing rows costs less
than receiving it from a worker process (each batch's tensors are passed through shared memory and
a queue, around a millisecond), which is what a small model fed from a table through workers waits
for. The loader described is the first one read with autograd on (a validation loop read first,
such as Lightning's sanity check, is not the training loader). A loop whose batches each feed
several optimizers stepped in turn (one net each) closes several steps per batch, of which only
the first waits: when a DataLoader was used and the steps with loader time are about one in as
many as there are optimizers, the shares are taken per iteration (blocks of that many steps).
A loop that makes a new iterator for each batch (`next(iter(train_loader))` in the step loop: 90% or
more of the first 20 training batches were an iterator's first, on a loader with more than one batch
an epoch) with worker processes starts them for each batch and stops them when the iterator is
dropped, outside `__next__`: the wait then is the whole gap before the forward pass, and the finding
names the line and the fix (one iterator per epoch). Without workers a new iterator costs next to
nothing, and the gap is judged as usual.

## Known problems
Without a `DataLoader`, the time between steps also holds logging and any other work the loop
does there; the finding then has lower confidence, and a loop without an optimizer object
(whose steps end at the next backward pass) is not judged. Nor is a loop that feeds the model the
very same batch every step (tensors built once and trained on whole: each sampled step's input is
the very tensor of the sampled step before, unwritten since): no batch is prepared between its
steps, so the time there is plotting, logging or evaluation, not data. A run that starts new loader workers every
epoch but rarely waits otherwise is not flagged.
""",
    ),
    Spec(
        code='PRF002', kind='slow_step', category='performance', family='training', name='slow-step',
        summary='Steps get slower as the run goes on, stall periodically, or each carry a whole validation pass.',
        explains=('memory_growth',),
        options=(
            Option('slow_step_growth', 2.0, 'last-quarter over first-quarter median step time.'),
            Option('slow_step_spike', 5.0, 'a step this many times the median is a stall.'),
            Option('slow_step_spike_share', 0.3, 'share of step time that periodic stalls must cost.'),
        ),
        doc="""
## What it detects
Judged on at least 40 steps after warm-up (the first 10%), leaving out steps that include a
validation pass and steps on which modeldebug sampled activations (its own extra work).
(1) A trend: the median step time of the last quarter is at least `slow_step_growth` (default
2x) that of the first quarter, the rise spread over the run (no quarter-to-quarter rise holds
more than 75% of it, none falls back) with a rank correlation between step and step time of
at least 0.5, so one change of pace (unfreezing layers, another job starting on the machine)
or noise is not a trend; and at least one phase of the step (forward, backward, optimizer,
between steps) grew by at most half as much, because a machine that got busier slows every
phase alike; and the run's own work grew by `slow_step_growth` too: the process's CPU time per
step when the record has it (column `t_cpu`; other processes on the CPU add wall time, not
CPU time), else the fastest tenth of the steps of each quarter (a busy machine slows the
typical step but leaves some undisturbed; work that grows with the run slows them all). The
phase that grew most (forward, backward, optimizer, between steps) is named. (2) Periodic
stalls: at least 4 steps longer than `slow_step_spike` (default 5x) the median step, three
quarters of them at the same interval, together costing at least `slow_step_spike_share`
(default 30%) of the step time. Stalls spent in the DataLoader are left to
`dataloader_bottleneck`. Stalls between steps are located when the stack sampler ran
(`gap_profile`): the description lists the user's lines that held the gaps, and the fix makes
the top one rarer (`if step % 50 == 0: plt.pause(0.1)   # train.py:60`); when that line waits on
purpose (a sleep, a plot shown for a moment) the finding is low and explains nothing (a memory
growth beside it stays a finding of its own). An evaluation written without `torch.no_grad()`
(`model.eval()`, then `model(x_val)` with autograd on) by a model that trains in train mode is
timed between steps, with what runs beside it, not as the next step's forward pass. (3) Anomaly detection
left on for training: torch.autograd's `set_detect_anomaly(True)` (or a `detect_anomaly()` block)
active at the end of at least 3 sampled steps and at least half of them (event `anomaly_mode`), a
debugging mode that records a stack trace for every operation and checks every backward output for
NaN, typically 1.5-3x slower steps for the same numbers (medium). (4) A validation pass after every
training step (`validate()` indented into the batch loop): a loss computed without gradients (an
evaluation) in the gap before at least 80% of the steps after warm-up, and the forward passes
without gradients there (`t_inference`) holding at least half of the median step, and those losses
over other data than the training batch (at least two calls a step, or another batch size) (medium).
A teacher's or a target network's inference on the training batch, even one that computes its own
loss under `no_grad`, is not taken for one. (5) Token batches padded to a fixed length: an
`nn.Embedding` with a `padding_idx` reading ids `[B, T]` (T of 8 or more) where half of the positions
or more hold the padding id in every sequence of the batch, on each of the first sampled training
steps (`embedding_padding`'s `padding_columns_share`): padded to a maximum length, not to the batch's
longest sequence, so every layer after the embedding computes over them for nothing: medium under
attention (a `MultiheadAttention` or Transformer layer, which works at any length and computes
every pair of positions), low otherwise (pooled embeddings are cheap after the pooling; an LSTM,
GRU or RNN may pack its sequences). A model with an `nn.Flatten` (a head sized for the padded
length) is not judged.

## Why is this bad?
A step time that grows with the step count makes the run quadratic: the last steps cost many
times the first, and the same thing usually makes memory grow. Periodic stalls waste the
fraction of the run they cost.

## Example
```python
out, hidden = rnn(x, hidden)                  # hidden is never detached
loss.backward(retain_graph=True)              # so every backward runs through all past steps
```

## Recommended fix
Detach state carried between steps (`hidden.detach()`), drop `retain_graph=True`, store losses
with `.item()`; for stalls, checkpoint and log less often, or asynchronously.

## Known problems
Timings on a busy machine are noisy; only large effects over at least 40 steps are judged.
Work that grows in every phase of the step at once is taken for a busier machine and missed.
The number of forward calls per step is not measured: when every model is fed one sample per
call (a batch of 1, or one unbatched feature vector) and the forward pass grew with the step, the
trend is reported at low severity and says so, since a step that makes more calls by design (a
reinforcement-learning episode that lasts longer as the policy improves) looks the same as a leak.
""",
    ),
)
