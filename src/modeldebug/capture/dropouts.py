"""The evaluation-dropout probe: a functional dropout that still drops in eval mode.

Once per run, at the first forward pass of a model in eval mode without gradients (its validation),
a private copy of the model (isolation.py) runs that batch in eval mode while ``F.dropout`` and its
kin are watched; each call that still drops is recorded with the user's line that made it. The
functional dropouts are put back before the probe returns, whatever the copy's forward does.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import torch
from torch import nn

from .. import measures as M
from .crash import caller_line
from .isolation import quiet, set_training, twin
from .probes import TWIN_MAX_BYTES, weight_bytes

__all__ = ["EvalDropoutProbe", "eval_dropouts"]



#: The functional dropouts (nn.Dropout and kin pass their own flag; the defaults differ: `_training_default`).
_DROPOUTS = ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout")


class EvalDropoutProbe:
    """Once per run, at the first forward pass of a model in eval mode without gradients (its
    validation): runs a private copy of the model on that batch, in eval mode, and records every
    functional dropout (``F.dropout`` and kin) that still drops, with the user's line that called
    it and whether ``training`` was passed (Monte Carlo dropout on purpose) or left at its default
    of True (the bug: ``F.dropout(x, 0.5)`` in a ``forward`` ignores ``model.eval()``)."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.done = M.EVAL_DROPOUT not in tracer.plan

    def once(self, root: nn.Module, args: tuple[Any, ...]) -> None:
        self.done = True
        tr = self.tracer
        tr.replaying = True
        try:
            result = eval_dropouts(root, args)
        except Exception as exc:  # noqa: BLE001 - a model the probe cannot copy or call: say why
            result = {"skipped": f"{type(exc).__name__}: {exc}"}
        finally:
            tr.replaying = False
        if result is not None:
            tr.writer.add_event(tr.step, M.EVAL_DROPOUT.name, result)


def eval_dropouts(root: nn.Module, args: tuple[Any, ...]) -> dict[str, Any] | None:
    """The functional dropouts that drop while a copy of `root` runs `args` in eval mode (see
    `EvalDropoutProbe`); None when the model is too large to copy."""
    if weight_bytes(root) > TWIN_MAX_BYTES:
        return None
    model, call, _ = twin(root, tuple(args))
    set_training(model, False)
    calls: dict[tuple[str, int], dict[str, Any]] = {}
    F = torch.nn.functional
    originals = {name: getattr(F, name) for name in _DROPOUTS if hasattr(F, name)}

    def wrap(name: str, fn: Any) -> Any:
        default = _training_default(fn)  # True for F.dropout*, False for the alpha dropouts

        def dropout(input: Any, p: float = 0.5, *rest: Any, **kwargs: Any) -> Any:
            explicit = len(rest) >= 1 or "training" in kwargs
            training = rest[0] if rest else kwargs.get("training", default)
            if training and p > 0:
                where = caller_line(sys._getframe(1))
                if where:
                    row = calls.setdefault((where["file"], where["line"]),
                                           {**where, "function": name, "p": float(p), "explicit": explicit})
                    row["explicit"] = row["explicit"] and explicit
            return fn(input, p, *rest, **kwargs)

        return dropout

    try:
        for name, fn in originals.items():
            setattr(F, name, wrap(name, fn))
        with quiet(model), torch.no_grad():
            model(*call)
    finally:
        for name, fn in originals.items():
            setattr(F, name, fn)
    return {"calls": list(calls.values())}


def _training_default(fn: Any) -> bool:
    """The default of `fn`'s ``training`` argument (True when it cannot be read)."""
    try:
        param = inspect.signature(fn).parameters.get("training")
    except (TypeError, ValueError):
        return True
    return True if param is None or param.default is inspect.Parameter.empty else bool(param.default)
