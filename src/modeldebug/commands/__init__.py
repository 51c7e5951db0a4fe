"""Subcommands beyond the core ones (`run`, `report`, `demo`, `rules`, `explain`), one module each.

A command module defines ``add(sub)``, which registers its parser on the ``modeldebug`` subparsers
and sets ``handler=fn`` (``fn(args) -> exit code``) in its defaults. Modules are found by listing
this package, so adding a command touches no other file. Keep imports at module level cheap: load
PyTorch, onnx or DSPy inside the handler, so `modeldebug --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add every command module's parser to `sub`, in name order."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}").add(sub)
