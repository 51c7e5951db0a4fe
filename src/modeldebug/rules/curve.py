"""What kind of loss series a run records, for the rules that read its curve.

Several optimizers taking turns on opposing losses (a GAN), a loss that goes below zero (a
policy-gradient surrogate), a loss summed over however many one-sample calls a step made (an
episode): none of these is one objective going down, so ratios and trends of it mean little.
"""

from __future__ import annotations

import numpy as np

from .context import Context

__all__ = ["floored_loss", "loss_is_not_a_curve", "one_sample_per_call", "players", "same_batch_every_step"]


def players(ctx: Context) -> list[frozenset[str]]:
    """The parameter sets of several optimizers that take turns, each step with its own loss.

    Two or more optimizers over disjoint parameter sets, and (nearly) every optimizer step preceded
    by its own backward pass: a GAN's discriminator and generator, or separate actor and critic.
    The loss recorded per step then alternates between objectives that oppose each other or chase
    a moving target (a generator's loss rises as its discriminator gets better), so the series is
    not one curve to minimise. Optimizers that step together after one backward (an encoder's and
    a decoder's, on one loss) are one objective: empty list. Empty for one optimizer too. Sets that
    overlap (InfoGAN's third optimizer, over both players' weights) count when every optimizer took
    its first step within the run's first iteration or two.
    """
    sets: list[frozenset[str]] = []
    first: list[int] = []  # the step each optimizer first stepped at
    for e in ctx.record.events("optimizer"):
        ps = frozenset(n for g in e.data.get("groups", []) for n in g.get("params", []))
        if ps and ps not in sets:
            sets.append(ps)
            first.append(e.step if e.step is not None else 0)
    if len(sets) < 2:
        return []
    if any(a & b for i, a in enumerate(sets) for b in sets[i + 1:]) and max(first) - min(first) >= 2 * len(sets):
        # overlapping sets: players only when they started stepping together (InfoGAN's info
        # optimizer holds G's and D's weights, and steps after them from the first iteration);
        # an optimizer built later over some of the same weights is a new phase, not a player
        return []
    n_back = ctx.record.column("n_backward").values
    n_back = n_back[np.isfinite(n_back)]
    if not len(n_back) or float(np.mean(n_back >= 1)) < 0.9:
        return []
    return sets


def floored_loss(ctx: Context) -> bool:
    """Whether the training loss has a floor at zero: no finite value below zero beyond rounding.

    Cross-entropy, MSE and the like never go negative, so "10x its first value" or "3x its best"
    measure it. A loss that goes negative has no such floor: a policy-gradient surrogate
    (`-log_prob * advantage`, summed over an episode, whose sign and scale follow the returns and
    the episode's length), a Gaussian negative log-likelihood, an ELBO. Ratios of its values mean
    nothing; only a non-finite value still says it blew up.
    """
    v = ctx.loss.finite().values
    return not len(v) or float(v.min()) >= -1e-6 * float(np.abs(v).max())


def one_sample_per_call(ctx: Context) -> bool:
    """Every model of the run is called on one sample at a time.

    Its first input has a batch of 1 (shape [1, ...]), or is one unbatched feature vector: 1-d, as
    long as the model's first layer's weight has inputs (a Linear's [out, in] weight fed [in]). Or
    every training loss call scores one prediction (its input is [1, C]), whatever the model's first
    floating input is (a character RNN's first float tensor is its hidden state, [layers, 1, H]).
    """
    losses = [e.info.get("input_shape") for e in ctx.record.entities("loss") if e.info.get("phase") == "train"]
    if losses and all(isinstance(s, list) and len(s) == 2 and s[0] == 1 for s in losses):
        return True  # every training loss call scores one prediction ([1, C]): a sequence fed one step at a time
    inputs = ctx.record.entities("input")
    if not inputs:
        return False
    for e in inputs:
        shape = e.info.get("shape") or []
        if len(shape) >= 2 and shape[0] == 1:
            continue
        if len(shape) == 1 and _first_weight_inputs(ctx, e.name) == shape[0]:
            continue
        return False
    return True


def same_batch_every_step(ctx: Context) -> bool:
    """Every model is fed the very same batch on every sampled step: tensors built once and trained
    on whole (full-batch training). The input of each sampled step was the very tensor of the one
    before, unwritten since (`input.reused`), on at least two. (Statistics cannot tell: one-hot
    batches of one shape all have the same mean, spread and range.) A static buffer refilled with
    `copy_` each step is written, so it is not the same batch."""
    inputs = ctx.record.entities("input")
    if not inputs:
        return False
    for e in inputs:
        v = ctx.record.series(e.name, "reused", kind="input").values
        if len(v) < 2 or not (v == 1).all():
            return False
    return True


def _first_weight_inputs(ctx: Context, model: str) -> int | None:
    """The input width of a model's first layer with a 2-d weight (a Linear's `in_features`)."""
    for layer in ctx.leaf_modules_in_order():
        if layer.model != model or not layer.info.get("params"):
            continue
        for p in ctx.params.values():
            shape = p.info.get("shape") or []
            if p.info.get("module") == layer.name and p.name.endswith("weight") and len(shape) == 2:
                return int(shape[1])
        return None
    return None


def loss_is_not_a_curve(ctx: Context) -> str | None:
    """Why the per-step training loss cannot be read as one objective going down (None: it can).

    "signed": it goes below zero, so it has no floor and its ratios mean nothing (a policy-gradient
    surrogate). "per_sample": the model is fed one sample per call, so a step's loss adds up however
    many calls that step made (an episode, a sequence fed one element at a time) and its level
    follows the amount of data, not progress (an actor-critic's summed losses grow as its episodes
    get longer). The loss-curve rules then judge only what no sample count explains.
    """
    if not floored_loss(ctx):
        return "signed"
    if one_sample_per_call(ctx):
        return "per_sample"
    return None
