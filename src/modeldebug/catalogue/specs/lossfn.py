"""Catalogue entries: lossfn."""

from __future__ import annotations

from ..spec import Option, Spec

SPECS = (
    Spec(
        code='LSS001', kind='double_softmax', category='loss', family='training', name='double-softmax',
        summary='The loss gets probabilities where it expects logits (or logits where it expects log-probabilities).',
        explains=('loss_not_decreasing', 'vanishing_gradients', 'saturated_activations', 'loss_diverging'),
        options=(
            Option('probability_rowsum', 0.001, '|row sum - 1| at or below this means the loss input already is a probability distribution.'),
        ),
        doc="""
## What it detects
On sampled steps, what the loss function receives: `cross_entropy` inputs whose rows are
already probability distributions (all values in [0, 1], every row summing to 1 within
`probability_rowsum`, default 1e-3), i.e. a softmax before a loss that applies log-softmax
itself; `cross_entropy` or `binary_cross_entropy_with_logits` inputs that all lie in [0, 1] on
every sampled step (a sigmoid in front of a loss that applies its own; judged on 16 values or
more; not when a ReLU-like layer of the model is dead on every unit and no squashing module ends
it: its outputs are then its last biases, the same for every input, and `dead_activations` is
the cause); `nll_loss` inputs with positive values, which a log-probability never has (softmax
output, or raw logits, where `log_softmax` was needed); `cross_entropy` or
`binary_cross_entropy_with_logits` inputs whose smallest value is exactly 0 on every sampled step
(at least 3) and not all 0: logits that are never negative, a ReLU (or a clamp) after the last
Linear layer. That one is high for the binary loss (no prediction can fall below 0.5) and for
cross-entropy when some output units are already zero for every sample (those classes can never
win), medium otherwise.

## Why is this bad?
Squashed inputs make the loss nearly flat: a softmax'ed row fed to cross-entropy can only move
the loss between log(C) and log(C) - 1 + small, so gradients vanish and training stalls. A
`nll_loss` on raw logits is unbounded below and rewards making one logit huge. Logits clamped at
0 get no gradient where they are clamped: an output unit that stops firing never comes back.

## Example
```python
return F.softmax(self.fc(x), dim=1)          # then nn.CrossEntropyLoss()(out, y)
return torch.sigmoid(self.fc(x))             # then nn.BCEWithLogitsLoss()(out, y)
nn.Sequential(nn.Linear(100, 10), nn.ReLU())  # logits clamped at 0, then nn.CrossEntropyLoss()
```

## Recommended fix
Return logits from `forward` and let `CrossEntropyLoss`/`BCEWithLogitsLoss` normalise; use
`log_softmax` (not `softmax`) before `nll_loss`.

## Known problems
Only the functional losses are seen (loss modules call them too); a hand-written loss is not.
A live model whose logits all happen to lie in [0, 1] on every sampled batch would be flagged.
""",
    ),
    Spec(
        code='LSS002', kind='loss_shape_mismatch', category='loss', family='training', name='loss-shape-mismatch',
        summary='The loss compares tensors of different shapes that broadcast, or classifies over one class.',
        explains=('loss_not_decreasing', 'params_not_updating', 'vanishing_gradients'),
        doc="""
## What it detects
Elementwise losses (`mse_loss`, `l1_loss`, `smooth_l1_loss`, `huber_loss`, `kl_div`, ...) whose
input and target shapes differ and broadcast to a shape other than the input's, such as
(N, 1) against (N,), which compares every prediction with every target; `cross_entropy` or
`nll_loss` over an input with one class, whose loss is always 0; and crashes whose message says
the loss's target and input sizes differ.

## Why is this bad?
Broadcasting silently computes a different loss: with (N, 1) against (N,) the best the model
can do is predict the batch mean, so the loss plateaus at the target variance. Cross-entropy over
one class is identically zero and passes no gradient.

## Example
```python
loss = F.mse_loss(model(x), y)           # model(x): (64, 1), y: (64,)
head = nn.Linear(128, 1); loss = nn.CrossEntropyLoss()(head(h), y)
```

## Recommended fix
Make the shapes equal (`y.view_as(pred)`, or `pred.squeeze(1)`); for a binary task use one
logit with `BCEWithLogitsLoss`, or two logits with `CrossEntropyLoss`.

## Known problems
The shapes are those of the first call of each loss in each phase; a shape that changes later
(a last, smaller batch) is not re-read. A target broadcast on purpose across the batch
(a fixed reference vector) is not flagged.
""",
    ),
)
