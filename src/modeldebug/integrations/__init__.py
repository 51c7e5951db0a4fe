"""Callbacks that watch training inside the frameworks people already use.

- `modeldebug.integrations.lightning.ModelDebugCallback`: PyTorch Lightning (``pip install 'modeldebug[lightning]'``);
- `modeldebug.integrations.transformers.ModelDebugCallback`: the Hugging Face ``Trainer``
  (``pip install 'modeldebug[transformers]'``).

Both are thin: they start a `modeldebug.watch` session when training begins, stop it when training
ends or fails, and write the run record and the report (JSON and HTML) into the trainer's log
directory, under ``modeldebug/``. Each module imports its framework only when it is imported.
"""

from __future__ import annotations

__all__: list[str] = []
