"""What a repro bundle can hold: tensors and plain containers of plain values, so that
``torch.load(weights_only=True)`` reads it and reading it runs no code.

A namedtuple or dataclass batch is kept as its fields under the `STRUCT` key; replay rebuilds one of
the same name and fields (modeldebug.replay.step.rebuild).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

__all__ = ["STRUCT", "Unstorable", "nbytes", "plain", "plain_tuple", "storable_kwargs"]

#: The key of a dict that stands for a namedtuple or dataclass batch ({STRUCT: kind, "name", "fields"}).
STRUCT = "__modeldebug_struct__"


class Unstorable(Exception):
    """A value a weights-only bundle cannot hold (an object that only pickle could store)."""


def plain(value: Any, depth: int = 0, *, copy: bool = True) -> Any:
    """`value` as tensors (detached CPU copies unless `copy` is False) and plain containers of plain
    Python values (str, int, float, bool, None: subclasses such as torch's version string become the
    base type), or Unstorable."""
    if depth > 12:
        raise Unstorable("nested too deeply")
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True) if copy else value
    if value is None:
        return None
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    if isinstance(value, np.generic):
        return value.item()
    fields = _struct_fields(value)
    if fields is not None:  # a namedtuple or dataclass batch: its fields, rebuilt by replay (STRUCT)
        return {STRUCT: "namedtuple" if isinstance(value, tuple) else "dataclass", "name": type(value).__name__,
                "fields": {k: plain(v, depth + 1, copy=copy) for k, v in fields.items()}}
    if isinstance(value, (list, tuple)):
        items = [plain(v, depth + 1, copy=copy) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict) and all(isinstance(k, (str, int)) for k in value):
        return {plain(k): plain(v, depth + 1, copy=copy) for k, v in value.items()}
    raise Unstorable(f"a {type(value).__name__}")


def _struct_fields(value: Any) -> dict[str, Any] | None:
    """The fields of a namedtuple or a dataclass instance, else None."""
    if isinstance(value, tuple) and isinstance(getattr(type(value), "_fields", None), tuple):
        return dict(zip(type(value)._fields, value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return None


def nbytes(value: Any, depth: int = 0) -> int:
    """The bytes of the tensors `value` holds (nothing is copied)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if depth < 12 and dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(nbytes(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value))
    if depth < 12 and isinstance(value, (list, tuple)):
        return sum(nbytes(v, depth + 1) for v in value)
    if depth < 12 and isinstance(value, dict):
        return sum(nbytes(v, depth + 1) for v in value.values())
    return 0


def storable_kwargs(kwargs: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The keyword arguments a bundle can store; one that only pickle could (a cache object) is left out."""
    out = {}
    for k, v in kwargs.items():
        try:
            out[str(k)] = plain(v)
        except Unstorable as exc:
            notes.append(f"the keyword argument {k}= holds {exc}, which a bundle cannot store: left out of the batch")
    return out


def plain_tuple(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(plain_tuple(v) for v in value)
    return value
