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
    left out when the model returns its own loss (a scalar, or a mapping with a "loss" entry). A
    batch may also be a mapping of the model's keyword inputs; with a `loss_fn`, its "y", "target(s)"
    or "label(s)" entry is the targets (passed to the model too only when forward() names it).
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


#: the entries of a mapping batch that hold the targets a loss_fn scores against, in order of preference
_TARGET_NAMES = ("y", "target", "targets", "label", "labels")


def _whole(name: str, value: Any, least: int, default: Any) -> None:
    """`options.<name>` must be a whole number of at least `least`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise BadInputError(f"options.{name} {value!r} must be a whole number of at least {least} (default {default})")


def _check_rules(config: DebuggingConfig) -> None:
    """The config's select/ignore name known rules (as on the command line), or one UnknownRuleError."""
    from ..catalogue import CATALOGUE

    CATALOGUE.select(config.select or (), config.ignore or ())


def _forward_params(model: nn.Module) -> set[str]:
    """The parameter names model.forward() takes by keyword (not what **kwargs would swallow)."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


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
        _check_rules(self.config)
        if not isinstance(request.options, AnalysisOptions):
            raise BadInputError(f"request.options must be a modeldebug.AnalysisOptions (e.g. AnalysisOptions("
                                f"probe_steps=60)), got {type(request.options).__name__}: {request.options!r}"[:300])
        if request.issue is not None and not isinstance(request.issue, str):
            raise BadInputError(f"request.issue must be the problem in words, a str (e.g. \"loss is not decreasing\"), "
                                f"got {type(request.issue).__name__}: {request.issue!r}"[:300])
        if not isinstance(request.context, dict):
            raise BadInputError(f"request.context must be a dict of what you know (e.g. {{'epoch': 3}}), got "
                                f"{type(request.context).__name__}")
        self.request = request
        self.issue: str = request.issue or ""
        self.options = request.options
        self.model = request.model
        self.loss_fn = request.loss_fn
        if isinstance(request.loss_fn, type):
            raise BadInputError(f"request.loss_fn is the class {request.loss_fn.__name__}, not a loss: pass an instance, "
                                f"{request.loss_fn.__name__}()")
        if request.loss_fn is not None and not callable(request.loss_fn):
            raise BadInputError(f"request.loss_fn must be callable (e.g. nn.CrossEntropyLoss()), "
                                f"got {type(request.loss_fn).__name__}")
        self.optimizer_factory: OptimizerFactory = request.optimizer_factory or default_optimizer
        if not callable(self.optimizer_factory):
            raise BadInputError("request.optimizer_factory must be a function of the parameters (e.g. lambda params: "
                                f"torch.optim.Adam(params, lr=1e-3)), got {type(self.optimizer_factory).__name__}")
        o = self.options
        for name, least in (("probe_steps", 5), ("probe_seeds", 1), ("overfit_max_steps", 1), ("max_batches", 1),
                            ("gradient_steps", 1), ("profile_iterations", 1), ("profile_warmup", 0), ("seed", 0)):
            _whole(name, getattr(o, name), least, getattr(AnalysisOptions, name))
        mem, types = o.memory_threshold_mb, o.layer_types
        if mem is not None and (isinstance(mem, bool) or not isinstance(mem, (int, float)) or not mem >= 0):
            raise BadInputError(f"options.memory_threshold_mb {mem!r} must be a number of MiB, or None to only report")
        if types is not None and (isinstance(types, str) or not all(isinstance(t, str) for t in types)):
            raise BadInputError(f"options.layer_types {types!r} must be a list of module class names, e.g. "
                                "['Linear', 'ReLU'], or None for every leaf module")
        secs, threads = o.overfit_seconds, o.threads
        if isinstance(secs, bool) or not isinstance(secs, (int, float)) or not secs >= 0:
            raise BadInputError(f"options.overfit_seconds {secs!r} must be a number of seconds, 0 or more (default 10)")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise BadInputError(f"options.threads {threads!r} must be a whole number of at least 1, or None to leave "
                                "torch's thread count alone")
        self.batches = self._batches(request)
        self.batch = self.batches[0]
        self.clone()  # a model that cannot be copied fails here, in one line, not inside a tool
        #: the plots asked for; one name given as a str is that one plot, not its letters
        self.visualizations = [request.visualizations] if isinstance(request.visualizations, str) else \
            list(request.visualizations or [])
        bad = [v for v in self.visualizations if v not in VISUALIZATIONS]
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
                out.append(self._split_mapping(dict(b)))
            elif isinstance(b, (tuple, list)) and len(b) == 2:
                out.append((b[0], b[1]))
            elif isinstance(b, (tuple, list)) and len(b) == 1:
                out.append((b[0], None))
            else:
                raise BadInputError(f"a batch must be (inputs, targets), got {_describe(b)}"
                                    f"{f' with {len(b)} items' if isinstance(b, (tuple, list)) else ''}")
        return out

    def _split_mapping(self, b: dict[str, Any]) -> tuple[Any, Any]:
        """A mapping batch as (the model's keyword inputs, the targets).

        Without a loss_fn the model computes its own loss from the whole mapping (labels included, as
        a Hugging Face model does). With one, the targets are the entry named like targets ("y",
        "label(s)", "target(s)"); it is passed to the model as well only when forward() names it.
        """
        if self.loss_fn is None:
            return b, None
        keys = [k for k in _TARGET_NAMES if k in b]
        if not keys:
            return b, None
        named = _forward_params(self.model)
        key = next((k for k in keys if k not in named), keys[0])
        if len(keys) > 1 and key in named:
            raise BadInputError(f"the batch mapping holds several target-like entries ({', '.join(keys)}) and "
                                f"{type(self.model).__name__}.forward() takes them all: pass batches as "
                                "(inputs, targets) so the loss_fn's targets are unambiguous")
        inputs = {k: v for k, v in b.items() if k != key or key in named}
        return inputs, b[key]

    # -- the operations every tool uses -------------------------------------------------------------
    def clone(self) -> nn.Module:
        """A deep copy of the user's model to work on (the original is never trained)."""
        import copy

        try:
            return copy.deepcopy(self.model)
        except Exception as exc:  # noqa: BLE001 - a lock, an open file, a __deepcopy__ that refuses
            why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            raise BadInputError(f"{type(self.model).__name__} cannot be copied (copy.deepcopy: {type(exc).__name__}"
                                f"{': ' + why if why else ''}): the agent trains copies, never the model itself; keep "
                                "locks, open files and process groups outside the nn.Module, or give it a "
                                "__deepcopy__") from None

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The request's optimizer over `model`'s trainable parameters; `model` must be a copy, never the
        user's (a factory may register hooks on the parameters it is given)."""
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise BadInputError("the model has no trainable parameters (every requires_grad is False)")
        return self.optimizer_factory(params)

    def lr(self, model: nn.Module | None = None) -> float | None:
        """The request's learning rate (of its optimizer's first parameter group), read from an optimizer
        built over a copy: the user's parameters are never handed to the factory."""
        if model is not None and model is not self.model:
            return self._lr_of(model)
        if not hasattr(self, "_lr"):
            self._lr = self._lr_of(self.clone())
        return self._lr

    def _lr_of(self, model: nn.Module) -> float | None:
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
