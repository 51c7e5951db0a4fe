"""What the user hands the agent (`DebuggingRequest`) and how the agent reads it.

A request carries the model, data (one batch `(inputs, targets)` or a data loader), a loss
function, an optimizer factory, the user's complaint in words, and options. `Workload` turns it
into the few operations every tool needs: a fresh copy of the model, the batches, one forward
pass with its loss. Validation happens here, once, with messages that name what is wrong.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import DebuggingConfig
from ..errors import BadInputError

__all__ = ["AnalysisOptions", "DebuggingRequest", "Workload", "VISUALIZATIONS"]

VISUALIZATIONS = ("gradient_flow", "activation_histograms", "memory_timeline")
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


def default_optimizer(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """Adam at 1e-3: what most people start with."""
    return torch.optim.Adam(params, lr=1e-3)


@dataclass
class AnalysisOptions:
    """How far the agent looks. Defaults keep a small model's whole analysis to a few seconds."""

    #: module types to analyse layer by layer (class names, e.g. ["Linear", "ReLU"]); None: all leaves
    layer_types: list[str] | None = None
    #: GradientDebugger: a parameter whose gradient norm is below this (absolute, on the first step)
    #: gets no usable signal; it is named in the tool's result ("tiny")
    gradient_threshold: float = 1e-7
    #: GradientDebugger: training steps it measures; the gradient rules judge what they show
    gradient_steps: int = 3
    #: memory above this (MiB) for one training step is worth a finding; None: only report
    memory_threshold_mb: float | None = None
    profile_warmup: int = 2
    profile_iterations: int = 5
    #: optimizer steps for the watched training run and the overfit-one-batch probe
    probe_steps: int = 60
    #: the overfit-one-batch probe goes on training on the batch (one seed) until it is memorised, the
    #: loss stalls, or this many steps / seconds have passed
    overfit_max_steps: int = 600
    overfit_seconds: float = 10.0
    #: batches drawn from a data loader for the watched run (cycled)
    max_batches: int = 20
    seed: int = 0
    #: seeded repeats of a probe whose verdict compares two noisy numbers (seeds seed, seed + 1, ...);
    #: its verdict reads the 95% interval over them, and "inconclusive" when it straddles the threshold
    probe_seeds: int = 3
    #: torch CPU threads while the agent runs (restored after); small models run fastest on one, and
    #: more only compete with each other on a busy machine. None: leave torch's setting alone
    threads: int | None = 1
    #: try the automatic fixes on a copy and report before/after numbers
    verify_fixes: bool = True


@dataclass
class DebuggingRequest:
    """One "my model is not converging" request: the model, its data, and the complaint.

    ```python
    DebuggingRequest(model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss(),
                     issue="Model not converging", context={"epoch": 3, "lr": 1e-3})
    ```
    Give `batch` or `data` (an iterable of `(inputs, targets)`, e.g. a DataLoader). `loss_fn` may be
    left out when the model returns its own loss (a scalar, or a mapping with a "loss" entry).
    """

    model: nn.Module
    batch: tuple[Any, Any] | None = None
    loss_fn: Callable[..., torch.Tensor] | None = None
    data: Iterable[Any] | None = None
    optimizer_factory: OptimizerFactory | None = None
    issue: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    options: AnalysisOptions = field(default_factory=AnalysisOptions)
    visualizations: list[str] = field(default_factory=list)
    #: where visualization files go (default: ./modeldebug-agent/)
    output_dir: str | None = None
    #: a stored run of the user's own training (`modeldebug run` / `watch`): its findings join the answer
    record: Any = None


def call_model(model: nn.Module, inputs: Any) -> Any:
    """model(inputs), model(*inputs) for a tuple/list, model(**inputs) for a mapping."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _logits(out: Any) -> Any:
    if isinstance(out, Mapping) and "logits" in out:
        return out["logits"]
    if hasattr(out, "logits") and not isinstance(out, torch.Tensor):
        return out.logits
    return out


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"tensor{tuple(x.shape)} {str(x.dtype).replace('torch.', '')}"
    return type(x).__name__


class Workload:
    """A validated request: batches, loss and fresh model copies for the tools to work on.

    `config` is the one `DebuggingConfig` every tool, probe and watched run judges with (the
    agent's; a tool used alone gets the default).
    """

    def __init__(self, request: DebuggingRequest, *, config: DebuggingConfig | None = None) -> None:
        if not isinstance(request, DebuggingRequest):
            raise BadInputError(f"debug_model() takes a DebuggingRequest, got {type(request).__name__}")
        if not isinstance(request.model, nn.Module):
            raise BadInputError(f"request.model must be a torch.nn.Module, got {type(request.model).__name__}")
        if config is not None and not isinstance(config, DebuggingConfig):
            raise BadInputError(f"config must be a modeldebug.DebuggingConfig, got {type(config).__name__}")
        self.config = config if config is not None else DebuggingConfig()
        self.request = request
        self.options = request.options
        self.model = request.model
        self.loss_fn = request.loss_fn
        if request.loss_fn is not None and not callable(request.loss_fn):
            raise BadInputError(f"request.loss_fn must be callable (e.g. nn.CrossEntropyLoss()), "
                                f"got {type(request.loss_fn).__name__}")
        self.optimizer_factory: OptimizerFactory = request.optimizer_factory or default_optimizer
        seeds, threads = self.options.probe_seeds, self.options.threads
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise BadInputError(f"options.probe_seeds {seeds!r} must be a whole number of at least 1 (default 3)")
        steps, secs = self.options.overfit_max_steps, self.options.overfit_seconds
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise BadInputError(f"options.overfit_max_steps {steps!r} must be a whole number of at least 1 (default 600)")
        if isinstance(secs, bool) or not isinstance(secs, (int, float)) or not secs >= 0:
            raise BadInputError(f"options.overfit_seconds {secs!r} must be a number of seconds, 0 or more (default 10)")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise BadInputError(f"options.threads {threads!r} must be a whole number of at least 1, or None to leave "
                                "torch's thread count alone")
        self.batches = self._batches(request)
        self.batch = self.batches[0]
        bad = [v for v in request.visualizations if v not in VISUALIZATIONS]
        if bad:
            raise BadInputError(f"unknown visualization {bad[0]!r}: choose from {', '.join(VISUALIZATIONS)}")

    def _batches(self, request: DebuggingRequest) -> list[tuple[Any, Any]]:
        if request.batch is None and request.data is None:
            raise BadInputError("the request has no data: pass batch=(inputs, targets) or data=<a DataLoader>")
        if request.batch is not None:
            raw = [request.batch]
        else:
            try:
                raw = list(itertools.islice(iter(request.data), self.options.max_batches))  # type: ignore[arg-type]
            except TypeError:
                raise BadInputError(f"request.data must be iterable (a DataLoader), got {type(request.data).__name__}") from None
            if not raw:
                raise BadInputError("request.data yielded no batches: is the data set empty?")
        out = []
        for b in raw:
            if isinstance(b, Mapping):
                out.append((dict(b), None))
            elif isinstance(b, (tuple, list)) and len(b) == 2:
                out.append((b[0], b[1]))
            elif isinstance(b, (tuple, list)) and len(b) == 1:
                out.append((b[0], None))
            else:
                raise BadInputError(f"a batch must be (inputs, targets), got {_describe(b)}"
                                    f"{f' with {len(b)} items' if isinstance(b, (tuple, list)) else ''}")
        return out

    # -- the operations every tool uses -------------------------------------------------------------
    def clone(self) -> nn.Module:
        """A deep copy of the user's model to work on (the original is never trained)."""
        import copy

        return copy.deepcopy(self.model)

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise BadInputError("the model has no trainable parameters (every requires_grad is False)")
        return self.optimizer_factory(params)

    def lr(self, model: nn.Module) -> float | None:
        try:
            return float(self.optimizer(model).param_groups[0]["lr"])
        except (KeyError, TypeError, ValueError):
            return None

    def loss(self, model: nn.Module, batch: tuple[Any, Any] | None = None, *, inputs: Any = None) -> torch.Tensor:
        """Forward one batch and return the loss (the model's own when there is no loss_fn)."""
        x, y = batch or self.batch
        out = call_model(model, x if inputs is None else inputs)
        return self.loss_of(out, y)

    def loss_of(self, out: Any, y: Any) -> torch.Tensor:
        if self.loss_fn is None:
            own = out.get("loss") if isinstance(out, Mapping) else getattr(out, "loss", out)
            if isinstance(own, torch.Tensor) and own.dim() == 0:
                return own
            raise BadInputError("no loss function: the model returns "
                                f"{_describe(_logits(out))}, not a scalar loss; pass loss_fn= "
                                "(e.g. nn.CrossEntropyLoss() for class labels, nn.MSELoss() for values; --loss on the command line)")
        loss = self.loss_fn(_logits(out), y)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise BadInputError(f"loss_fn returned {_describe(loss)}, not a scalar: use reduction='mean'")
        return loss.reshape(())

    def inputs(self, batch: tuple[Any, Any] | None = None) -> Any:
        return (batch or self.batch)[0]

    def classes(self) -> int | None:
        """The number of classes when the loss is a classification loss on class-index targets."""
        if not hasattr(self, "_classes"):
            self._classes = self._count_classes()
        return self._classes

    def _count_classes(self) -> int | None:
        y = self.batch[1]
        if not isinstance(y, torch.Tensor) or y.dtype not in (torch.long, torch.int, torch.int32):
            return None
        name = type(self.loss_fn).__name__ if self.loss_fn is not None else ""
        if name not in ("CrossEntropyLoss", "NLLLoss") and getattr(self.loss_fn, "__name__", "") not in (
                "cross_entropy", "nll_loss"):
            return None
        with torch.no_grad():
            model = self.clone()
            model.eval()
            out = _logits(call_model(model, self.inputs()))
        if isinstance(out, torch.Tensor) and out.dim() >= 2:
            return int(out.shape[1])
        return None
