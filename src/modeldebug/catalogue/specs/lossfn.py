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
win), medium otherwise. And a `torch.distributions.Categorical` (or `OneHotCategorical`) built with
autograd on whose `logits=` are probabilities (in [0, 1], rows summing to 1 within 1e-3; the first
20 built are looked at): a policy that ends in a softmax, sampled from softmax(probabilities),
which is squeezed towards uniform (high; fix: `probs=`, or no softmax in the network).
A script that trains two models in turn with the same loss (a teacher on logits, then a student
whose hard-label term is given softmax outputs) shares one loss record: for `cross_entropy`, 3 or
more sampled calls in a row whose inputs are all probability rows are enough, and the finding
names those steps.

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
    Spec(
        code='LSS003', kind='kl_div_mean_reduction', category='loss', family='training', name='kl-div-mean-reduction',
        summary="kl_div with reduction='mean' divides by the classes as well as the batch: the KL term and its gradient are C times too small.",
        explains=('lr_too_low', 'loss_not_decreasing', 'params_not_updating'),
        options=(
            Option('kl_slow_fall', 0.5, 'a step loss that fell by less than this share of its start over the KL term\'s steps counts as learning slowly.'),
        ),
        doc="""
## What it detects
A training call of `F.kl_div` (what `nn.KLDivLoss` calls) with `reduction='mean'`, the default
of both, on an input with more than one value per sample (C > 1: a distribution over classes,
shape (N, C), or more axes). Never for `'batchmean'`, `'sum'` or `'none'`, nor on a 1-d input.
Severity says what the small term does to training:
- high when the KL call is the only functional loss called in its steps (from its first call to
  its last sampled one), the optimizer that took its first step last at or before that first
  call is plain SGD (or ASGD), and the step loss fell by less than `kl_slow_fall` (default 50%)
  of its start over those steps (medians of the first twentieth and the last quarter; at least
  `min_steps` steps);
- medium when another functional loss is called in the same steps (a distillation loss mixed
  with cross-entropy on the labels), when SGD learns fast anyway (a learning rate raised to make
  up for it), with an adaptive optimizer whose L2 `weight_decay` is added to the gradient, or
  with an optimizer it cannot tell;
- low when it is the only loss and an adaptive optimizer (Adam, RMSprop, ...; AdamW or no weight
  decay) rescales the gradient anyway.

## Why is this bad?
PyTorch's `'mean'` divides the summed divergence by every element, batch x C, not by the batch:
the value is not the KL divergence (`'batchmean'` is, and torch warns about this), and the term
and its gradient are C times smaller. Its kind in the taxonomy is what that does to training:
with SGD the step is proportional to the gradient, so the step this term drives is C times
shorter than intended, as if the learning rate were C times lower (`lr_too_low`, which it
explains when both fire). In knowledge distillation
(`alpha * T*T * kl_div(log_softmax(s/T), softmax(t/T)) + (1 - alpha) * ce`) a 100-class student
trained with SGD then barely learns from the teacher (validation accuracy 0.45 against 0.98 with
`'batchmean'` in a reported case). Mixed with another loss, the KL term is under-weighted C times
whatever the optimizer.

## Example
```python
kd_criterion = nn.KLDivLoss()                          # reduction='mean'
loss = kd_criterion(F.log_softmax(student(x) / T, dim=1), F.softmax(teacher(x) / T, dim=1)) * T * T
opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
```

## Recommended fix
`nn.KLDivLoss(reduction="batchmean")` (or `F.kl_div(..., reduction="batchmean")`). The term gets
C times larger: recheck a learning rate or loss weight that was tuned around the small one.

## Known problems
Only the functional `kl_div` is seen: a KL divergence written by hand is not. A script that
multiplies a `'mean'` KL by C on purpose is flagged all the same. Which optimizer trains the term
is guessed from when each optimizer first stepped; two optimizers that start together with
different types leave it unknown (medium at most). Whether another loss is mixed in is read from
the sampled steps of the functional loss calls: a hand-written extra term is not seen.
""",
    ),
    Spec(
        code='LSS004', kind='ctc_blank_in_targets', category='data', family='training', name='ctc-blank-in-targets',
        summary='CTC targets contain the blank index: a real symbol is encoded as the blank, and the loss trains on a wrong objective.',
        explains=('label_issue', 'loss_not_decreasing', 'loss_diverging'),
        doc="""
## What it detects
`F.ctc_loss` (what `nn.CTCLoss` calls) on the training calls (the validation ones when there are
none): on the first call and on sampled steps, the target symbols within `target_lengths` are
counted per index (padded (N, S) targets: the first `target_lengths[i]` of each row; concatenated
1-d targets: the first `sum(target_lengths)`; padding, often 0 like the blank, is never counted).
Fires when any of them equals the call's `blank` index (default 0). High when they are at least
0.5% of the target symbols, or when the training loss went below zero (the only loss of the run
being the CTC one); medium otherwise. The evidence gives the blank, how many target symbols equal
it and their share, the share of a typical other symbol (similar shares: a whole symbol of the
alphabet is mapped to the blank), and the lowest training loss.

## Why is this bad?
CTC requires that no target is the blank. A label encoding that maps a real symbol to the blank
index (digit '0' to 0 with `blank=0`) raises no error: the loss scores alignments that read that
symbol as "nothing emitted", trains on a wrong objective, can even go below zero (impossible for
a negative log-likelihood with valid targets), and the decoder, which drops the blank, can never
output that symbol (a reported case: 0 of 343 zeros read).

## Example
```python
ALPHABET = "0123456789"
targets = torch.tensor([ALPHABET.index(c) for c in text])   # '0' -> 0
loss = nn.CTCLoss(blank=0)(log_probs, targets, input_lengths, target_lengths)
```

## Recommended fix
Shift the symbols up by one and keep 0 for the blank, with C + 1 outputs:
`targets = labels + 1`, `nn.CTCLoss(blank=0)`, `nn.Linear(hidden, num_symbols + 1)`; when
decoding, drop 0 and subtract 1. (Or put the blank on an index no symbol uses: `blank=num_symbols`.)

## Known problems
Only the sampled calls are counted: a symbol that is rare enough to miss every sampled batch is
not seen. Targets passed in another layout than (N, S) or 1-d are not read.
""",
    ),
)
