"""`ModelDebugCallback` for PyTorch Lightning.

```python
import lightning.pytorch as pl
from modeldebug.integrations.lightning import ModelDebugCallback

trainer = pl.Trainer(callbacks=[ModelDebugCallback()])
trainer.fit(model, train_loader)
# -> <trainer.log_dir>/modeldebug/{run.db, report.json, report.html}
```
It watches `fit` only: from `setup` to `teardown`, or to `on_exception` when training fails (the
crash is then in the report). In multi-process training (``strategy="ddp"``, ``"ddp_spawn"``) every
rank watches into its own record (``run.rank<N>.db``) and global rank zero writes one report over
all ranks, cross-rank rules included (docs/distributed.md). It
subclasses ``lightning.pytorch.Callback`` (``pytorch_lightning``'s when only that is installed);
a ``pytorch_lightning.Trainer`` takes it too (Lightning calls callback hooks by name).
"""

from __future__ import annotations

from ..config import AnalysisLevel, DebuggingConfig
from ..errors import MissingDependencyError
from .adapter import TrainerWatch, WatchResults

try:
    import lightning.pytorch as pl
except ImportError:
    try:
        import pytorch_lightning as pl  # type: ignore[no-redef]
    except ImportError:
        raise MissingDependencyError("modeldebug.integrations.lightning", "lightning") from None

__all__ = ["ModelDebugCallback"]


class ModelDebugCallback(WatchResults, pl.Callback):
    """Watches `Trainer.fit` and writes the diagnosis into the trainer's log directory.

    `level` / `config` choose what is captured (see `DebuggingConfig`); `dirname` is the folder
    inside ``trainer.log_dir``; `html=False` skips the HTML report. After `fit`, `report` holds the
    `modeldebug.Report` and `paths` the files written (record, json, html).
    """

    def __init__(self, *, level: AnalysisLevel | None = None, config: DebuggingConfig | None = None,
                 dirname: str = "modeldebug", html: bool = True) -> None:
        super().__init__()
        self._watch = TrainerWatch(level=level, config=config, dirname=dirname, html=html)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        log_dir = trainer.log_dir  # every rank must ask: Lightning broadcasts it
        self._watch.start(pl_module, log_dir or trainer.default_root_dir)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._watch.stop(None)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        # Lightning calls no teardown hook after a failure: this is where the hooks must go.
        self._watch.stop(exception)
