"""Does a training data set held in memory change from one epoch to the next?

A data set that keeps its samples in memory (a feature cache, a tensor of spectrograms) and whose
`__getitem__` augments the sample it indexes IN PLACE (`x = self.features[i]; x[..., f:f + w] = 0`,
`x -= self.mean`) writes the augmentation into the cache: every epoch trains on data damaged a little
more. Nothing fails; training gets worse epoch by epoch.

Seen at the start of each epoch (the first batch of a new iterator over a data set a DataLoader
served with autograd on, once it is read): a fixed sample of at most `_CELLS` cells of each array the data set holds one row per sample of
(its attributes, or a `Subset`'s data set's) is copied. From the third epoch on it is compared with
the copy the epoch before took: cells that changed are counted, and split by what they held before:
a cache filled lazily changes empty cells (0 or NaN) into data, which is no damage. One `dataset_changed`
event per array and epoch where data cells changed, at most `_MAX_EVENTS`.

Cost: per epoch, one gather of at most 65,536 cells per array (microseconds to a millisecond); per
step, one identity test of the iterator.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import torch

__all__ = ["DatasetDrift", "weak"]

_CELLS = 65_536
_MAX_EVENTS = 20
_MAX_ARRAYS = 4


def _base(dataset: Any) -> Any:
    while hasattr(dataset, "dataset") and hasattr(dataset, "indices"):  # torch.utils.data.Subset
        dataset = dataset.dataset
    return dataset


def _sample_arrays(dataset: Any) -> list[tuple[str, Any]]:
    """(attribute name, array) of the arrays with one row per sample and more than one value per row."""
    try:
        n = len(dataset)
    except Exception:  # noqa: BLE001 - an IterableDataset without a length (TypeError, NotImplementedError)
        return []
    tensors = getattr(dataset, "tensors", None)
    named = (list(enumerate(tensors)) if isinstance(tensors, tuple)
             else list(getattr(dataset, "__dict__", {}).items()))
    out = []
    for name, v in named:
        if isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim >= 2 and len(v) == n:
            out.append((f"tensors[{name}]" if isinstance(name, int) else str(name), v))
    return out[:_MAX_ARRAYS]


def _cells(v: Any) -> np.ndarray | None:
    """A fixed, evenly spread sample of the array's cells, copied (in its own dtype: compared exactly);
    None for a layout that cannot be read without copying the whole array."""
    if isinstance(v, torch.Tensor):
        if v.is_sparse or v.device.type == "meta" or not v.is_contiguous() or not v.dtype.is_floating_point:
            return None
        flat = v.detach().view(-1)
        idx = torch.linspace(0, flat.numel() - 1, min(_CELLS, flat.numel())).long().to(flat.device)
        cells = flat[idx].to("cpu")
        return (cells.float() if cells.dtype == torch.bfloat16 else cells).numpy()
    if not (v.flags.c_contiguous and np.issubdtype(v.dtype, np.floating)):
        return None
    flat = v.reshape(-1)
    idx = np.linspace(0, flat.size - 1, min(_CELLS, flat.size)).astype(np.int64)
    return flat[idx].copy()


class DatasetDrift:
    """Per training data set: the epoch count and the last epoch's sample of each array's cells."""

    def __init__(self, emit: Any) -> None:
        self._emit = emit  # (event name's data) -> None
        self._iterators: dict[int, Any] = {}  # data set id -> its current iterator (weakly)
        self._seen: dict[int, dict[str, Any]] = {}
        self._events = 0

    def next_batch(self, iterator: Any, dataset: Any, training: bool) -> None:
        """Called on each batch a DataLoader iterator gives: a new iterator is a new epoch."""
        key = id(dataset)
        current = self._iterators.get(key)
        if current is not None and current() is iterator:  # (an id alone is reused once an iterator is freed)
            return
        for gone in [k for k, r in self._iterators.items() if r() is None]:  # iterators freed (old epochs)
            del self._iterators[gone]
        self._iterators[key] = weak(iterator)
        for gone in [k for k, st in self._seen.items() if st["ref"]() is None]:  # a data set built anew
            del self._seen[gone]
        state = self._seen.get(key)
        if training or (state is not None and state["ref"]() is dataset):
            self._epoch(key, dataset)

    def _epoch(self, key: int, dataset: Any) -> None:
        state = self._seen.get(key)
        if state is not None and state["ref"]() is not dataset:  # another data set, at a freed one's id
            state = None
        if state is None:
            base = _base(dataset)
            arrays = _sample_arrays(base)
            state = self._seen[key] = {"arrays": [(n, weak(v)) for n, v in arrays], "epoch": 0, "last": {},
                                       "dataset": type(base).__name__, "length": len(base) if arrays else 0,
                                       "ref": weak(dataset)}
        state["epoch"] += 1
        for name, ref in state["arrays"]:
            v = ref()
            if v is None:
                continue
            cells = _cells(v)
            before = state["last"].get(name)
            state["last"][name] = cells
            # epoch 1 -> 2 is not compared: a cache filled during the first epoch changes then
            if cells is None or before is None or state["epoch"] < 3 or self._events >= _MAX_EVENTS:
                continue
            both = np.isfinite(before) | np.isfinite(cells)
            changed = (before != cells) & both
            if not changed.any():
                continue
            was_data = changed & np.isfinite(before) & (before != 0)  # a cell that held a value, not an empty one
            if not was_data.any():
                continue
            self._events += 1
            self._emit({"dataset": state["dataset"], "length": state["length"], "array": name,
                        "shape": list(v.shape), "epoch": state["epoch"] - 1, "cells": len(cells),
                        "changed_frac": float(changed.mean()), "data_changed_frac": float(was_data.mean()),
                        "zero_frac_before": float((before == 0).mean()), "zero_frac": float((cells == 0).mean()),
                        "std_before": float(np.nanstd(before.astype(np.float64))),
                        "std": float(np.nanstd(cells.astype(np.float64)))})


def weak(v: Any) -> Any:
    """A weak reference to `v`, or a strong one for an object that takes none."""
    try:
        return weakref.ref(v)
    except TypeError:  # an object that takes no weak reference: held as long as the data set is
        return lambda: v
