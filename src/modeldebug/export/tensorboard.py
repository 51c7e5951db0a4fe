"""TensorBoard event files: the findings as text, the summary series and the weird ones as scalars.

```python
from modeldebug.export import to_tensorboard
to_tensorboard("run.db", "runs/modeldebug")   # then: tensorboard --logdir runs
```
Tags: ``modeldebug/findings`` (Text tab: a ranked table and each finding with its fix),
``modeldebug/loss``, ``modeldebug/grad_norm``, ``modeldebug/lr``, ``modeldebug/val_loss``, and
``modeldebug/weird/<CODE>/<where>/<stat>`` for the statistics that show each finding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError
from .source import PREFIX, load

__all__ = ["to_tensorboard"]


def to_tensorboard(source: Any, log_dir: str | Path) -> Path:
    """Write an event file into `log_dir` (created if needed); returns `log_dir`."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # raises ImportError without tensorboard
    except ImportError:
        raise MissingDependencyError("TensorBoard export", "tensorboard") from None
    run = load(source)
    folder = Path(log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    all_series = run.all_series()
    last = max([0, *(int(s.steps[-1]) for s in all_series.values() if len(s))])
    writer = SummaryWriter(log_dir=str(folder))
    try:
        writer.add_text(f"{PREFIX}/findings", run.findings_markdown(), global_step=last)
        for tag, series in all_series.items():
            for step, value in zip(series.steps.tolist(), series.values.tolist()):
                writer.add_scalar(tag, value, global_step=step)
        for tag, value in run.scalars().items():
            writer.add_scalar(f"{PREFIX}/summary/{tag.split('/', 1)[1]}", value, global_step=last)
    finally:
        writer.close()
    return folder
