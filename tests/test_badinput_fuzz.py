"""Bad and hostile input, end to end through `modeldebug.cli.main`: exit 2, one line, never a traceback.

The fuzz driver below feeds each case to the real command (real ONNX files, a real run record, real
user modules that call `sys.exit()`) and checks the contract: exit code 2, exactly one line on stderr
starting with ``modeldebug:``, naming the bad value, and no ``Traceback``. Inputs too large to make
up are refused before anything is allocated; every such case asks for terabytes, so that a regression
fails at once with a MemoryError rather than filling a test machine's memory.

The second half runs the `--endpoint` client against a real HTTP server on 127.0.0.1 (http.server
in a thread; every other connection is still refused): response size cap, which API key is sent
where, no redirects, and the plain-HTTP warning.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import onnx
import pytest
from onnx import TensorProto, helper

from modeldebug.behaviour.endpoint import EndpointError, OpenAIEndpoint, is_local_host, key_for
from modeldebug.cli import main

USER_CODE = '''
import sys


def build():
    sys.exit(3)


def answer(prompt):
    return f"Paris, since you asked: {prompt}"  # varies with the prompt: one answer to all is not judged


def exits(prompt):
    sys.exit(5)


def judge_exits(prompt, output):
    raise SystemExit("bye")
'''


def _onnx(path: Path, shape: list[Any]) -> str:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("fuzz")
    f: dict[str, str] = {
        "small": _onnx(d / "small.onnx", ["batch", 8]),
        "huge": _onnx(d / "huge.onnx", [1024, 1024, 1024, 1792]),  # 7 TiB of float32
        "huge_dyn": _onnx(d / "huge_dyn.onnx", ["batch", 1024, 1024, 1 << 20]),  # 8 TiB at batch 2
    }
    (d / "fz12_user.py").write_text(USER_CODE)
    (d / "fz12_exit_at_import.py").write_text("raise SystemExit(4)\n")
    f["user"], f["exit_import"] = str(d / "fz12_user.py"), str(d / "fz12_exit_at_import.py")
    texts = {
        "ok.jsonl": "".join(f'{{"ts": {i}, "latency_ms": 10, "output": "hi"}}\n' for i in range(30)),
        "deep.jsonl": '{"ts": 1}\n' + "[" * 100_000 + "]" * 100_000 + "\n",
        "bigts.jsonl": '{"ts": 1' + "0" * 400 + "}\n",
        "biglatency.jsonl": '{"ts": 1, "latency_ms": 1' + "0" * 400 + "}\n",
        "bigint.jsonl": '{"ts": 1' + "0" * 5000 + "}\n",
        "deep.json": "[" * 100_000 + "]" * 100_000,
        "facts_list.json": json.dumps({"facts": 5}),
        "facts_answers.json": json.dumps({"facts": [{"prompt": "2+2?", "answers": 4}]}),
        "safety_entry.json": json.dumps({"prompts": [1]}),
        "safety_tags.json": json.dumps({"prompts": [{"prompt": "x", "tags": 5}]}),
        "baseline_version.json": json.dumps({"attempts": [], "probes": [], "version": "x"}),
    }
    for name, text in texts.items():
        (d / name).write_text(text)
        f[name] = str(d / name)
    (d / "binary.bin").write_bytes(bytes(range(256)) * 8)
    f["binary"] = str(d / "binary.bin")
    return f


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> str:
    from modeldebug.testing import build_record

    path = tmp_path_factory.mktemp("fuzzrun") / "run.db"
    build_record(loss=[1.0, 0.5, 0.25]).conn.execute("VACUUM INTO ?", (str(path),))
    return str(path)


ONNX = [
    ("profile-7TiB-static", ["onnx", "profile", "{huge}"], r"input 'x' .*7\.0 TiB.*limit.*fixed in the model"),
    ("profile-8TiB-symbolic", ["onnx", "profile", "{huge_dyn}"], r"input 'x' .*\[2,1024,1024,1048576\].*--shape x="),
    ("profile-shape-huge", ["onnx", "profile", "{small}", "--shape", "x=99999999999,8"], r"2\.9 TiB.*--shape x="),
    ("profile-shape-fixed-dim", ["onnx", "profile", "{small}", "--shape", "x=3,7"], r"--shape x=3,7 does not fit"),
    ("profile-shape-unknown", ["onnx", "profile", "{small}", "--shape", "z=3,8"], r"--shape given for 'z'"),
    ("profile-threads-negative", ["onnx", "profile", "{small}", "--threads", "-5"], r"--threads -5: .*0 to 1024"),
    ("profile-threads-huge", ["onnx", "profile", "{small}", "--threads", "99999"], r"--threads 99999"),
    ("profile-threads-text", ["onnx", "profile", "{small}", "--threads", "many"], r"--threads: invalid int"),
    ("profile-warmup-negative", ["onnx", "profile", "{small}", "--warmup", "-1"], r"--warmup -1"),
    ("profile-iterations-zero", ["onnx", "profile", "{small}", "--iterations", "0"], r"--iterations 0"),
    ("profile-iterations-huge", ["onnx", "profile", "{small}", "--iterations", "10" + "0" * 30], r"--iterations 10+"),
    ("inspect-shape-int64-overflow", ["onnx", "inspect", "{small}", "--shape", "x=99999999999999999999,8"],
     r"dimension 99999999999999999999 is out of range"),
    ("inspect-shape-zero", ["onnx", "inspect", "{small}", "--shape", "x=0,8"], r"dimension 0 is out of range"),
    ("inspect-shape-text", ["onnx", "inspect", "{small}", "--shape", "x=a,b"], r"expected NAME=D0,D1"),
    ("compare-atol-nan", ["onnx", "compare", "{small}", "--torch", "{user}:build", "--atol", "nan"], r"--atol nan"),
    ("compare-rtol-inf", ["onnx", "compare", "{small}", "--torch", "{user}:build", "--rtol", "inf"], r"--rtol inf"),
    ("compare-factory-exits", ["onnx", "compare", "{small}", "--torch", "{user}:build"],
     r"--torch '.*fz12_user.py:build': calling build\(\) called sys.exit\(3\)"),
    ("compare-exit-at-import", ["onnx", "compare", "{small}", "--torch", "{exit_import}:build"],
     r"importing '.*fz12_exit_at_import.py' called sys.exit\(4\)"),
]
MONITOR = [
    ("monitor-deep-nesting", ["monitor", "{deep.jsonl}"], r"deep.jsonl line 2: JSON nested too deeply"),
    ("monitor-ts-overflow", ["monitor", "{bigts.jsonl}"], r"bigts.jsonl line 1: a number is too large"),
    ("monitor-latency-overflow", ["monitor", "{biglatency.jsonl}"], r"line 1: a number is too large"),
    ("monitor-int-4300-digits", ["monitor", "{bigint.jsonl}"], r"bigint.jsonl line 1: not readable JSON"),
    ("monitor-binary-log", ["monitor", "{binary}"], r"not UTF-8 text"),
    ("monitor-slow-nan", ["monitor", "{ok.jsonl}", "--slow", "nan"], r"--slow nan"),
    ("monitor-slow-inf", ["monitor", "{ok.jsonl}", "--slow", "inf"], r"--slow inf"),
    ("monitor-slow-zero", ["monitor", "{ok.jsonl}", "--slow", "0"], r"--slow 0\.0"),
    ("monitor-slow-negative", ["monitor", "{ok.jsonl}", "--slow", "-1"], r"--slow -1\.0"),
    ("monitor-rate-nan", ["monitor", "{ok.jsonl}", "--max-error-rate", "nan"], r"--max-error-rate nan"),
    ("monitor-rate-inf", ["monitor", "{ok.jsonl}", "--max-slow-rate", "inf"], r"--max-slow-rate inf"),
    ("monitor-rate-negative", ["monitor", "{ok.jsonl}", "--max-refusal-rate", "-0.1"], r"--max-refusal-rate -0\.1"),
    ("monitor-min-volume-zero", ["monitor", "{ok.jsonl}", "--min-volume", "0"], r"--min-volume 0"),
    ("monitor-min-volume-negative", ["monitor", "{ok.jsonl}", "--min-volume", "-3"], r"--min-volume -3"),
    ("monitor-window-zero", ["monitor", "{ok.jsonl}", "--short", "0"], r"--short '0'"),
    ("monitor-window-5000-digits", ["monitor", "{ok.jsonl}", "--short", "9" * 5000], r"--short .*too long"),
    ("monitor-window-inf-seconds", ["monitor", "{ok.jsonl}", "--long", "9" * 400 + "s"], r"--long .*too long"),
]
BEHAVIOUR = [
    ("facts-binary", ["behaviour", "probe", "--model", "{user}:answer", "--facts", "{binary}"],
     r"binary.bin is not UTF-8 text"),
    ("safety-binary", ["behaviour", "probe", "--model", "{user}:answer", "--safety", "{binary}"],
     r"binary.bin is not UTF-8 text"),
    ("facts-deep-nesting", ["behaviour", "probe", "--model", "{user}:answer", "--facts", "{deep.json}"],
     r"nested too deeply"),
    ("facts-not-a-list", ["behaviour", "probe", "--model", "{user}:answer", "--facts", "{facts_list.json}"],
     r"'facts' must be a list"),
    ("facts-answers-int", ["behaviour", "probe", "--model", "{user}:answer", "--facts", "{facts_answers.json}"],
     r"entry 0 needs a non-empty list of answer strings"),
    ("safety-entry-int", ["behaviour", "probe", "--model", "{user}:answer", "--safety", "{safety_entry.json}"],
     r"entry 0 has no 'prompt'"),
    ("safety-tags-int", ["behaviour", "probe", "--model", "{user}:answer", "--safety", "{safety_tags.json}"],
     r"entry 0 has tags 5"),
    ("baseline-binary", ["behaviour", "compare", "{binary}", "--model", "{user}:answer"], r"baseline .*binary.bin"),
    ("baseline-deep", ["behaviour", "compare", "{deep.json}", "--model", "{user}:answer"], r"nested too deeply"),
    ("baseline-version-text", ["behaviour", "compare", "{baseline_version.json}", "--model", "{user}:answer"],
     r"has version 'x'"),
    ("repeats-zero", ["behaviour", "probe", "--model", "{user}:answer", "--repeats", "0"], r"--repeats must be at least 1"),
    ("repeats-huge", ["behaviour", "probe", "--model", "{user}:answer", "--repeats", "99999999"], r"--repeats must be at most"),
    ("max-tokens-negative", ["behaviour", "probe", "--model", "{user}:answer", "--max-tokens", "-1"], r"--max-tokens"),
    ("max-tokens-int64", ["behaviour", "probe", "--model", "{user}:answer", "--max-tokens", "9" * 20], r"at most 2147483647"),
    ("tries-zero", ["behaviour", "reproduce", "--model", "{user}:answer", "--complaint", "c", "--example", "e",
                    "--tries", "0"], r"--tries must be at least 1"),
    ("temperature-nan", ["behaviour", "reproduce", "--model", "{user}:answer", "--complaint", "c", "--example", "e",
                         "--temperature", "nan"], r"--temperature nan"),
    ("temperature-negative", ["behaviour", "reproduce", "--model", "{user}:answer", "--complaint", "c", "--example",
                              "e", "--temperature", "-1"], r"--temperature -1\.0"),
    ("max-response-zero", ["behaviour", "probe", "--endpoint", "http://127.0.0.1:9/v1", "--model-name", "m",
                           "--max-response-mib", "0"], r"--max-response-mib 0\.0"),
    ("max-response-nan", ["behaviour", "probe", "--endpoint", "http://127.0.0.1:9/v1", "--model-name", "m",
                          "--max-response-mib", "nan"], r"--max-response-mib nan"),
    ("api-key-env-unset", ["behaviour", "probe", "--endpoint", "http://127.0.0.1:9/v1", "--model-name", "m",
                           "--api-key-env", "FZ12_NO_SUCH_VARIABLE"], r"--api-key-env FZ12_NO_SUCH_VARIABLE"),
    ("model-exits-while-generating", ["behaviour", "probe", "--model", "{user}:exits", "--probes", "runs"],
     r"--model '.*fz12_user.py:exits': generating an answer called sys.exit\(5\)"),
    ("judge-exits", ["behaviour", "probe", "--model", "{user}:answer", "--probes", "safety", "--judge",
                     "{user}:judge_exits"], r"--judge '.*:judge_exits': judging an answer called sys.exit\('bye'\)"),
    ("model-exit-at-import", ["behaviour", "probe", "--model", "{exit_import}:x"], r"called sys.exit\(4\)"),
]
EXPORT = [
    ("mlflow-unknown-scheme", ["export", "{record}", "--to", "mlflow", "--tracking-uri", "foo://bar"],
     r"MLflow tracking URI 'foo://bar': MLflow has no store for the scheme 'foo'"),
    ("mlflow-file-store", ["export", "{record}", "--to", "mlflow", "--tracking-uri", "not-a-uri"],
     r"MLflow tracking URI 'not-a-uri': .*sqlite:///"),
    ("mlflow-sqlite-missing-folder", ["export", "{record}", "--to", "mlflow", "--tracking-uri",
                                      "sqlite:///fz12-missing/dir/mlflow.db"], r"'fz12-missing/dir' does not exist"),
]
LOADER = [
    ("doctor-factory-exits", ["doctor", "--model", "{user}:build", "--batch", "{user}:build"],
     r"--model '.*fz12_user.py:build': calling it called sys.exit\(3\)"),
]
CASES = ONNX + MONITOR + BEHAVIOUR + EXPORT + LOADER


def _fill(arg: str, paths: dict[str, str]) -> str:
    for key, value in paths.items():
        arg = arg.replace("{" + key + "}", value)
    return arg


def _needs(argv: list[str]) -> list[Any]:
    if "mlflow" in argv:
        try:
            import mlflow  # noqa: F401
        except ImportError:
            return [pytest.mark.skip(reason="needs the mlflow extra")]
    return []


@pytest.mark.parametrize(("argv", "message"), [pytest.param(argv, message, id=name, marks=_needs(argv))
                                               for name, argv, message in CASES])
def test_bad_input_exits_2_with_one_line(argv: list[str], message: str, files: dict[str, str], record: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import re

    args = [_fill(a, {**files, "record": record}) for a in argv]
    try:
        rc = main(args)
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and err.startswith("modeldebug: "), (rc, err)
    assert re.search(message, err), err
    assert not Path("fz12-missing").exists()  # nothing created on the way to the refusal


def test_the_fuzz_covers_every_item_of_the_issue() -> None:
    names = {name for name, _, _ in CASES}
    assert len(names) == len(CASES)  # ids are unique, so the tally in the report is a count of cases
    for must in ("profile-7TiB-static", "inspect-shape-int64-overflow", "profile-threads-negative",
                 "monitor-deep-nesting", "facts-binary", "mlflow-unknown-scheme", "compare-factory-exits",
                 "monitor-slow-nan", "repeats-zero"):
        assert must in names


def test_made_up_inputs_under_the_limit_still_run(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["onnx", "profile", files["small"], "--shape", "x=3,8", "--iterations", "2", "--json", "-", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["profile"]["iterations"] == 2


# -- the --endpoint client against a real local server -----------------------------------------------------------
_real_connect = socket.socket.connect  # saved before the test set-up makes every connection fail


@pytest.fixture
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    refuse = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and address[0] == "127.0.0.1":
            return _real_connect(sock, address)
        return refuse(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[dict[str, Any]]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that stops reading a large body is the point of some tests, not an error


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.seen.append({"path": self.path, "authorization": self.headers.get("Authorization"), "body": body})
        answer = json.dumps({"choices": [{"message": {"role": "assistant", "content": "Paris"}}]}).encode()
        try:
            if self.path.startswith("/big/"):  # 2 MiB of valid JSON, with its Content-Length
                self._send(json.dumps({"choices": [{"message": {"content": "x" * (2 << 20)}}]}).encode())
            elif self.path.startswith("/stream/"):  # 2 MiB with no Content-Length: only the connection's end says
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Connection", "close")
                self.end_headers()
                for _ in range(32):
                    self.wfile.write(b" " * (64 << 10))
                self.close_connection = True
            elif self.path.startswith("/redirect/"):
                self.send_response(302)
                self.send_header("Location", self.path.replace("/redirect/", "/ok/", 1))
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send(answer)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server(_loopback_only: None) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_a_response_over_the_cap_is_refused_naming_the_cap(server: tuple[str, list[dict[str, Any]]]) -> None:
    base, _ = server
    ok = OpenAIEndpoint(f"{base}/ok/v1", "m", timeout=5, max_response_bytes=1 << 20)
    assert ok.generate("capital of France?") == "Paris"
    for path in ("big", "stream"):
        ep = OpenAIEndpoint(f"{base}/{path}/v1", "m", timeout=5, max_response_bytes=1 << 20)
        with pytest.raises(EndpointError, match=r"answered more than 1 MiB, the response size limit"):
            ep.generate("hi")
    roomy = OpenAIEndpoint(f"{base}/big/v1", "m", timeout=5, max_response_bytes=4 << 20)
    assert len(roomy.generate("hi")) == 2 << 20  # the cap is the only reason it was refused


def test_the_cap_from_the_command_line(server: tuple[str, list[dict[str, Any]]],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    base, _ = server
    assert main(["behaviour", "probe", "--endpoint", f"{base}/big/v1", "--model-name", "m",
                 "--max-response-mib", "1", "--probes", "runs"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "answered more than 1 MiB" in err and "--max-response-mib" in err, err


def test_openai_api_key_goes_only_where_it_was_configured(server: tuple[str, list[dict[str, Any]]],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    base, seen = server
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fz12")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    OpenAIEndpoint(f"{base}/ok/v1", "m", timeout=5).generate("a")  # a local server the key is not for
    OpenAIEndpoint(f"{base}/ok/v1", "m", timeout=5, api_key_env="OPENAI_API_KEY").generate("b")  # said so
    monkeypatch.setenv("OPENAI_BASE_URL", f"{base}/v1")  # the host the OpenAI client itself would use
    OpenAIEndpoint(f"{base}/ok/v1", "m", timeout=5).generate("c")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # same host, another port: not this server
    OpenAIEndpoint(f"{base}/ok/v1", "m", timeout=5).generate("d")
    OpenAIEndpoint(f"{base}/ok/v1", "m", timeout=5, api_key="sk-given").generate("e")
    got = {s["body"]["messages"][0]["content"]: s["authorization"] for s in seen}
    assert got == {"a": None, "b": "Bearer sk-fz12", "c": "Bearer sk-fz12", "d": None, "e": "Bearer sk-given"}


def test_key_rule_for_the_openai_host_and_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fz12")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert key_for("https://api.openai.com/v1/chat/completions") == "sk-fz12"
    assert key_for("https://api.openai.com.evil.example/v1") is None
    assert key_for("http://attacker.example/v1/chat/completions") is None
    assert key_for("http://attacker.example/v1", api_key="") is None  # an explicit "" means none
    monkeypatch.setenv("FZ12_KEY", "sk-other")
    assert key_for("https://my.host/v1", api_key_env="FZ12_KEY") == "sk-other"


def test_redirects_are_not_followed(server: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch) -> None:
    base, seen = server
    ep = OpenAIEndpoint(f"{base}/redirect/v1", "m", timeout=5, api_key="sk-fz12")
    with pytest.raises(EndpointError, match=r"HTTP 302, a redirect to .*/ok/v1/chat/completions: redirects are not "):
        ep.generate("hi")
    assert [s["path"] for s in seen] == ["/redirect/v1/chat/completions"]


def test_plain_http_to_another_machine_is_warned_about(caplog: pytest.LogCaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def offline(url: str, payload: dict[str, Any], headers: dict[str, str], timeout: float) -> dict[str, Any]:
        raise AssertionError("no request is made by constructing an endpoint")

    with caplog.at_level(logging.WARNING, logger="modeldebug.behaviour.endpoint"):
        for url in ("http://127.0.0.1:8080/v1", "http://localhost:11434/v1", "http://[::1]:80/v1",
                    "https://models.example.com/v1"):
            OpenAIEndpoint(url, "m", transport=offline)
        assert caplog.records == []
        OpenAIEndpoint("http://10.0.0.7:8000/v1", "m", transport=offline, api_key="sk-fz12")
    assert len(caplog.records) == 1
    text = caplog.records[0].getMessage()
    assert "plain http:// to another machine (10.0.0.7)" in text and "and the API key" in text and "sk-" not in text
    assert is_local_host("127.1.2.3") and not is_local_host("localhost.example.com")
