"""Repro bundles: the step where a watched run first went wrong, saved so that it can be replayed.

When a run first hits a non-finite loss or gradient norm, a loss spike, or a crash inside a step,
`BundleWatch` writes ``RUN.bundle.pt`` next to the record ``RUN.db``: the model's and the
optimizer's state BEFORE that step's update, the batch the model was called with, the loss call
(function, target, options), torch's random state at the start of the forward pass, the step's
loss and gradients (what a replay must reproduce bit for bit), and the script's identity.
`modeldebug replay` re-executes it (see modeldebug.replay).

Cost (benchmarks/overhead.py; docs/replay.md): nothing is copied on a healthy step. The tracer
checks the loss and the total gradient norm on the host at the step's one sync point, which comes
BEFORE the optimizer steps, so the weights, the optimizer state and the gradients are still those of
the failing step when it fires: the state is copied then, once, lazily. (On CUDA an unsampled step's
numbers arrive a few steps late, after its update: a bad step found late has no bundle; every step
after a late non-finite value, and the 100 after a late loss spike, are read at once again, so the
next bad step is caught in time: docs/overhead.md, "CUDA".) What a healthy step pays is
one ``torch.get_rng_state()`` per forward pass of the model (~1 us: the forward pass may draw
dropout masks), references to the last loss call's target and options (no copy; not to its
input, which backward would have freed), and a few float comparisons for the spike check.

Bundles hold tensors and plain containers only, so ``torch.load(weights_only=True)`` reads them.
A bundle larger than ``bundle_max_mb`` is written without the model and optimizer state (and
without the batch if that alone is too large), and says so.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import platform
import random
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..smoothing import window
from .bundle_call import autocast_state, call_kwargs
from .bundle_data import STRUCT, Unstorable, nbytes, plain, plain_tuple, storable_kwargs
from .isolation import unwrap
from .patches import LOSS_FUNCTIONS, Probe

__all__ = ["BUNDLE_FORMAT", "BUNDLE_VERSION", "STRUCT", "BundleWatch", "SpikeWatch", "bundle_path", "plain"]

log = logging.getLogger("modeldebug")

BUNDLE_FORMAT = "modeldebug-repro-bundle"
BUNDLE_VERSION = 1
_MB = 1024 * 1024


def bundle_path(record: str | Path) -> Path:
    """``RUN.bundle.pt`` for the record ``RUN.db``."""
    p = Path(record)
    return p.with_name(p.stem + ".bundle.pt")


class SpikeWatch:
    """The loss-spike test of the `lr_too_high` rule (rules/measures.py `instability`), online.

    A spike: at least `min_steps` finite losses seen, the median `lvl` of the last `window(n)` of them
    below the first loss, and the new loss at least `lr_jump_factor` x `lvl` and undoing more than
    half of the progress made (``loss - lvl >= 0.5 * (first - lvl)``).
    """

    def __init__(self, factor: float, min_steps: int) -> None:
        self.factor, self.min_steps = factor, min_steps
        self.first: float | None = None
        self.best = math.inf
        self.n = 0
        self.recent: deque[float] = deque(maxlen=50)

    def spike(self, loss: float | None) -> float | None:
        """The level the loss spiked from, or None; then remember `loss`."""
        if loss is None or not math.isfinite(loss):
            return None
        found = None
        # the median of recent losses is >= the best loss so far: below factor x best, no spike
        if self.n >= self.min_steps and loss >= self.factor * self.best and self.first is not None:
            w = window(self.n)
            lvl = float(np.median(list(self.recent)[-w:]))
            if 0 < lvl < self.first and loss >= self.factor * lvl and loss - lvl >= 0.5 * (self.first - lvl):
                found = lvl
        if self.first is None:
            self.first = loss
        self.best = min(self.best, loss)
        self.recent.append(loss)
        self.n += 1
        return found


class BundleWatch:
    """Armed in a tracer whose record is a file: saves one bundle, at the first trouble."""

    def __init__(self, tracer: Any, path: Path, max_mb: float) -> None:
        self.tracer = tracer
        self.path = path
        self.max_bytes = int(max_mb * _MB)
        self.done = False
        self.rng: torch.Tensor | None = None
        self.cuda_rng: list[torch.Tensor] | None = None
        self._cuda = torch.cuda.is_available()  # asked once: ~2 us a call
        # the step's loss call: its function, its input's shape, and references to the rest of its
        # arguments (not to its input: holding the logits would keep them alive through backward,
        # which frees them as soon as the loss is computed; a language model's are a GB)
        self.loss_call: tuple[str, torch.Size | None, tuple[Any, ...], dict[str, Any]] | None = None
        self.kwargs: dict[str, Any] | None = None  # the forward call's keyword arguments (a reference)
        self.autocast: dict[str, dict[str, str] | None] = {"forward": None, "loss": None}
        self.clip: dict[str, Any] | None = None  # the step's clip_grad_norm_ call (its options)
        t = tracer.config.thresholds
        self.spikes = SpikeWatch(float(t.lr_jump_factor), int(t.min_steps))
        self._version = tracer.registry.version  # the models and optimizers the spike watch has seen train
        self.announce = True  # False: the caller says where the bundle is after the report (`modeldebug run`)

    @classmethod
    def arm(cls, tracer: Any) -> BundleWatch | None:
        """A watch for `tracer`, or None: bundles off (``bundle_max_mb=0``) or no record file to save next to."""
        max_mb = float(getattr(tracer.config, "bundle_max_mb", 0.0))
        path = getattr(tracer.writer, "path", ":memory:")
        if max_mb <= 0 or not path or path == ":memory:":
            return None
        return cls(tracer, bundle_path(path), max_mb)

    # -- what a healthy step pays ------------------------------------------------------------------------
    def forward_started(self) -> None:
        """The model's forward pass begins: torch's random state now is what its dropout will draw from."""
        self.rng = torch.get_rng_state()
        if self._cuda and torch.cuda.is_initialized():
            self.cuda_rng = torch.cuda.get_rng_state_all()
        # pre-hooks see no keyword arguments: read them from the call running the hooks (bundle_call.py)
        replay = self.tracer.replay
        self.kwargs = call_kwargs(replay[0] if replay else None)
        if self.kwargs and replay is not None:  # the tracer's own NaN replay (nonfinite.py) calls them too
            self.tracer.replay = (replay[0], replay[1], self.kwargs)
        self.autocast["forward"] = autocast_state(self._cuda)

    def probes(self, probes: dict[str, Probe]) -> dict[str, Probe]:
        """The tracer's probes, with each loss function's also noting its last training call."""
        out = dict(probes)
        for name in LOSS_FUNCTIONS:
            key = f"loss:{name}"
            if not hasattr(torch.nn.functional, name):
                continue
            inner = out.get(key)
            out[key] = Probe(inner.before if inner else None, self._loss_after(name, inner))
        inner = out.get("clip_grad_norm")
        out["clip_grad_norm"] = Probe(inner.before if inner else None, self._clip_after(inner))
        return out

    def _clip_after(self, inner: Probe | None) -> Any:
        def after(token: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
                  exc: BaseException | None) -> None:
            if inner is not None and inner.after is not None:
                inner.after(token, args, kwargs, result, exc)
            if exc is None and not self.done:
                names = ("max_norm", "norm_type", "error_if_nonfinite")
                opts = {**dict(zip(names, args[1:])), **{k: kwargs[k] for k in names if k in kwargs}}
                if isinstance(opts.get("max_norm"), (int, float)):  # what replay applies after backward
                    self.clip = {k: v for k, v in opts.items() if isinstance(v, (bool, int, float))}

        return after

    def _loss_after(self, name: str, inner: Probe | None) -> Any:
        def after(token: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
                  exc: BaseException | None) -> None:
            if inner is not None and inner.after is not None:
                inner.after(token, args, kwargs, result, exc)
            if exc is None and not self.done and torch.is_grad_enabled() and self.tracer.active("loss"):
                inp = args[0] if args else kwargs.get("input")
                shape = inp.shape if isinstance(inp, torch.Tensor) else None  # (a tuple: holds no tensor)
                rest = {k: v for k, v in kwargs.items() if k != "input"} if "input" in kwargs else kwargs
                self.loss_call = (name, shape, args[1:], rest)  # references only: copied if a bundle is written
                self.autocast["loss"] = autocast_state(self._cuda)

        return after

    def after_sync(self, losses: list[torch.Tensor]) -> None:
        """The step's loss and gradient norm are on the host now, before the update: did it go wrong?"""
        if self.done:
            return
        a = self.tracer.assembler
        loss, gnorm = a.loss, a.grad_norm
        if loss is not None and not math.isfinite(loss):
            self.save("nonfinite_loss", f"the loss was {loss}", losses)
        elif gnorm is not None and not math.isfinite(gnorm):
            self.save("nonfinite_gradient", f"the total gradient norm was {gnorm}", losses)
        else:
            if self.tracer.registry.version != self._version:
                # a model or optimizer seen for the first time (a student after its teacher, a second
                # stage): a new loss curve starts, not a spike of the old one
                self._version = self.tracer.registry.version
                if self.spikes.n:
                    self.spikes = SpikeWatch(self.spikes.factor, self.spikes.min_steps)
            lvl = self.spikes.spike(loss)
            if lvl is not None:
                self.save("loss_spike", f"the loss spiked from {lvl:.4g} to {loss:.4g}", losses)
        if not self.done:
            self.loss_call = None
            self.clip = None

    def crash(self, exc: BaseException, module: str | None, phase: str) -> None:
        """An exception left the step (forward, loss, backward or optimizer)."""
        if self.done or self.tracer.replay is None:
            return  # not inside a step of a watched model
        detail = f"{type(exc).__name__}: {str(exc)[:500]}"
        extra = {"exception": {"type": type(exc).__name__, "message": str(exc)[:4000], "module": module,
                               "phase": phase}}
        if phase == "optimizer":
            extra["note"] = "the crash came inside optimizer.step(): some weights may already be updated"
        self.save("crash", detail, list(self.tracer.assembler.losses), extra)

    # -- the bundle -------------------------------------------------------------------------------------
    def save(self, kind: str, detail: str, losses: list[torch.Tensor], extra: dict[str, Any] | None = None) -> None:
        self.done = True  # one bundle per run, whatever happens below
        tr = self.tracer
        if tr.replay is None:
            tr.writer.set_meta(bundle={"saved": False, "trigger": kind, "step": tr.step,
                                       "why": "no forward pass of a watched model was seen in this step"})
            return
        root, args, kwargs = tr.replay
        root = unwrap(root)
        notes: list[str] = []
        state, state_bytes = self._state(root, notes)
        batch: dict[str, Any] | None = None
        batch_bytes = nbytes((args, kwargs)) + nbytes(self._loss_recipe(notes, dry=True))
        if batch_bytes > self.max_bytes:  # measured on the live tensors: nothing copied yet
            notes.append(f"the batch ({batch_bytes / _MB:.1f} MB) is over the bound of {self.max_bytes / _MB:.3g} MB: "
                         "not saved")
            batch_bytes = 0
        else:
            try:
                batch = {"args": plain(args), "kwargs": storable_kwargs(kwargs, notes)}
            except Unstorable as exc:
                tr.writer.set_meta(bundle={"saved": False, "trigger": kind, "step": tr.step,
                                           "why": f"the model's input holds {exc}, which a bundle cannot store"})
                return
        with_state = state_bytes + batch_bytes <= self.max_bytes
        if not with_state:
            notes.append(f"the model and optimizer state ({state_bytes / _MB:.1f} MB) would take the bundle over "
                         f"its bound of {self.max_bytes / _MB:.3g} MB: saved without them (raise it with "
                         "--bundle-max-mb)")
        bundle: dict[str, Any] = {
            "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION,
            "trigger": {"kind": kind, "step": tr.step, "detail": detail, **(extra or {})},
            "script": _identity(),
            "versions": {"torch": torch.__version__, "python": platform.python_version(),
                         "numpy": np.__version__, "modeldebug": __version__},
            "device": _device(root),
            "model": _model_info(root, tr),
            "batch": batch,
            "loss_call": self._loss_recipe(notes) if batch is not None else None,
            "autocast": dict(self.autocast),  # {"forward"/"loss": {device type: dtype} or None}
            "clip": self.clip,  # clip_grad_norm_'s options when the step clipped (the saved gradients are clipped)
            # float64 (exact for every float dtype): what a replay compares bit for bit
            "expected": {"loss": torch.cat([v.detach().reshape(-1).to("cpu", torch.float64) for v in losses])
                         if losses else None,
                         "grad_norm": tr.assembler.grad_norm},
            "rng": self._rng(),
            "with_state": with_state,
            "max_mb": self.max_bytes / _MB,
            "notes": notes,
            "saved_at": time.time(),
            "record": Path(str(getattr(tr.writer, "path", ""))).name,  # beside the bundle: its envelopes
        }
        if with_state:
            try:
                bundle.update(state())
            except Unstorable as exc:
                bundle["with_state"] = False
                notes.append(f"the model's state holds {exc} (extra state only pickle could store): saved without it")
        try:
            bundle = plain(bundle, copy=False)  # what weights_only=True can read, and nothing else
        except Unstorable as exc:
            tr.writer.set_meta(bundle={"saved": False, "trigger": kind, "step": tr.step,
                                       "why": f"the bundle would hold {exc}"})
            return
        self._write(bundle, kind, bool(bundle["with_state"]), notes)

    def _state(self, root: nn.Module, notes: list[str]) -> tuple[Any, int]:
        """(a function that copies the state, its size in bytes) without copying anything yet."""
        tr = self.tracer
        named = list(root.named_parameters())
        ids = {id(p): n for n, p in named}
        opt = _optimizer_of(tr, ids, notes)
        live = root.state_dict(keep_vars=True)
        size = nbytes(live) + sum(nbytes(p.grad) for _, p in named if p.grad is not None)
        if opt is not None:
            size += nbytes(list(opt.state.values()))

        def copy() -> dict[str, Any]:
            out: dict[str, Any] = {
                "model_state": {k: plain(v) for k, v in root.state_dict().items()},
                "grads": {n: plain(p.grad) for n, p in named if p.grad is not None},
                "optimizer": None,
            }
            if opt is not None:
                try:
                    out["optimizer"] = {
                        "class": f"{type(opt).__module__}.{type(opt).__qualname__}",
                        "param_names": [[ids[id(p)] for p in g["params"]] for g in opt.param_groups],
                        "state": plain(opt.state_dict()),
                    }
                except Unstorable as exc:
                    notes.append(f"the optimizer state holds {exc}: not saved (the step is replayed without it)")
            return out

        return copy, size

    def _loss_recipe(self, notes: list[str], dry: bool = False) -> dict[str, Any] | None:
        if self.loss_call is None:
            return None
        name, shape, args, kwargs = self.loss_call  # (args: those after the input)
        tgt = args[0] if args else kwargs.get("target")
        if dry:
            return {"target": tgt, "args": list(args[1:]), "kwargs": kwargs}
        try:
            return {"function": name, "target": plain(tgt), "args": plain(list(args[1:])),
                    "kwargs": plain({k: v for k, v in kwargs.items() if k not in ("input", "target")}),
                    "input_shape": list(shape) if shape is not None else None}
        except Unstorable as exc:
            notes.append(f"the loss call's arguments hold {exc}: the loss is not part of the bundle")
            return None

    def _rng(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        return {
            "torch": self.rng if self.rng is not None else torch.get_rng_state(),
            "cuda": self.cuda_rng,
            # numpy's and Python's generators as the bundle was written (a forward pass rarely draws from them)
            "numpy": {"name": str(np_state[0]), "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
                      "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
            "python": plain_tuple(random.getstate()),
        }

    def _write(self, bundle: dict[str, Any], kind: str, with_state: bool, notes: list[str]) -> None:
        tr = self.tracer
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            torch.save(bundle, tmp)
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            tr.writer.set_meta(bundle={"saved": False, "trigger": kind, "step": tr.step, "why": str(exc)})
            return
        size_mb = self.path.stat().st_size / _MB
        tr.writer.set_meta(bundle={"saved": True, "path": str(self.path), "trigger": kind, "step": tr.step,
                                   "with_state": with_state, "size_mb": round(size_mb, 3), "notes": notes})
        if self.announce:
            print(bundle_message(str(self.path), kind, tr.step, size_mb, with_state), file=sys.stderr)


def bundle_message(path: str, kind: str, step: int, size_mb: float, with_state: bool) -> str:
    """The line that tells the user where the bundle is, what it holds and how to use and share it."""
    what = "the model's weights, the optimizer state and the batch" if with_state else \
        "the batch but NOT the model's state (over the size bound)"
    then = f"Replay it: modeldebug replay {path}" if with_state else \
        "It cannot be replayed without them: run again with a larger --bundle-max-mb"
    return (f"modeldebug: step {step} ({kind.replace('_', ' ')}) saved as a repro bundle: {path} "
            f"({size_mb:.1f} MB; it holds {what}: share it only where those may go). {then}")


def _optimizer_of(tr: Any, ids: dict[int, str], notes: list[str]) -> torch.optim.Optimizer | None:
    """The optimizer that steps this model's parameters (only them), if one is known."""
    seen: list[torch.optim.Optimizer] = []
    for o in [*tr.registry.live_optimizers(), *(r() for r in tr._known_optimizers)]:
        if o is not None and all(o is not s for s in seen):
            seen.append(o)
    for o in seen:
        params = [p for g in o.param_groups for p in g["params"]]
        if not params or not any(id(p) in ids for p in params):
            continue
        if all(id(p) in ids for p in params):
            return o
        notes.append(f"{type(o).__name__} also steps parameters outside the model: its state is not saved")
        return None
    return None


def _model_info(root: nn.Module, tr: Any) -> dict[str, Any]:
    cls = type(root)
    info = tr.registry.modules.get(root)
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "module": cls.__module__, "qualname": cls.__qualname__,
            "name": info.name if info is not None else cls.__name__,
            "eval_modules": [n for n, m in root.named_modules() if not m.training]}


def _device(root: nn.Module) -> str:
    p = next(root.parameters(), None)
    return str(p.device) if p is not None else "cpu"


def _identity() -> dict[str, Any]:
    """The script's path, hash, arguments and git state (the code a replay needs)."""
    from ..journal.git import git_state

    argv = [str(a) for a in sys.argv]
    script = Path(argv[0]) if argv and argv[0] else None
    out: dict[str, Any] = {"path": None, "sha256": None, "argv": argv, "cwd": os.getcwd(), "git": None}
    if script is not None and script.is_file():
        out["path"] = str(script.resolve())
        try:
            out["sha256"] = hashlib.sha256(script.read_bytes()).hexdigest()
        except OSError:
            pass
        git = git_state(script.resolve().parent)
        out["git"] = {k: v for k, v in git.items() if k != "files"} if git else None
    return out
