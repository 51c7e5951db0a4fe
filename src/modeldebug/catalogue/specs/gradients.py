"""Catalogue entries: gradients."""

from __future__ import annotations

from ..spec import Option, Spec

SPECS = (
    Spec(
        code='GRD001', kind='exploding_gradients', category='gradient', family='training', name='exploding-gradients',
        summary="The gradients grew by orders of magnitude, or started larger than the weights, and the loss blew up with them.",
        explains=('loss_diverging', 'nonfinite', 'loss_oscillating'),
        options=(
            Option('grad_growth', 100.0, "total gradient norm above this multiple of its median over the run's first steps (the run's own baseline)."),
        ),
        doc="""
## What it detects
The total gradient norm (recorded every step with one fused call) rising above `grad_growth`
(default 100x) times its median over the run's first steps, or turning non-finite after having
grown 10x. The location is the parameter whose own gradient norm grew the most; the step is the
first one above 10x the baseline.

Mixed precision: an optimizer step taken on gradients a `GradScaler` still scales
(`scaler.scale(loss).backward()` then `optimizer.step()`, with neither `scaler.step` nor
`scaler.unscale_` in between) is reported first, high, from the first such step: every update is
the scale (65,536 by default) times too large, and the too-large updates, the non-finite values
and the diverging loss that follow are its symptoms. (The gradient norms recorded are unscaled.)

Judged by effect: growth counts only when the loss reacted, at least doubling from its median
over the steps before the growth began, or turning non-finite. A gradient norm that grows from a
tiny start while the loss keeps falling (a small or zero-initialised head, units leaving
saturation) is not an explosion and is not reported. Severity: high when the run turned
non-finite or the norm grew 10,000x; low when the loss came back (the last quarter's median
within 1.5x of its level before the spike: the run recovered); medium otherwise.

Gradients that are huge from the first step never grow (a recurrent network whose recurrent
weights amplify over the sequence explodes on its first backward): when the first gradient norm
is larger than the norm of all the weights and the loss or the gradient turns non-finite within
the first steps, that is reported high at step 0, as the cause of the NaN.

## Why is this bad?
Updates proportional to huge gradients throw the weights far from where they were; the loss
jumps, then usually turns NaN.

## Example
```python
optimizer = torch.optim.SGD(model.parameters(), lr=1.0)   # steps overshoot, grads feed back
```

## Recommended fix
Clip the gradient norm, lower the learning rate, add normalisation layers; for RNNs, clipping is
standard practice.

## Known problems
The effect is read from the training loss: a run without a recorded loss is judged by growth
alone (and a model whose gradients start near zero by design may then be flagged). Gradients
huge from the first step are reported only when the run turns non-finite within the first
steps; a large first gradient that the run survives is left alone. The weights' norm at the
first step is taken after the first update. The rule needs at least `min_steps` steps.
""",
    ),
    Spec(
        code='GRD002', kind='vanishing_gradients', category='gradient', family='training', name='vanishing-gradients',
        summary='Some layers get gradients orders of magnitude smaller, relative to their weights, than the rest.',
        explains=('loss_not_decreasing', 'params_not_updating'),
        options=(
            Option('vanishing_ratio', 0.001, "a layer's relative gradient (grad norm / weight norm) below this fraction of the median layer's, sustained over the run."),
        ),
        doc="""
## What it detects
For each weight matrix or kernel (2-d or more; biases and normalisation scales are skipped),
the relative gradient |grad| / |weight| (the fraction of the weight one SGD step at lr=1 would
move), medianed over the run. Layers whose relative gradient is below `vanishing_ratio`
(default 1e-3) times the median layer's are flagged. The weight norm comes from the sampled
steps; without samples, the gradient RMS is used. A flagged layer whose update ratio (the
step's change over the weight's norm) is not below the same fraction of the median tensor's
is left out: an adaptive optimizer (Adam, RMSprop) rescales a small gradient into a normal
step, so the layer learns (a first Linear with large weights in front of a BatchNorm, as in
DCGAN's generator). Under SGD the update ratio is lr times the relative gradient, so this
changes nothing there.

## Why is this bad?
Layers with vanishing gradients barely learn; in deep stacks of sigmoid/tanh the early layers
stay at their random initialisation while the last layers do all the work.

## Example
```python
layers = [nn.Linear(64, 64), nn.Sigmoid()] * 12   # 0.25 ** 12 shrinkage on the way back
```

## Recommended fix
ReLU/GELU activations, residual connections, normalisation layers, and He/Xavier initialisation.

## Known problems
Embedding tables get sparse gradients and are skipped. Layers with exactly zero gradient are
left to `params_not_updating`.
""",
    ),
)
