"""Shared fixtures: every test runs in its own empty directory with the network switched off."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# At import, not only per test: module-scoped fixtures (a trained char model, ONNX exports) run before
# the autouse fixture, and several threads on a busy 2-core machine make them 10-100x slower.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)

    connect = socket.socket.connect

    def refuse(self: socket.socket, *args: object, **kwargs: object) -> None:
        if self.family == socket.AF_UNIX:  # a local pipe: DataLoader workers pass tensors' shared memory this way
            return connect(self, *args, **kwargs)
        raise OSError("tests must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    torch.set_num_threads(1)
    yield


@pytest.fixture
def local_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's own ports may be reached (every other connection is refused above)."""
    original = socket._socket.socket.connect  # type: ignore[attr-defined]

    def local_only(self: socket.socket, address: object) -> None:
        if not (isinstance(address, tuple) and address[0] in ("127.0.0.1", "localhost", "::1")):
            raise OSError("tests must not use the network")
        original(self, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
