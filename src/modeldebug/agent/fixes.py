"""Verified fixes: apply a recommendation to a copy, re-run the probe, report before and after.

A fix is tried only when a finding asks for it and it can be applied mechanically: a learning
rate, gradient clipping, re-initialisation, removing a final softmax, normalising inputs, zeroing
gradients. Both runs use the same seed, batch and step budget; a fix helps when it lowers the loss by
10% and by more than the runs' own step-to-step noise (when the run without it blew up: when the
run with it ends 10% below its own first loss, so a rate too low to learn anything does not count);
one that does not is reported as not helping, with its numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..jsonsafe import json_safe
from ..rules.base import Finding
from .intervals import tail_noise
from .request import Workload
from .trainer import RunResult, short_run

__all__ = ["VerifiedFix", "candidate_fixes", "holdout", "verify"]


@dataclass
class VerifiedFix:
    """A fix tried on a copy: the probe's final loss before and after, and whether it helped."""

    fix: str
    for_kind: str
    description: str
    implementation: str
    before: float
    after: float
    helped: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    def to_text(self) -> str:
        verdict = "helped" if self.helped else "did NOT help"
        return (f"{self.fix} (for {self.for_kind}): {self.before:.4g} -> {self.after:.4g}, {verdict}"
                f"{'; ' + self.note if self.note else ''}")


@dataclass
class _Candidate:
    name: str
    description: str
    implementation: str
    run_kwargs: dict[str, Any]
    #: what the fix should improve: "train" (can the model fit) or "held_out" (does it generalise)
    metric: str = "train"
    #: gentler variants tried in turn while the run with the fix still goes non-finite (a rate a
    #: tenth of one that blows up may blow up too): (description, implementation, run_kwargs)
    fallbacks: tuple[tuple[str, str, dict[str, Any]], ...] = ()


def _reinit(model: nn.Module) -> None:
    """PyTorch's default initialisation for every layer that has one, biases zeroed (undoes bad init)."""
    with torch.no_grad():
        for m in model.modules():
            # norm layers too (BatchNorm, LayerNorm, GroupNorm: weight 1, bias 0, fresh running
            # statistics): a BatchNorm bias of -10 kills the ReLU after it as surely as a Linear's
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
                bias = getattr(m, "bias", None)
                if isinstance(bias, torch.Tensor):
                    bias.zero_()


def _last_softmax(model: nn.Module) -> tuple[nn.Module, str] | None:
    """The parent and attribute name of a Softmax/LogSoftmax that is the model's last module, if any."""
    leaves = [(n, m) for n, m in model.named_modules() if n and next(m.children(), None) is None]
    if not leaves or not isinstance(leaves[-1][1], (nn.Softmax, nn.LogSoftmax)):
        return None
    name = leaves[-1][0]
    parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    return parent, name.rsplit(".", 1)[-1]


def _remove_softmax(model: nn.Module) -> None:
    found = _last_softmax(model)
    if found is not None:
        parent, attr = found
        if isinstance(parent, nn.Sequential):
            parent[int(attr)] = nn.Identity()
        else:
            setattr(parent, attr, nn.Identity())


def _normalizer(work: Workload) -> Callable[[Any], Any] | None:
    x = work.inputs()
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2 or x.shape[0] < 2:
        return None
    dims = [0] + list(range(2, x.dim()))  # per feature, or per channel for images
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True).clamp_min(1e-6)
    return lambda t: (t - mean) / std if isinstance(t, torch.Tensor) else t


def _reinit_candidate() -> _Candidate:
    return _Candidate("reinitialize", "Re-initialise every layer with PyTorch's defaults and zero biases",
                      "for m in model.modules():\n    if hasattr(m, 'reset_parameters'): m.reset_parameters()",
                      {"prepare": _reinit})


def candidate_fixes(finding: Finding, work: Workload, *, suggested_lr: float | None) -> list[_Candidate]:
    """The mechanical fixes that address `finding` and can be applied to this request."""
    lr = work.lr()
    kind = finding.kind
    out: list[_Candidate] = []
    if kind == "nonfinite" and finding.evidence.get("where") in ("weights", "gradients"):
        # the model was handed over non-finite: no rate or clipping helps, fresh weights may
        return [_reinit_candidate()] if finding.evidence["where"] == "weights" else []
    if kind in ("lr_too_high", "loss_diverging", "exploding_gradients", "nonfinite", "loss_oscillating") and lr:
        # the range test's rate when it found a minimum below the current rate, and not so far below
        # that it could only stand still (a thousandth of the rate); else a tenth of it
        new = suggested_lr if suggested_lr and lr / 1000 <= suggested_lr < lr else lr / 10

        def lower(rate: float) -> tuple[str, str, dict[str, Any]]:
            return (f"Lower the learning rate from {lr:.1e} to {rate:.1e}",
                    f"for g in optimizer.param_groups: g['lr'] = {rate:.1e}", {"lr": rate})

        out.append(_Candidate("lower_lr", *lower(new),
                              fallbacks=tuple(lower(new / 10 ** k) for k in (1, 2, 3) if new / 10 ** k >= lr / 1e4)))
    if kind in ("exploding_gradients", "nonfinite", "loss_diverging"):
        out.append(_Candidate("clip_grad_norm", "Clip the gradient norm to 1.0",
                              "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # after backward()", {"clip": 1.0}))
    if kind in ("lr_too_low", "loss_not_decreasing") and lr and suggested_lr and suggested_lr > 3 * lr:
        out.append(_Candidate("raise_lr", f"Raise the learning rate from {lr:.1e} to {suggested_lr:.1e}",
                              f"for g in optimizer.param_groups: g['lr'] = {suggested_lr:.1e}", {"lr": suggested_lr}))
    if kind in ("dead_activations", "poor_initialization", "vanishing_gradients", "weight_collapse"):
        out.append(_reinit_candidate())
    if kind == "double_softmax" and _last_softmax(work.model) is not None:
        out.append(_Candidate("remove_final_softmax", "Remove the final Softmax: CrossEntropyLoss applies log-softmax itself",
                              "replace the model's last nn.Softmax with nn.Identity() (keep softmax for inference only)",
                              {"prepare": _remove_softmax}))
    if kind in ("input_not_normalized", "channel_order") and _normalizer(work) is not None:
        out.append(_Candidate("normalize_inputs", "Standardise the inputs per feature/channel",
                              "x = (x - mean) / std  # mean/std per channel from the training set",
                              {"transform": _normalizer(work)}, metric="held_out"))
    if kind == "missing_zero_grad":
        out.append(_Candidate("zero_grad", "Zero the gradients before each backward",
                              "optimizer.zero_grad()  # at the start of every step", {"zero_grad": True}))
    return out


def holdout(work: Workload) -> tuple[list[tuple[Any, Any]], tuple[Any, Any]] | None:
    """Training batches and a held-out batch: the last loader batch, or the second half of one batch."""
    if len(work.batches) >= 2:
        return work.batches[:-1], work.batches[-1]
    x, y = work.batch
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)) or x.dim() == 0 or x.shape[0] < 16 \
            or y.dim() == 0 or y.shape[0] != x.shape[0]:
        return None
    h = x.shape[0] // 2
    return [(x[:h], y[:h])], (x[h:], y[h:])


def _score(run: RunResult, held_out: bool) -> float:
    if held_out and run.eval_loss is not None and not run.diverged:
        return run.eval_loss
    return run.final


def verify(candidate: _Candidate, finding: Finding, work: Workload) -> VerifiedFix:
    """Train a copy with and without the fix (same seed, data and steps) and compare the fix's metric.

    Most fixes are about whether the model can fit at all, so they are scored by the final training
    loss. Normalising inputs is scored on held-out data (the last loader batch, or half of the one
    batch): a model can memorise a batch of badly scaled inputs, but it generalises worse from them.
    """
    steps = work.options.probe_steps
    split = holdout(work) if candidate.metric == "held_out" else None
    common: dict[str, Any] = {"steps": steps}
    if split is not None:
        common.update(batches=split[0], evaluate_on=split[1], one_batch=False)
    before = short_run(work, **common, **({"zero_grad": False} if candidate.name == "zero_grad" else {}))
    after = short_run(work, **common, **candidate.run_kwargs)
    description, implementation = candidate.description, candidate.implementation
    for gentler in candidate.fallbacks:  # still blows up: a gentler variant (a rate 10x lower again)
        if not after.diverged:
            break
        description, implementation, kwargs = gentler
        after = short_run(work, **common, **kwargs)
    b, a = _score(before, split is not None), _score(after, split is not None)
    # better by 10% and by more than the two runs' own step-to-step noise (held-out: one value, no noise)
    noise = 0.0 if split is not None else \
        2 * math.hypot(tail_noise(before.losses), tail_noise(after.losses)) / math.sqrt(5)
    better = math.isfinite(a) and a < 0.9 * b and b - a > noise
    # Without the fix the run blew up: a finite loss after it is not enough (a rate too low to move
    # the weights stays at its first loss); it must have learned, its loss well below where it began.
    start = after.first
    learned = math.isfinite(a) and math.isfinite(start) and a < 0.9 * start and \
        start - a > 2 * tail_noise(after.losses, window=5) / math.sqrt(5)
    helped = learned if not math.isfinite(b) else better
    note = "held-out loss" if split is not None else "final training loss"
    if not math.isfinite(a):
        note += "; the run still went non-finite"
    elif not math.isfinite(b) and not learned:
        note += f"; it stayed finite but did not learn (its first loss was {start:.4g})"
    elif math.isfinite(b) and a >= b:
        note += "; it did not improve"
    elif math.isfinite(b) and a < 0.9 * b and not better:
        note += f"; the gain is within the runs' noise ({noise:.2g})"
    return VerifiedFix(candidate.name, finding.kind, description, implementation, b, a, helped, note)
