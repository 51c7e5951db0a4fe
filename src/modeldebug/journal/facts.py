"""What identifies a run: the facts the journal keeps and `modeldebug diff` compares.

Two sources. `record_facts` reads a run record (so it works on any record, from any machine):
hyperparameters (each optimizer's type and parameter groups, as the record's `optimizer` events
hold them; the batch size from the first input's shape), versions, device, data (input and target
shapes, dtypes and scale), steps and outcome. `live_facts` asks the process that just trained, at
the end of the run: the git state, the script's hash and text, torch's seed, the versions of the
libraries the script loaded. Neither ever raises for a missing piece: it is left out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from .git import git_state

__all__ = ["data_fingerprint", "live_facts", "record_facts"]

#: torch's default generator starts from a random 64-bit seed; a script's `manual_seed(n)` is nearly
#: always smaller than this.
USER_SEED_LIMIT = 2**32
_LIBRARIES = ("numpy", "torch", "torchvision", "torchaudio", "transformers", "accelerate", "datasets",
              "lightning", "pytorch_lightning", "timm", "peft", "deepspeed", "scipy", "sklearn", "jax")
_MAX_SOURCE = 256 * 1024


def _median(values: list[float]) -> float | None:
    finite = sorted(v for v in values if isinstance(v, (int, float)) and math.isfinite(v))
    if not finite:
        return None
    mid = len(finite) // 2
    return finite[mid] if len(finite) % 2 else (finite[mid - 1] + finite[mid]) / 2


def _hyperparameters(record: Any) -> dict[str, Any]:
    optimizers = []
    for event in record.events("optimizer"):
        groups = []
        for g in event.data.get("groups", []):
            if isinstance(g, dict):
                groups.append({k: v for k, v in g.items() if k != "params"} | {"params": list(g.get("params", []))})
        optimizers.append({"type": event.data.get("type"), "groups": groups})
    hyper: dict[str, Any] = {"optimizers": optimizers}
    batch = None
    for e in record.entities("input"):
        shape = e.info.get("shape")
        if isinstance(shape, list) and shape and isinstance(shape[0], int):
            batch = shape[0]
            break
    if batch is None:
        for e in record.entities("loss"):
            shape = e.info.get("input_shape")
            if e.info.get("phase", "train") == "train" and isinstance(shape, list) and shape:
                batch = shape[0]
                break
    hyper["batch_size"] = batch
    return hyper


def _data(record: Any) -> dict[str, Any]:
    inputs = []
    for e in record.entities("input"):
        shape = e.info.get("shape") if isinstance(e.info.get("shape"), list) else None
        item: dict[str, Any] = {"name": e.name, "dtype": e.type, "shape": shape[1:] if shape else None}
        for stat in ("mean", "std"):
            value = _median(record.series(e.name, stat, kind="input").values.tolist())
            item[stat] = None if value is None else float(f"{value:.4g}")
        inputs.append(item)
    targets = []
    for e in record.entities("loss"):
        if e.info.get("phase", "train") != "train":
            continue
        shape = e.info.get("target_shape")
        item = {"loss": e.name, "target_dtype": e.info.get("target_dtype"),
                "target_shape": shape[1:] if isinstance(shape, list) else None}
        hists = record.histograms(e.name, "loss")
        if hists:
            item["classes"] = max(0, len(hists[0][3]) - 1)
        targets.append(item)
    return {"inputs": inputs, "targets": targets}


def data_fingerprint(data: dict[str, Any]) -> str | None:
    """A short hash of what identifies the data set's form (shapes, dtypes, classes), not its sampling."""
    ident = {"inputs": [(i.get("shape"), i.get("dtype")) for i in data.get("inputs", [])],
             "targets": [(t.get("target_shape"), t.get("target_dtype"), t.get("classes")) for t in data.get("targets", [])]}
    if not ident["inputs"] and not ident["targets"]:
        return None
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


def record_facts(record: Any) -> dict[str, Any]:
    """The facts a run record holds (see the module's docstring); missing pieces are left out."""
    meta = record.meta
    data = _data(record)
    return {
        "script": meta.get("script"), "argv": meta.get("argv"), "cwd": meta.get("cwd"), "mode": meta.get("mode"),
        "started": meta.get("started") or meta.get("created"), "duration_s": meta.get("duration_s"),
        "steps": record.n_steps, "status": meta.get("status"), "exit_code": meta.get("exit_code"),
        "level": meta.get("level"), "device": meta.get("device"), "models": meta.get("models"),
        "versions": {k: meta.get(k) for k in ("python", "torch", "modeldebug", "platform") if meta.get(k)},
        "hyperparameters": _hyperparameters(record),
        "data": data | {"fingerprint": data_fingerprint(data)},
    }


def _script_file(script: str | None) -> Path | None:
    if not script:
        return None
    p = Path(script)
    return p if p.is_file() else None


def live_facts(script: str | None) -> tuple[dict[str, Any], bytes | None]:
    """(facts, script source) of the process that just ran `script` (None: a `watch()` session's
    program, `sys.argv[0]`). The source is kept only for scripts up to 256 KiB."""
    path = _script_file(script) or _script_file(sys.argv[0] if sys.argv else None)
    facts: dict[str, Any] = {}
    source = None
    if path is not None:
        try:
            raw = path.read_bytes()
        except OSError:
            raw = None
        if raw is not None:
            facts["script_sha256"] = hashlib.sha256(raw).hexdigest()
            source = raw if len(raw) <= _MAX_SOURCE else None
    facts["git"] = git_state(path.resolve().parent if path is not None else Path(os.getcwd()))
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):  # a torch without a default generator: no seed to tell
            seed = int(torch.initial_seed())
            facts["seed"] = {"torch": seed, "set_by_script": seed < USER_SEED_LIMIT}
    libs = {}
    for name in _LIBRARIES:
        mod = sys.modules.get(name)
        version = getattr(mod, "__version__", None) if mod is not None else None
        if isinstance(version, str):
            libs[name] = version
    facts["libraries"] = libs
    return facts, source
