"""What goes into the loss: inputs and targets of every `torch.nn.functional` loss call.

Loss modules (`nn.CrossEntropyLoss`, ...) call these functions too, so one narrow patch per function
sees both styles. On sampled steps, and on the first call of each loss in each phase, the call's
input and target are reduced on the device to a few numbers (range, whether rows are probabilities,
label range, label histogram) that the data-and-loss rules read. Nothing else is kept.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .stats import odd_layout, unmeasurable

__all__ = ["LOSS_FUNCTIONS", "LOSS_IO_STATS", "LossWatch", "label_histogram", "loss_io_stats", "split_input_target"]

# Functions whose first two parameters are (input, target).
LOSS_FUNCTIONS = (
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "poisson_nll_loss",
    "gaussian_nll_loss", "soft_margin_loss", "multilabel_soft_margin_loss", "multi_margin_loss",
)

# The order of the values loss_io_stats returns.
LOSS_IO_STATS = ("in_min", "in_max", "in_mean", "in_rowsum_dev", "in_frac_01", "in_nonfinite",
                 "tgt_min", "tgt_max", "tgt_mean")


def split_input_target(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    inp = args[0] if args else kwargs.get("input")
    tgt = args[1] if len(args) > 1 else kwargs.get("target")
    return inp, tgt


@torch.no_grad()
def loss_io_stats(inp: torch.Tensor, tgt: torch.Tensor | None) -> torch.Tensor:
    """The LOSS_IO_STATS of one loss call, as one float64 tensor on the input's device.

    `in_rowsum_dev` is the largest |sum over the class axis (1) - 1| over the batch: near 0 when
    the input already is a probability distribution (a softmax fed to a loss that applies its own).
    """
    x = inp.detach().float()
    nan = torch.full((), math.nan, device=x.device)
    finite = torch.isfinite(x)
    if x.numel():
        lo, hi = torch.aminmax(torch.where(finite, x, torch.zeros((), device=x.device)))
        mean = x.mean()
        frac01 = ((x >= 0) & (x <= 1)).float().mean()
        nonfinite = 1.0 - finite.float().mean()
    else:
        lo = hi = mean = frac01 = nonfinite = nan
    rowsum = (x.sum(1) - 1).abs().max() if x.dim() >= 2 and x.numel() else nan
    if isinstance(tgt, torch.Tensor) and tgt.numel():
        t = tgt.detach().to(device=x.device, dtype=torch.float32)
        tlo, thi = torch.aminmax(t)
        tmean = t.mean()
    else:
        tlo = thi = tmean = nan
    return torch.stack([lo, hi, mean, rowsum, frac01, nonfinite, tlo, thi, tmean]).to(torch.float64)


@torch.no_grad()
def label_histogram(inp: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor | None:
    """Counts of each class index in an integer target (None when it is not class indices)."""
    if tgt.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8) or inp.dim() < 2:
        return None
    classes = int(inp.shape[1])
    t = tgt.detach().flatten().to(torch.int64)
    t = torch.where((t < 0) | (t >= classes), classes, t)
    counts = torch.bincount(t, minlength=classes + 1)
    return counts.to(torch.float64)  # the last bin counts targets >= C (and ignore_index)


# True while torch.compile traces a loss computed inside the compiled region: not ours to watch.
_is_compiling = torch.compiler.is_compiling


class LossWatch:
    """Patches the functional losses; records their inputs/targets and validation losses."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.eids: dict[tuple[str, str], int] = {}
        self.sampled: set[tuple[str, str]] = set()
        self._inside = False

    def patches(self) -> list[tuple[Any, str, Any]]:
        functional = torch.nn.functional
        return [(functional, n, self._wrap(n, getattr(functional, n))) for n in LOSS_FUNCTIONS if hasattr(functional, n)]

    def new_step(self) -> None:
        self.sampled.clear()

    def _wrap(self, name: str, original: Any) -> Any:
        watch = self

        def loss(*args: Any, **kwargs: Any) -> Any:
            if _is_compiling() or watch._inside or not watch.tracer.active("loss"):
                return original(*args, **kwargs)
            watch._inside = True
            try:
                out = original(*args, **kwargs)
            finally:
                watch._inside = False
            watch.tracer.call("loss", watch.on_call, name, args, kwargs, out)
            return out

        loss.__wrapped__ = original  # type: ignore[attr-defined]
        loss.__doc__ = original.__doc__
        loss.__name__ = name
        return loss

    def on_call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        inp, tgt = split_input_target(args, kwargs)
        if not isinstance(inp, torch.Tensor) or unmeasurable(inp) is not None:
            return
        if isinstance(tgt, torch.Tensor) and odd_layout(tgt) is not None:
            tgt = None
        tr = self.tracer
        phase = "train" if torch.is_grad_enabled() and inp.requires_grad else "val"
        key = (name, phase)
        eid = self.eids.get(key)
        first = eid is None
        if eid is None:
            eid = tr.writer.entity("loss", name if phase == "train" else f"{name}[val]", type=name, info={
                "phase": phase, "input_shape": list(inp.shape), "input_dtype": _dtype(inp),
                "target_shape": list(tgt.shape) if isinstance(tgt, torch.Tensor) else None,
                "target_dtype": _dtype(tgt) if isinstance(tgt, torch.Tensor) else None,
                "kwargs": {k: v for k, v in kwargs.items() if isinstance(v, (int, float, str, bool))},
            })
            self.eids[key] = eid
        if phase == "val" and isinstance(out, torch.Tensor) and out.numel() == 1:
            tr.buffer.add("val_loss", tr.step, eid, out.detach().reshape(1))
        if not (first or (tr._sampling() and key not in self.sampled)):
            return
        self.sampled.add(key)
        target = tgt if isinstance(tgt, torch.Tensor) else None
        tr.buffer.add("loss_io", tr.step, eid, loss_io_stats(inp, target))
        if target is not None:
            hist = label_histogram(inp, target)
            if hist is not None:
                tr.buffer.add("label_hist", tr.step, eid, hist)


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "")
