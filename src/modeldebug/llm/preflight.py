"""Checks of `--llm MODEL` made before any work: a provider nobody knows, a server that is not there.

`known_provider` is judged from LiteLLM's own list (no network): an unknown provider is bad input. The
usual providers, and their keys, are known without importing LiteLLM (`COMMON`, `KEY_ENV`).
`unavailable` says why the model cannot answer now, or None: a local server (Ollama, llama.cpp,
vLLM, LM Studio) that does not accept a connection, a hosted API whose key is not set or whose
host cannot be reached. It opens one TCP connection at most (`CONNECT_TIMEOUT` seconds) and
sends nothing. Either way the run goes on; only its explanation is skipped.
"""

from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import urlsplit

__all__ = ["COMMON", "CONNECT_TIMEOUT", "HOSTED", "KEY_ENV", "known_provider", "providers", "unavailable"]

CONNECT_TIMEOUT = 2.0
_OLLAMA = "http://localhost:11434"
#: The API host of the best-known hosted providers (others are judged by their key only).
HOSTED = {"openai": "api.openai.com", "anthropic": "api.anthropic.com", "gemini": "generativelanguage.googleapis.com",
          "groq": "api.groq.com", "mistral": "api.mistral.ai", "deepseek": "api.deepseek.com",
          "together_ai": "api.together.xyz", "openrouter": "openrouter.ai", "cohere": "api.cohere.ai"}


#: Providers in LiteLLM's list, known here without importing it (seconds, before a run's first line);
#: a test checks them against the list.
COMMON = frozenset({"ollama", "ollama_chat", "openai", "anthropic", "gemini", "groq", "mistral", "deepseek",
                    "together_ai", "openrouter", "cohere", "azure", "bedrock", "vertex_ai", "huggingface",
                    "hosted_vllm", "lm_studio", "fireworks_ai", "perplexity", "xai", "llamafile"})
#: The one environment variable LiteLLM reads a hosted provider's key from (a test checks them
#: against `litellm.validate_environment`); others are asked of LiteLLM.
KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "groq": "GROQ_API_KEY",
           "deepseek": "DEEPSEEK_API_KEY", "together_ai": "TOGETHERAI_API_KEY", "openrouter": "OPENROUTER_API_KEY",
           "cohere": "COHERE_API_KEY"}


def providers() -> frozenset[str]:
    """LiteLLM's provider names (what DSPy's LM can talk to)."""
    import litellm

    return frozenset(str(getattr(p, "value", p)) for p in litellm.provider_list)


def known_provider(model: str) -> bool:
    provider = model.split("/", 1)[0]
    return provider in COMMON or provider in providers()


def _connect(url: str) -> str | None:
    """None when `url`'s host accepts a TCP connection, else why not."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return f"{url} has no valid port"
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        return f"nothing answers at {host}:{port} ({why})"
    return None


def _key_missing(model: str) -> list[str]:
    name = KEY_ENV.get(model.split("/", 1)[0])
    if name is not None:
        return [] if os.environ.get(name) else [name]
    import litellm

    try:
        env: dict[str, Any] = litellm.validate_environment(model)
    except Exception:  # noqa: BLE001 - LiteLLM cannot tell: the call itself will
        return []
    return [] if env.get("keys_in_environment") else [str(k) for k in env.get("missing_keys") or []]


def unavailable(model: str, base_url: str | None, *, api_key: str | None = None) -> str | None:
    """Why `model` (a PROVIDER/NAME string) cannot answer now, or None when it looks ready."""
    provider = model.split("/", 1)[0]
    if base_url is None and provider in ("ollama", "ollama_chat"):
        base_url = os.environ.get("OLLAMA_API_BASE") or _OLLAMA
    if base_url is None and provider == "openai":  # the OpenAI client's own setting of another server
        base_url = os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE") or None
        if base_url is not None:
            why = _connect(base_url)
            return f"the model server is not there: {why}" if why else None
    if base_url is not None:  # a server of the user's (local or not): is it there?
        why = _connect(base_url)
        return f"the model server is not there: {why}" if why else None
    if not api_key:
        missing = _key_missing(model)
        if missing:
            return f"it needs {' or '.join(missing)} in the environment, which is not set"
    host = HOSTED.get(provider)
    if host is not None:
        why = _connect(f"https://{host}")
        return f"the network does not reach {provider}: {why}" if why else None
    return None
