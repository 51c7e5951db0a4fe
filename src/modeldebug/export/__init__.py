"""Export a run's findings and key series to the tools people already use.

```python
from modeldebug.export import to_mlflow, to_parquet, to_tensorboard, to_wandb

to_tensorboard("run.db", "tb/")                            # event files: findings as text + series
to_mlflow("run.db", tracking_uri="sqlite:///mlflow.db")    # metrics, findings JSON, HTML report
to_wandb("run.db", dir="wandb-out")                        # an offline W&B run (sync it later)
to_parquet("run.db", "tables/")                            # steps, stats (long), findings
```
Every exporter takes a run record path, a `Record`, a `Report` or a `WatchSession`, writes only
what is weird (the series behind each finding) plus a few summary series (loss, gradient norm,
learning rate, validation loss), and imports its library only when called: a missing one raises
`MissingDependencyError` naming the `pip install 'modeldebug[extra]'` that fixes it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .mlflow import to_mlflow
    from .source import Exportable, load
    from .tables import to_csv, to_parquet
    from .tensorboard import to_tensorboard
    from .wandb import to_wandb

_LAZY = {
    "Exportable": "source", "load": "source",
    "to_csv": "tables", "to_parquet": "tables",
    "to_mlflow": "mlflow", "to_tensorboard": "tensorboard", "to_wandb": "wandb",
}

__all__ = ["Exportable", "load", "to_csv", "to_mlflow", "to_parquet", "to_tensorboard", "to_wandb"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'modeldebug.export' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
