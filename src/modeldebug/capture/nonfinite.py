"""Find the module that PRODUCED a non-finite value, not the ones that merely passed it on.

Checking every module's output every step would cost a read pass over all activations, so the
tracer checks only the loss and gradient norms every step. When the loss turns non-finite it replays
that step's forward pass (before the optimizer has touched the weights) with a finiteness check on
every module, under ``no_grad``, on a private copy of the model with the RNG state forked (see
isolation.py), so the user's training, hooks and module state are not changed.

The producer is the first module, in completion order, whose output is non-finite while its inputs
were finite. If a module's inputs were already non-finite and the module before it was clean, the
value came from a functional operation between the two (``torch.log`` in ``forward``), and we say so.

On a CUDA device an unsampled step's loss and gradient norm are read a few steps late (deferred.py).
A non-finite value found late is recorded at the step it belongs to, with ``late``: the step at
whose sync point it was found, and what was replayed instead, since that step's weights are gone:
the forward pass of the step under way (its batch, its weights, before its update), or nothing when
the run has ended. Gradient blame then reads the gradients of the step under way too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .. import measures as M
from .isolation import quiet, twin, unwrap
from .stats import first_tensor, odd_layout

__all__ = ["NonFiniteOrigin", "NonfiniteWatch", "locate_nonfinite"]


@dataclass
class NonFiniteOrigin:
    """Where a non-finite value first appeared during a replayed forward pass."""

    where: str  # "module" | "between_modules" | "input" | "loss"
    module: str | None
    previous_module: str | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _all_finite(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point() or odd_layout(value) is not None:
            return True  # nothing to check (integers) or no plain data to check (meta, sparse, nested)
        return bool(torch.isfinite(value).all())
    if isinstance(value, (tuple, list)):
        return all(_all_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    return True


def _describe(value: Any) -> str:
    t = first_tensor(value)
    if t is None:
        return "non-tensor output"
    t = t.detach()
    n_nan = int(torch.isnan(t).sum())
    n_inf = int(torch.isinf(t).sum())
    return f"{n_nan} NaN and {n_inf} Inf of {t.numel()} values"


@torch.no_grad()
def locate_nonfinite(
    root: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], names: dict[nn.Module, str]
) -> NonFiniteOrigin:
    """Replay ``root(*args, **kwargs)`` and report where the first non-finite value appeared."""
    if not _all_finite(args) or not _all_finite(kwargs):
        return NonFiniteOrigin("input", None, None, f"the batch fed to the model already holds {_describe(args)}")

    found: list[NonFiniteOrigin] = []
    last_clean: list[str] = []

    def check(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if found or module not in copies:
            return
        name = copies[module]
        if _all_finite(output):
            if next(iter(module.children()), None) is None:
                last_clean[:] = [name]
            return
        if _all_finite(inputs):
            detail = f"output holds {_describe(output)} although its inputs were finite"
            if not all(bool(torch.isfinite(p).all()) for p in module.parameters(recurse=False)):
                detail += "; its own weights were already non-finite (an earlier update blew them up)"
            found.append(NonFiniteOrigin("module", name, last_clean[0] if last_clean else None, detail))
        else:
            prev = last_clean[0] if last_clean else None
            found.append(NonFiniteOrigin(
                "between_modules", name, prev,
                f"the input of {name} was already non-finite; the output of {prev or 'the previous module'} "
                "was finite, so a functional operation in forward() between them produced it",
            ))

    model, (args, kwargs), twins = twin(root, (args, kwargs))  # TwinError: the caller records why
    copies = {c: names[o] for o, c in twins.items() if o in names}
    for m in copies:
        m.register_forward_hook(check)
    with quiet(model):
        output = model(*args, **kwargs)
    if found:
        return found[0]
    if not _all_finite(output):
        return NonFiniteOrigin("module", names.get(unwrap(root)), None, _describe(output))
    return NonFiniteOrigin("loss", None, None, "the model's output was finite: the loss computation produced it")


class NonfiniteWatch:
    """The `nonfinite` event, once per run: the first non-finite loss (replayed to find its producer)
    or the first non-finite total gradient norm (the last parameter, in forward order, whose gradient
    is non-finite produced it)."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.on = M.NONFINITE in tracer.plan
        self.seen = False

    def loss(self, values: list[float], step: int | None = None) -> None:
        """A non-finite loss at this step, or at an earlier `step` whose numbers arrived late."""
        if self.seen or not self.on:
            return
        self.seen = True
        tr = self.tracer
        data: dict[str, Any] = {"what": "loss", "loss": [str(v) for v in values]}
        if step is not None:
            data["late"] = self._late(step, "the forward pass of step {now} (its batch and weights) was replayed",
                                      "the run had ended: nothing was replayed")
        if tr.replay is not None:
            root, args, kwargs = tr.replay
            names = {m: i.name for m, i in tr.registry.modules.items()}
            tr.replaying = True
            try:
                data["origin"] = locate_nonfinite(root, args, kwargs, names).to_dict()
            except Exception as exc:  # e.g. a model called with keyword arguments
                data["replay_error"] = f"{type(exc).__name__}: {exc}"
            finally:
                tr.replaying = False
        self._record(data, step)

    def gradient(self, step: int | None = None) -> None:
        """A non-finite total gradient norm at this step, or at an earlier `step` (found late)."""
        if self.seen or not self.on:
            return
        self.seen = True
        tr = self.tracer
        # Backward runs from the loss to the inputs: the producer is the LAST parameter, in forward
        # order, whose gradient is non-finite; the earlier ones only received it.
        bad = tr.gradients.nonfinite_params()
        data: dict[str, Any] = {"what": "gradient", "params": bad}
        if step is not None:
            data["late"] = self._late(step, "the parameters named are those whose gradients are non-finite "
                                            "at step {now}", "the parameters named are those whose gradients "
                                            "were non-finite at the last step")
        if bad:
            module = next((i.module for i in tr.registry.params.values() if i.name == bad[-1]), None)
            data["origin"] = {"where": "backward", "module": module, "previous_module": None,
                              "detail": f"gradient of {bad[-1]} was the first to go non-finite"}
        self._record(data, step)

    def _late(self, step: int, what: str, ended: str) -> dict[str, Any]:
        """What a late finding says: where it was found and what was examined instead of `step`."""
        tr = self.tracer
        now = tr.step
        live = tr.replay is not None
        return {"step": step, "found_at_step": now,
                "detail": f"found at step {now}, after step {step}'s update (its value was copied from the "
                          "GPU without waiting for it); "
                          + (what.format(now=now) if live else ended)}

    def _record(self, data: dict[str, Any], step: int | None = None) -> None:
        self.tracer.writer.add_event(self.tracer.step if step is None else step, M.NONFINITE.name, data)
        self.tracer.writer.flush()
