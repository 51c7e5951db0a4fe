"""The one model interface every probe talks to: ``generate(prompt) -> str``.

Anything with a ``generate(prompt)`` method, or a plain callable ``fn(prompt) -> str``, is a model.
The options ``seed``, ``temperature`` and ``max_tokens`` are passed only when the underlying function
accepts them (by name, or through ``**kwargs``); ``Model.accepts`` says which it took, so a probe can
tell "we asked for greedy decoding and did not get it" from "we could not ask".

Adapters for other kinds of model live beside this module: ``hf.py`` (a transformers model plus
tokenizer, or a pipeline) and ``endpoint.py`` (an OpenAI-compatible HTTP server).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ..errors import BadInputError
from ..loader import calling

__all__ = ["GenerativeModel", "Model", "ModelOutputError", "OPTIONS", "as_model", "load_model_spec", "load_object"]

#: The generation options a model may take, by keyword.
OPTIONS = ("seed", "temperature", "max_tokens")


@runtime_checkable
class GenerativeModel(Protocol):
    """What modeldebug needs from a generative model: text in, text out."""

    def generate(self, prompt: str) -> str: ...


class ModelOutputError(TypeError):
    """The model returned something other than a string."""


def _accepted(fn: Callable[..., Any]) -> frozenset[str]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return frozenset()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return frozenset(OPTIONS)
    names = {p.name for p in params if p.kind in (inspect.Parameter.KEYWORD_ONLY,
                                                   inspect.Parameter.POSITIONAL_OR_KEYWORD)}
    return frozenset(n for n in OPTIONS if n in names)


def _find_weights(obj: Any) -> Any:
    """The torch module behind `obj`, if it is one or holds one; never imports torch itself."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    candidates = [obj, getattr(obj, "__self__", None)]
    for holder in list(candidates):
        for attr in ("model", "module", "net", "lm"):
            candidates.append(getattr(holder, attr, None) if holder is not None else None)
    for c in candidates:
        if isinstance(c, torch.nn.Module):
            return c
    return None


class Model:
    """A generative model wrapped for the probes.

    ``generate(prompt, seed=..., temperature=..., max_tokens=...)`` forwards the options the wrapped
    function accepts and checks that the answer is a string. ``weights`` is the ``torch.nn.Module``
    behind the model when one could be found (for the weight checks), else ``None``.
    """

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None, weights: Any = None,
                 accepts: frozenset[str] | None = None) -> None:
        if not callable(fn):
            raise BadInputError(f"model {fn!r} is not callable and has no generate() method")
        self._fn = fn
        self.name = name or getattr(fn, "__qualname__", None) or type(fn).__name__
        self.accepts = _accepted(fn) if accepts is None else accepts
        self.weights = weights if weights is not None else _find_weights(fn)
        self.flag = "model"  # how errors name it: the command-line flag it came from, when it did

    def generate(self, prompt: str, *, seed: int | None = None, temperature: float | None = None,
                 max_tokens: int | None = None) -> str:
        """Generate text for `prompt`; options the model does not take are left out."""
        given = {"seed": seed, "temperature": temperature, "max_tokens": max_tokens}
        kwargs = {k: v for k, v in given.items() if v is not None and k in self.accepts}
        with calling(self.name, self.flag, "generating an answer"):  # sys.exit() in a model is not a finding
            out = self._fn(prompt, **kwargs)
        if not isinstance(out, str):
            raise ModelOutputError(f"the model returned {type(out).__name__}, expected str")
        return out

    def __call__(self, prompt: str, **options: Any) -> str:
        return self.generate(prompt, **options)

    def __repr__(self) -> str:
        return f"Model({self.name!r}, accepts={sorted(self.accepts)})"


def _is_transformers(obj: Any, kind: str) -> bool:
    # By name along the MRO: `transformers.Pipeline` is a lazy attribute whose first access imports every
    # pipeline (seconds), which a plain callable should never pay for.
    return any(c.__name__ == kind and c.__module__.startswith("transformers.") for c in type(obj).__mro__)


def as_model(obj: Any, *, name: str | None = None, weights: Any = None) -> Model:
    """Wrap anything that generates text as a `Model`.

    Accepts a `Model`, an object with ``generate(prompt)``, a plain callable, a transformers
    ``Pipeline``; a transformers model alone is refused (its ``generate`` wants token ids: pass
    ``HuggingFaceModel(model, tokenizer)``).
    """
    if isinstance(obj, Model):
        return obj
    if _is_transformers(obj, "Pipeline"):
        from .hf import HuggingFacePipeline

        obj = HuggingFacePipeline(obj)
    elif _is_transformers(obj, "PreTrainedModel"):
        raise BadInputError(f"{type(obj).__name__} is a transformers model without its tokenizer: wrap it as "
                            "modeldebug.behaviour.HuggingFaceModel(model, tokenizer)")
    gen = getattr(obj, "generate", None)
    fn = gen if callable(gen) else obj
    if not callable(fn):
        raise BadInputError(f"{type(obj).__name__} object is not a model: it has no generate(prompt) method "
                            "and is not callable")
    own = getattr(obj, "name", None)
    label = name or (own if isinstance(own, str) else None) or getattr(obj, "__qualname__", None) or type(obj).__name__
    return Model(fn, name=label, weights=weights if weights is not None else _find_weights(obj))


def load_object(spec: str, *, flag: str = "--model") -> Any:
    """The object named by ``module:attr`` (or ``path/to/file.py:obj.attr``); `flag` names it in errors."""
    from ..loader import load_object as load

    return load(spec, flag)


def load_model_spec(spec: str) -> Model:
    """Load ``module:callable`` (or ``path/to/file.py:obj.attr``) as a `Model`.

    A factory that takes no argument (a ``make_model()`` function, or a class with ``generate()``
    whose constructor needs nothing) is called once and its result is the model, as ``doctor
    --model M:FACTORY`` does; anything else that cannot take a prompt is refused in one line.
    """
    obj = load_object(spec)
    if _is_factory(obj):
        with calling(spec, "--model", "building the model"):
            obj = obj()
    elif not _takes_prompt(getattr(obj, "generate", obj)):
        raise BadInputError(f"--model {spec!r} cannot take a prompt: give a function prompt -> str, an object "
                            "with generate(prompt), or a factory with no arguments that returns one")
    model = as_model(obj, name=spec)
    model.flag = "--model"
    return model


def _takes_prompt(fn: Any) -> bool:
    """Whether `fn(prompt)` binds (unknown signatures, as of some builtins, are given the benefit of the doubt)."""
    try:
        inspect.signature(fn).bind("prompt")
    except TypeError:
        return False
    except ValueError:
        return True
    return True


def _is_factory(obj: Any) -> bool:
    """A class with generate() whose constructor takes nothing, or a function that takes no argument at all."""
    if isinstance(obj, type):
        return callable(getattr(obj, "generate", None)) and _binds_nothing(obj)
    return inspect.isfunction(obj) and _binds_nothing(obj) and not _takes_prompt(obj)


def _binds_nothing(fn: Any) -> bool:
    try:
        inspect.signature(fn).bind()
    except (TypeError, ValueError):
        return False
    return True
