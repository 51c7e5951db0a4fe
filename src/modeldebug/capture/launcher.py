"""Run an unmodified training script as `python SCRIPT ARGS` would, watched.

Same `sys.argv`, `__main__`, working directory, stdout and exit code. The tracer is attached
before the script's first line and detached after its last (also on an exception or `sys.exit`);
the script's traceback is printed as Python would print it, starting at the script's own frame.
"""

from __future__ import annotations

import bdb
import io
import os
import signal
import sys
import threading
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..config import DebuggingConfig
from ..errors import BadInputError, ScriptNotFoundError
from ..journal import append_run
from ..record import Record
from .progress import attach_progress
from .session import exit_code_of, open_writer, run_meta
from .tracer import Tracer

__all__ = ["RunResult", "run_script"]


@dataclass
class RunResult:
    exit_code: int
    record: Record
    path: Path | None
    signal: int | None = None  # the signal that ended the script: the caller should die by it too


class Terminated(BaseException):
    """SIGTERM inside the script, raised like KeyboardInterrupt so the run can be closed properly."""


_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _exit_code(exc: SystemExit) -> int:
    if exc.code is not None and not isinstance(exc.code, int):
        print(exc.code, file=sys.stderr)  # what the interpreter does with sys.exit("message")
    return exit_code_of(exc)


def _ours(filename: str) -> bool:
    """A frame of modeldebug, or of runpy running the script for us (`python SCRIPT` shows neither)."""
    return filename.startswith("<frozen runpy") or os.path.abspath(filename).startswith(_OWN_DIR + os.sep)


def _without_own_frames(te: traceback.TracebackException) -> None:
    """Drop modeldebug's frames (our patched backward, our hooks, runpy) from a traceback and its chain."""
    seen: set[int] = set()
    while te is not None and id(te) not in seen:
        seen.add(id(te))
        te.stack[:] = [f for f in te.stack if not _ours(f.filename)]
        te = te.__cause__ or te.__context__  # type: ignore[assignment]


def _print_script_traceback(exc: BaseException, script: str) -> None:
    """Print the traceback as `python SCRIPT` would: from the script's frame, without our frames."""
    tb = exc.__traceback__
    target = os.path.abspath(script)
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) != target:
        tb = tb.tb_next
    if tb is None and isinstance(exc, SyntaxError) and exc.filename and os.path.abspath(exc.filename) == target:
        tb = None  # the script did not compile: Python prints the error alone, with no traceback
    elif tb is None:
        tb = exc.__traceback__
    te = traceback.TracebackException(type(exc), exc, tb)
    _without_own_frames(te)
    sys.stderr.write("".join(te.format()))


def _check_python(path: Path, script: str) -> None:
    """A file that is not Python (`run notes.txt`) is one line, before a record is claimed.

    Only a file not named .py is judged: a .py file with a syntax error runs, and fails, as Python's would."""
    if path.suffix in (".py", ".pyw"):
        return
    try:
        compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        where = f", line {exc.lineno}" if isinstance(exc, SyntaxError) and exc.lineno else ""
        why = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise BadInputError(f"{script!r} is not a Python script ({why}{where}): give the training script, "
                            "e.g. modeldebug run -- train.py") from None
    except OSError:
        return  # unreadable: running it says so, as Python would


def _run_main(script: str) -> None:
    """Run `script` as ``__main__`` the way `python SCRIPT` does: its ``__file__`` absolute (Python 3.9+)
    and ``sys.argv[0]`` as typed. (``runpy.run_path`` sets ``argv[0]`` to the path it is given, and
    the absolute one is needed for ``__file__``.)"""
    path = os.path.abspath(script)
    with io.open_code(path) as fh:
        code = compile(fh.read(), path, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=path, __cached__=None, __loader__=None, __package__=None, __spec__=None)
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = main  # pickling a class the script defines finds it, as under python
    try:
        exec(code, main.__dict__)  # noqa: S102 - running the user's script is what `run` does (as runpy would)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def run_script(script: str, args: list[str], *, config: DebuggingConfig | None = None,
               db: str | Path | None = None, progress: bool | TextIO = False,
               break_on: tuple[str, ...] | str | None = None, max_steps: int | None = None,
               announce_bundle: bool = True) -> RunResult:
    """Run `script` with `args` under the tracer and return its exit code and run record.

    `progress` draws a live status line on stderr (True) or on the given stream while the script
    trains; it stays off when that stream is not a terminal. `break_on` (conditions of
    `capture.breakpoints`) stops the script in its own frame when one first holds; `max_steps` ends
    it, as `sys.exit(0)` would, after that many steps. `announce_bundle=False`: a repro bundle is not
    announced when saved, because the caller says where it is after the report. SIGTERM is handled like Ctrl-C: the
    record is closed and marked, and `RunResult.signal` tells the caller to die by that signal.
    """
    config = config or DebuggingConfig()
    path = Path(script)
    if not path.is_file():
        hint = " (it is a directory)" if path.is_dir() else ""
        raise ScriptNotFoundError(f"no training script at {script!r}{hint}: check the path (relative to {os.getcwd()})")
    _check_python(path, script)
    from ..distributed import rank_db, start_watch

    writer, record_path = open_writer(rank_db(db, path.stem), path.stem)  # one record per rank under torchrun
    writer.set_meta(script=script, argv=[script, *args], cwd=os.getcwd(), mode="run", status="running",
                    pid=os.getpid(), **run_meta(config))
    writer.flush()
    tracer = Tracer(writer, config)
    if tracer.bundle is not None:
        tracer.bundle.announce = announce_bundle
    if break_on or max_steps is not None:
        from .breakpoints import attach_breakpoints

        attach_breakpoints(tracer, break_on, max_steps)
    live = attach_progress(tracer, progress, config)
    if live is not None:
        live.install()
    saved_argv, saved_path, start_cwd = sys.argv[:], sys.path[:], os.getcwd()
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.realpath(script)))
    exit_code, status, died_by = 0, "finished", None
    old_term = None
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    dist_watch = start_watch(writer, record_path, config)  # cross-rank fingerprints, hang watchdog, spawn
    tracer.attach()
    try:
        _run_main(script)
    except SystemExit as exc:
        exit_code = _exit_code(exc)
    except KeyboardInterrupt as exc:
        exit_code, status, died_by = 130, "interrupted", signal.SIGINT
        _print_script_traceback(exc, script)
    except Terminated:
        exit_code, status, died_by = 128 + signal.SIGTERM, "terminated", signal.SIGTERM
    except bdb.BdbQuit:  # `q` in the debugger (a --break-on stop): the user ended the run, it did not crash
        exit_code, status = 1, "interrupted"
        print(f"modeldebug: the run was ended from the debugger after {tracer.step} steps", file=sys.stderr)
    except BaseException as exc:  # the script's own crash: diagnose it, report it, pass its code on
        exit_code, status = 1, "crashed"
        tracer.record_exception(exc)
        _print_script_traceback(exc, script)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        if live is not None:
            live.close()
        dist_watch.detach()
        tracer.detach()
        sys.argv = saved_argv
        sys.path[:] = saved_path
        writer.set_meta(exit_code=exit_code, status=status)
        writer.finish()
        append_run(writer, record_path, cwd=start_cwd)  # the project journal; never raises
    # Read this run through the writer's own connection: another run may claim the path now.
    return RunResult(exit_code, Record(writer.conn, path=str(record_path or ":memory:")), record_path, died_by)
