"""An OpenAI-compatible HTTP endpoint as a model (llama.cpp server, Ollama, vLLM, ...), via urllib.

``OpenAIEndpoint(url, model_name)`` posts ``/chat/completions`` (or ``/completions`` with
``chat=False``) and returns the first choice's text. The HTTP call goes through ``transport``, a plain
function ``transport(url, payload, headers, timeout) -> dict``: the default uses urllib, and tests or
users with their own client pass another one (the pattern of httpx's mock transport).

Safety of the default transport: an answer larger than ``max_response_bytes`` (16 MiB unless set)
is refused before it is read whole; redirects are not followed (they would carry the API key to
another URL); plain ``http://`` to a host other than this machine logs a warning.

Which API key is sent (``key_for``), so a key never goes to a server it was not meant for:

1. ``api_key`` when given (``""``: none);
2. else the environment variable named by ``api_key_env`` (``--api-key-env VAR``), whatever the host;
3. else ``OPENAI_API_KEY``, but only to ``api.openai.com`` or to the host and port of
   ``OPENAI_BASE_URL`` (the pair the OpenAI client itself uses); any other endpoint gets no key.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import math
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..errors import BadInputError, DebuggingError

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "EndpointError", "OpenAIEndpoint", "Transport", "is_local_host", "key_for",
           "urllib_transport"]

log = logging.getLogger(__name__)

Transport = Callable[[str, dict[str, Any], dict[str, str], float], dict[str, Any]]

#: The largest answer the default transport reads (a chat completion is a few KiB).
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_OPENAI_HOST = "api.openai.com"


class EndpointError(DebuggingError):
    """The endpoint could not be reached, answered with an HTTP error, or answered something unusable."""

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, type="analysis", details=details)


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise EndpointError(f"{req.full_url} answered HTTP {code}, a redirect to {newurl}: redirects are not "
                            "followed (the request carries the API key); give that URL as the endpoint")


_OPENER = urllib.request.build_opener(_NoRedirect)


def urllib_transport(url: str, payload: dict[str, Any], headers: dict[str, str], timeout: float, *,
                     max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> dict[str, Any]:
    """POST `payload` as JSON to `url` with urllib and return the decoded JSON answer (at most `max_bytes`)."""
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    too_large = (f"{url} answered more than {_mib(max_bytes)}, the response size limit (raise it with "
                 "--max-response-mib, or max_response_bytes=)")
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            if length is not None and length.strip().isdigit() and int(length) > max_bytes:
                raise EndpointError(too_large, details={"max_bytes": max_bytes, "content_length": int(length)})
            body = resp.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        text = exc.read(4096).decode(errors="replace")[:300]
        raise EndpointError(f"{url} answered HTTP {exc.code}: {text}", details={"status": exc.code}) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EndpointError(f"cannot reach {url}: {reason}; is the server running?") from exc
    if len(body) > max_bytes:
        raise EndpointError(too_large, details={"max_bytes": max_bytes})
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise EndpointError(f"{url} did not answer JSON: {body[:200]!r}") from exc
    except RecursionError:
        raise EndpointError(f"{url} answered JSON nested too deeply to read") from None
    if not isinstance(data, dict):
        raise EndpointError(f"{url} answered {type(data).__name__}, expected a JSON object")
    return data


def is_local_host(host: str | None) -> bool:
    """True for this machine: ``localhost``, ``*.localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> tuple[str, int | None]:
    try:
        parts = urlsplit(url)  # OPENAI_BASE_URL is not checked like --endpoint: it may not parse
    except ValueError:
        return "", None
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # a port that is not a number
        port = None
    return (parts.hostname or "").lower(), port


def key_for(url: str, *, api_key: str | None = None, api_key_env: str | None = None) -> str | None:
    """The API key to send to `url`, by the rule in the module docstring (None: send no key)."""
    if api_key is not None:
        return api_key or None
    if api_key_env is not None:
        value = os.environ.get(api_key_env)
        if value is None:
            raise BadInputError(f"--api-key-env {api_key_env}: no such environment variable is set")
        return value or None
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        return None
    host, port = _origin(url)
    if host == _OPENAI_HOST:
        return key
    base = os.environ.get("OPENAI_BASE_URL")
    if base and base.startswith(("http://", "https://")) and _origin(base) == (host, port):
        return key
    return None


def _endpoint_url(url: str, chat: bool) -> str:
    if not url.startswith(("http://", "https://")):
        raise BadInputError(f"--endpoint {url!r}: expected an http:// or https:// URL, e.g. http://localhost:8080/v1")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # a port that is not a number raises here
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
        raise BadInputError(f"--endpoint {url!r} is not a valid URL ({exc}); e.g. http://localhost:8080/v1 or "
                            "http://[::1]:8080/v1") from None
    if not parts.hostname:
        raise BadInputError(f"--endpoint {url!r} names no host; e.g. http://localhost:8080/v1")
    url = url.rstrip("/")
    if url.endswith(("/chat/completions", "/completions")):
        return url
    return url + ("/chat/completions" if chat else "/completions")


class OpenAIEndpoint:
    """``generate(prompt)`` against an OpenAI-compatible server.

    `url` is the API base (``http://localhost:11434/v1``) or the full completions URL. The API key is
    chosen by `key_for` (`api_key`, else the variable `api_key_env`, else ``OPENAI_API_KEY`` only for
    the host it is meant for); local servers need none. The default transport reads at most
    `max_response_bytes` of an answer.
    """

    def __init__(self, url: str, model_name: str, *, chat: bool = True, api_key: str | None = None,
                 api_key_env: str | None = None, timeout: float = 60.0, max_tokens: int = 128,
                 transport: Transport | None = None,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        if not model_name:
            raise BadInputError("an endpoint needs a model name (--model-name NAME), e.g. llama3")
        if not 0 < timeout < math.inf:
            raise BadInputError(f"endpoint timeout {timeout}: expected a finite number of seconds above 0")
        if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int) or max_response_bytes < 1:
            raise BadInputError(f"max_response_bytes {max_response_bytes!r}: expected a whole number of bytes >= 1")
        self.chat = chat
        self.url = _endpoint_url(url, chat)
        self.model_name = model_name
        self.name = f"{model_name}@{self.url}"
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.max_response_bytes = max_response_bytes
        self.transport = transport or functools.partial(urllib_transport, max_bytes=max_response_bytes)
        key = key_for(self.url, api_key=api_key, api_key_env=api_key_env)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        host = urlsplit(self.url).hostname
        if self.url.startswith("http://") and not is_local_host(host):
            log.warning("modeldebug: the endpoint %s is plain http:// to another machine (%s): prompts, answers%s "
                        "travel unencrypted; use https://", self.url, host, " and the API key" if key else "")

    @property
    def sends_key(self) -> bool:
        """Whether requests carry an API key (the key itself is never shown)."""
        return bool(self._headers)

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
