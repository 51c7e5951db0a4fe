"""The code a run ran: git commit and a hash of the uncommitted changes, asked of git with a short timeout.

Outside a git work tree, without a git executable, or when git is slow, `git_state` returns None and
says nothing: the journal then identifies the code by the script's own hash alone.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["git_state"]

_MAX_DIFF = 32 * 1024 * 1024  # a diff bigger than this is hashed as far as here
_FILE = re.compile(rb"^diff --git a/(.*?) b/", re.MULTILINE)


def _git(cwd: Path, *args: str, timeout: float) -> bytes | None:
    try:
        done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError):  # no git, or too slow
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(where: str | Path, *, timeout: float = 2.0) -> dict[str, Any] | None:
    """{commit, diff_sha256, dirty, files} of the work tree holding `where` (a file or folder).

    `diff_sha256` is the SHA-256 of `git diff HEAD` (tracked files only; untracked files are not
    part of it), None when there are no uncommitted changes; `files` names at most 20 changed files.
    """
    cwd = Path(where)
    if not cwd.is_dir():
        cwd = cwd.parent
    head = _git(cwd, "rev-parse", "HEAD", timeout=timeout)
    if head is None:
        return None
    commit = head.decode("ascii", "replace").strip()
    diff = _git(cwd, "diff", "HEAD", "--no-color", "--no-ext-diff", timeout=timeout)
    state: dict[str, Any] = {"commit": commit, "diff_sha256": None, "dirty": None, "files": []}
    if diff is not None:
        diff = diff[:_MAX_DIFF]
        state["dirty"] = bool(diff)
        state["diff_sha256"] = hashlib.sha256(diff).hexdigest() if diff else None
        state["files"] = [m.decode("utf-8", "replace") for m in _FILE.findall(diff)][:20]
    return state
