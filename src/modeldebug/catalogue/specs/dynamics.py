"""Catalogue entries: dynamics."""

from __future__ import annotations

from ..spec import Option, Spec

SPECS = (
    Spec(
        code='ACT002', kind='saturated_activations', category='activation', family='training', name='saturated-activations',
        summary='Most outputs of a sigmoid/tanh layer sit at a bound, where the derivative is ~0.',
        explains=('vanishing_gradients', 'loss_not_decreasing'),
        options=(
            Option('saturated_fraction', 0.5, 'fraction of outputs within 1% of a bound.'),
        ),
        doc="""
## What it detects
On sampled steps, the fraction of a Sigmoid/Tanh/Hardtanh/Hardsigmoid layer's outputs within 1%
of a bound (|tanh| > 0.99, sigmoid < 0.01 or > 0.99). A layer is flagged when that fraction is
at least `saturated_fraction` (default 50%) on at least half of its samples. The last leaf
module of a model (an output sigmoid that is confident by design) is skipped. The statistics of
the layer feeding it are cited, and whether it was saturated from the first step.

Attention written by hand is judged too, where no module is: in the loss graph of the first
sampled step (found by the same walk as GRD003's custom Functions), each softmax over the last
axis of a tensor of 3 or more axes, at least 4 long in its last two (attention weights
[..., queries, keys]), is read from the values autograd saved for its backward. Over the rows of
the second half of the query axis (under a causal mask the first rows have one or a few keys to
choose from), the share whose largest weight is above 0.99 is taken; when it is at least
`saturated_fraction` in at least half of those softmaxes, attention is one-hot before training
could have sharpened it: its logits are far too large (medium, with the 1/sqrt(head_dim) fix).

## Why is this bad?
A saturated unit passes almost no gradient (sigmoid' < 0.01, tanh' < 0.02 there): the layers
before it stop learning and the loss stalls.

## Example
```python
h = torch.tanh(self.fc(x * 255))          # pre-activations in the hundreds: every unit at +-1
```

## Recommended fix
Keep the pre-activations near unit scale: normalise the inputs, Xavier-initialise the layer
feeding the activation, add a LayerNorm/BatchNorm before it; or use ReLU/GELU in hidden layers.

## Known problems
Gates (sigmoid in LSTMs or attention-like modules) saturate on purpose. Activations called as
functions (`torch.tanh`) are not seen. A model that starts from pretrained weights can have
attention heads this sharp by design: most of its attention layers would have to be, in most
rows, to be flagged. Fused attention (`F.scaled_dot_product_attention`, `nn.MultiheadAttention`'s
fast path) saves no softmax and is not read; its scale is right unless one is passed.
""",
    ),
    Spec(
        code='GEN001', kind='overfitting', category='model', family='training', name='overfitting',
        summary='The validation loss rises while the training loss keeps falling: the model memorises the training set.',
        options=(
            Option('overfit_rise', 0.1, 'validation loss this fraction above its best.'),
            Option('overfit_train_drop', 0.05, 'training loss must have fallen by this fraction meanwhile.'),
            Option('overfit_min_evals', 4, 'validation passes needed to judge.', type=int),
        ),
        doc="""
## What it detects
Validation losses (loss calls without grad, recorded as `<loss>[val]`), averaged per validation
pass. With at least `overfit_min_evals` (default 4) passes: the last two passes are both at
least `overfit_rise` (default 10%) above the best one, which is not among the last two, while
the smoothed training loss fell by at least `overfit_train_drop` (default 5%) from the step of
the best validation pass to the end, and the passes after the best are not coming back down (the
median of the slopes between each pair of them is not negative, so one outlying pass does not turn
it): a validation loss that jumped once and has been falling since
(a noisy pass; a classifier trained on resampled, balanced batches and validated on the imbalanced
data, whose loss shifts as it starts predicting the rare class, while its balanced accuracy rises)
is not memorising. Severity is high for a rise of 50% or more, else medium; low when the script
loaded weights back into the model after its last step (`load_state_dict`, the `weights_loaded`
event): early stopping by checkpoint, which keeps the best pass's weights.

## Why is this bad?
Every step after the best validation pass makes the model worse on new data; the final weights
generalise worse than an earlier checkpoint.

## Example
```python
model = nn.Sequential(nn.Linear(20, 512), nn.ReLU(), nn.Linear(512, 10))   # 200 training samples,
for epoch in range(200): ...                                              # no regularisation
```

## Recommended fix
Keep the best checkpoint (early stopping on the validation loss), add regularisation (weight
decay, dropout, data augmentation), use a smaller model or more data.

## Known problems
Needs validation losses computed with the functional losses (or loss modules) under
`torch.no_grad()`. A validation set that is very small is noisy; its rise may be chance.
""",
    ),
    Spec(
        code='GEN002', kind='validation_not_improving', category='model', family='training',
        name='validation-not-improving',
        summary='The validation loss stays where an untrained model starts while the training loss falls: what is '
                'evaluated is not what is trained.',
        options=(
            Option('val_stuck_drop', 0.5, 'the smoothed training loss must end below this fraction of its start.'),
            Option('val_stuck_margin', 0.1, 'no validation pass may fall more than this fraction below the first, '
                                            'which must be within it of the training loss at the start.'),
        ),
        doc="""
## What it detects
Validation losses (loss calls without grad, recorded as `<loss>[val]`) averaged per validation pass,
with at least 3 passes, of the same loss function as a training loss: the first pass is no more than
`val_stuck_margin` (default 10%) below the training loss of the run's first steps (an untrained
model's level) and no later pass falls more than `val_stuck_margin` below the first, while the
smoothed training loss fell below `val_stuck_drop` (default half) of its start. High.

## Why is this bad?
The training loss says the model learns; the validation loss says the model evaluated has learned
nothing. The usual causes are in the evaluation, not in the model: a copy evaluated in its place
that never changes (an EMA or SWA copy whose update rebinds a loop variable,
`ema_p = decay * ema_p + (1 - decay) * p`, instead of writing into it; a `deepcopy` made before
training; weights loaded from a stale file), validation data prepared differently from the
training data (another normalisation, a different label order), or training labels that carry no
signal that generalises (shuffled apart from their samples).

## Example
```python
for ema_p, p in zip(ema.parameters(), model.parameters()):
    ema_p = decay * ema_p + (1 - decay) * p        # rebinds the name: the EMA weights never change
val_loss = evaluate(ema)                           # the untrained copy, every epoch
```

## Recommended fix
Write into the copy (`ema_p.mul_(decay).add_(p.detach(), alpha=1 - decay)`, or
`torch.optim.swa_utils.AveragedModel`), evaluate the trained model once to compare, and run the
validation data through the training data's exact preprocessing.

## Known problems
A model that overfits from its first epoch on a tiny data set looks the same; the finding lists it
among the causes. An EMA with a decay so slow that the copy has not moved within the run
(0.9999 over a few hundred steps) is reported too, which is worth knowing: its evaluation says
nothing about the training yet.
""",
    ),
    Spec(
        code='INI001', kind='poor_initialization', category='model', family='training', name='poor-initialization',
        summary='The initial weights put the model far from a sane starting point: loss or activation scale.',
        explains=('vanishing_gradients', 'saturated_activations', 'loss_not_decreasing'),
        options=(
            Option('init_loss_factor', 2.0, 'first loss as a multiple of the loss of a uniform prediction (ln C).'),
            Option('init_std_ratio', 1000.0, 'growth or shrink of activation std across depth at step 0.'),
            Option('init_input_scale', 10.0, "input std above this means a high first loss is the data's fault."),
        ),
        doc="""
## What it detects
At step 0, before any update: (1) the training loss is at least `init_loss_factor` (default 2x)
the loss of a uniform prediction, ln C for cross-entropy over C classes (C from the loss input's
shape or the label histogram) or ln 2 for binary cross-entropy, while the inputs are at unit
scale (std below `init_input_scale`, default 10); or (2) the output std of the layers with
parameters grows or shrinks by `init_std_ratio` (default 1000x) along depth (registration
order, within a model, restarting at normalisation layers and at dead layers). The location is
the layer that changes the scale the most. In a run of players taking turns (a GAN), a step's
loss adds up its terms (real and fake, for each discriminator), so the loss is compared with
chance only when the loss inputs are already saturated at step 0 (probabilities within 1e-3 of 0
or 1, logits beyond +-7).

## Why is this bad?
A model that starts with huge logits is confidently wrong: the first hundreds of steps only
undo the initialisation, and tanh/sigmoid units saturate. Activations that explode or vanish
along depth give exploding or vanishing gradients from the first step.

## Example
```python
for m in model.modules():
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight)          # std 1 whatever the fan-in: the scale grows sqrt(fan_in) per layer
```

## Recommended fix
Use fan-in-scaled initialisation (He for ReLU, Xavier for tanh/sigmoid) with zero biases, and
initialise the output layer small so that the first prediction is near uniform.

## Known problems
Logits scaled after the model's layers start the loss high by design: a cosine classifier's scale
s with its margin (ArcFace, CosFace), a contrastive temperature. When the loss's input at step 0
reaches at least 5 times the largest output of any watched module (|mean| + 3 std; a module whose
output is one value, a head that returns the loss, is left out) and no layer's gain explains it,
the finding is low ("a scale after the model"), with the numbers; LOS002 then does not compare the
final loss with the label entropy either (the margin keeps it above that level in a model that
learns). A scale applied after the model by mistake is reported low too.
The expected loss is only known for cross-entropy and binary cross-entropy with mean reduction
and a single training loss. Registration order is forward order for `nn.Sequential`, not
always for custom modules. A script that sums the loss over several loss calls a step (a
character RNN stepped one character at a time, 50 calls a chunk) reports about 50 ln C at a
uniform start. The capture does not count loss calls per step, so the rule bounds one call
instead: a mean cross-entropy on logits spanning [lo, hi] at step 0 is at most ln C + (hi - lo)
(NLL on log-probabilities: at most -lo); a step loss above twice that bound is taken as a sum of
about loss / ln C calls (`summed_loss_calls` in the evidence) and not compared with chance. LOS002's
"stuck at chance" stands down the same way.
""",
    ),
    Spec(
        code='WGT001', kind='weight_collapse', category='optimizer', family='training', name='weight-collapse',
        summary='The weights shrink towards zero over the run: weight decay (or an L2 penalty) is far too strong.',
        explains=('loss_not_decreasing', 'loss_diverging', 'vanishing_gradients'),
        options=(
            Option('weight_collapse_shrink', 0.1, 'median final/initial weight norm at or below this.'),
            Option('decay_per_step', 0.01, 'lr x weight_decay (the fraction of each weight that decay removes per step) at or above which a weight tensor whose norm halved is flagged (high when the median halved while the loss stalled).'),
        ),
        doc="""
## What it detects
On sampled steps, each weight matrix's norm at its last sample against its first; the run is
flagged when the median over weight tensors is at or below `weight_collapse_shrink` (default
0.1, a 10x shrink) and the samples span at least `min_steps` steps. Weights directly followed by
a normalisation layer are skipped (their scale does not matter). The optimizer's weight decay
is cited, with the per-step shrink `lr * weight_decay` it implies. The interaction of learning
rate and weight decay is judged too: with `lr * weight_decay` at or above `decay_per_step`
(default 1% of each weight per step, as decoupled decay in AdamW applies it), weights whose
median norm halved while the loss stalled (its last quarter at 70% or more of its first) are
flagged before they collapse all the way; so is, at that rate, any weight tensor whose norm
halved while the loss still falls (to a worse level: the decay holds the layer below the size the
gradient gives it in a healthy run, where weights grow), at medium. With AdamW's decoupled decay
each weight settles below about 1/weight_decay in size, which the finding cites. Detection
range: AdamW at lr 3e-3 with weight_decay 30 (9% a step; median weight norm 0.43x, loss 1.13 ->
0.94) is found; AdamW at lr 1e-2 with weight_decay 5 (5% a step; first layer 0.47x, final loss
0.38 where weight_decay 0.01 reaches 0.09) is found medium; weight_decay 2 (2% a step, first
layer 0.76x, final loss 0.20) is not; weight_decay 0.01 is silent.

## Why is this bad?
Weights pulled to zero make every layer's output shrink towards its bias: activations lose
their variance, gradients vanish, and the model forgets what it learned; the loss climbs back
towards chance.

## Example
```python
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=1.0)   # 10% shrink per step
```

## Recommended fix
Lower `weight_decay` (typical values: 5e-4 for SGD, 1e-2 for AdamW), or the coefficient of a
hand-written L2 penalty; exclude biases and normalisation weights from decay.

## Known problems
Needs parameter norms on sampled steps (an optimizer object). Scale-invariant weights that are
not directly followed by a normalisation layer (e.g. a norm after an activation) may shrink
harmlessly.
""",
    ),
)
