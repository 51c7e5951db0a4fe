"""W&B export in offline mode, read back from the run's own transaction log (the .wandb file).

wandb talks to its own service process over a Unix socket: those connections are let through;
every network socket still refuses to connect.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modeldebug.errors import MissingDependencyError
from modeldebug.export import to_wandb
from modeldebug.record import Record

from test_export_source import HOSTILE, make_run

wandb = pytest.importorskip("wandb", reason="needs the wandb extra")
from wandb.proto import wandb_internal_pb2  # noqa: E402

pytestmark = pytest.mark.slow  # starts W&B's service process (about a second)


@pytest.fixture(autouse=True)
def _local_sockets_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    refuse = socket.socket.connect  # the test set-up's: refuses everything

    def connect(sock: socket.socket, address: Any) -> None:
        if sock.family == socket.AF_UNIX:
            return _connect(sock, address)
        return refuse(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")  # W&B's own error reports go over the network
    yield


_connect = socket.socket.connect  # the real one, saved before the test set-up replaces it


@pytest.fixture(scope="module", autouse=True)
def _stop_the_service() -> Iterator[None]:
    yield
    wandb.teardown()


def read_wandb_log(path: Path) -> list[Any]:
    """The records of a .wandb file: a LevelDB-style log (32 KiB blocks, CRC-checked chunks) of protobufs.

    W&B's service writes the file in the background after `finish()`: stopping the service first
    (`wandb.teardown()`, which also happens at exit) is what guarantees it is complete.
    """
    wandb.teardown()
    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0)
    records, payload, pos = [], b"", 7
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            break
        chunk = data[pos + 7:pos + 7 + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == crc
        payload += chunk
        pos += 7 + length
        if kind in (1, 4):  # a FULL record, or the LAST chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            records.append(record)
            payload = b""
    return records


def _items(items: Any) -> dict[str, Any]:
    return {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in items}


def test_an_offline_run_holds_the_series_findings_and_reports(tmp_path: Path) -> None:
    db = make_run(tmp_path / "dead.db")
    run_dir = to_wandb(db, dir=tmp_path / "wb")
    assert run_dir.parent == tmp_path / "wb" / "wandb" and run_dir.name.startswith("offline-run-")
    (log,) = run_dir.glob("run-*.wandb")
    records = read_wandb_log(log)
    history = [_items(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]
    rows = [h for h in history if "modeldebug/loss" in h]
    record = Record.open(db)
    assert [h["modeldebug/step"] for h in rows] == list(range(record.n_steps))
    np.testing.assert_allclose([h["modeldebug/loss"] for h in rows], record.column("loss").values)
    weird = f"modeldebug/weird/ACT001/{HOSTILE}/dead_frac"
    assert [h[weird] for h in history if weird in h] == [1.0] * len(record.series(HOSTILE, "dead_frac"))
    assert not any("fc1" in k for h in history for k in h if "/weird/" in k)
    table = next(h for h in history if "modeldebug/findings_table/path" in h)
    rows_json = json.loads((run_dir / "files" / table["modeldebug/findings_table/path"]).read_text(encoding="utf-8"))
    assert rows_json["data"][0][:5] == [1, "high", "ACT001", "dead_activations", HOSTILE]
    summary: dict[str, Any] = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update(_items(r.summary.update))
    assert summary["modeldebug/findings"] == 1 and summary["modeldebug/worst"] == "high"
    report = json.loads((run_dir / "files" / "modeldebug" / "report.json").read_text(encoding="utf-8"))
    assert [f["code"] for f in report["findings"]] == ["ACT001"]
    assert (run_dir / "files" / "modeldebug" / "report.html").stat().st_size > 0


def test_into_a_run_of_your_own(tmp_path: Path) -> None:
    run = wandb.init(project="mine", dir=str(tmp_path), mode="offline", settings=wandb.Settings(silent=True),
                     reinit="create_new")
    try:
        run.log({"my/metric": 1.0})
        assert to_wandb(make_run(tmp_path / "ok.db", dead=False, steps=5), run=run) == Path(run.dir).parent
        assert (Path(run.dir) / "modeldebug" / "report.json").is_file()
    finally:
        run.finish()
    (log,) = Path(run.dir).parent.glob("run-*.wandb")
    history = [_items(r.history.item) for r in read_wandb_log(log) if r.WhichOneof("record_type") == "history"]
    assert any("my/metric" in h for h in history)
    assert [h["modeldebug/step"] for h in history if "modeldebug/loss" in h] == list(range(5))


def test_without_wandb_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'modeldebug\[wandb\]'"):
        to_wandb(tmp_path / "any.db")


def test_the_command_writes_an_offline_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modeldebug.cli import main

    db = make_run(tmp_path / "run.db", steps=5)
    assert main(["export", str(db), "--to", "wandb", "--out", str(tmp_path / "wb")]) == 0
    assert "wandb sync" in capsys.readouterr().out
    (log,) = (tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb")
    history = [_items(r.history.item) for r in read_wandb_log(log) if r.WhichOneof("record_type") == "history"]
    assert [h["modeldebug/step"] for h in history if "modeldebug/loss" in h] == list(range(5))
