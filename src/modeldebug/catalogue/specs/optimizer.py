"""Catalogue entries: optimizer."""

from __future__ import annotations

from ..spec import Option, Spec

SPECS = (
    Spec(
        code='OPT001', kind='params_not_updating', category='optimizer', family='training', name='params-not-updating',
        summary='Parameters that should learn never change: no gradient, zero gradient, not in the optimizer, or lr 0.',
        explains=('loss_not_decreasing', 'input_ignored', 'lr_too_low'),
        options=(
            Option('update_ratio_floor', 1e-10, 'update-to-weight ratio at or below this counts as no update (float32 rounding of a real update is ~1e-7).'),
        ),
        doc="""
## What it detects
First, whatever the parameters: optimizer steps taken right after a `zero_grad()` that followed
the step's backward pass, with no backward pass in between and no gradient left on the stepping
optimizer's parameters (the watch records the first ten such steps, with the `zero_grad()` line:
the `zero_grad_before_step` event). Every such step is a step of zero; the finding names the line
and is high when they are at least half of the optimizer steps they span (then it explains
everything else about the parameters, and nothing more is reported for them), low when they are
fewer (a bad batch dropped on purpose this way). A `zero_grad()` on another model, whose
parameters the step does not use, leaves the step's gradients and is not reported. Also a row that
never trains: an `nn.Embedding` built with `padding_idx=p` and read one id per sample (ids of shape
`[B]` or `[B, 1]`: no sequence to pad), where id p comes up on every probe (the first three
sampled training passes: the `embedding_padding` event). Row p gets no gradient and keeps its
initial zeros, so samples with id p (relation 0 of a knowledge graph, category 0 of a table) are
scored with a vector that never learns: medium when id p is drawn at least half as often as an
average id, low when it is rarer. Padded sequences (`[B, T]` ids) are what `padding_idx` is for
and are left alone. Then,
among parameters that require grad of the models trained in the run (a model that received a
gradient or that an optimizer holds; a copy that is only evaluated, such as the best checkpoint
reloaded into a new instance and run under `no_grad`, is left out):
(1) parameters in an optimizer that never received a gradient on any step (not used in the
forward pass, or cut off from the loss by `.detach()`, `.data`, `.item()`, a NumPy round trip);
when none of their modules ever ran on a sampled step while the rest of the model did, they are
layers defined in `__init__` that `forward()` never calls, and the finding says so: low under 5%
of the weights (a left-over layer costs nothing), medium above; when their layers ran with
autograd off inside a training forward pass (a `with torch.no_grad():` block in `forward()`,
seen on a sampled step: the `nograd_in_forward` event), the finding says that, medium (a
pretrained backbone may be frozen this way on purpose), and its fix takes the block out or
freezes the layers explicitly; when they ran inside a reentrant `torch.utils.checkpoint` (which
runs its block with autograd off and replays it only for inputs that require grad) on an input
that does not require grad, the finding says so and its fix is `use_reentrant=False`. No gradient at all is never folded into dead or saturated units
or vanishing gradients (`not_explained_by`): those leave a gradient of zeros, not none;
(2) parameters whose gradient was exactly zero on every step (when they are all the reverse
direction's `weight_hh_l<k>_reverse` of a bidirectional RNN/LSTM/GRU, the finding names the usual
cause: the output read at the last time step only, where the reverse direction has taken one
step from its zero state, and the fix reads `h_n`; when they are all the last layer's forward
direction of a bidirectional RNN/LSTM/GRU, the model reads `h_n[-1]` alone, which is that layer's
reverse direction, and the fix concatenates `h_n[-2]` and `h_n[-1]`; when they are all biases whose layer's other
parameters do get gradients, the loss does not depend on a constant shift of that layer's output,
because a normalisation follows it or the loss takes a difference of two outputs, as a
relativistic GAN's D(real) - D(fake) does: the finding is low, dead weight, not a fault); (3) parameters that receive
gradients but are in no optimizer (the optimizer was built before a layer was replaced, or from
a sub-module; when they are whole models of their own and a training loss was given a target
that carries a gradient, they are a target network or a teacher whose output is the target
and is not detached, as in a DQN's `r + gamma * q_target(s_next).max(1)[0]`: the finding is then
low, an optimization, since nothing the run trains is left out), or that an optimizer holds but that kept getting gradients on at least 3 sampled
steps after its last update, while another optimizer stepped (a backbone unfrozen after the
fine-tuning optimizer was built from the head alone: the watch re-reads the models on sampled
steps, so parameters that start requiring grad and layers replaced are seen, a replaced layer
named `head#2`), judged once some optimizer has stepped twice (an optimizer is known from its first
step: in a run that crashed in its first iteration, a GAN's generator optimizer may not have had
its turn yet); (4) parameters with gradients whose update-to-weight ratio stayed at zero on
every sampled step of their own optimizer (another optimizer's step leaves them alone) although their relative gradient (|grad| / |weight|) is above 1e-6, so any
non-zero learning rate would have moved them (learning rate 0, a frozen parameter group). The
gradient is read on those same steps: a GAN's discriminator also gets gradients on the
generator's steps (G's loss goes through D), and a tensor whose gradient is exactly zero on every
step its own optimizer took is case (2), not a frozen group; (5) weights kept in bfloat16 or
float16 (`model.to(torch.bfloat16)`: the optimizer's state follows) whose median update ratio over
the sampled steps is below half the format's spacing between neighbouring values at its finest
(2^-9 of a value for bfloat16, 2^-12 for float16): every element's step is then rounded back to
where it was, or nearly. Tensors of that format that never moved at all join the same finding
once one that moved a little shows the rounding. High when they hold half the weights or more.
Embedding tables are left out: a step moves the rows of the batch's ids only, so the ratio over
the whole table is small however well those rows move.

## Why is this bad?
Those weights stay at their initial random values: the layer is dead weight, and the model that
trains is not the model you think.

## Example
```python
optimizer = torch.optim.Adam(model.parameters())
model.head = nn.Linear(128, 10)        # replaced AFTER the optimizer was built: never updated
h = self.encoder(x).detach()           # the encoder gets no gradient
loss.backward(); optimizer.zero_grad(); optimizer.step()   # steps on cleared gradients
```

## Recommended fix
Clear gradients before `backward()` (or right after `step()`), never between them. Build the
optimizer after the model is final; remove the `.detach()`/`.data` on the path from
the parameter to the loss; freeze on purpose with `requires_grad_(False)` so the intent is clear.

## Known problems
A parameter used only on some steps (mixture-of-experts, conditional branches) can look unused on
a short run. Scripts that update parameters by hand (no optimizer) are only checked for (1)/(2).
""",
    ),
    Spec(
        code='OPT002', kind='unregistered_module', category='optimizer', family='training', name='unregistered-module',
        summary='Layers used in forward() that the model does not register (a plain list or dict, or built in forward): never trained or saved.',
        explains=('loss_not_decreasing', 'lr_too_low', 'params_not_updating'),
        doc="""
## What it detects
A module with trainable parameters that a watched model calls in its training forward pass
(autograd on) but that is not one of its registered submodules, and whose parameters got a
gradient that no optimizer uses: layers kept in a plain Python list, tuple or dict
(`self.hids = [nn.Linear(...) for _ in range(3)]`), or a layer built inside `forward`
(`nn.Linear(64, 64)(x)`). On sampled steps the forward hooks see every module call, and a
module the model does not own, called from one of the model's modules, is checked at the end
of the step (event `unregistered_module`): the finding names the attribute that holds it
(`hids[0]`), or the module whose `forward` builds a new one at each sampled step. Not reported:
a module called under `torch.no_grad()` (a distillation teacher, an EMA copy), one whose
parameters all have `requires_grad=False` (frozen on purpose), one whose parameters another
watched model or any optimizer holds (shared on purpose, or trained through its own optimizer),
one whose output never reaches a gradient (a detached teacher), parameter-free modules (losses,
activations), and anything inside `torch.compile`d code. High when those layers hold 5% of the
model's trainable weights or more, or when they are built anew in `forward`.

## Why is this bad?
PyTorch registers a submodule only when it is assigned to a module attribute directly or through
`nn.ModuleList` / `nn.ModuleDict`. A layer in a plain list is invisible to
`model.parameters()`: the optimizer built from it never updates the layer (it stays at its random
initial weights, and the model that trains is smaller than the one you wrote),
`model.to(device)` leaves it on the CPU, `state_dict()` does not save it (a reloaded model gets
new random weights there), `model.train()`/`eval()` do not reach it, and `zero_grad()` never
clears its gradients, which pile up step after step. A layer built in `forward` is worse: new
random weights at every call.

## Example
```python
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(160, 128)
        self.hids = [nn.Linear(128, 128) for _ in range(3)]   # plain list: not registered
        self.out = nn.Linear(128, 3)

    def forward(self, x):
        x = self.inp(x)
        for layer in self.hids:
            x = torch.relu(layer(x))
        return self.out(nn.Linear(128, 128)(x))             # a new, random layer at every call
```

## Recommended fix
Hold layers in `nn.ModuleList` (or `nn.ModuleDict` for a dict) and build every layer in
`__init__`; then build the optimizer from `model.parameters()`:
```python
self.hids = nn.ModuleList([nn.Linear(128, 128) for _ in range(3)])
self.proj = nn.Linear(128, 128)        # in __init__, used as self.proj(x) in forward
```
Checkpoints saved before the fix lack those layers. To keep a module out of the model on purpose
(a frozen teacher), call it under `torch.no_grad()` or set `requires_grad_(False)` on it.

## Known problems
Only modules called on sampled steps with autograd on are seen, and only when their parameters
got a gradient by the end of that step. A module that an optimizer built before watching holds
is known from that optimizer's first step, so one stepped only later may be reported. A layer
called outside the model's forward pass (in the training loop) is not this finding: `modeldebug
run` watches it as a model of its own.
""",
    ),
)
