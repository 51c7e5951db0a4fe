"""Loading an ONNX model with one clear error for each way a file can be unusable.

Not a file, an empty file, not ONNX at all, an ONNX file cut short, a missing or short external
data file: each raises ``ModelLoadError`` (a ``BadInputError``, so the CLI prints one line and exits 2).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BadInputError, MissingDependencyError

if TYPE_CHECKING:
    import onnx

__all__ = ["LoadedModel", "ModelLoadError", "iter_tensors", "load_model", "require_onnx"]


class ModelLoadError(BadInputError):
    """An ONNX model that cannot be read: the message names the file and the likely cause."""


def require_onnx() -> Any:
    """Import onnx, or say which extra installs it."""
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - the test environment has it
        raise MissingDependencyError("ONNX analysis", "onnx") from exc
    return onnx


@dataclass
class LoadedModel:
    """A parsed model with its external data in memory, and where it came from."""

    proto: onnx.ModelProto
    source: str
    path: Path | None = None
    external_data: bool = False
    size_bytes: int = 0
    _bytes: bytes | None = field(default=None, repr=False)

    def serialized(self) -> bytes:
        """The model as bytes, external data included (cached)."""
        if self._bytes is None:
            self._bytes = self.proto.SerializeToString()
        return self._bytes


def _looks_like_onnx(data: bytes) -> bool:
    # An ONNX file starts with field 1 (ir_version, a small varint): tag byte 0x08, then 1..30.
    return len(data) >= 2 and data[0] == 0x08 and 0 < data[1] < 32


def _parse(data: bytes, source: str) -> onnx.ModelProto:
    onnx = require_onnx()
    from google.protobuf.message import DecodeError

    if not data:
        raise ModelLoadError(f"{source}: the file is empty (0 bytes), not an ONNX model")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        if _looks_like_onnx(data):
            raise ModelLoadError(f"{source}: starts like an ONNX model but cannot be parsed "
                                 f"({len(data)} bytes): the file is truncated or damaged") from exc
        raise ModelLoadError(f"{source}: not an ONNX model (not a protobuf ModelProto; "
                             f"first bytes {data[:8]!r})") from exc
    if proto.ir_version <= 0 or not proto.HasField("graph"):
        raise ModelLoadError(f"{source}: not an ONNX model (no IR version or no graph in the file)")
    if not proto.opset_import:
        raise ModelLoadError(f"{source}: the model declares no opset; the file is probably truncated "
                             f"({len(data)} bytes)")
    return proto


def iter_tensors(graph: Any) -> Any:
    """Every TensorProto of a graph: initializers and tensor attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from iter_tensors(sub)


def _external_tensors(proto: onnx.ModelProto) -> list[Any]:
    from onnx.external_data_helper import uses_external_data

    return [t for t in iter_tensors(proto.graph) if uses_external_data(t)]


def _load_external(proto: onnx.ModelProto, base: Path, source: str) -> int:
    """Check that every external data file exists and is long enough, then load it; returns its size."""
    from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_model

    sizes: dict[Path, int] = {}
    for tensor in _external_tensors(proto):
        info = ExternalDataInfo(tensor)
        where = (base / info.location).resolve()
        if not where.is_file():
            raise ModelLoadError(f"{source}: external data file {info.location!r} for tensor "
                                 f"{tensor.name!r} is missing (expected at {where}); copy it next to the model")
        size = sizes.setdefault(where, where.stat().st_size)
        end = (info.offset or 0) + (info.length or 0)
        if info.length and end > size:
            raise ModelLoadError(f"{source}: external data file {info.location!r} is too short for tensor "
                                 f"{tensor.name!r} ({size} bytes, needs {end}): the file is truncated")
    try:
        load_external_data_for_model(proto, str(base))
    except Exception as exc:  # onnx raises several types here; all mean the same to the user
        raise ModelLoadError(f"{source}: cannot read its external data: {exc}") from exc
    return sum(sizes.values())


def load_model(model: str | os.PathLike[str] | bytes | onnx.ModelProto | LoadedModel) -> LoadedModel:
    """Load a model from a path, bytes, or a ModelProto; external data is read into memory.

    Raises ``ModelLoadError`` with one clear line when the input cannot be used.
    """
    if isinstance(model, LoadedModel):
        return model
    onnx = require_onnx()
    if isinstance(model, onnx.ModelProto):
        if _external_tensors(model):
            raise ModelLoadError("the ModelProto refers to external data that is not loaded; "
                                 "pass its path instead, or load it with onnx.load(path)")
        return LoadedModel(model, source="<ModelProto>", size_bytes=model.ByteSize())
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        proto = _parse(data, "<bytes>")
        if _external_tensors(proto):
            raise ModelLoadError("<bytes>: the model refers to external data files, which bytes cannot "
                                 "carry; pass the model's path instead")
        return LoadedModel(proto, source="<bytes>", size_bytes=len(data), _bytes=data)
    path = Path(os.fspath(model))
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ModelLoadError(f"{path}: is a directory, not an ONNX model file")
    data = path.read_bytes()
    proto = _parse(data, str(path))
    external = bool(_external_tensors(proto))
    extra = _load_external(proto, path.parent, str(path)) if external else 0
    return LoadedModel(proto, source=str(path), path=path, external_data=external,
                       size_bytes=len(data) + extra, _bytes=None if external else data)
