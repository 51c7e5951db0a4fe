"""LoopWatch: the training loop's hygiene, seen through three more narrow patches.

- ``Optimizer.zero_grad`` / ``Module.zero_grad``: were gradients cleared between optimizer steps?
  At the first backward pass of a step with no zero_grad call since the last step, the norm of the
  gradients still present is measured (on the device): non-zero means they were carried over.
- ``torch.nn.utils.clip_grad_norm_``: the total norm before clipping and the limit, per step.
- ``torch.utils.data`` iterators' ``__next__``: time spent waiting for the data loader.
It also keeps weak references to recent loss tensors (a loss still alive steps later is being kept,
usually with its whole graph), and fingerprints input samples for a train/validation overlap check.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import numpy as np
import torch
from torch import nn

from . import stats as S

__all__ = ["LoopWatch"]

_FINGERPRINT_BUDGET = {"train": 50_000, "val": 10_000}
_LIVE_WINDOW = 8


class LoopWatch:
    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.zero_grad_calls = 0
        self.t_loader = 0.0
        self._recent_losses: list[weakref.ref[torch.Tensor]] = []
        self._fp_vectors: dict[tuple[int, torch.device], torch.Tensor] = {}
        # Fingerprints by (phase, data set): the data set is the one the last DataLoader batch came
        # from (None without a DataLoader), so evaluating the TRAINING set under no_grad is not leakage.
        self.fingerprints: dict[tuple[str, int | None], set[float]] = {}
        self.current_dataset: int | None = None
        self._fp_budget = dict(_FINGERPRINT_BUDGET)
        self.clip: torch.Tensor | None = None

    # -- patches ----------------------------------------------------------------------------------
    def patches(self) -> list[tuple[Any, str, Any]]:
        from torch.utils.data import dataloader

        out = [
            (torch.optim.Optimizer, "zero_grad", self._wrap_zero_grad(torch.optim.Optimizer.zero_grad)),
            (nn.Module, "zero_grad", self._wrap_zero_grad(nn.Module.zero_grad)),
            (dataloader._BaseDataLoaderIter, "__next__", self._wrap_next(dataloader._BaseDataLoaderIter.__next__)),
        ]
        clip = self._wrap_clip(torch.nn.utils.clip_grad_norm_)
        out += [(torch.nn.utils, "clip_grad_norm_", clip), (torch.nn.utils.clip_grad, "clip_grad_norm_", clip)]
        return out

    def _wrap_zero_grad(self, original: Any) -> Any:
        watch = self

        def zero_grad(obj: Any, *args: Any, **kwargs: Any) -> Any:
            if watch.tracer.active("loop"):
                watch.zero_grad_calls += 1
            return original(obj, *args, **kwargs)

        zero_grad.__wrapped__ = original  # type: ignore[attr-defined]
        zero_grad.__doc__ = original.__doc__
        return zero_grad

    def _wrap_next(self, original: Any) -> Any:
        watch = self

        def __next__(it: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(it)
            finally:
                watch.t_loader += time.perf_counter() - t0
                dataset = getattr(it, "_dataset", None)
                watch.current_dataset = id(dataset) if dataset is not None else None

        __next__.__wrapped__ = original  # type: ignore[attr-defined]
        return __next__

    def _wrap_clip(self, original: Any) -> Any:
        watch = self

        def clip_grad_norm_(parameters: Any, max_norm: float, *args: Any, **kwargs: Any) -> Any:
            total = original(parameters, max_norm, *args, **kwargs)
            if watch.tracer.active("loop") and isinstance(total, torch.Tensor):
                watch.clip = torch.stack([total.detach().reshape(()).to(torch.float64),
                                          torch.tensor(float(max_norm), dtype=torch.float64, device=total.device)])
            return total

        clip_grad_norm_.__wrapped__ = original  # type: ignore[attr-defined]
        clip_grad_norm_.__doc__ = original.__doc__
        return clip_grad_norm_

    # -- per step -------------------------------------------------------------------------------------
    def first_backward(self, params: list[torch.Tensor]) -> None:
        """Before the step's first backward: were the gradients of the last step cleared?"""
        tr = self.tracer
        if tr.step == 0 or self.zero_grad_calls:
            return
        carried = [p.grad.detach() for p in params if p.grad is not None]
        if carried:
            tr.buffer.add("carried_grad", tr.step, None, torch.stack(S.norms(carried)).norm().reshape(1))

    def saw_loss(self, loss: torch.Tensor) -> None:
        self._recent_losses.append(weakref.ref(loss))
        del self._recent_losses[:-_LIVE_WINDOW]

    def live_losses(self) -> int:
        """How many loss tensors of earlier steps (not this one) something still holds."""
        return sum(1 for r in self._recent_losses[:-1] if r() is not None)

    def before_sync(self) -> None:
        """Put what clipping measured into the step's one host copy."""
        if self.clip is not None:
            self.tracer.buffer.add("clip", self.tracer.step, None, self.clip)
            self.clip = None

    def end_step(self) -> dict[str, Any]:
        cols = {"zero_grad_calls": self.zero_grad_calls, "t_loader": self.t_loader,
                "live_losses": self.live_losses()}
        self.zero_grad_calls = 0
        self.t_loader = 0.0
        return cols

    # -- data fingerprints --------------------------------------------------------------------------------
    def fingerprint(self, x: torch.Tensor, phase: str) -> None:
        """One number per sample (a fixed random projection) while the budget lasts."""
        if self._fp_budget[phase] <= 0 or x.dim() < 2:
            return
        flat = x.detach()[:256].flatten(1)
        if not flat.is_floating_point():
            return
        key = (flat.shape[1], flat.device)
        v = self._fp_vectors.get(key)
        if v is None:  # a private generator: the global RNG is never touched
            g = torch.Generator().manual_seed(12345)
            v = torch.randn(flat.shape[1], generator=g).to(flat.device)
            self._fp_vectors[key] = v
        self._fp_budget[phase] -= flat.shape[0]
        self.tracer.buffer.add(f"fp_{phase}", self.tracer.step, self.current_dataset, flat.float() @ v)

    def add_fingerprints(self, phase: str, dataset: int | None, values: list[float]) -> None:
        # float32 projections of identical samples are identical; rounding to float32 drops the
        # float64 widening the host copy added.
        self.fingerprints.setdefault((phase, dataset), set()).update(np.asarray(values, dtype=np.float32).tolist())

    def overlap(self) -> dict[str, Any] | None:
        """Validation samples also seen in training, counting only data sets never trained on."""
        trained_on = {d for (phase, d) in self.fingerprints if phase == "train"}
        train = set().union(*(v for (phase, _), v in self.fingerprints.items() if phase == "train"))
        val = set().union(*(v for (phase, d), v in self.fingerprints.items()
                            if phase == "val" and (d is None or d not in trained_on)))
        if not train or not val:
            return None
        shared = train & val
        return {"train_samples": len(train), "val_samples": len(val), "overlap": len(shared),
                "fraction_of_val": len(shared) / len(val)}
