"""watch(): the one-line way to watch a training loop in code."""

from __future__ import annotations

import bdb
import logging
import os
import platform
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import torch
from torch import nn

from .._version import __version__
from ..config import AnalysisLevel, DebuggingConfig
from ..distributed.in_watch import session_report, start_rank_watch, stop_rank_watch
from ..errors import BadInputError, RecordBusyError
from ..journal import append_run
from ..record import Record, RunWriter
from .plan import plan_for
from .progress import Progress, attach_progress
from .tracer import Tracer

log = logging.getLogger("modeldebug")

__all__ = ["WatchSession", "default_record_path", "open_writer", "run_meta", "watch"]


def default_record_path(name: str, *, root: str | Path = ".") -> Path:
    """`.modeldebug/runs/<timestamp>-<name>.db` under `root` (the current directory), not yet taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60] or "run"
    path = Path(root) / ".modeldebug" / "runs" / f"{stamp}-{safe}.db"
    n = 1
    while path.exists():
        n += 1
        path = path.with_name(f"{stamp}-{safe}-{n}.db")
    return path


def open_writer(db: str | Path | None, name: str, *, flag: str = "--db") -> tuple[RunWriter, Path | None]:
    """A writer at the user's `db`, or at a fresh default name that no other run can take meanwhile."""
    from ..distributed import rank_db

    db = rank_db(db, name)  # a rank of a distributed job writes its own record, <db>.rank<N>.db
    if db == ":memory:":
        return RunWriter(":memory:"), None
    if db is not None:
        try:
            return RunWriter(db, flag=flag), Path(db)
        except RecordBusyError:
            own = _beside_a_sibling(Path(db)) if flag == "db=" else None
            if own is None:
                raise
            return RunWriter(own, new=True, flag=flag), own
    for _ in range(100):
        path = default_record_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return RunWriter(path, new=True), path
        except RecordBusyError:  # another run started in the same second with the same name
            continue
    raise RecordBusyError(f"could not find a free record name under {path.parent}: pass --db")


def _beside_a_sibling(db: Path) -> Path | None:
    """`watch(db=...)` whose record another process of the same job writes (ranks spawned by one parent,
    each entering `watch()` before `init_process_group`, so none knows its rank yet): this process writes
    `<db stem>.pid<N><suffix>` beside it and says so in one line, instead of stopping the job. None for a
    writer that is not this process's parent or sibling (another run: the path is refused)."""
    from ..record.lock import live_writer

    holder = live_writer(db)
    if holder is None or holder <= 0 or holder == os.getpid() or holder not in (os.getppid(), *_siblings_parent(holder)):
        return None
    own = db.with_name(f"{db.stem}.pid{os.getpid()}{db.suffix}")
    log.warning("modeldebug: %s is being written by process %d of this job (watch() entered before "
                "init_process_group?): this process writes %s", db, holder, own)
    return own


def _siblings_parent(pid: int) -> tuple[int, ...]:
    """(pid,) when `pid` has this process's parent (two children of one spawn), () otherwise or unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return ()
    return (pid,) if ppid == os.getppid() else ()


def run_meta(config: DebuggingConfig) -> dict[str, Any]:
    device = "cpu"
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)})"
    return {"python": platform.python_version(), "torch": torch.__version__, "modeldebug": __version__,
            "device": device, "level": config.analysis_level, "config": config.model_dump(mode="json"),
            "started": time.time(), "platform": platform.platform()}


def _calling_script() -> str | None:
    """The user's program (`sys.argv[0]`, as `modeldebug run` records the script it runs), or None in a notebook,
    a REPL or a tool's runner (pytest, ipykernel: installed code, not the user's script)."""
    import sysconfig

    argv0 = sys.argv[0] if sys.argv else ""
    if not argv0 or not Path(argv0).is_file():
        return None
    where = str(Path(argv0).resolve())
    installed = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib", "scripts")}
    return None if any(where.startswith(str(Path(p).resolve())) for p in installed if p) else argv0


class WatchSession:
    """A context manager that watches training while open; `report()` diagnoses it afterwards."""

    def __init__(self, models: tuple[nn.Module, ...], optimizers: tuple[torch.optim.Optimizer, ...],
                 config: DebuggingConfig, db: str | Path | None, progress: bool | TextIO = False,
                 break_on: tuple[str, ...] = ()) -> None:
        name = type(models[0]).__name__ if models else "session"
        self.config = config
        self._cwd = os.getcwd()  # the project the session's journal entry belongs to
        plan = plan_for(config)  # a selection naming no rule fails here, before a record is claimed
        self.writer, self.path = open_writer(db, name, flag="db=")
        self.writer.set_meta(script=_calling_script() or name, argv=list(sys.argv), mode="watch", **run_meta(config))
        self.tracer = Tracer(self.writer, config, models=models, optimizers=optimizers,
                             discover_models=not models, plan=plan)
        if break_on:
            from .breakpoints import attach_breakpoints

            attach_breakpoints(self.tracer, break_on)
        self.progress: Progress | None = attach_progress(self.tracer, progress, config)
        self._report = None

    def __enter__(self) -> WatchSession:
        self.tracer.attach()
        try:
            if self.progress is not None:
                self.progress.install()
        except BaseException:
            self.tracer.detach()
            raise
        self.dist = start_rank_watch(self.writer, self.path, self.config)  # a distributed job: cross-rank checks
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self.progress is not None:
                self.progress.close()
            if exc is not None and not isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit, bdb.BdbQuit)):
                self.tracer.record_exception(exc)
        finally:
            stop_rank_watch(getattr(self, "dist", None))
            self.tracer.detach()  # every hook and patch of this session goes, whatever failed above
            self.writer.set_meta(**_ending(exc))
            self.writer.finish()
            append_run(self.writer, self.path, cwd=self._cwd)  # the project journal; never raises

    def step(self, loss: torch.Tensor | float | None = None) -> None:
        """Mark a step boundary by hand (loops that update weights without an optimizer object)."""
        self.tracer.mark_step(loss)

    @property
    def record(self) -> Record:
        return Record(self.writer.conn, path=str(self.path) if self.path else ":memory:")

    def report(self, config: DebuggingConfig | None = None):  # type: ignore[no-untyped-def]
        """Diagnose what was watched: a `modeldebug.Report`."""
        from ..report import Report

        self.writer.flush()
        if getattr(self, "dist", None) is not None:  # rank 0 of a distributed job: one report over all ranks
            return session_report(self, config or self.config)
        return Report.from_record(self.record, config or self.config)


def exit_code_of(exc: SystemExit) -> int:
    """The process exit code `sys.exit(code)` gives: 0 for None, the int, 1 for anything else (a message)."""
    code = exc.code
    return 0 if code is None else code if isinstance(code, int) else 1


def _ending(exc: BaseException | None) -> dict[str, Any]:
    """The record's status and exit code for a session left with `exc`, as `modeldebug run` records a
    script that ends that way: Ctrl-C is an interruption (130), `sys.exit(n)` a finished run with code n."""
    if exc is None or isinstance(exc, GeneratorExit):  # (a generator holding the session was closed)
        return {"status": "finished", "exit_code": 0}
    if isinstance(exc, KeyboardInterrupt):
        return {"status": "interrupted", "exit_code": 130}
    if isinstance(exc, bdb.BdbQuit):
        return {"status": "interrupted", "exit_code": 1}
    if isinstance(exc, SystemExit):
        return {"status": "finished", "exit_code": exit_code_of(exc)}
    return {"status": "crashed", "exit_code": 1}


def watch(
    *models: nn.Module | torch.optim.Optimizer,
    optimizer: torch.optim.Optimizer | Iterable[torch.optim.Optimizer] | None = None,
    config: DebuggingConfig | None = None,
    level: AnalysisLevel | None = None,
    db: str | Path | None = None,
    progress: bool | TextIO = False,
    break_on: str | Iterable[str] | None = None,
) -> WatchSession:
    """Watch the training of `models` (all models in the process if none are given).

    ```python
    with modeldebug.watch(model, optimizer=opt) as session:  # or watch(model, opt)
        ...  # the training loop, unchanged
    print(session.report().to_text())
    ```
    `db` is where the run record goes (default `.modeldebug/runs/...`; `":memory:"` keeps none).
    `progress=True` draws a live status line on stderr (or pass a stream) while training; it stays
    off when that stream is not a terminal.
    `break_on="nonfinite,loss_spike"` (or a list; codes such as GRD001 too) stops in your loop's frame,
    in pdb (or `sys.breakpointhook`), at the first step where a condition holds (docs/breakpoints.md).
    """
    # `watch(model, opt)`: an optimizer given after the models is taken as `optimizer=`
    positional = tuple(m for m in models if isinstance(m, torch.optim.Optimizer))
    models = tuple(m for m in models if not isinstance(m, torch.optim.Optimizer))
    for m in models:
        if not isinstance(m, nn.Module):
            raise BadInputError(f"watch() takes torch.nn.Module objects, got {type(m).__name__}: pass the model itself")
    opts: tuple[torch.optim.Optimizer, ...] = ()
    if isinstance(optimizer, torch.optim.Optimizer):
        opts = (optimizer,)
    elif optimizer is not None:
        opts = tuple(optimizer)
        for o in opts:
            if not isinstance(o, torch.optim.Optimizer):
                raise BadInputError(f"optimizer= takes torch.optim.Optimizer objects, got {type(o).__name__}")
    opts = (*opts, *(o for o in positional if o not in opts))
    config = config or DebuggingConfig()
    if level is not None:
        config = config.model_copy(update={"analysis_level": level})
    conditions: tuple[str, ...] = ()
    if break_on is not None:
        from ..commands._breakon import parse_break_on

        conditions = parse_break_on(break_on if isinstance(break_on, str) else tuple(break_on), "break_on=")
    return WatchSession(models, opts, config, db, progress, conditions)
