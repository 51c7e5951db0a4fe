"""Every command's output paths, checked before any work: an output must never replace an input.

`modeldebug onnx inspect model.onnx --json model.onnx` replaced the model with its own report, and
`modeldebug monitor log.jsonl --json log.jsonl` the production log. One check, run by `cli.main` for
every command before it starts, refuses an output that is an input, another output, or a model,
checkpoint, record or script of the user's, and one whose folder is missing (which would otherwise
fail only after the work)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import BadInputError

__all__ = ["check_paths"]

# argparse destinations that name files a command reads (some also take MODULE:CALLABLE: only existing
# files count) ...
_INPUTS = ("record", "script", "model", "log", "baseline", "tests", "bundle", "reference", "golden", "inputs",
           "facts", "safety", "a", "b", "runs", "against", "journal")
# ... and those it writes (files; `--out` of `export` and `--repro`/`--viz` are folders, checked only
# against the other outputs)
_OUTPUTS = ("db", "json", "html", "out", "output", "save_golden")
_FOLDERS = ("repro", "viz")
# what a report must never be written over, whoever's it is
_PRECIOUS = (".py", ".db", ".onnx", ".pt", ".pth", ".ckpt", ".safetensors", ".npz", ".jsonl", ".bin")
_STREAMS = ("-", ":memory:")
# what an output may replace: an earlier one of its own kind (a golden file, a baseline, invariants)
_OWN = {"save_golden": (".npz",), "out": (".json",), "output": (".json",)}


def _values(args: argparse.Namespace, names: tuple[str, ...]) -> list[tuple[str, str]]:
    found = []
    for name in names:
        value = getattr(args, name, None)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and v and v not in _STREAMS:
                found.append((name, v))
    return found


def _flag(name: str) -> str:
    return {"record": "the run record", "script": "the script", "a": "run A", "b": "run B", "runs": "the run",
            "model": "the model", "log": "the log", "baseline": "the baseline", "tests": "the tests file",
            "bundle": "the bundle", "reference": "the reference model"}.get(name, f"--{name.replace('_', '-')}")


def check_paths(args: argparse.Namespace) -> None:
    """Raise BadInputError (one line: the value, the file it would replace) for an unsafe output."""
    inputs = {Path(v).resolve(): f"{_flag(n)} {v!r}" for n, v in _values(args, _INPUTS) if Path(v).is_file()}
    seen: dict[Path, str] = {}
    for name, value in _values(args, _OUTPUTS) + _values(args, _FOLDERS):
        path = Path(value)
        key = path.resolve()
        flag = _flag(name)
        folder = name in _FOLDERS or name == "out" and getattr(args, "command", None) == "export"
        if key in inputs and not folder:  # (a folder given as a file: the command says so itself)
            raise BadInputError(f"{flag} {value!r} is the same file as {inputs[key]}: writing it would destroy "
                                "that input; give the output a new file name")
        if key in seen:
            raise BadInputError(f"{flag} {value!r} is the same file as {seen[key]}: give each output its own file name")
        seen[key] = f"{flag} {value!r}"
        if folder:
            continue
        if value.endswith(("/", os.sep)):
            raise BadInputError(f"{flag} {value!r} names a folder: give a file name, e.g. {path / 'report.json'}")
        if path.is_dir():
            raise BadInputError(f"{flag} {value!r} is a directory: give a file name, e.g. {path / 'report.json'}")
        if not path.parent.is_dir():
            what = "is a file, not a folder" if path.parent.exists() else "does not exist: create it first"
            raise BadInputError(f"{flag} {value!r}: the folder {str(path.parent)!r} {what}")
        suffix = path.suffix.lower()
        if name != "db" and path.is_file() and suffix in _PRECIOUS and suffix not in _OWN.get(name, ()):
            raise BadInputError(f"{flag} {value!r} would overwrite a {path.suffix} file with "
                                f"{'a report' if name in ('json', 'html') else 'this output'}: give a new file name")
