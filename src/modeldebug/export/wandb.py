"""Weights & Biases, offline by default: series, summary numbers, a findings table and the reports as files.

```python
from modeldebug.export import to_wandb
run_dir = to_wandb("run.db", dir="wandb-out")   # wandb-out/wandb/offline-run-.../; `wandb sync` it later
to_wandb(session, run=wandb.run)                 # or into your own run
```
What it logs: the summary and weird series against their own step axis ``modeldebug/step`` (so
logging into a run that is already further along works), the summary numbers in the run summary,
``modeldebug/findings_table`` as a ``wandb.Table``, and ``modeldebug/report.json``, ``report.html``
and ``findings.md`` in the run's files. A run this function starts is offline unless
``mode="online"`` is asked for; W&B's own error reporting is off for it unless
``WANDB_ERROR_REPORTING`` says otherwise, so nothing leaves the machine.

W&B's service process writes the run's ``.wandb`` log in the background, after ``finish()``
returns; it is complete once that service stops (at exit, or ``wandb.teardown()``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

from ..errors import BadInputError, MissingDependencyError
from .source import PREFIX, Exportable, load

__all__ = ["to_wandb"]

_STEP = f"{PREFIX}/step"


@contextmanager
def _no_error_reports() -> Iterator[None]:
    """W&B reports its own errors over the network by default; not from an offline export."""
    if "WANDB_ERROR_REPORTING" in os.environ:
        yield
        return
    os.environ["WANDB_ERROR_REPORTING"] = "false"
    try:
        yield
    finally:
        os.environ.pop("WANDB_ERROR_REPORTING", None)


def _rows(run: Exportable) -> list[tuple[int, dict[str, float]]]:
    """All series merged into one row per step, in step order (W&B wants steps increasing)."""
    by_step: dict[int, dict[str, float]] = {}
    for tag, series in run.all_series().items():
        for step, value in zip(series.steps.tolist(), series.values.tolist()):
            by_step.setdefault(int(step), {})[tag] = float(value)
    return sorted(by_step.items())


def _log(wb: Any, wandb: Any, run: Exportable) -> None:
    wb.define_metric(_STEP, hidden=True)
    wb.define_metric(f"{PREFIX}/*", step_metric=_STEP)
    last = 0
    for step, row in _rows(run):
        wb.log({**row, _STEP: step})
        last = step
    columns = ["rank", "severity", "code", "kind", "location", "step", "title", "fix"]
    data = []
    for i, f in enumerate(run.report.findings, 1):
        fix = next((r.implementation or r.description for r in f.recommendations if r.type == "fix"), "")
        data.append([i, f.severity, f.code, f.kind, f.location or "", -1 if f.step is None else f.step, f.title, fix])
    wb.log({f"{PREFIX}/findings_table": wandb.Table(columns=columns, data=data), _STEP: last})
    wb.summary.update(run.scalars() | {f"{PREFIX}/worst": run.report.worst() or "none"})
    files = Path(wb.dir) / PREFIX  # files in the run's directory travel with it (wandb sync)
    files.mkdir(parents=True, exist_ok=True)
    run.report.to_json(files / "report.json")
    run.report.to_html(files / "report.html")
    (files / "findings.md").write_text(run.findings_markdown() + "\n", encoding="utf-8")


def to_wandb(source: Any, *, dir: str | Path | None = None, project: str = "modeldebug",
             name: str | None = None, mode: Literal["offline", "online"] = "offline",
             run: Any = None) -> Path:
    """Log a run to W&B; returns the W&B run's directory (``.../wandb/offline-run-*`` offline).

    Starts and finishes a new run in `dir` (default: the current directory) unless `run` is an
    active W&B run, which is then added to and left open.
    """
    try:
        import wandb
    except ImportError:
        raise MissingDependencyError("W&B export", "wandb") from None
    if mode not in ("offline", "online"):
        raise BadInputError(f"mode must be 'offline' or 'online', got {mode!r}")
    exp = load(source)
    if run is not None:
        _log(run, wandb, exp)
        return Path(run.dir).parent
    folder = Path(dir) if dir is not None else Path.cwd()
    folder.mkdir(parents=True, exist_ok=True)
    settings = wandb.Settings(silent=True, console="off", disable_git=True, save_code=False,
                              x_save_requirements=False, x_disable_stats=True, x_disable_meta=True,
                              x_disable_machine_info=True)
    with _no_error_reports() if mode == "offline" else nullcontext():
        try:
            wb = wandb.init(project=project, name=name or exp.name, dir=str(folder), mode=mode,
                            config={"modeldebug": {k: v for k, v in exp.report.run.items() if v is not None}},
                            tags=[PREFIX, f"worst:{exp.report.worst() or 'none'}"], settings=settings,
                            reinit="create_new")
        except wandb.errors.UsageError as exc:  # a project name W&B refuses ('a/b'): its message names it
            raise BadInputError(f"W&B refused the run: {' '.join(str(exc).split())}") from None
        try:
            _log(wb, wandb, exp)
        except BaseException:
            wb.finish(exit_code=1)
            raise
        wb.finish()
    return Path(wb.dir).parent
