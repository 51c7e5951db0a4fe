"""Optimizer wiring: parameters that should learn but do not."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterator

import numpy as np

from .. import measures as M
from ..record import Series
from .base import Finding, Recommendation, Rule
from .context import Context, fmt
from .data import RECURRENT
from .fixcode import optimizer_ctor

__all__ = ["ParamsNotUpdating"]

#: A bidirectional RNN's reverse-direction recurrent weights (torch names them weight_hh_l<k>_reverse).
_REVERSE_HH = re.compile(r"(^|\.)weight_hh_l\d+_reverse$")
_RNN_PARAM = re.compile(r"(^|\.)(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?$")


def _group_by_module(ctx: Context, names: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for n in names:
        e = ctx.params.get(n)
        out[(e.info.get("module") if e else None) or n].append(n)
    return dict(out)


def _stranded(ctx: Context, names: list[str], grads: dict, ratios: dict) -> tuple[list[str], int | None]:
    """(parameters, the step they were last updated at): parameters updated earlier in the run (they have
    update ratios) that kept getting new, non-zero gradients on at least 3 later sampled steps on which
    an optimizer stepped other parameters: an optimizer holds them, but not the one stepping now."""
    stepping: set[int] = set()
    for series in ratios.values():
        stepping.update(int(t) for t in series.steps)
    out, last = [], None
    for n in names:
        r, g = ratios.get(n), grads.get(n)
        if r is None or g is None or not len(r.steps):
            continue
        upto = int(np.max(r.steps))
        later = [(int(t), float(v)) for t, v in zip(g.steps, g.values)
                 if t > upto and np.isfinite(v) and v > 0 and int(t) in stepping]
        # new gradients change from one sample to the next; the last update's, left in .grad (a teacher
        # trained first, then used under no_grad), read the same every time
        if len(later) >= 3 and len({v for _, v in later}) > 1:
            out.append(n)
            last = upto if last is None else max(last, upto)
    return out, last


def _relative_grad(grad: Series, pnorm: Series | None) -> float:
    """Median |grad| / |weight|: big enough means any non-zero learning rate would move the weight."""
    g = grad.finite().values
    if len(g) == 0:
        return 0.0
    w = pnorm.finite().values if pnorm is not None else np.array([])
    scale = float(np.median(w)) if len(w) and np.median(w) > 0 else 1.0
    return float(np.median(g)) / scale


class ParamsNotUpdating(Rule):
    """Detects OPT001; its documentation and options are in the catalogue (`modeldebug explain OPT001`)."""

    code = "OPT001"
    requires = (M.PARAM_GRAD_NORM, M.UPDATE_RATIO, M.PARAM_NORM, M.OPTIMIZER, M.LR, M.T_OPTIMIZER,
                M.ZERO_GRAD_BEFORE_STEP, M.EMBEDDING_PADDING, M.NOGRAD_IN_FORWARD)

    def _padding_rows(self, ctx: Context) -> Iterator[Finding]:
        """An `nn.Embedding(padding_idx=p)` read one id per sample, where id p comes up like the others: a row
        that never gets a gradient, for samples that are not padding (capture/layout.py `PaddingProbe`). A
        sequence's padding (ids [B, T]) is what padding_idx is for, and is left alone."""
        for module, probes in ctx.events_by(M.EMBEDDING_PADDING.name).items():
            if not all(d.get("one_id_per_sample") and float(d.get("padding_share", 0.0)) > 0 for d in probes):
                continue
            d = probes[0]
            share = float(np.median([float(p["padding_share"]) for p in probes]))
            distinct = d.get("distinct_ids")  # (None for a table too large to count them in)
            pad = int(d["padding_idx"])
            usual = distinct is not None and share >= 0.5 / max(int(distinct), 1)  # drawn about as often as any other id
            yield self.finding(
                severity="medium" if usual else "low", confidence=0.7 if usual else 0.5,
                title=(f"{module} is built with padding_idx={pad} but reads one id per sample, and {share:.1%} of the "
                       f"samples have id {pad}: its row never trains"),
                description=(f"{module} (nn.Embedding, {d.get('num_embeddings')} rows) gets ids of shape "
                             f"{tuple(d.get('input_shape') or [])}: one id per sample, no sequence to pad. padding_idx="
                             f"{pad} makes row {pad} get no gradient, so it keeps its initial value (zeros), yet "
                             f"{share:.1%} of the training samples carry id {pad}"
                             + (f" ({distinct} distinct ids in a batch, so it is drawn like any other)" if usual else "")
                             + f". If id {pad} is a real "
                             "entity (relation 0, category 0), its samples are scored with a vector that never learns."),
                location=module, step=None,
                evidence={"module": module, "padding_idx": pad, "padding_share": share, "distinct_ids": distinct,
                          "input_shape": d.get("input_shape"), "num_embeddings": d.get("num_embeddings")},
                recommendations=[Recommendation(
                    "fix", "Drop padding_idx when every id is real (or shift the ids by one and keep 0 for padding).",
                    f"nn.Embedding({d.get('num_embeddings')}, dim)                  # no padding_idx: row {pad} trains too")])

    def check(self, ctx: Context) -> Iterator[Finding]:
        if ctx.n_steps == 0:
            return
        yield from self._padding_rows(ctx)
        cleared = _zero_grad_before_step(self, ctx)
        if cleared is not None:
            yield cleared
            if cleared.severity == "high":  # every parameter's story: nothing else to say about them
                return
        grads = ctx.grad_norms
        if not grads:
            return
        in_opt = ctx.optimizer_params
        # Only models that were trained in this run are judged: a model that received a gradient or
        # that an optimizer holds. A copy that is only evaluated (the best checkpoint reloaded into a
        # new instance and run under no_grad) is not a training model, whatever its parameters say.
        trained = {e.model for n, e in ctx.params.items() if n in grads or (in_opt is not None and n in in_opt)}
        trainable = [n for n, e in ctx.params.items() if e.info.get("requires_grad", True)
                     and (e.model is None or e.model in trained)]
        candidates = [n for n in trainable if in_opt is None or n in in_opt]
        no_grad = [n for n in candidates if n not in grads]
        # per tensor in one vectorised pass each (a deep model has thousands of tensors)
        grad_frame = ctx.record.frame("grad_norm", kind="param")
        all_zero = grad_frame.all_rows(grad_frame.values == 0)
        zero_grad = [n for n in candidates if n in grads and all_zero[ctx.params[n].id]]
        zero_set = set(zero_grad)
        not_in_opt = [n for n in trainable if in_opt is not None and n not in in_opt and n in grads]
        if not_in_opt and not _an_iteration_passed(ctx):
            not_in_opt = []  # their optimizer may not have had its turn yet
        through_target = _through_a_target(ctx, not_in_opt, trainable)
        if through_target:
            yield _target_network(self, ctx, through_target)
            not_in_opt = []
        # Tensors the optimizer holds that belong to no model: the layer they were part of has been
        # replaced. With `not_in_opt` they are one bug (optimizer built too early), reported once.
        stale = [n for n in no_grad if ctx.params[n].model is None]
        if not_in_opt and stale:
            no_grad = [n for n in no_grad if n not in stale]
        ratios = ctx.param_stat("update_ratio")
        pnorms = ctx.param_stat("param_norm")
        ratio_frame = ctx.record.frame("update_ratio", kind="param")
        never_moved = ratio_frame.all_rows(np.nan_to_num(ratio_frame.values, nan=1.0) <= ctx.t.update_ratio_floor)
        moved_not = [n for n, s in ratios.items() if n in grads and n not in zero_set and len(s) >= 1
                     and (in_opt is None or n in in_opt) and never_moved[ctx.params[n].id]]
        # Judged on the steps its own optimizer took (those with an update ratio): with several
        # optimizers, a GAN's discriminator gets gradients on the generator's steps too.
        own = {n: _at_own_steps(grads[n], ratios[n]) for n in moved_not}
        zero_at_own = [n for n in moved_not if len(own[n]) and not own[n].values.any()]
        zero_grad += [n for n in zero_at_own if n in set(candidates)]
        zero_set.update(zero_at_own)
        # a low-precision tensor that never moved is rounding's work (`_rounded`), not a frozen group
        rounded = _rounded(ctx, [n for n in candidates if n not in zero_set], ratios)
        frozen = [n for n in moved_not if n not in zero_set and n not in rounded
                  and _relative_grad(own[n], pnorms.get(n)) > 1e-6]
        stranded, last_update = _stranded(ctx, [n for n in trainable if n not in set(not_in_opt)], grads, ratios)
        zero_why, zero_rec = (
            "Their gradient is always zero: the path to the loss is multiplied by zero, masked, or goes through dead units.",
            Recommendation("fix", "Find what zeroes the gradient on the path (a mask, a dead ReLU, a zero-initialised multiplier).",
                           "for n, p in model.named_parameters():\n    print(n, None if p.grad is None else p.grad.abs().max().item())"))
        zero_severity = None
        if zero_grad and all(_reverse_recurrence(ctx, n) for n in zero_grad):
            zero_why, zero_rec = _LAST_STEP_OF_BIDIRECTIONAL
        elif zero_grad and all(_top_forward_direction(ctx, n) for n in zero_grad):
            zero_why, zero_rec = _ONLY_REVERSE_READ
        elif zero_grad and all(_shift_invariant(ctx, n, grads, zero_set) for n in zero_grad):
            zero_why, zero_rec = _SHIFT_INVARIANT
            zero_severity = "low"  # the loss does not depend on them: nothing is lost
        # layers called under torch.no_grad() inside the training pass: they ran, but autograd never saw them
        nograd_events = ctx.record.events(M.NOGRAD_IN_FORWARD.name)
        under = {e.data.get("module") for e in nograd_events if not e.data.get("checkpoint")}
        checkpointed = {e.data.get("module") for e in nograd_events if e.data.get("checkpoint")}
        in_nograd = [n for n in no_grad if ctx.params[n].info.get("module") in under]
        in_ckpt = [n for n in no_grad if ctx.params[n].info.get("module") in checkpointed]
        taken = set(in_nograd) | set(in_ckpt)
        no_grad = [n for n in no_grad if n not in taken]
        unused = _never_called(ctx, no_grad)
        problems = [
            (in_ckpt, "never received a gradient: their layers run inside torch.utils.checkpoint (reentrant) "
             "on an input that does not require grad",
             ("The reentrant checkpoint runs its function with autograd off and replays it in backward only for "
              "the inputs that require grad: given none (token embeddings frozen, an adapter's base model), "
              "nothing inside it gets a gradient."),
             Recommendation("fix", "Use the non-reentrant checkpoint (or make its input require grad).",
                            "h = torch.utils.checkpoint.checkpoint(block, h, use_reentrant=False)\n"
                            "# or, before the checkpointed blocks: h.requires_grad_(True)\n"
                            "# Hugging Face: model.enable_input_require_grads() with gradient checkpointing")),
            (in_nograd, "never received a gradient: their layers run under torch.no_grad() inside the training "
             "forward pass",
             ("Autograd records nothing inside a torch.no_grad() block, so these layers are not on the path to the "
              "loss: the optimizer holds them but they keep their initial values, and what follows them learns on "
              "fixed features. If they are meant to stay frozen (a pretrained backbone), say so to the optimizer too."),
             Recommendation("fix", "Take the layers out of the torch.no_grad() block in forward() (or, to freeze them on "
                            "purpose, set requires_grad=False and leave them out of the optimizer).",
                            "def forward(self, x):\n    h = self.encoder(x)            # not: with torch.no_grad(): h = self.encoder(x)\n"
                            "    return self.head(h)\n"
                            "# frozen on purpose instead:\n# model.encoder.requires_grad_(False)\n"
                            "# optimizer = torch.optim.Adam(model.head.parameters(), lr=1e-3)")),
            (no_grad, "never received a gradient",
             (f"{_listed_modules(unused)} never ran in forward() on any sampled step: defined but unused. Harmless "
              "if it is left over; if it was meant to run, forward() skips it." if unused else
              "They are not on the path from the inputs to the loss: unused in forward(), or cut off by .detach(), .data, .item() or a NumPy round trip."),
             Recommendation("fix", "Remove the .detach()/.data/.item() that cuts the parameter off from the loss (or delete the unused layer).",
                            "h = self.encoder(x)            # not self.encoder(x).detach()\n"
                            "# check: every trainable parameter should get a gradient\n"
                            "loss.backward()\nprint([n for n, p in model.named_parameters() if p.requires_grad and p.grad is None])")),
            (zero_grad, "received an exactly zero gradient on every step"
             + (" their optimizer took" if zero_at_own and set(zero_at_own) & set(zero_grad) else ""), zero_why, zero_rec),
            (not_in_opt, "get gradients but are in no optimizer",
             "The optimizer does not hold them, so they are never updated: it was built before the layer was created or replaced, or from a sub-module."
             + (f" The optimizer still holds {len(stale)} tensors that belong to no model: the layer they were part of was replaced after the optimizer was built." if stale else ""),
             Recommendation("fix", "Build the optimizer after the model is final, from all its parameters.",
                            "model.head = nn.Linear(128, 10)\n" + (optimizer_ctor(ctx, note="after, not before")
                                                                   if ctx.record.events("optimizer") else
                                                                   "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)   # after, not before"))),
            (stranded, f"get gradients but have not been updated since step {last_update}",
             (f"The optimizer that holds them last stepped at step {last_update}; the optimizer stepping since then does "
              "not hold them (a backbone unfrozen after the fine-tuning optimizer was built from the head alone), so "
              "their gradients pile up and nothing applies them."),
             Recommendation("fix", "Give the stepping optimizer the parameters you unfreeze (or build it over all of them "
                            "and freeze with requires_grad only).",
                            "for p in model.backbone.parameters():\n    p.requires_grad = True\n"
                            "optimizer.add_param_group({'params': list(model.backbone.parameters()), 'lr': 1e-4})")),
            (frozen, "get gradients but their weights never change",
             "The optimizer holds them but the update is zero: a learning rate of 0 in their parameter group, or a frozen group.",
             Recommendation("fix", "Give every parameter group a non-zero learning rate.",
                            "for g in optimizer.param_groups:\n    print(g['lr'], len(g['params']))")),
        ]
        if rounded:
            yield _rounded_away(self, ctx, rounded)
        for names, what, why, rec in problems:
            if not names:
                continue
            by_module = _group_by_module(ctx, names)
            numel, total = _numel(ctx, names), _numel(ctx, trainable) or 1
            location = next(iter(by_module))
            big = numel / total >= 0.05
            severity = (zero_severity if names is zero_grad and zero_severity else
                        ("medium" if big else "low") if (names is no_grad and unused) or names is in_nograd
                        else "high" if big else "medium")
            # (a checkpointed block given no input that requires grad: high when large, as any cut-off part)
            yield self.finding(
                severity=severity, confidence=0.9,
                title=f"{len(names)} parameter tensor{'s' if len(names) > 1 else ''} ({fmt(numel / total * 100)}% of weights) {what}",
                description=f"In {', '.join(list(by_module)[:5])}: {', '.join(names[:6])}{' ...' if len(names) > 6 else ''} {what}. {why}",
                location=location, step=0,
                evidence={"params": names[:50], "modules": list(by_module)[:20], "numel": numel,
                          "fraction_of_weights": numel / total, "problem": what}
                     # no gradient at all (None, not zero): no dead or saturated unit on the path explains that
                     | ({"not_explained_by": list(_ZERO_NOT_NONE)}
                        if names is no_grad or names is in_nograd or names is in_ckpt else {})
                     | ({"stale_optimizer_params": stale[:50]} if names is not_in_opt and stale else {}),
                recommendations=[rec],
            )


#: Kinds that make a gradient small or zero, never absent (a parameter upstream of dead units still
#: gets a gradient tensor, of zeros).
_ZERO_NOT_NONE = ("dead_activations", "saturated_activations", "vanishing_gradients")


def _numel(ctx: Context, names: list[str]) -> int:
    """The number of weights in the parameter tensors `names`."""
    return sum(int(np.prod(ctx.params[n].info.get("shape", [1]))) for n in names)


def _never_called(ctx: Context, names: list[str]) -> list[str]:
    """The modules holding `names` when none of them ever ran (no forward statistic on any sampled step)
    while the rest of their model did: layers defined in __init__ that forward() never calls ([] otherwise)."""
    if not names:
        return []
    ran = set(ctx.record.frame("mean", kind="module").entity.tolist())
    if not ran:
        return []  # nothing measured per module in this record: it cannot be told
    skipped = {e.data.get("module") for e in ctx.record.events(M.MODULE_SKIPPED.name)}
    modules = {ctx.params[n].info.get("module") for n in names}
    models_ran = {m.model for m in ctx.modules.values() if m.id in ran}
    for name in modules:
        m = ctx.modules.get(name or "")
        if m is None or m.id in ran or name in skipped or m.model not in models_ran:
            return []
    return sorted(modules)


def _listed_modules(names: list[str]) -> str:
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def _through_a_target(ctx: Context, names: list[str], trainable: list[str]) -> dict[str, list[str]]:
    """Tensors in no optimizer that are whole models of their own, while a training loss was given a target
    that carries a gradient: a DQN's target network (`q_target(s_next)` not detached) or a distillation
    teacher whose logits are the loss's target. They get gradients through the target only, which no
    optimizer applies: wasted work, not a model left untrained. Model name -> its tensors ({} otherwise)."""
    if not names or not any(e.info.get("target_requires_grad") for e in ctx.record.entities("loss")):
        return {}
    by_model: dict[str, list[str]] = defaultdict(list)
    for n in names:
        model = ctx.params[n].model
        if model is None:
            return {}
        by_model[model].append(n)
    for model, held in by_model.items():
        if len(held) != sum(1 for n in trainable if ctx.params[n].model == model):
            return {}  # part of a model outside the optimizer: the optimizer was built from a sub-module
    return dict(by_model)


def _target_network(rule: Rule, ctx: Context, by_model: dict[str, list[str]]) -> Finding:
    models = list(by_model)
    names = [n for held in by_model.values() for n in held]
    numel = _numel(ctx, names)
    them = ", ".join(models)
    return rule.finding(
        severity="low", confidence=0.6,
        title=(f"{them} get{'s' if len(models) == 1 else ''} gradients through a loss target, and no optimizer holds "
               f"{'it' if len(models) == 1 else 'them'} (a target network or teacher not detached?)"),
        description=(f"No optimizer holds the {len(names)} parameter tensors of {them} ({numel:,} weights), yet they "
                     "receive gradients, and a training loss is given a target that carries a gradient. That is the "
                     "pattern of a target network (DQN: `target = r + gamma * q_target(s_next).max(1)[0]`) or a "
                     "teacher whose outputs are the target: the backward pass runs through that model for nothing, "
                     "since no optimizer applies those gradients. The trained model is unaffected."),
        location=models[0], step=0,
        evidence={"models": models, "params": names[:50], "numel": numel, "problem": "gradients through a loss target"},
        recommendations=[Recommendation(
            "optimization", "Compute the target without a graph: it saves that model's backward pass.",
            "with torch.no_grad():\n    target = r + gamma * q_target(s_next).max(1)[0].unsqueeze(1)\n"
            "# or: target = target.detach()")])


def _an_iteration_passed(ctx: Context) -> bool:
    """Has some optimizer stepped twice? An optimizer is known from its first step, so until then
    one built for the tensors no known optimizer holds may not have had its turn: a GAN whose run
    crashed in the generator's backward pass, before the generator's first step. Once some
    optimizer steps again, the loop has come round, and every optimizer of it has stepped."""
    rec = ctx.record
    stepped = np.isfinite(rec.column("lr").values)  # an optimizer without `lr` (Adafactor): its step's time
    stepped |= np.nan_to_num(rec.column("t_optimizer").values) > 0
    return int(stepped.sum()) > len(rec.events("optimizer"))


#: Half the spacing between neighbouring values, relative to the value, at its smallest (the top of a
#: binade: 2^-(explicit mantissa bits + 2)): an update below this fraction of every weight is rounded
#: away for every element, whatever its value.
_HALF_ULP = {"bfloat16": 2.0 ** -9, "float16": 2.0 ** -12}


def _rounded(ctx: Context, names: list[str], ratios: dict[str, Series]) -> dict[str, float]:
    """Weights kept in bfloat16/float16 whose steps are below the format's resolution: the optimizer
    computes an update and the cast back to the weight's format rounds most of it away. Tensor name
    -> its median update ratio; tensors of that format that never moved are included once one
    that moved a little shows the rounding."""
    low: dict[str, float] = {}
    for n in names:
        half = _HALF_ULP.get(ctx.params[n].type or "")
        module = ctx.modules.get(ctx.params[n].info.get("module", ""))
        if module is not None and module.type in ("Embedding", "EmbeddingBag"):
            continue  # a step moves the rows of the batch's ids only: the ratio over the table says nothing
        r = ratios[n].finite().values if n in ratios else np.array([])
        if half is not None and len(r) >= 2 and float(np.median(r)) < half:
            low[n] = float(np.median(r))
    if not any(v > ctx.t.update_ratio_floor for v in low.values()):
        return {}
    return low


def _rounded_away(rule: Rule, ctx: Context, low: dict[str, float]) -> Finding:
    half_ulp = max(_HALF_ULP[ctx.params[n].type or ""] for n in low)
    numel = _numel(ctx, list(low))
    total = _numel(ctx, [n for n, e in ctx.params.items() if e.info.get("requires_grad", True)]) or 1
    dtypes = sorted({ctx.params[n].type for n in low})
    typical = float(np.median(list(low.values())))
    by_module = _group_by_module(ctx, list(low))
    return rule.finding(
        severity="high" if numel / total >= 0.5 else "medium", confidence=0.75,
        title=(f"{len(low)} weight tensor{'s' if len(low) > 1 else ''} ({fmt(numel / total * 100)}% of weights) kept in "
               f"{'/'.join(dtypes)} move by {fmt(typical)} of their size a step: below the format's resolution, most "
               "updates are rounded away"),
        description=(f"In {', '.join(list(by_module)[:5])}: the weights are stored in {'/'.join(dtypes)}, whose "
                     f"neighbouring values are {fmt(2 * half_ulp)} to {fmt(4 * half_ulp)} of a value apart, and the measured step is a "
                     f"median {fmt(typical)} of the weight's norm. An element whose update is below half that spacing "
                     "is rounded back to where it was, so most of what the optimizer computes is lost and training "
                     "crawls or stalls (the optimizer's own state is kept in that format too)."),
        location=next(iter(by_module)), step=0,
        evidence={"params": list(low)[:50], "dtypes": dtypes, "median_update_ratio": low,
                  "half_spacing": half_ulp, "fraction_of_weights": numel / total,
                  "problem": "updates below the weights' precision"},
        recommendations=[Recommendation(
            "fix", "Keep the weights (and the optimizer) in float32 and compute in low precision with autocast.",
            "model = Net()                                   # float32 weights: no model.to(torch.bfloat16)\n"
            "with torch.autocast(device_type='cuda', dtype=torch.bfloat16):\n"
            "    loss = loss_fn(model(x), y)\n"
            "loss.backward(); optimizer.step()")],
    )


def _at_own_steps(grad: Series, ratio: Series) -> Series:
    """`grad` at the steps where the tensor's update was measured: the steps its own optimizer took."""
    keep = np.isin(grad.steps, ratio.steps) & np.isfinite(grad.values)
    return Series(grad.steps[keep], grad.values[keep])


def _shift_invariant(ctx: Context, name: str, grads: dict[str, Series], zero: set[str]) -> bool:
    """Is `name` a bias whose module's other parameters do get gradients? Then the loss does not
    depend on a constant shift of that module's output: a normalisation follows it, or the loss
    takes a difference of two outputs (a relativistic GAN's D(real) - D(fake)), or a softmax over
    a constant. Harmless; the bias is dead weight."""
    e = ctx.params[name]
    module = e.info.get("module")
    if not name.rsplit(".", 1)[-1].startswith("bias") or len(e.info.get("shape", [])) != 1 or not module:
        return False
    return any(o.info.get("module") == module and n != name and n in grads and n not in zero
               for n, o in ctx.params.items())


_SHIFT_INVARIANT = (
    ("They are biases whose layer's weights do get gradients: the loss does not change when the layer's output "
     "shifts by a constant, because a normalisation follows it or the loss takes a difference of two outputs "
     "(a relativistic GAN's D(real) - D(fake)). Nothing is lost; the biases are dead weight."),
    Recommendation("fix", "Leave them, or drop the bias where a normalisation follows.",
                   "nn.Conv2d(64, 128, 3, padding=1, bias=False)   # a BatchNorm2d follows: its shift replaces the bias"))


def _reverse_recurrence(ctx: Context, name: str) -> bool:
    """Is `name` the reverse direction's recurrent weight of a bidirectional nn.RNN/LSTM/GRU?"""
    module = ctx.modules.get(ctx.params[name].info.get("module", ""))
    return bool(_REVERSE_HH.search(name)) and module is not None and module.type in RECURRENT


def _top_forward_direction(ctx: Context, name: str) -> bool:
    """Is `name` a weight of the forward direction of a bidirectional nn.RNN/LSTM/GRU's last layer?"""
    m = _RNN_PARAM.search(name)
    module_name = ctx.params[name].info.get("module", "")
    module = ctx.modules.get(module_name)
    if m is None or m.group(5) or module is None or module.type not in RECURRENT:
        return False
    layers = [(int(o.group(4)), bool(o.group(5))) for n, e in ctx.params.items()
              if e.info.get("module") == module_name and (o := _RNN_PARAM.search(n))]
    top = max(layer for layer, _ in layers)
    return int(m.group(4)) == top and (top, True) in layers


_ONLY_REVERSE_READ = (
    "They are the forward direction of a bidirectional RNN's last layer: the model reads only h_n[-1], and the final "
    "hidden states come layer by layer, forward then reverse, so h_n[-1] is the last layer's REVERSE direction. "
    "The forward direction's top layer never reaches the loss, and the classifier sees the sequence one way only.",
    Recommendation("fix", "Read both directions of the last layer (and give the head twice the inputs).",
                   "out, h_n = self.gru(x)                          # h_n: [layers * 2, batch, hidden]\n"
                   "last = torch.cat([h_n[-2], h_n[-1]], dim=1)  # the last layer's forward and reverse states\n"
                   "return self.fc(last)                            # self.fc = nn.Linear(2 * hidden, classes)"))


_LAST_STEP_OF_BIDIRECTIONAL = (
    "They are the recurrent weights of a bidirectional RNN's reverse direction: the model reads the output at the last "
    "time step only, where the reverse direction has taken a single step, from its zero initial state, so its "
    "recurrence never reaches the loss and it has seen only the last input. The reverse direction's summary of the "
    "sequence is its output at the first step (or its final hidden state).",
    Recommendation("fix", "Read each direction where it has seen the whole sequence: the final hidden states.",
                   "out, (h_n, c_n) = self.lstm(x)              # h_n: [layers * 2, batch, hidden]\n"
                   "last = torch.cat([h_n[-2], h_n[-1]], dim=1)  # forward's last step, reverse's last (input step 0)\n"
                   "# or from out (time first): torch.cat([out[-1, :, :hidden], out[0, :, hidden:]], dim=1)"))


def _zero_grad_before_step(rule: Rule, ctx: Context) -> Finding | None:
    """Optimizer steps taken right after a zero_grad() that followed the step's backward pass, with no
    gradient left on the optimizer's parameters (the `zero_grad_before_step` events, the first ten):
    those steps are steps of zero. High when it is most steps (the model cannot learn); low when it
    is a few (a batch dropped on purpose this way is fine). None when no such step was recorded, or
    every such step still had gradients (a zero_grad on another model)."""
    events = ctx.record.events("zero_grad_before_step")
    empty = [e for e in events if not e.data.get("params_with_grad") or e.data.get("any_grad_left") is False]
    if not empty:
        return None
    stepped = ctx.record.column("lr")
    steps = stepped.steps[np.isfinite(stepped.values)]
    first = int(empty[0].step)
    # the steps the events cover: up to the last one when the record stopped at ten, else the run's end
    last = int(events[-1].step) if len(events) >= 10 else int(steps.max(initial=first))
    taken = max(1, int(((steps >= first) & (steps <= last)).sum()))
    rate = min(1.0, len(empty) / taken)
    most = rate >= 0.5
    data = empty[0].data
    where = f"{os.path.basename(str(data['file']))}:{data['line']}" if data.get("file") else None
    code = data.get("code") or "zero_grad()"
    return rule.finding(
        severity="high" if most else "low", confidence=0.95 if most else 0.6,
        title=("zero_grad() runs between backward() and step()" + (f" ({where}: {code})" if where else "")
               + (": the optimizer steps on cleared gradients" if most else
                  f": {len(empty)} step{'s' if len(empty) > 1 else ''} of zero")),
        description=(f"From step {first}, a zero_grad() came after the step's backward pass and before optimizer.step(), "
                     f"with no backward pass in between, and the optimizer found no gradient left on its "
                     f"{data.get('optimizer_params', 0)} parameters: {len(empty)} of the {taken} optimizer steps "
                     f"{'from there' if len(events) < 10 else 'recorded that way'} were steps of zero"
                     + (" (only weight decay still moves the weights), so the model does not learn." if most else
                        ". A batch dropped on purpose this way is fine; a zero_grad() in the wrong place is not.")),
        location=None, step=first,
        evidence={"steps": [int(e.step) for e in empty], "recorded": len(events), "share_of_steps": rate,
                  "zero_grad_line": where, "code": code, "optimizer_params": data.get("optimizer_params"),
                  "problem": "zero_grad before step"},
        recommendations=[Recommendation(
            "fix", "Clear the gradients before backward() (or right after step()), not between them.",
            "optimizer.zero_grad()\nloss = loss_fn(model(x), y)\nloss.backward()\noptimizer.step()"
            + (f"   # was: backward(), then {code} ({where}), then step()" if where else ""))],
    )
