"""bisect: the first bad git commit, found by running a short training at each commit tried.

Every run happens in a temporary `git worktree` (the user's working tree and index are never
touched), with the worktree on PYTHONPATH so that the commit's own modules are imported, through
`modeldebug run --max-steps N`. The good commit's run is judged first: its invariants (`learn`)
are what every other run is checked against, unless `--against` gives them. A run is bad when it
breaks an invariant (an INV finding of medium severity or more) or has a high finding the good run
did not have; the finding that decided it is kept. A commit whose script does not run to the end
(exit code other than 0, 125 included, or a time-out) is skipped, as `git bisect run` skips on 125.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInputError

__all__ = ["Bisect", "Outcome", "Verdict", "git"]

_JUDGED = ("medium", "high")


def git(*args: str, cwd: str | Path) -> subprocess.CompletedProcess[str]:
    """`git ARGS` in `cwd`, its output captured (the caller reads returncode)."""
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    except FileNotFoundError:
        raise BadInputError("git is not installed (or not on PATH): bisect needs it") from None


@dataclass
class Verdict:
    """How one commit's run was judged."""

    sha: str
    state: str  # "good" | "bad" | "skip"
    reason: str
    finding: dict[str, Any] | None = None

    def line(self, subject: str) -> str:
        return f"{self.sha[:10]} {self.state:4}  {self.reason}   ({subject})"


@dataclass
class Outcome:
    first_bad: str | None
    decided_by: Verdict | None
    candidates: list[str] = field(default_factory=list)  # when skipped commits hide which one it is
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def _last_error(stderr: str) -> str:
    """The line of a run's stderr that says why it failed: the exception line, else the last line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if _ERROR_LINE.match(ln)]
    return (errors or lines or [""])[-1][:200]


class Bisect:
    """One bisection of `script` between the commits `good` and `bad` of the repository at `cwd`."""

    def __init__(self, good: str, bad: str, script: str, args: list[str], *, steps: int, against: str | None = None,
                 cwd: str | Path | None = None, timeout: float | None = None,
                 say: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> None:
        self.cwd = Path(cwd or os.getcwd()).resolve()
        top = git("rev-parse", "--show-toplevel", cwd=self.cwd)
        if top.returncode != 0:
            raise BadInputError(f"{str(self.cwd)!r} is not inside a git repository: run bisect from the repository "
                                "whose commits to search")
        self.top = Path(top.stdout.strip()).resolve()
        self.good, self.bad = self._commit(good, "--good"), self._commit(bad, "--bad")
        script_path = (self.cwd / script).resolve()
        try:
            self.script = str(script_path.relative_to(self.top))
        except ValueError:
            raise BadInputError(f"script {script!r} is outside the repository {str(self.top)!r}: bisect runs it "
                                "from each commit's checkout") from None
        self.subdir = str(self.cwd.relative_to(self.top))
        self.args, self.steps, self.timeout, self.say = args, steps, timeout, say
        self.against = against
        self.commits = self._between()
        for rev, flag in ((self.good, "--good"), (self.bad, "--bad")):
            if git("cat-file", "-e", f"{rev}:{self.script}", cwd=self.top).returncode != 0:
                raise BadInputError(f"{self.script} is not in the {flag} commit {rev[:10]}: bisect runs each commit's "
                                    "own copy of the script (is it committed?)")
        self.good_codes: set[str] = set()
        self.tmp: Path | None = None

    # -- the repository ------------------------------------------------------------------------------------
    def _commit(self, rev: str, flag: str) -> str:
        out = git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", cwd=self.top)
        if out.returncode != 0 or not out.stdout.strip():
            raise BadInputError(f"{flag} {rev!r} is not a commit of the repository at {str(self.top)!r}: "
                                "check the name (git log --oneline)")
        return out.stdout.strip()

    def _between(self) -> list[str]:
        if self.good == self.bad:
            raise BadInputError(f"--good and --bad are the same commit ({self.good[:10]}): nothing to search")
        if git("merge-base", "--is-ancestor", self.good, self.bad, cwd=self.top).returncode != 0:
            if git("merge-base", "--is-ancestor", self.bad, self.good, cwd=self.top).returncode == 0:
                raise BadInputError(f"--good {self.good[:10]} is newer than --bad {self.bad[:10]} (the bad commit is "
                                    "its ancestor): are --good and --bad swapped?")
            raise BadInputError(f"--good {self.good[:10]} is not an ancestor of --bad {self.bad[:10]}: give a good "
                                "commit older than the bad one")
        out = git("rev-list", "--first-parent", "--reverse", f"{self.good}..{self.bad}", cwd=self.top)
        return out.stdout.split()

    def subject(self, sha: str) -> str:
        return git("log", "-1", "--format=%s", sha, cwd=self.top).stdout.strip()

    # -- one commit, one run -----------------------------------------------------------------------------------
    def _checkout(self, sha: str) -> Path:
        assert self.tmp is not None
        wt = self.tmp / "worktree"
        quiet = ("-c", "core.hooksPath=/dev/null")  # the repository's checkout hooks do not run for us
        if not wt.exists():
            out = git(*quiet, "worktree", "add", "--detach", "--quiet", str(wt), sha, cwd=self.top)
        else:
            out = git(*quiet, "checkout", "--detach", "--quiet", "--force", sha, cwd=wt)
            git("clean", "-fdxq", cwd=wt)  # what the last run wrote there
        if out.returncode != 0:
            raise BadInputError(f"git could not check out {sha[:10]}: {out.stderr.strip().splitlines()[-1:]}")
        return wt

    def run(self, sha: str, against: str | None) -> tuple[int, Path, Path, str]:
        """Run the script at `sha`: (exit code, record, JSON report, last line of stderr)."""
        assert self.tmp is not None
        wt = self._checkout(sha)
        db, report = self.tmp / f"{sha[:12]}.db", self.tmp / f"{sha[:12]}.json"
        cmd = [sys.executable, "-m", "modeldebug", "run", "--max-steps", str(self.steps), "--db", str(db),
               "--json", str(report), "--quiet", "--no-progress"]
        if against:
            cmd += ["--against", against]
        # the run's folder is the user's subfolder: the script's path from there, as the user gave it
        cmd += ["--", os.path.relpath(self.top / self.script, self.cwd), *self.args]
        paths = [str(wt), *([str(wt / "src")] if (wt / "src").is_dir() else [])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               "MODELDEBUG_JOURNAL": "off"}  # trial runs: never the journal's "last clean run" reference
        cwd = wt / self.subdir
        if not cwd.is_dir():
            return 125, db, report, f"the folder {self.subdir!r} does not exist at this commit"
        try:
            proc = subprocess.run(cmd, check=False, cwd=cwd, env=env, capture_output=True, text=True,
                                  timeout=self.timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return 125, db, report, f"timed out after {self.timeout:g} s"
        return proc.returncode, db, report, _last_error(proc.stderr)

    def judge(self, sha: str, against: str | None) -> Verdict:
        code, _, report, last = self.run(sha, against)
        if code != 0 or not report.is_file():
            why = f"exit code {code}" + (f": {last}" if last else "")
            return Verdict(sha, "skip", f"it does not run to the end ({why})")
        findings = json.loads(report.read_text(encoding="utf-8")).get("findings", [])
        for f in findings:  # most important first, as the report ranks them
            broke = f["code"].startswith("INV") and f["severity"] in _JUDGED
            new = f["severity"] == "high" and f["code"] not in self.good_codes and not f["code"].startswith("INV")
            if broke or new:
                where = f" at step {f['step']}" if f.get("step") is not None else ""
                where += f" in {f['location']}" if f.get("location") else ""
                return Verdict(sha, "bad", f"{f['code']} ({f['severity']}){where}: {f['title']}", f)
        return Verdict(sha, "good", "no invariant broken, no new high finding")

    # -- the search ------------------------------------------------------------------------------------------
    def _learn(self) -> str:
        """Run the good commit, learn its invariants (or check it against --against); the invariants' path."""
        assert self.tmp is not None
        from ..record import Record

        code, db, report, last = self.run(self.good, self.against)
        if code != 0 or not report.is_file():
            raise BadInputError(f"--good {self.good[:10]}: the script does not run to the end there (exit code {code}"
                                f"{': ' + last if last else ''}): give a good commit where it runs")
        findings = json.loads(report.read_text(encoding="utf-8")).get("findings", [])
        self.good_codes = {f["code"] for f in findings}
        broken = [f for f in findings if f["code"].startswith("INV") and f["severity"] in _JUDGED]
        if broken:
            raise BadInputError(f"--good {self.good[:10]} breaks the invariants of --against: {broken[0]['code']} "
                                f"{broken[0]['title']}: is it a good commit?")
        if self.against:
            return self.against
        from .learn import learn

        path = self.tmp / "good.json"
        learn([Record.open(db)], labels=[f"{self.good[:10]} ({self.script})"]).write(path)
        return str(path)

    def search(self) -> Outcome:
        self.tmp = Path(tempfile.mkdtemp(prefix="modeldebug-bisect-"))
        try:
            return self._search()
        finally:
            wt = self.tmp / "worktree"
            if wt.exists():
                git("worktree", "remove", "--force", str(wt), cwd=self.top)
            shutil.rmtree(self.tmp, ignore_errors=True)
            git("worktree", "prune", cwd=self.top)

    def _search(self) -> Outcome:
        commits, say = self.commits, self.say
        say(f"bisect: {len(commits)} commits after good {self.good[:10]} up to bad {self.bad[:10]}; "
            f"{self.steps} steps of {self.script} at each commit tried")
        changed = git("status", "--porcelain", "--untracked-files=no", cwd=self.top).stdout.splitlines()
        if changed:
            say(f"modeldebug: your uncommitted changes ({len(changed)} file(s), e.g. {changed[0][3:]}) are in no run: "
                "each commit is run as committed")
        against = self._learn()
        say(f"  {Verdict(self.good, 'good', 'the reference run').line(self.subject(self.good))}")
        out = Outcome(None, None)
        last = self.judge(self.bad, against)
        out.verdicts[self.bad] = last
        say(f"  {last.line(self.subject(self.bad))}")
        if last.state == "good":
            return out
        lo, hi, skipped = -1, len(commits) - 1, set()
        if last.state == "skip":
            skipped.add(hi)  # trusted as bad, as given
        while True:
            todo = [i for i in range(lo + 1, hi) if i not in skipped]
            if not todo:
                break
            mid = (lo + hi) // 2
            i = min(todo, key=lambda k: (abs(k - mid), k))
            v = self.judge(commits[i], against)
            out.verdicts[commits[i]] = v
            say(f"  {v.line(self.subject(commits[i]))}")
            if v.state == "skip":
                skipped.add(i)
            elif v.state == "bad":
                hi = i
            else:
                lo = i
        out.skipped = [commits[i] for i in sorted(skipped) if commits[i] != self.bad or last.state == "skip"]
        hidden = [commits[i] for i in range(lo + 1, hi) if i in skipped]
        out.first_bad = commits[hi]
        decided = out.verdicts.get(commits[hi])
        out.decided_by = decided if decided is not None and decided.state == "bad" else None
        if hidden:
            out.candidates = [*hidden, commits[hi]]
        return out
