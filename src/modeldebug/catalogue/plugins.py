"""Users' own rules: the same interface our rules use, from a package or a file.

A plugin is a module that declares its specs and defines its detectors:

```python
from modeldebug.plugins import Option, Rule, Spec, declare

declare(Spec(code="ACME001", kind="loss_plateau_early", category="loss", family="plugin", ...))

class LossPlateauEarly(Rule):
    code = "ACME001"
    def check(self, ctx): ...
```

It is loaded from the `modeldebug.rules` entry point group of any installed package, or from a
file with `--rules path/to/rules.py` (`load_rules(path)` in code). Its codes cannot collide with
ours: a plugin code may not reuse a built-in code nor any built-in family prefix.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType

from ..errors import BadInputError
from . import CATALOGUE, Spec

__all__ = ["declare", "load_entry_points", "load_rules"]

log = logging.getLogger("modeldebug")

#: Family prefixes modeldebug owns (today's and reserved ones); user codes must use their own.
_BUILTIN_PREFIXES = frozenset(re.match(r"[A-Z]+", s.code).group(0) for s in CATALOGUE  # type: ignore[union-attr]
                              if s.source == "modeldebug")
_loaded_entry_points = False
_loaded_files: dict[Path, ModuleType] = {}


def declare(spec: Spec) -> Spec:
    """Add a plugin's spec to the catalogue (before the class that detects it is defined)."""
    prefix = re.match(r"[A-Z]+", spec.code)
    if prefix and prefix.group(0) in _BUILTIN_PREFIXES:
        raise BadInputError(f"rule code {spec.code}: the prefix {prefix.group(0)} belongs to modeldebug's own "
                            f"rules; give your rules a prefix of your own (e.g. ACME001)")
    source = spec.source if spec.source != "modeldebug" else sys._getframe(1).f_globals.get("__name__", "plugin")
    return CATALOGUE.add(Spec(**{**spec.__dict__, "family": "plugin", "source": source}))


def load_rules(path: str | Path) -> ModuleType:
    """Load the rules declared in the Python file at `path` (once per file)."""
    p = Path(path)
    if p.suffix != ".py" or not p.is_file():
        raise BadInputError(f"--rules {str(path)!r}: no Python file there (a file of rules, e.g. my_rules.py)")
    key = p.resolve()
    if key in _loaded_files:
        return _loaded_files[key]
    name = f"modeldebug_user_rules_{len(_loaded_files)}_{re.sub(r'[^0-9a-zA-Z_]', '_', p.stem)}"
    spec = importlib.util.spec_from_file_location(name, p)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BadInputError as exc:
        sys.modules.pop(name, None)
        raise BadInputError(f"--rules {str(path)!r}: {exc.message}") from None
    except Exception as exc:
        sys.modules.pop(name, None)
        raise BadInputError(f"--rules {str(path)!r} failed to load: {type(exc).__name__}: {exc}") from None
    _loaded_files[key] = module
    return module


def load_entry_points() -> None:
    """Load every installed package's `modeldebug.rules` entry point (once); a broken one is skipped
    with a warning, so one bad plugin never stops modeldebug."""
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for ep in metadata.entry_points(group="modeldebug.rules"):
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001 - a third party's error must not take modeldebug down
            log.warning("modeldebug: the rules plugin %r (%s) could not be loaded and is skipped: %s: %s",
                        ep.name, ep.value, type(exc).__name__, exc)
