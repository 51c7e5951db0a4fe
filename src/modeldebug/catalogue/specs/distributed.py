"""Catalogue entries: cross-rank rules, judged after a distributed job from every rank's record."""

from __future__ import annotations

from ..spec import Spec

_HOW = """
Each rank writes its own record; the ranks are compared after the job from fingerprints (the
sum and sum of squares of a fixed strided sample of each tensor) written at sampled steps (steps
1-4, then every 20th). Nothing is communicated between ranks while training.
"""


def _spec(code: str, kind: str, category: str, name: str, summary: str, doc: str,
          explains: tuple[str, ...] = ()) -> Spec:
    return Spec(code=code, kind=kind, category=category, family="distributed", name=name, summary=summary,
                doc=doc, explains=explains)


SPECS = (
    _spec("DST001", "rank_params_diverged", "model", "rank-params-diverged",
          "Parameters that should be replicated differ across ranks after an optimizer step.",
          """
## What it detects
After a sampled optimizer step, the fingerprint of a parameter on some rank differs from rank 0's
(relative difference above 1e-6). Reported at the first such step, with the number of tensors
that differ and one example's fingerprint on every rank.
""" + _HOW + """
## Why is this bad?
Data parallelism assumes every rank holds the same weights. Replicas that drift apart train
different models: the checkpoint saved on rank 0 is not the model the other ranks evaluated, and
the averaged gradients no longer belong to any of them. Large runs have lost weeks to this.

## Example
```python
model = DDP(model)                      # broadcasts rank 0's weights now
if rank == 0:
    model.module.load_state_dict(torch.load("ckpt.pt"))   # rank 0 only, after the broadcast
```

## Recommended fix
Change weights (load a checkpoint, re-initialise a layer) before wrapping the model in DDP, or on
every rank; never update parameters outside the optimizer on one rank only.

## Known problems
Sharded models (FSDP, DTensor) hold different shards on purpose and are not compared. Only the
first optimizer's parameters are fingerprinted. A difference between two sampled steps that
vanishes again is not seen.
""", explains=("rank_loss_mismatch",)),
    _spec("DST002", "rank_grads_unsynced", "gradient", "rank-grads-unsynced",
          "Gradients differ across ranks when the optimizer steps: DDP did not average them.",
          """
## What it detects
At a sampled step, the fingerprints of the gradients the optimizer is about to use differ
between ranks. The evidence says whether the DDP model had gradient sync switched off
(`require_backward_grad_sync` false, as inside `no_sync()`) at those steps.
""" + _HOW + """
## Why is this bad?
In DDP the gradients are averaged across ranks during backward, so every rank takes the same
step. When they differ the ranks take different steps and their weights drift apart (DST001
follows): the job is several independent trainings on smaller data, not one.

## Example
```python
with model.no_sync():        # meant for accumulation micro-steps, left on for the whole loop
    for x, y in loader:
        loss_fn(model(x), y).backward()
        opt.step(); opt.zero_grad()
```

## Recommended fix
Use `no_sync()` only for the micro-steps of gradient accumulation, leaving it before the last
backward of each step; call backward on the output of the DDP-wrapped model; move the model to
its device before wrapping it, never after.

## Known problems
Gradients are compared only where the optimizer steps (a step pre-hook). Sharded models (FSDP)
are not compared.
""", explains=("rank_params_diverged", "rank_loss_mismatch")),
    _spec("DST003", "rank_same_data", "data", "rank-same-data",
          "Every rank trained on the same batches: no DistributedSampler, or the same shard everywhere.",
          """
## What it detects
The first input batch of each step (the outermost module's first tensor argument) has the same
shape and fingerprint on every rank at 90% or more of at least 3 compared steps.

## Why is this bad?
N ranks that see the same batches compute the same gradients: the job costs N times as much and
learns as fast as one process, and the effective batch size is not what the logs say.

## Example
```python
loader = DataLoader(dataset, batch_size=64, shuffle=True)   # torch.manual_seed(0) on every rank
```

## Recommended fix
Shard the data with `DistributedSampler(dataset, num_replicas=world_size, rank=rank)` and pass it
as the DataLoader's `sampler` (without `shuffle=True`).

## Known problems
Ranks that each read the whole data set in different random orders are not flagged (each batch
differs), although each epoch then holds every sample N times. A model whose first argument is
not the batch (e.g. a mask) is judged on that argument.
"""),
    _spec("DST004", "rank_same_order", "data", "rank-same-order",
          "A shuffling DistributedSampler was iterated for several epochs with the same epoch: set_epoch was never called.",
          """
## What it detects
A `DistributedSampler` with `shuffle=True` whose iterations (one per epoch) all used the same
`epoch` value on some rank.

## Why is this bad?
The sampler's permutation depends only on its seed and epoch: without `set_epoch`, every epoch
visits the samples in the same order and each rank sees the same shard every epoch, which hurts
generalisation like turning shuffling off.

## Example
```python
sampler = DistributedSampler(dataset)
for epoch in range(10):
    for x, y in DataLoader(dataset, sampler=sampler):   # sampler.set_epoch(epoch) missing
        ...
```

## Recommended fix
Call `sampler.set_epoch(epoch)` at the start of every epoch, on every rank.

## Known problems
Only `torch.utils.data.DistributedSampler` (and subclasses) is watched; other samplers that shard
by rank are not seen.
"""),
    _spec("DST005", "rank_lr_mismatch", "optimizer", "rank-lr-mismatch",
          "The learning rate differs across ranks at the same step.",
          """
## What it detects
The first parameter group's learning rate, read after each optimizer step, differs between ranks
at half or more of the compared steps (at least 3).

## Why is this bad?
With equal averaged gradients, different learning rates give different steps: the replicas drift
apart (DST001), and the run behaves like none of its configured schedules.

## Example
```python
opt = torch.optim.SGD(model.parameters(), lr=0.1 * (rank + 1))      # scaled by the rank by mistake
sched = StepLR(opt, step_size=len(local_loader))                    # a per-rank batch count
```

## Recommended fix
Derive the learning rate and the scheduler's settings from values that are equal on every rank
(the global batch size, the world size), and step the scheduler the same number of times
everywhere.

## Known problems
Only the first parameter group is compared.
""", explains=("rank_params_diverged",)),
    _spec("DST006", "rank_loss_mismatch", "loss", "rank-loss-mismatch",
          "The loss differs across ranks by more than 3x, consistently: a rank computes it differently or sees other data.",
          """
## What it detects
At half or more of the compared steps the largest rank's loss is more than 3x the smallest's,
and so are their medians over the run.

## Why is this bad?
Ranks that sample the same distribution have losses of the same size. A consistent gap means a
rank-dependent loss (weights, scaling, reduction), or data prepared differently on one rank
(another normalisation, a corrupt shard): the averaged gradient is dominated by one rank.

## Example
```python
y = y * 10 if rank == 1 else y        # a shard preprocessed with other units
loss = F.mse_loss(model(x), y)
```

## Recommended fix
Use the same loss function, reduction and scaling everywhere, and prepare every shard the same
way; check the shard of the rank with the outlying loss.

## Known problems
Shards that genuinely differ (a deliberately stratified split) can have different losses. The
loss is the one the tracer recorded per step.
"""),
    _spec("DST007", "rank_batchnorm_unsynced", "model", "rank-batchnorm-unsynced",
          "BatchNorm running statistics differ across ranks: each rank normalises with its own shard's statistics.",
          """
## What it detects
At sampled steps, the running mean and variance of a BatchNorm layer, fingerprinted as the layer
is entered (after DDP has broadcast its buffers, when it does), differ between ranks at half or
more of the compared steps.

## Why is this bad?
Each rank's BatchNorm keeps statistics of its own shard: evaluation differs by rank, and the
checkpoint from rank 0 carries statistics of 1/N of the data. With small per-rank batches the
batch statistics themselves are noisy, which is what SyncBatchNorm is for.

## Example
```python
model = DDP(model, broadcast_buffers=False)     # or forward_sync_buffers=False; model has BatchNorm2d
```

## Recommended fix
Convert the model with `torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)` before wrapping it
(GPU), or keep DDP's buffer sync on (`broadcast_buffers=True`, in torch 2.13
`forward_sync_buffers=True`) so that rank 0's buffers are used everywhere.

## Known problems
With `broadcast_buffers=True` the ranks agree as each forward begins, and this rule is quiet,
although the batch statistics used in training are still per rank. SyncBatchNorm needs a GPU.
"""),
    _spec("DST008", "rank_straggler", "performance", "rank-straggler",
          "One rank is consistently slower than the others, in waiting for data, in the forward pass or per step.",
          """
## What it detects
For each phase (data wait, forward, whole step) and rank, the rank's time minus the median of the
other ranks' at each step (after 2 warm-up steps): flagged when that rank is more than 1.5x
slower at 70% of at least 5 steps and its median excess is above 5 ms and 10% of a step. The
phase with the largest excess is named.

## Why is this bad?
Synchronous data parallelism waits for the slowest rank at every gradient all-reduce: one slow
rank sets the pace of the whole job, and the others idle.

## Example
```python
loader = DataLoader(ds, sampler=sampler, num_workers=0 if rank == 1 else 4)
```

## Recommended fix
Find what only that rank does: more loader work, logging or checkpointing inside the loop, a
slower disk, a shared or slower device; balance it or move it out of the step.

## Known problems
Under DDP, backward time includes waiting for the other ranks, so it is not compared: a rank
slow in backward computation alone is not seen. Timings on a busy machine are noisy.
"""),
    _spec("DST009", "rank_hang", "runtime", "rank-hang",
          "A rank stopped making steps for far longer than usual: the watchdog's stall, with the collective it waited in.",
          """
## What it detects
The per-rank hang watchdog saw no optimizer step finish for `MODELDEBUG_HANG_FACTOR` (10) times
the median step time, and at least `MODELDEBUG_HANG_MIN_S` (10) seconds. The finding names the
torch.distributed collective the rank was waiting in, the line that called it, how many calls of
each collective every rank entered (a rank with fewer calls skipped one), and the stack.

## Why is this bad?
A collective that one rank never enters blocks all others until the process group times out
(30 minutes by default for NCCL), with no message about which call did not match.

## Example
```python
if rank == 0:
    dist.all_reduce(metric)      # rank 1 never enters it: rank 0 waits
```

## Recommended fix
Make every rank enter the same collectives in the same order: no collective under a
rank-dependent condition, the same number of batches on every rank (`drop_last=True`, or DDP's
`join()` for uneven inputs).

## Known problems
Collectives DDP runs inside backward (its C++ reducer) and in its forward (buffer broadcast) are
not wrapped: a hang there is named from the stack ("in backward(), in DistributedDataParallel's
gradient all-reduce"), with the advice for uneven batches, but not which call it was. A stall the job recovered from (a slow evaluation or checkpoint
between steps, a rank waiting at the last barrier) is printed by the watchdog but is not a
finding unless another rank entered that collective fewer times; raise `MODELDEBUG_HANG_MIN_S`
to quiet the print for such jobs.
"""),
    _spec("DST010", "rank_uneven_steps", "data", "rank-uneven-steps",
          "The ranks ran different numbers of optimizer steps (uneven inputs).",
          """
## What it detects
The number of optimizer steps recorded differs between ranks.

## Why is this bad?
With DDP every step all-reduces gradients: the rank with more batches waits for partners that
have finished, and the job hangs or times out; without DDP the replicas simply diverge.

## Example
```python
loader = DataLoader(my_shard, batch_size=32)     # shards of different sizes per rank
```

## Recommended fix
Give every rank the same number of batches (DistributedSampler pads its shards; use
`drop_last=True`), or wrap the loop in `model.join()`.

## Known problems
A rank that crashed also has fewer steps: its crash is listed with this finding.
""", explains=("rank_hang",)),
)
