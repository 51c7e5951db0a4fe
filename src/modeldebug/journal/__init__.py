"""The project journal: every `modeldebug run` and `watch()` session, appended at the end of the run.

```python
from modeldebug.journal import Journal, journal_path
with Journal(journal_path()) as j:
    for entry in j.entries(10):
        print(entry.uid, entry.command, entry.status)
```
`modeldebug history` lists it, `modeldebug mark RUN NAME` names a run, `modeldebug diff A B` compares
two. Sessions without a record on disk (`db=":memory:"`) are not journaled. Set
`MODELDEBUG_JOURNAL=off` to journal nothing, or to a file path to use another journal.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from .journal import ENV, Entry, Journal, journal_path

__all__ = ["ENV", "Entry", "Journal", "append_run", "journal_path"]

log = logging.getLogger("modeldebug")


def append_run(writer: Any, path: str | Path | None, *, script: str | None = None,
               cwd: str | Path | None = None) -> Entry | None:
    """Journal the run `writer` just finished (its record at `path`), in the journal of `cwd`, the folder
    the run started in (a script may change folder). Never raises: a journal that cannot be written is
    one warning, and the run's own outcome stands.

    Called once by `capture.launcher.run_script` and once by `WatchSession.__exit__`.
    """
    if path is None:
        return None
    where = None
    try:
        where = journal_path(cwd)
        if where is None:
            return None
        from ..record import Record
        from .facts import live_facts, record_facts

        t0 = time.perf_counter()
        record = Record(writer.conn, path=str(path))
        rank = record.meta.get("rank")
        if isinstance(rank, int) and rank != 0:
            return None  # one job, one entry: rank 0's (else `diff` would compare the job's ranks with each other)
        facts = record_facts(record)
        if script is None and facts.get("mode") == "run":
            script = facts.get("script")
        live, source = live_facts(script)  # a watch() session's program is sys.argv[0]
        facts.update(live)
        with Journal(where, create=True) as journal:
            entry = journal.append(facts, record=path, source=source)
        log.debug("modeldebug: journaled run %s in %.1f ms", entry.uid, 1e3 * (time.perf_counter() - t0))
        return entry
    except Exception as exc:  # noqa: BLE001 - the journal must never take a run down
        log.warning("modeldebug: the run was not added to the journal %s: %s", where, exc)
        return None
