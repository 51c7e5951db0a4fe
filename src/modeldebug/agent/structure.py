"""What the model's structure and the batch say before anything trains, and one check of a rule's claim.

- `frozen`: no parameter can learn (every `requires_grad` False, or no parameters at all). Nothing
  can be trained, so this is the whole answer: an issue with the fix, not an error.
- `nonfinite_state`: the weights or buffers (or the gradients the model holds) are already NaN/Inf
  (NUM001): every loss, probe and fix after it only shows the NaN, so it explains them and ranks
  first; the learning rate is not to blame.
- `zero_weights`: every weight tensor is exactly zero (PRB004), the cause of the dead units and
  frozen-looking parameters the run then shows.
- `single_sample_batchnorm`: every batch has one sample and the model normalises with BatchNorm
  (PRB005); `batchnorm_advice` adds the same advice to BatchNorm's one-sample crash.
- `squashing_shown`: LSS001 reads "every value the loss got lay in [0, 1]" as a squashing before the
  loss. The agent has the model, so it checks: with the inputs scaled up and negated, a squashed
  output stays in [0, 1]; raw logits leave it, and an output that does not change with the input
  (dead units: the same small logits for every sample) shows nothing either way.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..capture.isolation import set_training
from ..rules.base import Finding, Recommendation
from .request import Workload, call_model
from .tools.base import make_finding

__all__ = ["batchnorm_advice", "frozen", "nonfinite_state", "single_sample_batchnorm", "squashed_claim",
           "squashing_shown", "zero_weights"]

_NORM_ADVICE = Recommendation(
    "fix", "Every batch has one sample: normalise with LayerNorm or GroupNorm, which do not need a batch",
    "nn.GroupNorm(num_groups=8, num_channels=C)   # instead of nn.BatchNorm2d(C)\n"
    "nn.LayerNorm(features)                       # instead of nn.BatchNorm1d(features)")


def frozen(work: Workload) -> Finding | None:
    """OPT001 when no parameter of the model can learn; None when some can."""
    params = list(work.model.parameters())
    if any(p.requires_grad for p in params):
        return None
    n = sum(p.numel() for p in params)
    if not params:
        title = "The model has no parameters: there is nothing to train"
        description = (f"{type(work.model).__name__} registers no nn.Parameter, so no optimizer can change it. "
                       "Layers kept in a plain list or dict, or weights stored as plain tensors, are invisible to "
                       "model.parameters().")
        recs = [Recommendation("fix", "Register the layers as sub-modules (nn.ModuleList / nn.ModuleDict) and "
                                      "weights as nn.Parameter",
                               "self.layers = nn.ModuleList(layers)          # not a Python list\n"
                               "self.w = nn.Parameter(torch.randn(n, m))     # not a plain tensor")]
    else:
        title = f"Every parameter is frozen (requires_grad=False on all {len(params)} tensors): nothing can learn"
        description = (f"None of the model's {n:,} weights require a gradient, so backward computes nothing for them "
                       "and the optimizer has nothing to update: training only burns time. This is usually a "
                       "fine-tuning setup that froze the backbone and the new head with it, or requires_grad_(False) "
                       "left over from evaluation code.")
        recs = [Recommendation("fix", "Unfreeze the parameters that should learn",
                               "model.requires_grad_(True)        # or only the part to fine-tune:\n"
                               "model.head.requires_grad_(True)"),
                Recommendation("best_practice", "Build the optimizer after freezing, from the parameters that "
                                                "require grad, and check that the list is not empty",
                               "params = [p for p in model.parameters() if p.requires_grad]\n"
                               "assert params, 'every parameter is frozen'\n"
                               "optimizer = torch.optim.AdamW(params, lr=3e-4)")]
    f = make_finding("OPT001", "params_not_updating", "optimizer", severity="high", confidence=0.99, title=title,
                     description=description, evidence={"parameters": len(params), "weights": n, "trainable": 0},
                     recommendations=recs)
    f.step = 0
    return f


#: what a model whose weights are already NaN/Inf shows in every run and probe: its symptoms, not their causes
_NONFINITE_EXPLAINS = ("loss_diverging", "loss_not_decreasing", "loss_oscillating", "poor_initialization",
                       "nondeterminism", "exploding_gradients", "vanishing_gradients", "dead_activations",
                       "lr_too_high", "lr_too_low", "input_ignored", "weight_collapse", "nonfinite")


def _nonfinite(t: torch.Tensor | None) -> tuple[int, int] | None:
    """(NaN count, Inf count) of a floating-point tensor that holds any; None otherwise."""
    if t is None or not (t.is_floating_point() or t.is_complex()) or t.numel() == 0:
        return None
    v = t.detach()
    if bool(torch.isfinite(v).all()):
        return None
    return int(torch.isnan(v).sum()), int(torch.isinf(v).sum())


def _counted(bad: list[tuple[str, int, int, int]]) -> str:
    parts = []
    for name, nan, inf, n in bad[:3]:
        what = " and ".join(w for w in (f"{nan:,} NaN" if nan else "", f"{inf:,} Inf" if inf else "") if w)
        parts.append(f"{name} ({what} of {n:,} values)")
    return ", ".join(parts) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")


def nonfinite_state(work: Workload) -> Finding | None:
    """NUM001 when the model's weights or buffers, or else the gradients it holds, are already NaN/Inf."""
    model = work.model
    state = [(k, *c, v.numel()) for k, v in model.state_dict(keep_vars=True).items()
             if (c := _nonfinite(v)) is not None]
    grads = [(f"{k}.grad", *c, p.grad.numel()) for k, p in model.named_parameters()
             if (c := _nonfinite(p.grad)) is not None]
    if not state and not grads:
        return None
    first = (state or grads)[0][0]
    module = first.rsplit(".", 1)[0] if "." in first else ""
    if state:
        title = f"The model's weights are already non-finite before any training: {_counted(state)}"
        description = (f"{len(state)} of the model's tensors hold NaN or Inf as it was handed over, so every forward "
                       "pass outputs NaN from the first step: the non-finite loss at initialisation, the runs that "
                       "\"blow up\" at once and the unstable repeats follow from it, and no learning rate or "
                       "initialisation change to the training fixes it. An earlier update wrote them (a step with "
                       "a NaN loss or gradient), or a checkpoint was saved after training had diverged.")
        recs = [Recommendation("fix", "Load the last checkpoint whose weights are finite, or re-initialise the "
                                      "affected layers; then find the step that made them non-finite",
                               "bad = [n for n, t in model.state_dict().items()\n"
                               "       if t.is_floating_point() and not torch.isfinite(t).all()]\n"
                               "print(bad)   # reload them, or: for m in model.modules(): m.reset_parameters()"),
                Recommendation("best_practice", "Watch the training run: the first non-finite loss or gradient is "
                                                "recorded with the module that produced it",
                               "with modeldebug.watch(model, optimizer=optimizer):\n    train()")]
        explains: list[str] = list(_NONFINITE_EXPLAINS)
    else:
        title = f"The gradients the model holds are non-finite: {_counted(grads)}"
        description = ("The model's .grad tensors hold NaN or Inf, left by its last backward pass. The next "
                       "optimizer.step() with them writes NaN into the weights (gradients accumulate unless they "
                       "are zeroed). The analysis itself ran on copies with fresh gradients, so the rest of this "
                       "report is about the weights as they are now.")
        recs = [Recommendation("fix", "Zero the gradients before each backward, and find what made them non-finite "
                                      "(a NaN in the batch, a log or division in the loss)",
                               "optimizer.zero_grad(set_to_none=True)   # before loss.backward()\n"
                               "assert torch.isfinite(loss), 'non-finite loss: skip this step'")]
        explains = []
    f = make_finding("NUM001", "nonfinite", "numerics", severity="high", confidence=0.99, title=title,
                     description=description, location=module or None,
                     evidence={"where": "weights" if state else "gradients",
                               "tensors": [b[0] for b in (state or grads)][:20],
                               "nonfinite_grads": [b[0] for b in grads][:20], "explains_only": explains},
                     recommendations=recs)
    f.step = 0
    return f


def zero_weights(work: Workload) -> Finding | None:
    """PRB004 when the model has two or more weight tensors and every one is exactly zero."""
    weights = [(name, p) for name, p in work.model.named_parameters() if p.dim() >= 2 and p.numel() > 0]
    if len(weights) < 2 or any(bool(p.detach().ne(0).any()) for _, p in weights):
        return None
    names = [n for n, _ in weights]
    f = make_finding(
        "PRB004", "zero_weights", "model", severity="high", confidence=0.99,
        title=f"Every weight of the model is zero ({len(weights)} weight tensors, {sum(p.numel() for _, p in weights):,} values)",
        description=("All units of each layer compute the same value and receive the same gradient, so they stay "
                     "identical (the symmetry is never broken), and behind a ReLU the earlier layers get no gradient "
                     "at all: only the biases can learn. The dead units and parameters that never move in the rest "
                     "of this report follow from it."),
        evidence={"weight_tensors": names[:20], "count": len(weights)},
        recommendations=[Recommendation("fix", "Initialise the weights randomly (PyTorch's defaults), zeros for biases "
                                               "only; or load the checkpoint you meant to load",
                                        "for m in model.modules():\n"
                                        "    if hasattr(m, 'reset_parameters'):\n"
                                        "        m.reset_parameters()")])
    f.step = 0
    return f


def _batch_sizes(work: Workload) -> list[int]:
    sizes = []
    for x, _ in work.batches:
        t = x if isinstance(x, torch.Tensor) else next(
            (v for v in (x.values() if isinstance(x, dict) else x if isinstance(x, (tuple, list)) else ())
             if isinstance(v, torch.Tensor)), None)
        if t is None or t.dim() == 0:
            return []
        sizes.append(int(t.shape[0]))
    return sizes


def _batchnorms(work: Workload) -> list[str]:
    return [name or type(m).__name__ for name, m in work.model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def single_sample_batchnorm(work: Workload) -> Finding | None:
    """PRB005 when every batch has one sample and the model has BatchNorm layers."""
    sizes, norms = _batch_sizes(work), _batchnorms(work)
    if not sizes or any(s != 1 for s in sizes) or not norms:
        return None
    return make_finding(
        "PRB005", "single_sample_batchnorm", "model", severity="medium", confidence=0.9,
        title=f"Every batch has one sample, but the model normalises with BatchNorm ({', '.join(norms[:3])}"
              f"{', ...' if len(norms) > 3 else ''})",
        description=("BatchNorm normalises with the statistics of the batch; with one sample they are that sample's "
                     "own, so training normalises per sample while evaluation uses running averages of them: train "
                     "and eval disagree and the statistics are noisy."),
        location=norms[0], evidence={"batch_sizes": sizes[:20], "batchnorm_layers": norms},
        recommendations=[_NORM_ADVICE])


def batchnorm_advice(work: Workload, findings: list[Finding]) -> None:
    """Put the LayerNorm/GroupNorm advice first on BatchNorm's one-sample crash when every batch has one sample."""
    sizes = _batch_sizes(work)
    if not sizes or any(s != 1 for s in sizes) or not _batchnorms(work):
        return
    for f in findings:
        if "BatchNorm" in f.title and "one sample" in f.title and _NORM_ADVICE not in f.recommendations:
            f.recommendations.insert(0, _NORM_ADVICE)


def squashed_claim(f: Finding, tol: float) -> bool:
    """Is `f` LSS001's "values squashed into [0, 1]" (not its rows-sum-to-one or nll variant)?"""
    ev = f.evidence
    dev, frac = ev.get("in_rowsum_dev"), ev.get("in_frac_01")
    return (f.code == "LSS001" and isinstance(frac, float) and frac >= 1.0
            and (dev is None or dev > tol) and "nll" not in str(ev.get("loss", "")))


def _outputs(model: nn.Module, x: Any) -> torch.Tensor | None:
    with torch.no_grad():
        out = call_model(model, x)
    if isinstance(out, dict):
        out = out.get("logits")
    elif hasattr(out, "logits") and not isinstance(out, torch.Tensor):
        out = out.logits
    return out.detach().float() if isinstance(out, torch.Tensor) and out.is_floating_point() else None


def squashing_shown(work: Workload) -> tuple[bool | None, str]:
    """Does the model squash its output into [0, 1]? (True, False, or None: cannot tell), and why."""
    x = work.inputs()
    with torch.random.fork_rng(devices=[]):
        model = work.clone()
        set_training(model, False)
        base = _outputs(model, x)
        if base is None:
            return None, "the model's output is not a floating-point tensor"
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            constant = base.dim() > 0 and base.shape[0] > 1 and bool((base == base[:1]).all())
            return (False, "the output is the same for every sample: it does not come from the inputs") if constant \
                else (None, "the inputs are not floating-point values that can be scaled")
        outs = [base] + [o for o in (_outputs(model, x * 10), _outputs(model, -x * 10)) if o is not None]
    if any(bool(((o < 0) | (o > 1)).any()) for o in outs):
        return False, "with the inputs scaled by 10 and by -10 the outputs leave [0, 1]: they are not squashed"
    if all(torch.equal(o, base) for o in outs[1:]) and base.shape[0] > 1 and bool((base == base[:1]).all()):
        return False, ("the output is the same for every sample and every input scale (dead units: constant logits "
                       "that happen to lie in [0, 1])")
    return True, "with the inputs scaled by 10 and by -10 the outputs stay in [0, 1]"
