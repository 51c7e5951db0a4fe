"""The built-in specs, one module per family of detectors (data only)."""

from __future__ import annotations

from ..spec import Option, Spec
from . import (
    activations, behaviour, common, data, distributed, dynamics, gradients, internal, invariants, labels, loop, loss,
    lossfn, monitor, numerics, onnx_lint, onnx_run, optimizer, probes, resources, runtime, schedule,
)

__all__ = ["BUILTIN_OPTIONS", "BUILTIN_SPECS"]

BUILTIN_SPECS: tuple[Spec, ...] = tuple(
    s for m in (numerics, loss, gradients, activations, optimizer, schedule, dynamics, data, labels, lossfn,
                loop, resources, runtime, probes, onnx_lint, onnx_run, behaviour, monitor, invariants,
                distributed, internal)
    for s in m.SPECS
)
BUILTIN_OPTIONS: tuple[Option, ...] = common.OPTIONS
