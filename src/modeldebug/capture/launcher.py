"""Run an unmodified training script as `python SCRIPT ARGS` would, watched.

Same `sys.argv`, `__main__`, working directory, stdout and exit code. The tracer is attached
before the script's first line and detached after its last (also on an exception or `sys.exit`);
the script's traceback is printed as Python would print it, starting at the script's own frame.
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..config import DebuggingConfig
from ..errors import ScriptNotFoundError
from ..record import Record, RunWriter
from .progress import attach_progress
from .session import default_record_path, run_meta
from .tracer import Tracer

__all__ = ["RunResult", "run_script"]


@dataclass
class RunResult:
    exit_code: int
    record: Record
    path: Path


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # what the interpreter does with sys.exit("message")
    return 1


def _print_script_traceback(exc: BaseException, script: str) -> None:
    tb = exc.__traceback__
    target = os.path.abspath(script)
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) != target:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb if tb is not None else exc.__traceback__, file=sys.stderr)


def run_script(script: str, args: list[str], *, config: DebuggingConfig | None = None,
               db: str | Path | None = None, progress: bool | TextIO = False) -> RunResult:
    """Run `script` with `args` under the tracer and return its exit code and run record.

    `progress` draws a live status line on stderr (True) or on the given stream while the script
    trains; it stays off when that stream is not a terminal.
    """
    config = config or DebuggingConfig()
    path = Path(script)
    if not path.is_file():
        hint = " (it is a directory)" if path.is_dir() else ""
        raise ScriptNotFoundError(f"no training script at {script!r}{hint}: check the path (relative to {os.getcwd()})")
    record_path = Path(db) if db else default_record_path(path.stem)
    writer = RunWriter(record_path)
    writer.set_meta(script=script, argv=[script, *args], cwd=os.getcwd(), mode="run", status="running",
                    **run_meta(config))
    writer.flush()
    tracer = Tracer(writer, config)
    live = attach_progress(tracer, progress, config)
    if live is not None:
        live.install()
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [script, *args]
    sys.path.insert(0, str(path.resolve().parent))
    exit_code, status = 0, "finished"
    tracer.attach()
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        exit_code = _exit_code(exc)
    except KeyboardInterrupt as exc:
        exit_code, status = 130, "interrupted"
        _print_script_traceback(exc, script)
    except BaseException as exc:  # the script's own crash: diagnose it, report it, pass its code on
        exit_code, status = 1, "crashed"
        tracer.record_exception(exc)
        _print_script_traceback(exc, script)
    finally:
        if live is not None:
            live.close()
        tracer.detach()
        sys.argv = saved_argv
        sys.path[:] = saved_path
        writer.set_meta(exit_code=exit_code, status=status)
        writer.close()
    return RunResult(exit_code, Record.open(record_path), record_path)
