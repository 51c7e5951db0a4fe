"""`ModelDebugCallback` for the Hugging Face `Trainer`.

```python
from transformers import Trainer
from modeldebug.integrations.transformers import ModelDebugCallback

with ModelDebugCallback() as debug:              # `with` also covers a crash (see below)
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[debug])
    trainer.train()
# -> <args.output_dir>/modeldebug/{run.db, report.json, report.html}
```
It watches from ``on_train_begin`` to ``on_train_end``, on the main process; in a distributed job
(torchrun) on every rank, each into its own record (``run.rank<N>.db``), and
the main process writes one report over all ranks (docs/distributed.md). The Trainer has
no event for a failed training, so after an exception the watch would stay on: use the callback
as a context manager (as above), which stops it and puts the crash in the report, or call
`close()`; starting another training with the same callback also closes the old watch.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from ..config import AnalysisLevel, DebuggingConfig
from ..distributed.ranks import current_rank
from ..errors import MissingDependencyError
from .adapter import TrainerWatch, WatchResults

try:
    from transformers import TrainerCallback
except ImportError:
    raise MissingDependencyError("modeldebug.integrations.transformers", "transformers") from None

__all__ = ["ModelDebugCallback"]


class ModelDebugCallback(WatchResults, TrainerCallback):
    """Watches `Trainer.train` and writes the diagnosis into ``args.output_dir``.

    `level` / `config` choose what is captured (see `DebuggingConfig`); `dirname` is the folder
    inside the output directory; `html=False` skips the HTML report. After training, `report`
    holds the `modeldebug.Report` and `paths` the files written (record, json, html).
    """

    def __init__(self, *, level: AnalysisLevel | None = None, config: DebuggingConfig | None = None,
                 dirname: str = "modeldebug", html: bool = True) -> None:
        self._watch = TrainerWatch(level=level, config=config, dirname=dirname, html=html)

    @property
    def watching(self) -> bool:
        """True between the start of training and its end (or `close()`)."""
        return self._watch.active

    # -- Trainer events ------------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                       **kwargs: Any) -> None:
        if model is None:
            return
        if not getattr(state, "is_world_process_zero", True) and current_rank() is None:
            return  # a process of no known rank: the main process watches alone
        log_dir = getattr(args, "output_dir", None) or getattr(args, "logging_dir", None) or "."
        self._watch.start(model, log_dir, optimizer)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._watch.stop(None)

    # -- when training fails -----------------------------------------------------------------------------
    def close(self, exc: BaseException | None = None) -> None:
        """Stop watching now (after a failed `train()`), recording `exc` as the crash if given.

        Without `exc` the run is recorded as "interrupted": it ended without ``on_train_end``.
        """
        self._watch.stop(exc, ended=False)

    def __enter__(self) -> ModelDebugCallback:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._watch.stop(exc, ended=False)
