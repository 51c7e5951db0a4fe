"""`module:name` and `path/to/file.py:name` specs from the command line, resolved to Python objects.

One loader for every command that takes user code (`doctor --model/--batch/--loss`, `behaviour
--model`, `onnx compare --torch`), so they accept the same forms and fail with the same one-line
messages. A `.py` path is imported under its own name with its folder at the END of `sys.path`, so
it can import the modules next to it while installed packages still win (a stray `onnxruntime.py`
beside the model does not replace the real onnxruntime); `module:name` also finds modules in the
current directory, the same way. `name` may be dotted (`mymod:bot.answer`) to reach an attribute.

Loading a spec runs the user's code: it is trusted like a script passed to `python`. A `SystemExit`
from it (an `argparse` error, a stray `sys.exit()`) becomes `UserCodeExit`, a one-line bad-input
error naming the spec, instead of ending modeldebug silently with the user's exit code; wrap later
calls into user code with `calling(spec, flag)` for the same.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import BadInputError

__all__ = ["UserCodeExit", "calling", "load_object"]


class UserCodeExit(BadInputError):
    """The user's code raised `SystemExit` (called `sys.exit()`) while modeldebug was running it."""


@contextlib.contextmanager
def calling(spec: str, flag: str, what: str = "") -> Iterator[None]:
    """Run user code from `spec`: a `SystemExit` inside becomes `UserCodeExit` naming `flag` and `spec`."""
    try:
        yield
    except SystemExit as exc:
        code = exc.code
        shown = "" if code is None else repr(code) if not isinstance(code, int) else str(code)
        raise UserCodeExit(f"{flag} {spec!r}: {what or 'the code'} called sys.exit({shown}) (raised SystemExit); "
                           "user code must return or raise an exception, not exit the program") from None


def _on_path(folder: Path) -> None:
    # Appended, not prepended: the user's folder must not shadow installed packages (a local
    # `onnxruntime.py` or `torch.py` would otherwise replace the real one for all of modeldebug).
    entry = str(folder.resolve())
    if entry not in sys.path:
        sys.path.append(entry)


def _is_file(module: Any, path: Path) -> bool:
    return Path(getattr(module, "__file__", "") or "").resolve() == path.resolve()


def _module_name(path: Path) -> str:
    """The file's stem, unless that names another module (`onnx.py` must not replace the real onnx)."""
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None:
        return name if _is_file(existing, path) else f"modeldebug_user_{name}"
    if "." in name or not name.isidentifier():
        return name  # `import` cannot reach it, so it shadows nothing
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.origin or Path(found.origin).resolve() == path.resolve():
        return name
    return f"modeldebug_user_{name}"


def _import(spec: str, module: str, flag: str) -> Any:
    try:
        if module.endswith(".py") or "/" in module or "\\" in module:
            path = Path(module)
            if not path.is_file():
                raise BadInputError(f"{flag} {spec!r}: no such file {module!r}")
            _on_path(path.parent)
            name = _module_name(path)
            loaded = sys.modules.get(name)
            if loaded is not None and _is_file(loaded, path):
                return loaded
            mspec = importlib.util.spec_from_file_location(name, path)
            if mspec is None or mspec.loader is None:
                raise BadInputError(f"{flag} {spec!r}: cannot load {module!r} as Python")
            mod = importlib.util.module_from_spec(mspec)
            sys.modules[name] = mod  # dataclasses, pickling and `from name import x` next to it look here
            try:
                with calling(spec, flag, f"importing {module!r}"):
                    mspec.loader.exec_module(mod)
            except BaseException:
                sys.modules.pop(name, None)
                raise
            return mod
        _on_path(Path.cwd())
        with calling(spec, flag, f"importing {module!r}"):
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
