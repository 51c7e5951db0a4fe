"""Golden files: the inputs and the reference outputs of one comparison, saved to compare against later.

One .npz: ``input:NAME`` and ``output:NAME`` arrays (outputs in the model's order) and ``__meta__``
(a JSON string: what produced the outputs, when, with which modeldebug). Read without pickle.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInputError

__all__ = ["Golden", "read_golden", "write_golden"]


@dataclass
class Golden:
    """Saved inputs and reference outputs, by name, in the model's order."""

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)


def write_golden(path: str | Path, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray], *,
                 produced_by: str) -> str:
    """Save `inputs` and `outputs`; returns the path written."""
    from .. import __version__

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    meta = {"produced_by": produced_by, "saved": time.strftime("%Y-%m-%dT%H:%M:%S"), "modeldebug": __version__,
            "inputs": list(inputs), "outputs": list(outputs)}
    arrays = {f"input:{k}": _storable(v) for k, v in inputs.items()}
    arrays.update({f"output:{k}": _storable(v) for k, v in outputs.items()})
    with p.open("wb") as f:
        np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays)
    return str(p)


def _storable(value: Any) -> np.ndarray:
    """An array the file can hold without pickle: onnxruntime gives string tensors as object arrays."""
    arr = np.asarray(value)
    return arr.astype(str) if arr.dtype.kind == "O" else arr


def read_golden(path: str | Path) -> Golden:
    """Load a golden file; one clear error when it is not one."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"--golden {p}: no such file")
    try:
        with np.load(p, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError) as exc:
        raise BadInputError(f"--golden {p}: not a readable .npz file ({exc})") from exc
    if "__meta__" not in arrays:
        raise BadInputError(f"--golden {p}: not a golden file (no __meta__; write one with --save-golden)")
    try:
        meta = json.loads(str(arrays.pop("__meta__")))
    except ValueError as exc:
        raise BadInputError(f"--golden {p}: its __meta__ is not JSON ({exc})") from exc
    inputs = {k[6:]: v for k, v in arrays.items() if k.startswith("input:")}
    outputs = {k[7:]: v for k, v in arrays.items() if k.startswith("output:")}
    order = meta.get("outputs") if isinstance(meta, dict) else None
    if isinstance(order, list) and set(order) == set(outputs):
        outputs = {k: outputs[k] for k in order}
    if not outputs:
        raise BadInputError(f"--golden {p}: holds no outputs")
    return Golden(inputs, outputs, meta if isinstance(meta, dict) else {})
