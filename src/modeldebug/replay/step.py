"""Re-execute a bundle's step: forward, loss, backward and the optimizer's update, as the run did.

Bit-for-bit means: the same weights and optimizer state, the same batch, the same loss call, and
torch's random generator set to its state at the start of the run's forward pass (dropout draws the
same masks). The step's loss (as the float64 the tracer recorded) and every gradient are then
compared bit by bit with the run's. On another device, or another torch build, kernels may round
differently: the symptom may reproduce without the bits.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import random
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..capture.bundle import STRUCT
from ..capture.isolation import set_training
from ..capture.stats import first_tensor

__all__ = ["ModuleStats", "StepOutcome", "all_finite", "autocast_for", "execute", "restore_rng", "same_bits", "tensor_stats"]


def autocast_for(bundle: dict[str, Any], part: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The autocast region the run's forward pass (`part` "forward") or loss call ("loss") ran under."""
    state = (bundle.get("autocast") or {}).get(part) or {}
    name = state.get(device.type) or next(iter(state.values()), None)  # a CUDA run replayed on the CPU
    dtype = getattr(torch, str(name), None) if name else None
    if not isinstance(dtype, torch.dtype):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def restore_rng(bundle: dict[str, Any]) -> None:
    """Every generator the bundle saved, as it was (torch's: at the start of the step's forward pass)."""
    rng = bundle["rng"]
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") and torch.cuda.is_available():
        with contextlib.suppress(Exception):  # fewer devices here than in the run
            torch.cuda.set_rng_state_all(rng["cuda"])
    npr = rng.get("numpy")
    if npr:
        np.random.set_state((npr["name"], npr["keys"].numpy().astype(np.uint32), npr["pos"], npr["has_gauss"],
                             npr["gauss"]))
    if rng.get("python"):
        state = rng["python"]
        random.setstate((state[0], tuple(state[1]), state[2]))


def same_bits(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """The same dtype, shape and bytes (NaN payloads included)."""
    if a is None or b is None or a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a.detach().cpu().contiguous().reshape(-1).view(torch.uint8),
                       b.detach().cpu().contiguous().reshape(-1).view(torch.uint8))


@dataclass
class ModuleStats:
    """Every statistic of one module call's output (and whether its input was finite)."""

    name: str
    type: str
    shape: list[int]
    mean: float
    std: float
    min: float
    max: float
    absmax: float
    nan: int
    inf: int
    input_finite: bool

    @property
    def finite(self) -> bool:
        return self.nan == 0 and self.inf == 0


def tensor_stats(t: torch.Tensor) -> dict[str, Any]:
    x = t.detach().float()
    finite = torch.isfinite(x)
    vals = x[finite]
    nan, inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
    if vals.numel() == 0:
        return {"shape": list(t.shape), "mean": float("nan"), "std": float("nan"), "min": float("nan"),
                "max": float("nan"), "absmax": float("nan"), "nan": nan, "inf": inf}
    return {"shape": list(t.shape), "mean": float(vals.mean()), "std": float(vals.std()) if vals.numel() > 1 else 0.0,
            "min": float(vals.min()), "max": float(vals.max()), "absmax": float(vals.abs().max()), "nan": nan,
            "inf": inf}


def all_finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, (list, tuple)):
        return all(all_finite(v) for v in value)
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    return True


@contextlib.contextmanager
def module_hooks(model: nn.Module, names: set[str] | None,
                 seen: Callable[[str, nn.Module, tuple[Any, ...], Any], None]) -> Iterator[None]:
    """Call `seen(name, module, inputs, output)` after each named module's forward (all when `names` is
    None; the root's name is "")."""
    handles = []
    for name, m in model.named_modules():
        if names is None or name in names:
            handles.append(m.register_forward_hook(
                lambda mod, inp, out, _n=name: seen(_n, mod, inp, out)))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@dataclass
class StepOutcome:
    loss: torch.Tensor | None = None  # float64, as the tracer recorded it
    grads: dict[str, torch.Tensor] = field(default_factory=dict)
    exception: BaseException | None = None
    phase: str = "forward"  # where it stopped (forward, loss, backward, optimizer, done)
    stepped: bool = False
    params_finite_after: bool | None = None
    anomaly: str | None = None
    modules: list[ModuleStats] = field(default_factory=list)
    grad_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    loss_note: str | None = None
    output_finite: bool | None = None  # every floating value of the model's output finite
    clipped: bool = False  # clip_grad_norm_ applied after backward, as the run did


def rebuild(struct: dict[str, Any], move: Callable[[Any], Any]) -> Any:
    """A namedtuple or dataclass of the same name and fields as the run's batch (its class is code: not saved)."""
    fields = {str(k): move(v) for k, v in (struct.get("fields") or {}).items()}
    name = str(struct.get("name") or "Batch")
    name = name if name.isidentifier() else "Batch"
    if struct.get(STRUCT) == "namedtuple":
        return collections.namedtuple(name, list(fields))(**fields)
    return dataclasses.make_dataclass(name, list(fields))(**fields)


def batch_of(bundle: dict[str, Any], device: torch.device) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A fresh copy of the batch on `device` (a step that changes its input in place changes no later replay)."""
    def move(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.to(device, copy=True)
        if isinstance(v, (list, tuple)):
            return type(v)(move(x) for x in v)
        if isinstance(v, dict) and STRUCT in v:
            return rebuild(v, move)
        if isinstance(v, dict):
            return {k: move(x) for k, x in v.items()}
        return v

    batch = bundle["batch"]
    return tuple(move(batch["args"])), move(batch["kwargs"])


def prepare(bundle: dict[str, Any], model: nn.Module, device: torch.device) -> None:
    """The bundle's weights (again) and its training flags, on `device`."""
    if bundle.get("model_state") is not None:
        model.load_state_dict(bundle["model_state"])
    model.to(device)
    set_training(model, True)
    eval_names = set(bundle["model"].get("eval_modules") or [])
    for name, m in model.named_modules():
        if name in eval_names:
            object.__setattr__(m, "training", False)


def compute_loss(bundle: dict[str, Any], output: Any, device: torch.device) -> tuple[torch.Tensor | None, str | None]:
    """The run's loss call on this output, or (None, why). A model that computes its loss in forward()
    (``model(input_ids, labels=...)`` returning ``{"loss": ..., "logits": ...}``) returned it: that is the loss."""
    own = _returned_loss(output)
    if own is not None:
        return own, None
    call = bundle.get("loss_call")
    if not call:
        return None, "the run's loss was not a torch.nn.functional loss call the tracer saw: no loss to replay"
    fn = getattr(F, str(call["function"]), None)
    out = first_tensor(output)
    if fn is None or out is None:
        return None, f"the loss {call['function']} cannot be applied to the model's output"
    shape = call.get("input_shape")
    if shape is not None and list(out.shape) != list(shape):
        if out.numel() != int(np.prod(shape)):
            return None, (f"the run fed {call['function']} a tensor of shape {shape}, not the model's output "
                          f"{list(out.shape)}: the loss cannot be replayed")
        out = out.reshape(shape)
    move = lambda v: v.to(device) if isinstance(v, torch.Tensor) else v
    target = move(call.get("target"))
    args = [move(a) for a in call.get("args") or []]
    kwargs = {k: move(v) for k, v in (call.get("kwargs") or {}).items()}
    return fn(out, target, *args, **kwargs), None


def _returned_loss(output: Any) -> torch.Tensor | None:
    """The scalar loss a model's output holds under the name ``loss`` (a dict, an HF ModelOutput), else None."""
    loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
    if isinstance(loss, torch.Tensor) and loss.is_floating_point() and loss.numel() == 1:
        return loss
    return None


def execute(bundle: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer | None, device: torch.device,
            *, anomaly: bool = False) -> StepOutcome:
    """Run the step once; with `anomaly`, under autograd's anomaly mode with every module's statistics."""
    res = StepOutcome()
    prepare(bundle, model, device)
    model.zero_grad(set_to_none=True)
    args, kwargs = batch_of(bundle, device)
    names = dict(model.named_modules())

    def seen(name: str, m: nn.Module, inp: tuple[Any, ...], out: Any) -> None:
        t = first_tensor(out)
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            res.modules.append(ModuleStats(name, type(m).__name__, input_finite=all_finite(inp), **tensor_stats(t)))

    hooks = module_hooks(model, None, seen) if anomaly else contextlib.nullcontext()
    restore_rng(bundle)
    with warnings.catch_warnings(), hooks, torch.autograd.set_detect_anomaly(anomaly, check_nan=True):
        warnings.simplefilter("ignore")  # anomaly mode's forward traces: the error message names the op
        try:
            with autocast_for(bundle, "forward", device):
                output = model(*args, **kwargs)
            res.output_finite = all_finite(output)
            res.phase = "loss"
            with autocast_for(bundle, "loss", device):
                loss, res.loss_note = compute_loss(bundle, output, device)
            if loss is None:
                return res
            res.loss = loss.detach().reshape(-1).to(torch.float64).cpu()
            res.phase = "backward"
            loss.backward()
            clip = bundle.get("clip")
            if isinstance(clip, dict) and "max_norm" in clip:  # the run clipped before its optimizer step
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], **clip)
                res.clipped = True
            res.grads = {n: p.grad.detach().cpu().clone() for n, p in model.named_parameters() if p.grad is not None}
            res.grad_stats = {n: tensor_stats(g) for n, g in res.grads.items()} if anomaly else {}
            res.phase = "optimizer"
            if opt is not None:
                opt.step()
                res.stepped = True
                res.params_finite_after = all(bool(torch.isfinite(p).all()) for p in model.parameters())
            res.phase = "done"
        except Exception as exc:  # noqa: BLE001 - the user's step failed: that is the result
            res.exception = exc
            if anomaly and isinstance(exc, RuntimeError) and "returned nan" in str(exc).lower():
                res.anomaly = str(exc).strip().splitlines()[0]
    del names
    return res
