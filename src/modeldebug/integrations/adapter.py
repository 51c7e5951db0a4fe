"""TrainerWatch: what both framework callbacks do, without any framework.

One `modeldebug.watch` session from "training begins" to "training ended or failed", and then the
run record and the report written into one folder:

    <log dir>/modeldebug/run.db        the run record (`modeldebug report` re-reads it)
    <log dir>/modeldebug/report.json   the contract's JSON report
    <log dir>/modeldebug/report.html   the HTML report

In a distributed job (DDP under Lightning, Accelerate, the Hugging Face Trainer) every rank watches
and writes its own record, ``run.rank<N>.db``; rank 0 waits for the others' records and writes ONE
report over all ranks, with the cross-rank rules (docs/distributed.md); the other ranks write none.

Writing the report never raises into the trainer: a failure there is logged and the training's
own outcome (its result or its exception) is what the user sees.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import AnalysisLevel, DebuggingConfig

if TYPE_CHECKING:
    from torch import nn

    from ..capture import WatchSession
    from ..report import Report

__all__ = ["TrainerWatch", "WatchResults"]

log = logging.getLogger("modeldebug")


class TrainerWatch:
    """Start, stop and report one watched training run; used by the framework callbacks."""

    def __init__(self, *, level: AnalysisLevel | None = None, config: DebuggingConfig | None = None,
                 dirname: str = "modeldebug", html: bool = True) -> None:
        config = config or DebuggingConfig()
        if level is not None:
            config = config.model_copy(update={"analysis_level": level})
        self.config = config
        self.dirname = dirname
        self.html = html
        self.session: WatchSession | None = None
        self.report: Report | None = None
        self.paths: dict[str, Path] = {}

    @property
    def active(self) -> bool:
        return self.session is not None

    def start(self, model: nn.Module, log_dir: str | Path, optimizer: Any = None) -> None:
        """Begin watching `model` (and `optimizer`, when known) with the record in `log_dir`.

        If watching cannot start (an unwritable log directory, say), training goes on unwatched
        and a warning says why.
        """
        import torch

        from ..capture import watch

        if self.session is not None:  # a run that ended without telling us (a crash we did not see)
            self.stop(None, ended=False)
        out = Path(log_dir) / self.dirname
        # Wrappers such as accelerate's AcceleratedOptimizer hold the real optimizer in .optimizer.
        inner = getattr(optimizer, "optimizer", optimizer)
        opt = inner if isinstance(inner, torch.optim.Optimizer) else None
        self.report = None
        self.paths = {"record": out / "run.db"}
        try:
            out.mkdir(parents=True, exist_ok=True)
            session = watch(model, optimizer=opt, config=self.config, db=self.paths["record"])
            session.__enter__()
        except Exception as err:
            log.warning("modeldebug: not watching this training: %s: %s", type(err).__name__, err)
            self.paths = {}
            return
        self.session = session
        if session.path is not None:  # in a distributed job each rank's own record, run.rank<N>.db
            self.paths["record"] = Path(session.path)

    def stop(self, exc: BaseException | None, *, ended: bool = True) -> Report | None:
        """Stop watching (every hook removed), then write the record and reports. Idempotent.

        `exc` is the exception training failed with; `ended=False` says that training stopped
        without the framework's end event and without a known exception (status "interrupted").
        """
        session, self.session = self.session, None
        if session is None:
            return None
        try:
            session.__exit__(type(exc) if exc is not None else None, exc,
                             exc.__traceback__ if exc is not None else None)
            if exc is None and not ended:
                session.writer.set_meta(status="interrupted", exit_code=None)
                session.writer.flush()
        except Exception as err:
            session.tracer.detach()  # whatever failed in recording, no hook stays behind
            log.warning("modeldebug: could not finish the run record %s (%s: %s)",
                        self.paths["record"], type(err).__name__, err)
            return None
        rank = getattr(getattr(session, "dist", None), "rank", None)
        if rank is not None and rank.rank != 0:
            return None  # another rank: its record only; rank 0 writes the one report over all ranks
        try:
            report = session.report(self.config)
            out = self.paths["record"].parent
            self.paths["json"] = out / "report.json"
            report.to_json(self.paths["json"])
            if self.html:
                self.paths["html"] = out / "report.html"
                report.to_html(self.paths["html"])
        except Exception as err:  # never turn a finished training into a failed one
            log.warning("modeldebug: could not write the report into %s (%s: %s)",
                        self.paths["record"].parent, type(err).__name__, err)
            return None
        self.report = report
        worst = report.worst()
        if worst in ("medium", "high"):
            log.warning("modeldebug: %d problem(s) found (worst: %s): %s", len(report.findings), worst,
                        self.paths.get("html") or self.paths["json"])
        else:
            log.info("modeldebug: no serious problems found: %s", self.paths.get("html") or self.paths["json"])
        return report


class WatchResults:
    """What both framework callbacks expose: the last run's report and the files it wrote."""

    _watch: TrainerWatch

    @property
    def report(self) -> Any:
        """The last run's `modeldebug.Report` (None before, or if writing it failed)."""
        return self._watch.report

    @property
    def paths(self) -> dict[str, Path]:
        """Files the last run wrote: ``record``, ``json`` and ``html``."""
        return dict(self._watch.paths)
