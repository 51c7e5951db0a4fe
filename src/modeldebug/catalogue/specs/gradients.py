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
grown 10x: 10x on some step of the window before the first non-finite norm (`max(10, 5%)` of the
run's steps), or so early that no ordinary stretch came first. A NaN gradient after a stretch of
ordinary norms (a spike at step 0 long past) came from one step's backward pass, not from a growth:
it is NUM001's, not this rule's (the learning-rate rule's instability signal reads it the same way). The location is the parameter whose own gradient norm grew the most; the step is the
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
    Spec(
        code='GRD003', kind='incorrect_backward', category='gradient', family='training', name='incorrect-backward',
        summary="A custom autograd.Function's backward is not linear in grad_output: it breaks the chain rule.",
        explains=('exploding_gradients', 'vanishing_gradients', 'lr_too_high', 'loss_diverging', 'loss_not_decreasing',
                  'loss_oscillating', 'nonfinite', 'dead_activations', 'saturated_activations'),
        doc="""
## What it detects
Each `torch.autograd.Function` defined outside torch whose node is in the graph of the loss on one of
the first 3 sampled steps is checked once, on a float64 input of its own, outside the user's graph
(event `custom_backward_check`): (1) its backward must be linear in `grad_output`, as the chain
rule makes every backward (`g(2v) = 2 g(v)`, `g(v + w) = g(v) + g(w)`); a backward that returns the
local derivative without multiplying it by `grad_output` fails this, and the finding is high; (2)
its backward against central differences of its forward along three random directions; a backward
that is linear but differs from the forward's derivative is low, since a straight-through
estimator (`round` forward, identity backward) and a gradient reversal layer (identity forward,
`-lambda * grad` backward) differ on purpose. Only Functions of one tensor argument are checked;
the others are recorded as not checked, with why.

## Why is this bad?
Training follows the gradients the backward returns. One that ignores `grad_output` hands every
layer below it the same local derivative whatever the loss says: the updates no longer point
downhill, the gradients below it are off by the size of everything above, and what shows is
their effect (an explosion, a loss that does not fall) far from the cause.

## Example
```python
class Swish(torch.autograd.Function):
    @staticmethod
    def backward(ctx, grad_output):
        x, s = ctx.saved_tensors
        return s * (1 + x * (1 - s))          # grad_output is never used
```

## Recommended fix
Multiply the local derivative by `grad_output` (`return grad_output * s * (1 + x * (1 - s))`), and
check the Function with `torch.autograd.gradcheck` on float64 inputs.

## Known problems
Only Functions of one tensor argument are checked, on a (4, 6) float64 input: one that needs
another shape, dtype or more arguments is recorded as not checked. A backward with a wrong factor
or sign is linear in `grad_output`, so it is reported low, like a deliberate straight-through
estimator, not high.
""",
    ),
)
