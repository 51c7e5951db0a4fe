"""A short, seeded training run on a copy of the model: the probes' and fixes' common engine.

`short_run` trains a fresh copy for a few steps with the request's optimizer and loss, optionally
under `modeldebug.watch` (so the whole rule catalogue sees it), with an input transform, a
learning rate override or gradient clipping (the automatic fixes), and stops early once the loss
is non-finite. Everything is seeded from the request, so two runs of the same thing agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import BadInputError
from .request import Workload, call_model

__all__ = ["RunResult", "short_run"]


@dataclass
class RunResult:
    """Losses of a short run, its report when watched, and the trained copy."""

    losses: list[float]
    model: nn.Module
    report: Any = None
    error: BaseException | None = None
    #: loss on held-out data after training (when `evaluate_on` was given)
    eval_loss: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def first(self) -> float:
        return self.losses[0] if self.losses else math.nan

    @property
    def final(self) -> float:
        """Mean of the last few losses (one step is noisy), NaN if the run blew up."""
        tail = self.losses[-5:]
        if not tail or not all(math.isfinite(v) for v in tail):
            return math.nan
        return sum(tail) / len(tail)

    @property
    def best(self) -> float:
        finite = [v for v in self.losses if math.isfinite(v)]
        return min(finite) if finite else math.nan

    @property
    def diverged(self) -> bool:
        return any(not math.isfinite(v) for v in self.losses)


def short_run(work: Workload, *, steps: int, model: nn.Module | None = None, one_batch: bool = True,
              transform: Callable[[Any], Any] | None = None, lr: float | None = None,
              clip: float | None = None, watch_level: str | None = None,
              lr_schedule: Callable[[int], float] | None = None,
              prepare: Callable[[nn.Module], None] | None = None, seed: int | None = None,
              zero_grad: bool = True, batches: list[tuple[Any, Any]] | None = None,
              evaluate_on: tuple[Any, Any] | None = None,
              stop: Callable[[list[float]], bool] | None = None,
              score_on: tuple[Any, Any] | None = None) -> RunResult:
    """Train a copy for `steps` optimizer steps; never touches the user's model.

    `one_batch`: repeat the first batch (the overfit probe) instead of cycling the data.
    `transform(inputs) -> inputs` changes what the model sees (zeroed or normalised inputs).
    `prepare(model)` edits the copy before training (an initialisation fix, a removed softmax).
    `batches` replaces the request's batches; `evaluate_on` is a held-out batch scored after training.
    `stop(losses) -> bool`, asked after each step, ends the run early (memorised, stalled, out of time).
    `score_on`: a held-out batch whose loss (no gradient) is recorded before each step, in `extras["scored"]`.
    """
    seed = work.options.seed if seed is None else seed
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        copy = model if model is not None else work.clone()
        if prepare is not None:
            prepare(copy)
        copy.train()
        opt = work.optimizer(copy)
        if lr is not None:
            for g in opt.param_groups:
                g["lr"] = lr
        batches = batches or ([work.batch] if one_batch else work.batches)
        losses: list[float] = []
        scored: list[float] = []
        session = None
        if watch_level is not None:
            from ..capture import watch
            from .measure import scoped

            # The user's config (thresholds, select/ignore) at the level asked for. Timing and
            # memory-growth rules judge long runs; a probe run of a few dozen steps on a busy machine
            # would only give them noise. The profiler and memory tools cover those.
            config = scoped(work.config).model_copy(update={"analysis_level": watch_level})
            config.ignore = [*config.ignore, "PRF001", "PRF002", "MEM001"]
            session = watch(copy, optimizer=opt, config=config, db=":memory:")
            session.__enter__()
        error: BaseException | None = None
        try:
            for step in range(steps):
                x, y = batches[step % len(batches)]
                if transform is not None:
                    x = transform(x)
                if lr_schedule is not None:
                    for g in opt.param_groups:
                        g["lr"] = lr_schedule(step)
                if zero_grad or step == 0:
                    opt.zero_grad(set_to_none=True)
                if score_on is not None:
                    with torch.no_grad():
                        scored.append(float(work.loss_of(call_model(copy, score_on[0]), score_on[1])))
                loss = work.loss_of(call_model(copy, x), y)
                value = float(loss.detach())
                losses.append(value)
                if not math.isfinite(value):
                    break
                loss.backward()
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(copy.parameters(), clip)
                opt.step()
                if stop is not None and stop(losses):
                    break
        except BadInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - a crash is a result the caller reports
            error = exc
        finally:
            if session is not None:
                session.__exit__(type(error) if error else None, error, None)
        report = session.report() if session is not None else None
        eval_loss = None
        if evaluate_on is not None and error is None:
            x, y = evaluate_on
            with torch.no_grad():
                copy.eval()
                eval_loss = float(work.loss_of(call_model(copy, transform(x) if transform else x), y))
                copy.train()
        return RunResult(losses, copy, report, error, eval_loss, {"scored": scored} if score_on is not None else {})
