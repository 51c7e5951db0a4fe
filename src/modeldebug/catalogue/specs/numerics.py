"""Catalogue entries: numerics."""

from __future__ import annotations

from ..spec import Spec

SPECS = (
    Spec(
        code='NUM001', kind='nonfinite', category='numerics', family='training', name='non-finite-values',
        summary='The loss or the gradients became NaN or Inf; names the module that produced the first one.',
        doc="""
## What it detects
The first step whose loss or any gradient was not finite. The loss and one fused gradient norm
are checked every step at every level; when the loss goes non-finite, that step's forward pass
is replayed (same weights, RNG and buffers restored) with a check on every module, and the first
module whose output went non-finite while its inputs were finite is named as the producer.
When the forward pass was finite and a gradient was not, the backward pass made it: the finding
then lists, as candidates, the operations in the loss's graph whose derivative is infinite at the
edge of their domain (counted once, in the first sampled step's graph: acos, asin and atanh at +-1;
sqrt, rsqrt, a power below 1 and log at 0; not a norm or cdist, whose gradient at 0 PyTorch defines
as 0), with the fix for the first of them (`acos(cos.clamp(-1 + 1e-7,
1 - 1e-7))`, not `clamp(-1, 1)`, which reaches the edge itself).

## Why is this bad?
One NaN poisons every weight it touches at the next update; the run is lost from that step on,
and the modules downstream of the producer all look guilty.

## Example
```python
h = self.fc1(x)
h = torch.log(h)          # log of negative pre-activations -> NaN
```

## Recommended fix
Guard the producing operation (clamp before `log`/`sqrt`, add an epsilon to divisions), use the
numerically stable fused losses (`F.cross_entropy` on logits, `BCEWithLogitsLoss`), and if the
gradients grew first, lower the learning rate or clip gradients.

## Known problems
The replay runs the model root that was called last in the step; a model whose forward pass
depends on Python state that changes each call may not reproduce the value. When CUDA kernels
are non-deterministic the replay can come out finite; the finding then says so. Submodules
called as `m.forward(x)` instead of `m(x)` skip the hooks, so the blame lands on the module that
calls them (a flow's coupling layers, the whole model); the finding says so when it names the
model root. When the NaN/Inf is in a module's second output (a `(z, log_det)` tuple) while the
first is finite, the finding says which.
""",
    ),
)
