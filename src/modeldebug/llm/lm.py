"""Making the language model: a model string (and a server address) in, a `dspy.LM` out.

Local first:
- Ollama: `ollama_chat/llama3.2` (server at http://localhost:11434 unless `base_url` says otherwise);
- llama.cpp's `llama-server`, vLLM, LM Studio and other OpenAI-compatible servers:
  `openai/NAME` with `base_url="http://localhost:8080/v1"` (a bare NAME with a base URL means the same);
- hosted APIs (`openai/gpt-4o-mini`, `anthropic/...`): the provider's key from its usual environment
  variable.
Making the object contacts nobody; the first request goes out when the user asks for an
explanation. The response cache is off by default: an explanation is of one run, at one time.
DSPy is imported here, inside the functions, never when modeldebug is imported.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from typing import Any
from urllib.parse import urlsplit

from ..errors import BadInputError, MissingDependencyError

__all__ = ["API_KEY_ENV", "make_lm", "model_name", "resolve_lm"]

#: an API key for the server behind --llm (a local OpenAI-compatible server accepts any)
API_KEY_ENV = "MODELDEBUG_LLM_API_KEY"
#: the longest --llm-timeout accepted (a day): longer ones overflow thread and socket waits
MAX_TIMEOUT = 86400.0
_MODEL = re.compile(r"^([A-Za-z0-9_.\-]+/)?[^\s/][^\s]*$")


def _dspy() -> Any:
    try:
        import dspy
    except ImportError:
        raise MissingDependencyError("reasoning with a language model (--llm)", "llm") from None
    return dspy


def require_dspy() -> None:
    """`MissingDependencyError` when DSPy is not installed, found without importing it."""
    if importlib.util.find_spec("dspy") is None:
        raise MissingDependencyError("reasoning with a language model (--llm)", "llm")


def check_model(model: str, *, base_url: str | None = None, timeout: float | None = None) -> str:
    """`model` as `make_lm` would use it (PROVIDER/NAME), checked without importing DSPy or, for the
    usual providers, LiteLLM (seconds of imports): `modeldebug run --llm` checks its flags before the
    script's first line and builds the model after the run. Raises `BadInputError` for a malformed
    model string, URL or timeout, or a provider nobody knows."""
    model = (model or "").strip()
    if not model or not _MODEL.match(model) or model.endswith("/"):
        raise BadInputError(f"--llm {model!r} is not a model name: use PROVIDER/NAME, e.g. ollama_chat/llama3.2 "
                            "or openai/NAME with --llm-base-url")
    if base_url is not None and not _http_url(base_url):
        raise BadInputError(f"--llm-base-url {base_url!r} is not an http(s) URL, e.g. http://localhost:8080/v1")
    if timeout is not None and not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        raise BadInputError(f"--llm-timeout {timeout!r} must be a positive number of seconds, at most {MAX_TIMEOUT:g}")
    if "/" not in model:
        if base_url is None:
            raise BadInputError(f"--llm {model!r} names no provider: use PROVIDER/NAME (ollama_chat/{model}), "
                                f"or give --llm-base-url for an OpenAI-compatible server")
        model = f"openai/{model}"
    # LiteLLM (used for providers DSPy's own engine does not cover) would otherwise fetch its price
    # list from GitHub when imported; the bundled copy is enough and keeps local use local.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from .preflight import known_provider

    if not known_provider(model):
        raise BadInputError(f"--llm {model!r}: no provider is called {model.split('/', 1)[0]!r}: use ollama_chat/NAME, "
                            "openai/NAME (with --llm-base-url for a local server), anthropic/NAME, ... (docs/llm.md)")
    return model


def make_lm(model: str, *, base_url: str | None = None, api_key: str | None = None, timeout: float | None = None,
            temperature: float = 0.0, max_tokens: int = 4000, cache: bool = False, num_retries: int = 1) -> Any:
    """A `dspy.LM` for `model` (e.g. "ollama_chat/llama3.2", or "openai/NAME" with `base_url`).

    `timeout` bounds each HTTP request (seconds); `num_retries` retries transient failures only.
    Raises `BadInputError` for a malformed model string or URL, `MissingDependencyError` without dspy.
    """
    model = check_model(model, base_url=base_url, timeout=timeout)
    dspy = _dspy()
    if model.startswith("ollama_chat/"):
        # DSPy talks to Ollama's OpenAI-compatible API, under /v1; the preflight reads OLLAMA_API_BASE too
        env_url = os.environ.get("OLLAMA_API_BASE")
        base_url = base_url or (env_url if env_url and _http_url(env_url) else None)
        if base_url is not None and urlsplit(base_url).path.strip("/") == "":
            base_url = base_url.rstrip("/") + "/v1"
    kwargs: dict[str, Any] = {}
    if base_url is not None:
        kwargs["api_base"] = base_url
    key = api_key or os.environ.get(API_KEY_ENV)
    if key:
        kwargs["api_key"] = key
    elif base_url is not None and model.startswith("openai/") and urlsplit(base_url).hostname != "api.openai.com":
        # a local server ignores the key, but the client needs a non-empty one (an empty string fails in DSPy 3.4);
        # OPENAI_API_KEY is OpenAI's secret: never sent to another server
        kwargs["api_key"] = "local"
    if timeout is not None:
        kwargs["timeout"] = float(timeout)
    return dspy.LM(model, temperature=temperature, max_tokens=max_tokens, cache=cache, num_retries=num_retries,
                   **kwargs)


def _http_url(url: str) -> bool:
    """An http(s) URL with a host and, if any, a valid port."""
    if not re.match(r"^https?://[^\s/]+", url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        return False
    return bool(parts.hostname)


def resolve_lm(lm: Any, **options: Any) -> Any:
    """A model string becomes `make_lm(lm, **options)`; a DSPy LM object is used as it is."""
    if isinstance(lm, str):
        return make_lm(lm, **options)
    if lm is None or not callable(lm):
        raise BadInputError(f"lm must be a model string such as 'ollama_chat/llama3.2' or a dspy.LM, "
                            f"got {type(lm).__name__}")
    return lm


def model_name(lm: Any) -> str:
    """The model string of an LM object (or the string itself)."""
    return lm if isinstance(lm, str) else str(getattr(lm, "model", type(lm).__name__))
