"""Ranks started by the script itself with `torch.multiprocessing.spawn`: each child watches itself.

The parent's `spawn` is probed (through capture's patch manager) so the function it starts is `WatchedRank(fn, ...)`: a picklable
object that, in the child, opens `<parent record>.rank<i>.db`, attaches the tracer and a
`DistWatch` for rank i, calls the user's function, and closes the record however it ends. The
parent lists the rank records in its own record's meta (`rank_records`) for the merged report.
When one rank fails, spawn ends the others with SIGTERM: a rank then closes its record (status
"terminated") and dies by the signal, as it would have (a rank stuck inside a C++ collective
handles it only when the collective returns, or is killed by spawn's SIGKILL 30 s later).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..capture.patches import Probe
from .ranks import RankInfo, default_base, rank_path, rank_paths

if TYPE_CHECKING:
    from .watch import DistWatch

__all__ = ["WatchedRank", "spawn_probe"]


class _Terminated(BaseException):
    """SIGTERM in a spawned rank, raised so that its record is closed before the process ends."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


class WatchedRank:
    """The user's spawned function, watched in the child process as rank `index`."""

    def __init__(self, fn: Callable[..., Any], base: str, world_size: int, config: dict[str, Any],
                 script: str) -> None:
        self.fn = fn
        self.base = base
        self.world_size = world_size
        self.config = config
        self.script = script

    def __call__(self, index: int, *args: Any) -> Any:
        from ..capture.session import run_meta
        from ..capture.tracer import Tracer
        from ..config import DebuggingConfig
        from ..record import RunWriter
        from .watch import DistWatch

        config = DebuggingConfig.model_validate(self.config)
        path = rank_path(self.base, index)
        writer = RunWriter(path)
        rank = RankInfo(index, self.world_size, index, "spawn")
        writer.set_meta(script=self.script, argv=list(sys.argv), cwd=os.getcwd(), mode="spawn", status="running",
                        pid=os.getpid(), **rank.meta(), **run_meta(config))
        writer.flush()
        tracer = Tracer(writer, config)
        watch = DistWatch(writer, rank, record_path=path, config=config)
        status, code, t0 = "finished", 0, time.monotonic()
        # spawn ends the other ranks with SIGTERM when one fails: close this record first, then die by it
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _on_sigterm) if main else None
        tracer.attach()
        try:
            watch.attach()
            return self.fn(index, *args)
        except _Terminated:
            status, code = "terminated", 128 + signal.SIGTERM
        except SystemExit as exc:
            status, code = "finished", exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            raise
        except KeyboardInterrupt:
            status, code = "interrupted", 130
            raise
        except BaseException as exc:
            status, code = "crashed", 1
            tracer.record_exception(exc)
            raise
        finally:
            try:
                watch.detach()
            finally:
                tracer.detach()
                writer.set_meta(exit_code=code, status=status, duration_s=time.monotonic() - t0)
                writer.finish()
                if main:
                    signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
                if status == "terminated":
                    os.kill(os.getpid(), signal.SIGTERM)  # as it would have ended without us


def spawn_probe(watch: DistWatch) -> Probe:
    """The patch manager's probe on `torch.multiprocessing.spawn`: the user's function becomes a `WatchedRank`."""

    def rewrite(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        fn = args[0] if args else kwargs.get("fn")
        if fn is None or isinstance(fn, WatchedRank):
            return None  # already watched (an outer session's probe ran first)
        nprocs = args[2] if len(args) > 2 else kwargs.get("nprocs", 1)
        if not isinstance(nprocs, int) or nprocs < 1:
            return None  # torch.multiprocessing.spawn says what is wrong with it
        stem = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "spawn"
        base = watch.record_path if watch.record_path is not None else default_base(stem)
        base = Path(base).resolve()
        base.parent.mkdir(parents=True, exist_ok=True)
        paths = [str(p) for p in rank_paths(base, nprocs)]
        watch.spawned.extend(paths)
        watch.writer.set_meta(rank_records=list(watch.spawned), world_size=nprocs, spawned_at=time.time())
        watch.writer.flush()
        config = watch.config.model_dump(mode="json") if watch.config is not None else {}
        wrapped = WatchedRank(fn, str(base), nprocs, config, sys.argv[0] if sys.argv else "")
        if args:
            return (wrapped, *args[1:]), kwargs
        return args, {**kwargs, "fn": wrapped}

    return Probe(rewrite=rewrite)
