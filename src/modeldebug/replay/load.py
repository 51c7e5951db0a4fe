"""Read a repro bundle and rebuild what it cannot hold: the model's code and the optimizer object.

A bundle holds tensors and plain values only (``torch.load(weights_only=True)``), never code. The
model is built by a factory, then given the bundle's state:

- ``--model MODULE:CALLABLE`` (``train.py:make_model`` or ``mypkg.models:Net``): called with no
  arguments; a ``.py`` path is imported as a module (its top level runs).
- Otherwise the script is imported, but only when importing it cannot train: its top level holds
  nothing but imports, definitions, constant assignments and an ``if __name__ == "__main__":``
  block. A function of it named ``make_model``, ``build_model``, ``create_model``, ``get_model`` or
  ``model_fn`` that needs no arguments builds the model.
- Otherwise the model's class, called with no arguments: from its own module when that is not the
  script (a torch container such as ``nn.Sequential`` is no use empty), else from the script.

The optimizer is rebuilt when its class is one of ``torch.optim``'s: its parameter groups name the
model's parameters, and its state is loaded with ``load_state_dict``.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..capture.bundle import BUNDLE_FORMAT, BUNDLE_VERSION
from ..errors import BadInputError

__all__ = ["FACTORY_NAMES", "build_model", "build_optimizer", "import_safe", "load_bundle"]

FACTORY_NAMES = ("make_model", "build_model", "create_model", "get_model", "model_fn")


def load_bundle(path: str | Path) -> dict[str, Any]:
    """The bundle at `path`, checked; BadInputError (one line) for anything else."""
    p = Path(path)
    if p.is_dir():
        raise BadInputError(f"{str(path)!r} is a directory: give the RUN.bundle.pt file a watched run saved")
    if not p.is_file():
        raise BadInputError(f"no bundle at {str(path)!r}: a run saves RUN.bundle.pt next to its record RUN.db")
    try:
        bundle = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is bad input
        why = _unreadable(p, exc)
        raise BadInputError(f"{str(path)!r} is not a readable modeldebug repro bundle ({why}): "
                            "give the RUN.bundle.pt a watched run saved, undamaged") from None
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        raise BadInputError(f"{str(path)!r} is a torch file but not a modeldebug repro bundle: "
                            "give the RUN.bundle.pt a watched run saved")
    if bundle.get("version") != BUNDLE_VERSION:
        raise BadInputError(f"{str(path)!r} is a version {bundle.get('version')!r} bundle; this modeldebug "
                            f"reads version {BUNDLE_VERSION}: replay it with the modeldebug that saved it")
    why = _damage(bundle)
    if why is not None:
        raise BadInputError(f"{str(path)!r} is a damaged repro bundle ({why}): save it again with a new run")
    return bundle


def _unreadable(p: Path, exc: Exception) -> str:
    """Why torch could not read `p`, from what the file is (torch's own message says "101" for a text file)."""
    import zipfile

    from ..record.lock import is_record

    try:
        with p.open("rb") as f:
            head = f.read(16)
    except OSError as err:
        return f"it cannot be read: {err.strerror or err}"
    if not head:
        return "it is empty: an incomplete copy or download"
    if head == b"SQLite format 3\x00":
        return ("it is a run record, not its bundle: the bundle is the RUN.bundle.pt saved beside it"
                if is_record(p) else "it is an SQLite database, not a file torch.save wrote")
    if head.startswith(b"PK\x03\x04") and not zipfile.is_zipfile(p):
        return "it is truncated: an incomplete copy or download"  # a torch file's zip directory, at its end, is missing
    if not head.startswith(b"PK\x03\x04"):
        return "it is not a file torch.save wrote"
    text = str(exc).strip()
    if text.startswith("Weights only load failed"):
        return "it holds pickled Python objects, such as a whole saved model; a bundle holds tensors only"
    return text.splitlines()[0].split(". ")[0][:160] if text else type(exc).__name__


def _damage(b: dict[str, Any]) -> str | None:
    """What is missing or malformed in a bundle's parts that replay reads (None: nothing)."""
    for key in ("trigger", "model", "rng", "expected", "script"):
        if not isinstance(b.get(key), dict):
            return f"no {key!r} part"
    t = b["trigger"]
    if t.get("kind") not in ("nonfinite_loss", "nonfinite_gradient", "loss_spike", "crash") or \
            not isinstance(t.get("step"), int):
        return "its trigger names no known kind and step"
    rng = b["rng"].get("torch")
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8:
        return "no random state of torch"
    why = _bad_rng(b["rng"])
    if why is not None:
        return why
    if not isinstance(b["model"].get("qualname"), str):
        return "no model class"
    batch = b.get("batch")
    if batch is not None and not (isinstance(batch, dict) and isinstance(batch.get("args"), (tuple, list))
                                  and isinstance(batch.get("kwargs"), dict)):
        return "a malformed batch"
    loss = b["expected"].get("loss")
    if loss is not None and not isinstance(loss, torch.Tensor):
        return "a malformed expected loss"
    if b.get("with_state"):
        state = b.get("model_state")
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            return "a malformed model state"
        grads = b.get("grads", {})
        if not isinstance(grads, dict) or not all(isinstance(v, torch.Tensor) for v in grads.values()):
            return "malformed gradients"
        if b.get("optimizer") and not _optimizer_ok(b["optimizer"]):
            return "a malformed optimizer state"
    return None


def _bad_rng(rng: dict[str, Any]) -> str | None:
    """What is wrong with the bundle's random states, each tried on a generator of its own (never the global ones)."""
    import random

    import numpy as np

    try:
        torch.Generator().set_state(rng["torch"])
    except (RuntimeError, TypeError, ValueError):
        return f"a random state of torch of {rng['torch'].numel()} bytes, not one torch's generator takes"
    npr = rng.get("numpy")
    if npr:
        try:
            np.random.RandomState().set_state((npr["name"], npr["keys"].numpy().astype(np.uint32), npr["pos"],
                                               npr["has_gauss"], npr["gauss"]))
        except Exception:  # noqa: BLE001 - a missing key, a wrong type or size: all damage
            return "a malformed random state of numpy"
    py = rng.get("python")
    if py:
        try:
            random.Random().setstate((py[0], tuple(py[1]), py[2]))
        except Exception:  # noqa: BLE001
            return "a malformed random state of Python"
    return None


def _optimizer_ok(info: Any) -> bool:
    """An optimizer part `build_optimizer` can read: its class, its state dict's groups and state, and
    the parameter names of each group."""
    if not isinstance(info, dict) or not isinstance(info.get("class"), str):
        return False
    state, names = info.get("state"), info.get("param_names")
    if not isinstance(state, dict) or not isinstance(state.get("state"), dict):
        return False
    groups = state.get("param_groups")
    return (isinstance(groups, list) and all(isinstance(g, dict) for g in groups) and isinstance(names, list)
            and len(names) == len(groups) and all(isinstance(n, list) and all(isinstance(k, str) for k in n)
                                                  for n in names))


def import_safe(source: str) -> str | None:
    """None when importing this script runs no training; else the first statement that would run."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return f"it does not parse (line {exc.lineno})"
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and _constant(node.value):
            continue
        if isinstance(node, ast.If) and _is_main_guard(node.test):
            continue
        return f"line {node.lineno}: {ast.unparse(node).splitlines()[0][:80]}"
    return None


def _constant(node: ast.AST | None) -> bool:
    if node is None or isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_constant(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(_constant(k) and _constant(v) for k, v in zip(node.keys, node.values))
    if isinstance(node, ast.UnaryOp):
        return _constant(node.operand)
    return isinstance(node, (ast.Name, ast.Attribute))  # an alias: `Act = nn.ReLU`


def _is_main_guard(test: ast.AST) -> bool:
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def _import_file(path: Path) -> Any:
    name = f"_modeldebug_replay_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BadInputError(f"cannot import {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise BadInputError(f"importing {str(path)!r} failed ({type(exc).__name__}: {exc})") from None
    finally:
        sys.path.pop(0)
    return module


def _resolve(spec: str) -> Any:
    """The callable a ``MODULE:CALLABLE`` names (the loader every command shares: a module in the current
    folder is found, a .py path is imported under its own name)."""
    from ..loader import load_object

    if ":" not in spec:
        raise BadInputError(f"--model {spec!r}: write MODULE:CALLABLE, e.g. train.py:make_model or mypkg.models:Net")
    target = load_object(spec, "--model")
    if not callable(target):
        raise BadInputError(f"--model {spec!r}: {spec.rpartition(':')[2]!r} is not callable")
    return target


def _no_args(fn: Any) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               for p in sig.parameters.values())


def _default_factory(bundle: dict[str, Any]) -> tuple[Any, str]:
    """A factory function of the script (when importing it cannot train), else the model's class."""
    info = bundle["model"]
    module, qualname = str(info.get("module")), str(info.get("qualname"))
    hint = "pass --model MODULE:CALLABLE, a function that builds the model (e.g. train.py:make_model)"
    script = (bundle.get("script") or {}).get("path")
    mod = unsafe = None
    if script and Path(script).is_file():
        unsafe = import_safe(Path(script).read_text(errors="replace"))
        if unsafe is None:
            mod = _import_file(Path(script))
            for name in FACTORY_NAMES:
                fn = getattr(mod, name, None)
                if callable(fn) and _no_args(fn):
                    return fn, f"{Path(script).name}:{name}"
    if module != "__main__":
        try:
            cls = importlib.import_module(module)
            for part in qualname.split("."):
                cls = getattr(cls, part)
            if not qualname.startswith(("Sequential", "ModuleList", "ModuleDict")) or not module.startswith("torch."):
                return cls, f"{module}.{qualname}"
        except Exception:  # noqa: BLE001, S110 - then try the script
            pass  # a class defined in the script under another name: try the script
    if mod is None:
        built = f"is a {module}.{qualname} that {script!r} builds" if module.startswith("torch.") else \
            f"is a {qualname} that {script!r} defines"
        where = f"importing {script} would run its training ({unsafe})" if unsafe else \
            f"the model {built}, and that script is not here"
        if unsafe:  # its own factory cannot be imported either: name a module that does not train
            hint = ("pass --model MODULE:CALLABLE, a function that builds the model in a module that does not "
                    f"train when imported (e.g. models.py:make_model), or put {Path(script).name}'s training "
                    "under `if __name__ == \"__main__\":`")
        raise BadInputError(f"cannot build the model: {where}: {hint}")
    cls = mod
    for part in qualname.split("."):
        cls = getattr(cls, part, None)
    if cls is None:
        raise BadInputError(f"{script} defines no {qualname} and no model factory ({', '.join(FACTORY_NAMES)}): {hint}")
    return cls, f"{Path(script).name}:{qualname}"


def build_model(bundle: dict[str, Any], spec: str | None) -> tuple[nn.Module, str]:
    """A fresh model with the bundle's state, and how it was built (for the report)."""
    factory, how = (_resolve(spec), spec) if spec else _default_factory(bundle)
    from ..loader import calling

    try:
        with calling(how, "--model", f"{how}()"):
            model = factory()
    except BadInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's code
        raise BadInputError(f"building the model with {how}() failed ({type(exc).__name__}: {exc}): pass --model "
                            "MODULE:CALLABLE, a function that builds it with no arguments") from None
    if not isinstance(model, nn.Module):
        raise BadInputError(f"{how}() returned a {type(model).__name__}, not a torch.nn.Module")
    state = bundle.get("model_state")
    if state is not None:
        own = model.state_dict()
        if state and all(k.startswith("module.") for k in state) and not any(k.startswith("module.") for k in own):
            state = {k[len("module."):]: v for k, v in state.items()}  # saved through a DDP/DataParallel wrapper
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # a tensor of another shape: another architecture or width
            first = next((ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()), str(exc).strip())
            raise BadInputError(f"the model {how}() built does not match the bundle's state ({first[:200]}): "
                                "build the same architecture with --model") from None
        if result.missing_keys or result.unexpected_keys:
            parts = []
            if result.missing_keys:
                parts.append(f"missing {', '.join(result.missing_keys[:4])}")
            if result.unexpected_keys:
                parts.append(f"unexpected {', '.join(result.unexpected_keys[:4])}")
            raise BadInputError(f"the model {how}() built does not match the bundle's state ({'; '.join(parts)}): "
                                "build the same architecture with --model")
    return model, how


def build_optimizer(bundle: dict[str, Any], model: nn.Module) -> tuple[torch.optim.Optimizer | None, str]:
    """The optimizer of the step, rebuilt with its state; (None, why) when it cannot be."""
    info = bundle.get("optimizer")
    if not info:
        return None, "no optimizer state in the bundle: the step is replayed without its update"
    path = str(info.get("class", ""))
    mod, _, name = path.rpartition(".")
    cls = getattr(torch.optim, name, None)
    if not mod.startswith("torch.optim") or not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        return None, f"{path} is not a torch.optim optimizer: the step is replayed without its update"
    closure = inspect.signature(cls.step).parameters.get("closure")
    if closure is not None and closure.default is inspect.Parameter.empty:
        return None, (f"{name}.step() needs the script's closure, which a bundle cannot hold: the step is replayed "
                      "without its update")
    params = dict(model.named_parameters())
    state = info["state"]
    groups = []
    for g, names in zip(state["param_groups"], info["param_names"]):
        missing = [n for n in names if n not in params]
        if missing:
            return None, f"the optimizer steps {missing[0]}, which the model lacks: replayed without the update"
        groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": [params[n] for n in names]})
    try:
        opt = cls(groups)
        opt.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - the optimizer refused its state
        return None, f"{name} could not be rebuilt ({type(exc).__name__}: {exc}): replayed without the update"
    return opt, name
