"""AmpWatch: a mixed-precision run is recorded as the user's training, not as the GradScaler's.

``scaler.scale(loss).backward()`` calls backward on ``loss * scale`` (65536 at first), so the tensor
the tracer sees is the scaled loss and, until the scaler unscales them, the gradients are scaled
too. Three narrow probes on ``torch.amp.GradScaler`` (which ``torch.cuda.amp.GradScaler`` inherits):

- ``scale``: remembers the last scaled tensor (weakly) with the unscaled one it came from (detached),
  so the backward probe records the user's loss, exactly, and knows the gradients are scaled;
- ``unscale_`` (which ``step`` calls before the optimizer's step): the gradients are the user's again;
- ``step``: when the scaler skipped the optimizer's step (non-finite scaled gradients: it lowers
  its scale and goes on; not a fault), the step is dropped and said (an ``amp_step_skipped`` event),
  so it is neither a step row nor a non-finite finding.

An optimizer step taken while the gradients are still scaled (the scaled backward pass, then
``optimizer.step()`` with neither ``scaler.step`` nor ``scaler.unscale_``) is said once, at the end
of the run, with the first such step (an ``amp_scaled_step`` event): every update is then ``scale``
times too large. Not when the scaler unscaled some optimizer's gradients during the run: the step
was then another optimizer's, whose gradients the scaler never touched.

Gradient norms measured while the gradients are still scaled (a step measured at the backward pass,
before any optimizer is known) are divided by the scale; a non-finite one there is the scaler's to
judge (it will skip the step), not a non-finite training.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

from .. import measures as M
from .patches import Probe

__all__ = ["AmpWatch"]


class AmpWatch:
    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        # (the scaled tensor, the unscaled loss it came from, that loss detached, the scale tensor)
        self._scaled: tuple[weakref.ref[torch.Tensor], weakref.ref[torch.Tensor], torch.Tensor, Any] | None = None
        #: the scale the gradients hold now (a backward pass of a scaled loss, not unscaled yet), else None
        self.grad_scale: Any = None
        # the first optimizer step taken on still-scaled gradients (step, scale, optimizer type), said at
        # the end of the run unless the scaler ever unscaled gradients for some optimizer: then the
        # scaled gradients were another optimizer's (a second model trained in fp32 beside an AMP one)
        self._scaled_step: tuple[int, float | None, str] | None = None
        self._unscaled_any = False

    def probes(self) -> dict[str, Probe]:
        return {"amp_scale": Probe(None, self._scaled_out), "amp_unscale": Probe(None, self._unscaled),
                "amp_step": Probe(self._step_before, self._step_after)}

    def _scaled_out(self, token: None, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
                    exc: BaseException | None) -> None:
        outputs = args[1] if len(args) > 1 else kwargs.get("outputs")
        if exc is not None or not isinstance(result, torch.Tensor) or not isinstance(outputs, torch.Tensor) \
                or result is outputs or not self.tracer.active("amp"):
            return
        self._scaled = (weakref.ref(result), weakref.ref(outputs), outputs.detach(), getattr(args[0], "_scale", None))

    def unscaled_loss(self, loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(the loss to record, the tensor the user holds) when `loss` is the scaler's last scaled
        output; the gradients of its backward pass are then scaled."""
        scaled = self._scaled
        if scaled is None or scaled[0]() is not loss:
            return None
        user = scaled[1]()
        self.grad_scale = scaled[3] if scaled[3] is not None else self.grad_scale
        return scaled[2], user if user is not None else loss

    def stepped_scaled(self, opt: Any) -> None:
        """The optimizer steps while the gradients still hold the scaler's scale: neither `scaler.step`
        nor `scaler.unscale_` ran since the scaled backward pass, so every update is `scale` times too
        large. The first such step is kept; `finish` says it (an `amp_scaled_step` event)."""
        if self._scaled_step is not None:
            return
        scale = self.grad_scale
        self._scaled_step = (self.tracer.step, float(scale) if isinstance(scale, (torch.Tensor, float, int)) else None,
                             type(opt).__name__)

    def finish(self) -> None:
        """At the end of the run: the scaled step, when the scaler never unscaled any optimizer's
        gradients (a loop that never calls `scaler.step`); otherwise the step was another optimizer's,
        whose own gradients were not scaled (an fp32 model beside an AMP one), and nothing is said.
        (So a second optimizer stepped on scaled gradients beside one the scaler steps is missed.)"""
        if self._scaled_step is None or self._unscaled_any:
            return
        step, scale, opt = self._scaled_step
        self.tracer.writer.add_event(step, M.AMP_SCALED_STEP.name, {"scale": scale, "optimizer": opt})

    def _unscaled(self, token: None, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
                  exc: BaseException | None) -> None:
        if exc is None:
            self.grad_scale = None
            self._unscaled_any = True

    def _step_before(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
        tr = self.tracer
        return tr.step if tr.active("amp") and getattr(args[0], "_enabled", False) else None

    def _step_after(self, step: int | None, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
                    exc: BaseException | None) -> None:
        if step is None or exc is not None or self.tracer.step != step:
            return  # the optimizer stepped (its post-hook closed the step)
        self.tracer.call("amp", self._skipped, args[0])

    def _skipped(self, scaler: Any) -> None:
        tr = self.tracer
        scale = scaler._scale  # the scale that overflowed (update() lowers it afterwards)
        tr.writer.add_event(tr.step, M.AMP_STEP_SKIPPED.name,
                            {"scale": float(scale) if isinstance(scale, torch.Tensor) else None})
        self.grad_scale = None
        tr.drop_step()
