"""The model interface and its adapters: plain callables, module:callable specs, an OpenAI-compatible endpoint.

The endpoint adapter is tested through its injectable transport (tests may not open sockets); the
default urllib transport is exercised on the error path, where conftest refuses every connection.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modeldebug.behaviour import EndpointError, Model, OpenAIEndpoint, as_model, load_facts, load_model_spec, probe
from modeldebug.behaviour.model import ModelOutputError
from modeldebug.errors import BadInputError

FACTS, _ = load_facts()
ANSWER = {f.prompt: f.answers[0] for f in FACTS}


# -- the Model wrapper -------------------------------------------------------------------------------------
def test_options_are_passed_only_when_accepted() -> None:
    seen: list[dict[str, Any]] = []

    def takes_temperature(prompt: str, temperature: float = 1.0) -> str:
        seen.append({"temperature": temperature})
        return "ok"

    def takes_kwargs(prompt: str, **kw: Any) -> str:
        seen.append(kw)
        return "ok"

    m = as_model(takes_temperature)
    assert m.accepts == {"temperature"}
    m.generate("hi", seed=3, temperature=0.0, max_tokens=5)
    as_model(takes_kwargs).generate("hi", seed=3, temperature=0.0, max_tokens=5)
    as_model(lambda p: "ok").generate("hi", seed=3)  # takes nothing: nothing passed, no TypeError
    assert seen == [{"temperature": 0.0}, {"seed": 3, "temperature": 0.0, "max_tokens": 5}]


def test_objects_with_generate_and_non_string_answers() -> None:
    class Bot:
        name = "bot-v2"

        def generate(self, prompt: str, *, seed: int | None = None) -> str:
            return f"{prompt}!{seed}"

    m = as_model(Bot())
    assert m.name == "bot-v2" and m.accepts == {"seed"} and m.generate("x", seed=1) == "x!1"
    assert as_model(m) is m
    with pytest.raises(ModelOutputError, match="returned int"):
        Model(lambda p: 42).generate("x")
    with pytest.raises(BadInputError, match="not a model"):
        as_model(object())


def test_module_callable_specs(tmp_path: Path) -> None:
    (tmp_path / "mybot.py").write_text("def generate(prompt):\n    return 'Paris'\nclass K:\n    class Inner:\n"
                                       "        @staticmethod\n        def answer(prompt):\n            return 'Rome'\n")
    (tmp_path / "broken_bot.py").write_text("raise ImportError('missing the weights package')\n")
    assert load_model_spec(f"{tmp_path}/mybot.py:generate").generate("q") == "Paris"
    assert load_model_spec(f"{tmp_path}/mybot.py:K.Inner.answer").generate("q") == "Rome"
    with pytest.raises(BadInputError, match="expected MODULE:NAME"):
        load_model_spec("mybot")
    with pytest.raises(BadInputError, match="has no attribute 'nope'"):
        load_model_spec(f"{tmp_path}/mybot.py:nope")
    with pytest.raises(BadInputError, match="cannot import 'no_such_module_xyz'"):
        load_model_spec("no_such_module_xyz:generate")
    with pytest.raises(BadInputError, match="raised ImportError: missing the weights package"):
        load_model_spec(f"{tmp_path}/broken_bot.py:generate")
    with pytest.raises(BadInputError, match="no such file"):
        load_model_spec(f"{tmp_path}/absent.py:generate")


def test_weights_are_found_behind_a_wrapper() -> None:
    import torch

    class Wrapped:
        def __init__(self) -> None:
            self.model = torch.nn.Linear(4, 4)

        def generate(self, prompt: str) -> str:
            return "x"

    w = Wrapped()
    assert as_model(w).weights is w.model
    assert as_model(lambda p: "x").weights is None


# -- the OpenAI-compatible endpoint, through a fake transport ----------------------------------------------
class FakeServer:
    """Speaks the OpenAI chat/completions JSON the way llama.cpp and Ollama do; records each request."""

    def __init__(self, reply: Any = None) -> None:
        self.requests: list[tuple[str, dict[str, Any], dict[str, str], float]] = []
        self.reply = reply

    def __call__(self, url: str, payload: dict[str, Any], headers: dict[str, str], timeout: float) -> dict[str, Any]:
        json.dumps(payload)  # what urllib would send must be JSON
        self.requests.append((url, payload, headers, timeout))
        if self.reply is not None:
            return self.reply
        if url.endswith("/chat/completions"):
            question = payload["messages"][-1]["content"]
            return {"choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER.get(question, "?")}}]}
        return {"choices": [{"index": 0, "text": ANSWER.get(payload["prompt"], "?")}]}


def test_endpoint_builds_openai_requests_and_reads_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    server = FakeServer()
    ep = OpenAIEndpoint("http://localhost:11434/v1/", "llama3", transport=server, timeout=7,
                        api_key_env="OPENAI_API_KEY")  # said explicitly: the key is never sent to a host by default
    assert ep.url == "http://localhost:11434/v1/chat/completions"
    assert ep.generate("What is the capital of France?", seed=4, temperature=0.0, max_tokens=9) == "Paris"
    url, payload, headers, timeout = server.requests[0]
    assert payload == {"model": "llama3", "max_tokens": 9, "temperature": 0.0, "seed": 4,
                       "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    assert headers == {"Authorization": "Bearer sk-test"} and timeout == 7
    legacy = OpenAIEndpoint("http://h:8080/v1/completions", "m", chat=False, api_key="", transport=FakeServer())
    assert legacy.generate("What is 7 + 5?") == "12"
    assert legacy.transport.requests[0][2] == {}  # type: ignore[attr-defined]


def test_the_probes_run_against_an_endpoint() -> None:
    server = FakeServer()
    r = probe(OpenAIEndpoint("http://localhost:8080/v1", "tiny", transport=server), probes=["runs", "knowledge"])
    assert r.results["knowledge"].summary["capabilities"]["all"]["strict"]["rate"] == 1.0
    assert all(p["temperature"] == 0.0 and p["seed"] == 0 for _, p, _, _ in server.requests)


@pytest.mark.parametrize(("reply", "match"), [
    ({"error": {"message": "model 'x' not found"}}, "answered an error: .*not found"),
    ({"choices": []}, "without choices\\[0\\].message.content"),
    ({"choices": [{"message": {"content": 3}}]}, "answered int as the text"),
])
def test_unusable_endpoint_answers_are_clear_errors(reply: dict[str, Any], match: str) -> None:
    ep = OpenAIEndpoint("http://localhost:8080", "x", transport=FakeServer(reply))
    with pytest.raises(EndpointError, match=match):
        ep.generate("hi")


def test_default_transport_reports_an_unreachable_server() -> None:
    ep = OpenAIEndpoint("http://127.0.0.1:9/v1", "x", timeout=1)
    with pytest.raises(EndpointError, match="cannot reach http://127.0.0.1:9/v1/chat/completions"):
        ep.generate("hi")
    r = probe(ep, probes=["runs"])  # inside a probe the same failure is a finding, not a crash
    assert r.findings[0].code == "BEH001" and "EndpointError" in r.findings[0].title


def test_bad_endpoint_settings_are_bad_input() -> None:
    with pytest.raises(BadInputError, match="expected an http"):
        OpenAIEndpoint("localhost:8080", "x")
    with pytest.raises(BadInputError, match="needs a model name"):
        OpenAIEndpoint("http://localhost:8080", "")
