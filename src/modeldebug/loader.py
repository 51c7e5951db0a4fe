"""`module:name` and `path/to/file.py:name` specs from the command line, resolved to Python objects.

One loader for every command that takes user code (`doctor --model/--batch/--loss`, `behaviour
--model`, `onnx compare --torch`), so they accept the same forms and fail with the same one-line
messages. A `.py` path is imported under its own name with its folder on `sys.path`, so it can
import the modules next to it; `module:name` also finds modules in the current directory.
`name` may be dotted (`mymod:bot.answer`) to reach an attribute of an object.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from .errors import BadInputError

__all__ = ["load_object"]


def _on_path(folder: Path) -> None:
    entry = str(folder.resolve())
    if entry not in sys.path:
        sys.path.insert(0, entry)


def _import(spec: str, module: str, flag: str) -> Any:
    try:
        if module.endswith(".py") or "/" in module or "\\" in module:
            path = Path(module)
            if not path.is_file():
                raise BadInputError(f"{flag} {spec!r}: no such file {module!r}")
            _on_path(path.parent)
            name = path.stem
            loaded = sys.modules.get(name)
            if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == path.resolve():
                return loaded
            mspec = importlib.util.spec_from_file_location(name, path)
            if mspec is None or mspec.loader is None:
                raise BadInputError(f"{flag} {spec!r}: cannot load {module!r} as Python")
            mod = importlib.util.module_from_spec(mspec)
            sys.modules[name] = mod  # dataclasses, pickling and `from name import x` next to it look here
            try:
                mspec.loader.exec_module(mod)
            except BaseException:
                sys.modules.pop(name, None)
                raise
            return mod
        _on_path(Path.cwd())
        return importlib.import_module(module)
    except BadInputError:
        raise
    except ModuleNotFoundError as exc:
        raise BadInputError(f"{flag} {spec!r}: cannot import {module!r} ({exc}); run from the folder that contains "
                            "it, or put it on PYTHONPATH") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise BadInputError(f"{flag} {spec!r}: importing {module!r} raised {type(exc).__name__}: {exc}") from None


def load_object(spec: str, flag: str) -> Any:
    """The object `spec` names; `flag` (e.g. "--model") starts every error line."""
    module, sep, attr = spec.rpartition(":")
    if not sep or not module or not attr:
        raise BadInputError(f"{flag} {spec!r}: expected MODULE:NAME, e.g. mymodels:build or nets.py:build")
    obj: Any = _import(spec, module, flag)
    owner: Any = None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BadInputError(f"{flag} {spec!r}: {module!r} has no attribute {attr!r}")
        owner, obj = obj, getattr(obj, part)
    if inspect.isclass(owner) and inspect.isfunction(obj) and "self" in inspect.signature(obj).parameters:
        raise BadInputError(f"{flag} {spec!r}: {attr!r} is a method of class {owner.__name__}, not bound to an "
                            f"instance: create one in the module (bot = {owner.__name__}()) and name "
                            f"{module}:bot.{attr.rsplit('.', 1)[-1]}")
    return obj
