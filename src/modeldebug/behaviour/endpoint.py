"""An OpenAI-compatible HTTP endpoint as a model (llama.cpp server, Ollama, vLLM, ...), via urllib.

``OpenAIEndpoint(url, model_name)`` posts ``/chat/completions`` (or ``/completions`` with
``chat=False``) and returns the first choice's text. The HTTP call goes through ``transport``, a plain
function ``transport(url, payload, headers, timeout) -> dict``: the default uses urllib, and tests or
users with their own client pass another one (the pattern of httpx's mock transport).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from ..errors import BadInputError, DebuggingError

__all__ = ["EndpointError", "OpenAIEndpoint", "Transport", "urllib_transport"]

Transport = Callable[[str, dict[str, Any], dict[str, str], float], dict[str, Any]]


class EndpointError(DebuggingError):
    """The endpoint could not be reached, answered with an HTTP error, or answered something unusable."""

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, type="analysis", details=details)


def urllib_transport(url: str, payload: dict[str, Any], headers: dict[str, str], timeout: float) -> dict[str, Any]:
    """POST `payload` as JSON to `url` with urllib and return the decoded JSON answer."""
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (the user's own URL)
            body = resp.read()
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")[:300]
        raise EndpointError(f"{url} answered HTTP {exc.code}: {text}", details={"status": exc.code}) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EndpointError(f"cannot reach {url}: {reason}; is the server running?") from exc
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise EndpointError(f"{url} did not answer JSON: {body[:200]!r}") from exc
    if not isinstance(data, dict):
        raise EndpointError(f"{url} answered {type(data).__name__}, expected a JSON object")
    return data


def _endpoint_url(url: str, chat: bool) -> str:
    if not url.startswith(("http://", "https://")):
        raise BadInputError(f"--endpoint {url!r}: expected an http:// or https:// URL, e.g. http://localhost:8080/v1")
    url = url.rstrip("/")
    if url.endswith(("/chat/completions", "/completions")):
        return url
    return url + ("/chat/completions" if chat else "/completions")


class OpenAIEndpoint:
    """``generate(prompt)`` against an OpenAI-compatible server.

    `url` is the API base (``http://localhost:11434/v1``) or the full completions URL. The API key is
    `api_key` or the ``OPENAI_API_KEY`` environment variable (local servers need none).
    """

    def __init__(self, url: str, model_name: str, *, chat: bool = True, api_key: str | None = None,
                 timeout: float = 60.0, max_tokens: int = 128, transport: Transport | None = None) -> None:
        if not model_name:
            raise BadInputError("an endpoint needs a model name (--model-name NAME), e.g. llama3")
        self.chat = chat
        self.url = _endpoint_url(url, chat)
        self.model_name = model_name
        self.name = f"{model_name}@{self.url}"
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.transport = transport or urllib_transport
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}

    def payload(self, prompt: str, *, seed: int | None = None, temperature: float | None = None,
                max_tokens: int | None = None) -> dict[str, Any]:
        """The JSON body sent for `prompt`."""
        body: dict[str, Any] = {"model": self.model_name, "max_tokens": max_tokens or self.max_tokens}
        if self.chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        if temperature is not None:
            body["temperature"] = float(temperature)
        if seed is not None:
            body["seed"] = int(seed)
        return body

    def generate(self, prompt: str, *, seed: int | None = None, temperature: float | None = None,
                 max_tokens: int | None = None) -> str:
        """Send `prompt` and return the first choice's text."""
        data = self.transport(self.url, self.payload(prompt, seed=seed, temperature=temperature,
                                                     max_tokens=max_tokens), dict(self._headers), self.timeout)
        if "error" in data and "choices" not in data:
            raise EndpointError(f"{self.url} answered an error: {str(data['error'])[:300]}")
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] if self.chat else choice["text"]
        except (KeyError, IndexError, TypeError) as exc:
            where = "choices[0].message.content" if self.chat else "choices[0].text"
            raise EndpointError(f"{self.url} answered without {where}: {json.dumps(data)[:200]}") from exc
        if text is None:  # some servers send null content for an empty answer
            return ""
        if not isinstance(text, str):
            raise EndpointError(f"{self.url} answered {type(text).__name__} as the text, expected a string")
        return text
