"""The run record: real SQLite, readable while written and after kill -9, clear errors otherwise."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modeldebug.errors import BadInputError, RecordCorruptError
from modeldebug.record import SCHEMA_VERSION, Record, RunWriter


def test_round_trip_of_steps_stats_events_and_meta(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    w = RunWriter(path)
    fc = w.entity("module", "fc1", type="Linear", info={"leaf": True})
    w.add_step(0, loss=2.0, lr=0.1, grad_norm=1.5, sampled=True)
    w.add_step(1, loss=float("nan"), lr=0.1)
    w.add_stats(0, [(fc, "mean", 0.25), (fc, "std", float("nan"))])
    w.add_stat_values(1, [(fc, "mean"), (fc, None), (fc, "std")], [float("nan"), 9.0, 0.5])  # None: not kept
    w.add_event(1, "nonfinite", {"what": "loss"})
    w.set_meta(script="train.py", steps=2)
    w.close()
    rec = Record.open(path)
    assert rec.meta["schema_version"] == SCHEMA_VERSION and rec.meta["script"] == "train.py"
    loss = rec.column("loss")
    assert loss.steps.tolist() == [0, 1] and loss.values[0] == 2.0 and np.isnan(loss.values[1])
    mean = rec.series("fc1", "mean")
    assert mean.steps.tolist() == [0, 1] and mean.values[0] == 0.25 and np.isnan(mean.values[1])
    assert np.isnan(rec.series("fc1", "std").values[0]) and rec.series("fc1", "std").values.tolist()[1] == 0.5
    with sqlite3.connect(path) as raw:  # a NaN is stored as NULL (SQLite binds NaN as NULL)
        assert raw.execute("SELECT loss FROM steps WHERE step = 1").fetchone() == (None,)
        assert raw.execute("SELECT value FROM stats WHERE stat = 'std' AND step = 0").fetchone() == (None,)
        assert raw.execute("SELECT value FROM stats WHERE stat = 'mean' AND step = 1").fetchone() == (None,)
        assert raw.execute("SELECT COUNT(*) FROM stats WHERE step = 1").fetchone() == (2,)
    assert rec.entity("fc1").type == "Linear" and rec.entity("fc1").info == {"leaf": True}
    assert rec.events("nonfinite")[0].data == {"what": "loss"}
    assert len(rec.series("nope", "mean")) == 0


def test_wal_mode_lets_a_reader_see_committed_steps_while_the_writer_is_open(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    w = RunWriter(path)
    w.add_step(0, loss=1.0)
    w.flush()
    w.add_step(1, loss=0.5)  # buffered, not committed
    assert Record.open(path).n_steps == 1
    w.flush()
    assert Record.open(path).n_steps == 2
    assert w.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    w.close()


def test_everything_committed_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    code = f"""
import sys, time
from modeldebug.record import RunWriter
w = RunWriter({str(path)!r})
for step in range(50):
    w.add_step(step, loss=1.0 / (step + 1))
    if step % 10 == 9:
        w.flush()
print("ready", flush=True)
time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    rec = Record.open(path)
    assert rec.n_steps == 50
    assert rec.column("loss").values[-1] == pytest.approx(1 / 50)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        Record.open(tmp_path / "nope.db")


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "junk.db"
    p.write_bytes(b"this is not a database at all" * 10)
    with pytest.raises(RecordCorruptError, match="not an SQLite file"):
        Record.open(p)


def test_a_foreign_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "other.db"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(RecordCorruptError, match="not a modeldebug run record"):
        Record.open(p)


def test_a_damaged_record_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "damaged.db"
    w = RunWriter(p)
    for i in range(200):
        w.add_step(i, loss=float(i))
    w.close()
    data = bytearray(p.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # smash the first page after the header
    p.write_bytes(bytes(data))
    with pytest.raises(RecordCorruptError):
        Record.open(p).column("loss")


def test_a_record_from_a_newer_modeldebug_is_refused_with_a_hint(tmp_path: Path) -> None:
    p = tmp_path / "future.db"
    w = RunWriter(p)
    w.set_meta(schema_version=SCHEMA_VERSION + 1)
    w.close()
    with pytest.raises(RecordCorruptError, match="upgrade modeldebug"):
        Record.open(p)


def test_writer_rejects_unknown_step_columns() -> None:
    w = RunWriter(":memory:")
    with pytest.raises(ValueError, match="unknown step columns"):
        w.add_step(0, losss=1.0)


def test_a_flush_per_step_keeps_every_step(tmp_path: Path) -> None:
    w = RunWriter(tmp_path / "many.db")
    for i in range(300):
        w.add_step(i, loss=1.0)
        w.flush()
    w.close()
    assert Record.open(tmp_path / "many.db").n_steps == 300


# -- the declared schema, its versions, and bulk cached reads -------------------------------------------
def test_the_declared_tables_are_what_the_writer_creates() -> None:
    from modeldebug.record.schema import DDL, TABLES

    con = sqlite3.connect(":memory:")
    con.executescript(DDL)
    made = {t: [(name, type_, bool(notnull) or (bool(pk) and type_ == "INTEGER"))  # an INTEGER PRIMARY KEY is the rowid
                 for _, name, type_, notnull, _, pk in con.execute(f"PRAGMA table_info({t})")]
            for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert made == {t: [(c.name, c.type, not c.nullable) for c in cols] for t, cols in TABLES.items()}


def test_every_older_schema_has_a_migration_to_the_next() -> None:
    from modeldebug.record.migrations import MIGRATIONS
    from modeldebug.record.schema import OLDEST_SCHEMA

    assert sorted(MIGRATIONS) == list(range(OLDEST_SCHEMA, SCHEMA_VERSION))


def _deep_record(path: Path, layers: int, steps: int = 30) -> None:
    w = RunWriter(path)
    params = []
    for i in range(layers):
        w.entity("module", f"l{i}", type="Linear", info={"leaf": True, "params": 2})
        params.append(w.entity("param", f"l{i}.weight", info={"shape": [4, 4], "module": f"l{i}",
                                                              "requires_grad": True}))
    for step in range(steps):
        w.add_step(step, loss=1.0 / (step + 1), lr=0.1, grad_norm=1.0, sampled=step % 5 == 0)
        w.add_stats(step, [(p, "grad_norm", 0.1 * (j + 1) + step) for j, p in enumerate(params)])
        if step % 5 == 0:
            w.add_stats(step, [(p, s, 1.0) for p in params for s in ("param_norm", "update_ratio")])
    w.set_meta(steps=steps)
    w.close()


def _statements(record: Record) -> list[str]:
    seen: list[str] = []
    record.conn.set_trace_callback(seen.append)
    return seen


def test_analysing_a_deep_record_runs_a_few_statements_whatever_its_depth(tmp_path: Path) -> None:
    from modeldebug.rules import analyze

    counts = []
    for layers in (10, 80):
        _deep_record(tmp_path / f"d{layers}.db", layers)
        record = Record.open(tmp_path / f"d{layers}.db")
        seen = _statements(record)
        analyze(record)
        counts.append(len(seen))
        analyze(record)  # everything is cached now
        assert len(seen) == counts[-1]
    assert counts[0] == counts[1] and counts[0] < 40, counts


def test_cached_series_equal_what_sql_says(tmp_path: Path) -> None:
    _deep_record(tmp_path / "d.db", 6)
    record = Record.open(tmp_path / "d.db")
    con = sqlite3.connect(tmp_path / "d.db")
    for e in record.entities():
        for (stat,) in con.execute("SELECT DISTINCT stat FROM stats WHERE entity = ?", (e.id,)):
            rows = con.execute("SELECT step, value FROM stats WHERE entity = ? AND stat = ? ORDER BY step",
                               (e.id, stat)).fetchall()
            s = record.series(e.name, stat, kind=e.kind)
            assert s.steps.tolist() == [r[0] for r in rows] and s.values.tolist() == [r[1] for r in rows]
            assert record.stat(stat, kind=e.kind)[e.name].values.tolist() == s.values.tolist()
    assert record.stat_rows() == con.execute(
        "SELECT s.step, e.kind, e.name, s.stat, s.value FROM stats s JOIN entities e ON e.id = s.entity "
        "ORDER BY e.id, s.stat, s.step").fetchall()
    assert set(record.frames()) == {"grad_norm", "param_norm", "update_ratio"}


def test_cached_arrays_are_read_only(tmp_path: Path) -> None:
    _deep_record(tmp_path / "d.db", 2)
    record = Record.open(tmp_path / "d.db")
    with pytest.raises(ValueError, match="read-only"):
        record.series("l0.weight", "grad_norm").values[0] = 5.0
    with pytest.raises(ValueError, match="read-only"):
        record.column("loss").values[0] = 5.0


def test_a_record_on_a_live_connection_reads_what_was_written_before_its_first_read() -> None:
    w = RunWriter(":memory:")
    record = Record(w.conn)
    w.add_step(0, loss=1.0)
    w.add_event(0, "nonfinite", {"what": "loss"})
    w.flush()
    assert record.n_steps == 1 and record.events("nonfinite")[0].data == {"what": "loss"}


def test_a_big_record_gets_the_quick_check_of_its_small_tables_and_damage_elsewhere_is_found_on_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modeldebug.record import store
    from modeldebug.rules import analyze

    path = tmp_path / "big.db"
    _deep_record(path, 60, steps=200)
    data = bytearray(path.read_bytes())
    data[-4096 * 3:] = b"\xa5" * (4096 * 3)  # the last pages: stats rows and their index
    path.write_bytes(bytes(data))
    with pytest.raises(RecordCorruptError, match="quick_check"):
        Record.open(path)  # small: the whole file is checked
    monkeypatch.setattr(store, "QUICK_CHECK_WHOLE_FILE", 0)  # as if it were a big file
    record = Record.open(path)  # meta, entities, steps and events are sound
    with pytest.raises(RecordCorruptError, match=r"big\.db' is damaged: SQLite says '.*' while reading table stats"):
        analyze(record)
