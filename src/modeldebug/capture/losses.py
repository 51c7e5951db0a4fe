"""What goes into the loss: inputs and targets of every `torch.nn.functional` loss call.

Loss modules (`nn.CrossEntropyLoss`, ...) call these functions too, so one narrow patch per function
sees both styles. On sampled steps, and on the first call of each loss in each phase, the call's
input and target are reduced on the device to a few numbers (range, whether rows are probabilities,
label range, label histogram) that the data-and-loss rules read. Nothing else is kept.

``ctc_loss`` (`SEQUENCE_LOSSES`) is watched too, but its target is a sequence of symbols per
sample: its histogram counts the symbols within ``target_lengths`` over the input's last axis
(`ctc_symbol_counts`; padding, often 0 like the blank, is not counted), and its positional
``blank`` and ``reduction`` are recorded as keyword arguments.
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
from typing import Any

import torch

from .. import measures as M
from . import stats_chunked, stats_cpu
from .buffer import stats_sink
from .patches import LOSS_FUNCTIONS, SEQUENCE_LOSSES, Probe
from .stats import odd_layout, unmeasurable

__all__ = [
    "LOSS_FUNCTIONS",
    "LOSS_IO_STATS",
    "LossWatch",
    "ctc_options",
    "ctc_symbol_counts",
    "label_histogram",
    "label_values",
    "loss_io_stats",
    "loss_io_values",
    "loss_options",
    "split_input_target",
]

#: Losses whose float target may be a series' next values (a next-step forecaster: probes.future_leak).
_REGRESSION = frozenset({"mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"})

# The order of the values loss_io_stats returns.
LOSS_IO_STATS: tuple[str, ...] = tuple(m.name for m in M.LOSS_IO_STATS)


def loss_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A loss call's plain keyword arguments, as recorded, with the reduction spelled out when the call
    used the deprecated pair (``F.binary_cross_entropy(p, x, size_average=False)``, still common in
    tutorials): the rules read ``reduction``, and a summed loss judged as a mean is ~10^5x too large."""
    out: dict[str, Any] = {}
    for k, v in kwargs.items():
        if isinstance(v, (str, bool)):
            out[k] = v
        elif isinstance(v, numbers.Integral):  # (a NumPy integer too: `ignore_index=np.int64(0)`)
            out[k] = int(v)
        elif isinstance(v, numbers.Real):
            out[k] = float(v)
    if "reduction" not in out and ("size_average" in kwargs or "reduce" in kwargs):
        # torch.nn._reduction.legacy_get_string: None counts as True for both
        mean, reduce = (True if kwargs.get(k) is None else bool(kwargs[k]) for k in ("size_average", "reduce"))
        out["reduction"] = "mean" if mean and reduce else "sum" if reduce else "none"
    return out


# Options some losses take by position after (input, target): F.kl_div(input, target, size_average,
# reduce, reduction, log_target).
_POSITIONAL = {"kl_div": ("size_average", "reduce", "reduction", "log_target"),
               "cross_entropy": ("weight", "size_average", "ignore_index", "reduce", "reduction", "label_smoothing"),
               "nll_loss": ("weight", "size_average", "ignore_index", "reduce", "reduction")}


def _positional(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` with the options a call passed by position added (`F.kl_div(a, b, None, None, "batchmean")`)."""
    names = _POSITIONAL.get(name)
    if not names or len(args) <= 2:
        return kwargs
    return {**dict(zip(names, args[2:])), **kwargs}


def ctc_options(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A ``ctc_loss`` call's options (``nn.CTCLoss`` passes them by position), defaults filled in."""
    names = ("blank", "reduction", "zero_infinity")
    given = {**dict(zip(names, args[4:])), **{k: kwargs[k] for k in names if k in kwargs}}
    out: dict[str, Any] = {"blank": 0, "reduction": "mean", "zero_infinity": False}
    for k, v in given.items():
        if k == "blank":  # a NumPy or 0-d tensor integer is accepted by torch: read it, or say it is unknown
            try:
                out[k] = operator.index(v)
            except TypeError:
                out[k] = None
        elif isinstance(v, (str, bool)):
            out[k] = v
    return out


@torch.no_grad()
def ctc_symbol_counts(log_probs: torch.Tensor, targets: Any, target_lengths: Any) -> torch.Tensor | None:
    """Counts of each symbol index 0..C-1 (C: the last axis of `log_probs`) among a CTC call's target
    symbols, plus a last bin for symbols outside [0, C); None when the targets cannot be read.

    Only the first ``target_lengths[i]`` symbols of each padded (N, S) row count, or the first
    ``sum(target_lengths)`` of concatenated 1-d targets: padding is not a symbol. A scatter-add,
    never a mask selection or a ``bincount``, so nothing waits for the device.
    """
    if not isinstance(targets, torch.Tensor) or targets.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8) \
            or log_probs.dim() < 2 or targets.dim() not in (1, 2) or targets.numel() == 0:
        return None
    classes = int(log_probs.shape[-1])
    t = targets.detach().to(torch.int64)
    try:
        lengths = torch.as_tensor(target_lengths, device=t.device).detach().to(torch.int64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        return None
    if t.dim() == 2:
        if lengths.numel() != t.shape[0]:
            return None
        valid = torch.arange(t.shape[1], device=t.device) < lengths[:, None]
    else:
        valid = torch.arange(t.shape[0], device=t.device) < lengths.sum()
    t = torch.where((t < 0) | (t >= classes), classes, t)
    t = torch.where(valid, t, classes + 1).reshape(-1)  # padding goes to a bin that is dropped
    counts = torch.zeros(classes + 2, dtype=torch.float64, device=t.device)
    counts.scatter_add_(0, t, torch.ones_like(t, dtype=torch.float64))
    return counts[: classes + 1]


def _class_weight(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A loss's per-class weights (`weight=` of cross_entropy/nll_loss) and positive-class weights
    (`pos_weight=` of binary_cross_entropy_with_logits), read once, at its first call: the rules
    compare them with the class frequencies."""
    out = {}
    w = kwargs.get("weight")
    if isinstance(w, torch.Tensor) and w.dim() == 1 and 2 <= w.numel() <= 1024 and w.is_floating_point():
        out["class_weight"] = [float(v) for v in w.detach().cpu().tolist()]
    pw = kwargs.get("pos_weight")
    if isinstance(pw, torch.Tensor) and 1 <= pw.numel() <= 1024 and pw.is_floating_point():
        out["pos_weight"] = [float(v) for v in pw.detach().cpu().reshape(-1).tolist()]
    return out


def split_input_target(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """(input, target) of a loss call, by position or keyword (``ctc_loss`` names them log_probs, targets)."""
    inp = args[0] if args else kwargs.get("input", kwargs.get("log_probs"))
    tgt = args[1] if len(args) > 1 else kwargs.get("target", kwargs.get("targets"))
    return inp, tgt


@torch.no_grad()
def loss_io_stats(inp: torch.Tensor, tgt: torch.Tensor | None) -> torch.Tensor:
    """The LOSS_IO_STATS of one loss call, as one float64 tensor on the input's device.

    `in_rowsum_dev` is the largest |sum over the class axis (1) - 1| over the batch: near 0 when
    the input already is a probability distribution (a softmax fed to a loss that applies its own).
    On the CPU an all-finite input takes `stats_cpu.loss_io_values` (no mask, no masked copy).
    """
    values = loss_io_values(inp, tgt)
    return torch.tensor(values, dtype=torch.float64) if type(values) is list else values


def loss_io_values(inp: torch.Tensor, tgt: torch.Tensor | None) -> list[float] | torch.Tensor:
    """`loss_io_stats`, as Python floats for an all-finite plain CPU input, as a tensor otherwise (a
    large input or target a slice at a time: `stats_chunked.loss_io_chunked`)."""
    if inp.numel() > stats_chunked.CHUNK_VALUES or (tgt is not None and tgt.numel() > stats_chunked.CHUNK_VALUES):
        chunked = stats_chunked.loss_io_chunked(inp, tgt)
        if chunked is not None:
            return chunked
    x = inp.detach().float()
    if stats_cpu.fast_path(x) and (tgt is None or tgt.device.type == "cpu"):
        values = stats_cpu.loss_io_values(x, tgt)
        if values is not None:
            return values
    return _loss_io_device(x, tgt)


def _loss_io_device(x: torch.Tensor, tgt: torch.Tensor | None) -> torch.Tensor:
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
    counts = label_values(inp, tgt)
    return torch.tensor(counts, dtype=torch.float64) if type(counts) is list else counts


def label_values(inp: torch.Tensor, tgt: torch.Tensor) -> list[float] | torch.Tensor | None:
    """`label_histogram`, as host numbers for a CPU target with every label in range (one range
    check and a ``bincount``: `stats_cpu.label_counts`), as a tensor on the device otherwise."""
    if tgt.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8) or inp.dim() < 2:
        return None
    classes = int(inp.shape[1])
    if type(tgt) is torch.Tensor and tgt.device.type == "cpu" and tgt.numel():
        counts = stats_cpu.label_counts(classes, tgt)
        if counts is not None:
            return counts
    t = tgt.detach().flatten().to(torch.int64)
    t = torch.where((t < 0) | (t >= classes), classes, t)
    counts = torch.bincount(t, minlength=classes + 1)
    return counts.to(torch.float64)  # the last bin counts targets >= C (and ignore_index)


@torch.no_grad()
def mask_edges(tgt: torch.Tensor, classes: int) -> dict[str, int] | None:
    """For a dense class target (`[B, H, W]`: a class per pixel), the positions where the classes on
    either side (along H or along W, first 8 samples) differ by at least 2 ids (`edges`), and how many
    of those hold a class strictly between the two (`between`): a mask resized by interpolation
    (bilinear, then rounded) puts class b on every border of classes a and c with a < b < c; a mask
    resized by nearest neighbour puts one side's class there. Positions outside [0, classes) (void,
    ignore_index) count for neither. With the in-between positions by class (`between_by_class`) and
    each class's pixels (`pixels_by_class`), a class that exists only as such rings (a boundary class
    drawn between objects and background by design) can be told from classes that gained rings."""
    if tgt.dim() < 3 or tgt.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8) or classes < 3:
        return None
    t = tgt.detach()[:8].to(torch.int64)
    # counts stay on the device until one read at the end: [edges, positions, between by class..., pixels by class...]
    counts = torch.zeros(2 + 2 * classes, dtype=torch.int64, device=t.device)
    for axis in (-1, -2):
        n = t.shape[axis]
        if n < 3:
            continue
        left, mid, right = t.narrow(axis, 0, n - 2), t.narrow(axis, 1, n - 2), t.narrow(axis, 2, n - 2)
        valid = (left >= 0) & (left < classes) & (right >= 0) & (right < classes) & (mid >= 0) & (mid < classes)
        edge = valid & ((left - right).abs() >= 2)
        inside = edge & (mid > torch.minimum(left, right)) & (mid < torch.maximum(left, right))
        counts[0] += edge.sum()
        counts[1] += valid.sum()
        counts[2:2 + classes] += torch.bincount(mid.masked_fill(~inside, classes).flatten(), minlength=classes + 1)[:classes]
    inside_range = (t >= 0) & (t < classes)
    counts[2 + classes:] = torch.bincount(t.masked_fill(~inside_range, classes).flatten(), minlength=classes + 1)[:classes]
    c = counts.tolist()
    by_class = c[2:2 + classes]
    return {"edges": c[0], "positions": c[1], "between": sum(by_class), "between_by_class": by_class,
            "pixels_by_class": c[2 + classes:], "classes": classes, "shape": list(tgt.shape)}


#: Sampled training loss calls whose dense class target `mask_edges` reads.
_MASK_READS = 3


class LossWatch:
    """Probes on the functional losses: their inputs/targets on sampled steps, validation losses.

    Only the measures the plan asks for are taken; with none of them (``--select ACT``) no loss
    function is patched at all.
    """

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        plan = tracer.plan
        self.io = plan.any(M.LOSS_IO_STATS)
        self.labels = M.LABEL_COUNTS in plan
        self.masks = M.MASK_EDGES in plan
        self.val = M.VAL_LOSS in plan
        self.calls = self.io or self.labels or self.masks or self.val or M.LOSS_CALLS in plan
        self.io_names = [m.name if m in plan else None for m in M.LOSS_IO_STATS]
        self.eids: dict[tuple[str, str], int] = {}
        self.sampled: set[tuple[str, str]] = set()
        self._inside = False
        self._masks_read = 0

    def probes(self) -> dict[str, Probe]:
        """A probe per loss function, or none when no loss measure is wanted."""
        if not self.calls:
            return {}
        return {f"loss:{n}": Probe(self._before, functools.partial(self._after, n))
                for n in LOSS_FUNCTIONS + SEQUENCE_LOSSES}

    def new_step(self) -> None:
        self.sampled.clear()

    def _before(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """True for the outermost loss call while the tracer records (a loss calling a loss counts once)."""
        if self._inside or not self.tracer.active("loss"):
            return False
        self._inside = True
        return True

    def _after(self, name: str, outer: bool, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any,
               exc: BaseException | None) -> None:
        if not outer:
            return
        self._inside = False
        if exc is not None:
            return
        tr = self.tracer
        if not tr._sample_now and (name, "train") in self.eids:  # the common step: nothing to take
            inp = args[0] if args else kwargs.get("input")
            if isinstance(inp, torch.Tensor) and inp.requires_grad and torch.is_grad_enabled():
                return
        tr.call("loss", self.on_call, name, args, kwargs, out)

    def on_call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        inp, tgt = split_input_target(args, kwargs)
        if not isinstance(inp, torch.Tensor) or torch._C._is_tracing():  # (a loss inside torch.jit.trace)
            return
        tr = self.tracer
        if tr.pending_val is not None and (not (inp.requires_grad and torch.is_grad_enabled())
                                            or (tr.assembler.t_fwd is None and tr.assembler.t_eval is not None)):
            tr.val_loss_seen()  # a loss on an evaluation pass (one written without no_grad counts as training here)
        if not tr.sampled():  # the common step: a training loss seen before, nothing to take
            phase = "train" if inp.requires_grad and torch.is_grad_enabled() else "val"
            if (name, phase) in self.eids and (phase == "train" or not self.val):
                return
        if unmeasurable(inp) is not None:
            return
        # a target that carries a gradient: its producer (a target network, a teacher) is trained through it
        target_grad = isinstance(tgt, torch.Tensor) and tgt.requires_grad and torch.is_grad_enabled()
        if isinstance(tgt, torch.Tensor) and odd_layout(tgt) is not None:
            tgt = None
        phase = "train" if inp.requires_grad and torch.is_grad_enabled() else "val"
        key = (name, phase)
        eid = self.eids.get(key)
        first = eid is None
        if eid is None:
            eid = tr.writer.entity("loss", name if phase == "train" else f"{name}[val]", type=name, info={
                "phase": phase, "input_shape": list(inp.shape), "input_dtype": _dtype(inp),
                "target_shape": list(tgt.shape) if isinstance(tgt, torch.Tensor) else None,
                "target_dtype": _dtype(tgt) if isinstance(tgt, torch.Tensor) else None,
                "kwargs": ctc_options(args, kwargs) if name == "ctc_loss" else loss_options(_positional(name, args, kwargs)),
                **_class_weight(_positional(name, args, kwargs)),
                **({"target_requires_grad": True} if target_grad else {}),
            })
            self.eids[key] = eid
            mixing = tr.mixing
            if phase == "train" and not mixing.done and mixing.leak and isinstance(tgt, torch.Tensor) \
                    and name not in SEQUENCE_LOSSES and (not tgt.is_floating_point() or name in _REGRESSION):
                mixing.target = tgt  # the next-token (next-step) check at the first step's sync (probes.future_leak)
        step = tr.step
        if self.val and phase == "val" and isinstance(out, torch.Tensor) and out.numel() == 1:
            tr.buffer.add(out.detach().reshape(1), stats_sink(tr.writer, step, [(eid, M.VAL_LOSS.name)]))
        if not (first or (tr.sampled() and key not in self.sampled)):
            return
        self.sampled.add(key)
        target = tgt if isinstance(tgt, torch.Tensor) else None
        if self.io:
            values = loss_io_values(inp, target)
            sink = stats_sink(tr.writer, step, [(eid, n) for n in self.io_names])
            if type(values) is list:
                tr.buffer.add_host(values, sink)
            else:
                tr.buffer.add(values, sink)
        if self.masks and target is not None and phase == "train" and self._masks_read < _MASK_READS \
                and name in ("cross_entropy", "nll_loss") and inp.dim() >= 3 and target.dim() >= 3:
            self._masks_read += 1  # (three calls, on sampled steps: one host read each)
            edges = mask_edges(target, int(inp.shape[1]))
            if edges is not None:
                tr.writer.add_event(step, M.MASK_EDGES.name, {"loss": name, **edges})
        if self.labels and target is not None:
            if name == "ctc_loss":
                lengths = args[3] if len(args) > 3 else kwargs.get("target_lengths")
                hist = ctc_symbol_counts(inp, target, lengths)
            else:
                hist = label_values(inp, target)
            if hist is not None:
                writer = tr.writer
                def counts_sink(v: list[float]) -> None:
                    writer.add_histogram(step, eid, 0.0, float(len(v) - 1), v)

                if type(hist) is list:
                    tr.buffer.add_host(hist, counts_sink)
                else:
                    tr.buffer.add(hist, counts_sink)


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "")
