"""Damaged run records: every kind of damage is refused with one line naming the file, or read right.

The fuzzer starts from a real record (a tiny seeded model with a dead ReLU, watched at the
comprehensive level and written to a file), applies one kind of damage to a copy, and runs
`modeldebug report` and every `modeldebug export` target through `cli.main`. Each command must
either exit 2 with one line that names the file and what is wrong (no traceback), or produce the
same diagnosis as the undamaged record.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import random
import re
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import modeldebug as md
from modeldebug.cli import main
from modeldebug.errors import DebuggingError
from modeldebug.record import Record, RunWriter
from modeldebug.record.schema import LOOP_COLUMNS
from modeldebug.report import Report

EXPORTS = ("csv", "parquet", "tensorboard", "wandb")
COMMANDS = ("report", *EXPORTS)


def _train(path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[0].bias.fill_(-10.0)  # every ReLU unit dead from the start: ACT001 must be found
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    with md.watch(model, optimizer=opt, db=path, level="comprehensive"):
        for _ in range(24):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()


@dataclass
class Outcome:
    code: int
    err: str
    findings: list[dict[str, str]] | None = None  # the report's findings (JSON), or findings.csv's rows
    files: int = 0


def _run(command: str, db: Path, out: Path) -> Outcome:
    """One command through `cli.main`, its stderr captured; what it wrote under `out`."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        if command == "report":
            code = main(["report", str(db), "--json", str(out / "r.json"), "--html", str(out / "r.html")])
        else:
            code = main(["export", str(db), "--to", command, "--out", str(out / command)])
    if code != 0:
        return Outcome(code, err.getvalue())
    if command == "report":
        return Outcome(code, err.getvalue(), json.loads((out / "r.json").read_text())["findings"], 2)
    findings = None
    if command == "csv":
        with (out / "csv" / "findings.csv").open(encoding="utf-8") as fh:
            findings = list(csv.DictReader(fh))
    return Outcome(code, err.getvalue(), findings, sum(p.is_file() for p in (out / command).rglob("*")))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("base") / "base.db"
    _train(path)
    return path


@pytest.fixture(scope="module")
def healthy(base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """What each command gives on the undamaged record: the correct result to compare with."""
    out = tmp_path_factory.mktemp("healthy")
    results = {command: _run(command, base, out) for command in COMMANDS}
    assert all(r.code == 0 and r.files for r in results.values()), {c: r.err for c, r in results.items()}
    assert [f["code"] for f in results["report"].findings or []][:1] == ["ACT001"]
    return results


# -- the damages -------------------------------------------------------------------------------------
def sql(*statements: str) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        con = sqlite3.connect(path)
        try:
            con.executescript(";\n".join(statements))
            con.commit()
        finally:
            con.close()
    return damage


def write_bytes(fn: Callable[[bytearray], bytes | bytearray]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        path.write_bytes(bytes(fn(bytearray(path.read_bytes()))))
    return damage


def _garbage(data: bytearray, start: int, length: int) -> bytearray:
    rng = random.Random(7)
    data[start:start + length] = bytes(rng.randrange(256) for _ in range(length))
    return data


def wal_less_copy(path: Path) -> None:
    """A record copied while its run was writing, without the -wal file that holds the rows."""
    live = path.with_name("live.db")
    w = RunWriter(live)
    w.set_meta(script="train.py", status="running")
    w.entity("module", "fc", type="Linear")
    for step in range(5):
        w.add_step(step, loss=1.0)
    w.flush()
    shutil.copyfile(live, path)
    w.close()


def wal_less_copy_of_a_long_run(path: Path) -> None:
    """The same, after SQLite had already copied some rows from the -wal into the file."""
    live = path.with_name("long.db")
    w = RunWriter(live)
    w.set_meta(script="train.py", status="running")
    for step in range(50):
        w.add_step(step, loss=1.0)
    w.flush()
    w.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # what SQLite does by itself every 1,000 pages
    for step in range(50, 60):
        w.add_step(step, loss=1.0)
    w.flush()
    shutil.copyfile(live, path)
    w.close()


def foreign_sqlite(path: Path) -> None:
    path.unlink()
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    con.commit()
    con.close()


OLD_STEPS = ("step INTEGER PRIMARY KEY, loss REAL, lr REAL, n_backward INTEGER, grad_norm REAL, t_data REAL, "
             "t_forward REAL, t_backward REAL, t_optimizer REAL, t_step REAL, rss_mb REAL, cuda_mb REAL, "
             "sampled INTEGER NOT NULL DEFAULT 0")
OLD_COLUMNS = "step, loss, lr, n_backward, grad_norm, t_data, t_forward, t_backward, t_optimizer, t_step, rss_mb, cuda_mb, sampled"

SAME = None  # the command must give the undamaged record's result


@dataclass
class Damage:
    apply: Callable[[Path], None]
    expect: str | None  # a regex the one-line error must match, or SAME
    per_command: dict[str, str | None] = field(default_factory=dict)

    def expected(self, command: str) -> str | None:
        return self.per_command.get(command, self.expect)


DAMAGES: dict[str, Damage] = {
    # the file itself
    "not_sqlite": Damage(write_bytes(lambda d: b"this is not a database " * 100), r"not an SQLite file"),
    "empty_file": Damage(write_bytes(lambda d: b""), r"is empty"),
    "truncated_to_100_bytes": Damage(write_bytes(lambda d: d[:100]), r"is damaged: .*malformed"),
    "truncated_to_half": Damage(write_bytes(lambda d: d[: len(d) // 2]), r"is damaged: .*(malformed|quick_check)"),
    "corrupt_first_page": Damage(write_bytes(lambda d: _garbage(d, 100, 3996)), r"is damaged"),
    "corrupt_middle_pages": Damage(write_bytes(lambda d: _garbage(d, 4096 * 3, 4096 * 3)), r"is damaged"),
    "zeroed_last_page": Damage(write_bytes(lambda d: d[:-4096] + bytes(4096)), r"is damaged"),
    "wal_less_copy": Damage(wal_less_copy, r"without its -wal file"),
    "wal_less_copy_of_a_long_run": Damage(wal_less_copy_of_a_long_run,
                                          r"holds part of a run \(status running.*without its -wal file"),
    "foreign_sqlite": Damage(foreign_sqlite, r"not a modeldebug run record"),
    # tables
    "dropped_meta": Damage(sql("DROP TABLE meta"), r"table meta is missing"),
    "dropped_steps": Damage(sql("DROP TABLE steps"), r"table steps is missing"),
    "dropped_stats": Damage(sql("DROP TABLE stats"), r"table stats is missing"),
    "dropped_entities": Damage(sql("DROP TABLE entities"), r"table entities is missing"),
    "dropped_events": Damage(sql("DROP TABLE events"), r"table events is missing"),
    "dropped_histograms": Damage(sql("DROP TABLE histograms"), r"table histograms is missing"),
    "dropped_index": Damage(sql("DROP INDEX stats_by_entity"), SAME),
    "extra_table": Damage(sql("CREATE TABLE notes (x TEXT)", "INSERT INTO notes VALUES ('hi')"), SAME),
    # layout
    "older_layout_v1_early": Damage(sql(
        f"CREATE TABLE old AS SELECT {OLD_COLUMNS} FROM steps", "DROP TABLE steps",
        f"CREATE TABLE steps ({OLD_STEPS})", "INSERT INTO steps SELECT * FROM old", "DROP TABLE old",
        "UPDATE meta SET value = '1' WHERE key = 'schema_version'"), SAME),
    "version_1_full_layout": Damage(sql("UPDATE meta SET value = '1' WHERE key = 'schema_version'"), SAME),
    "missing_column_in_a_new_record": Damage(sql("ALTER TABLE steps DROP COLUMN t_loader"),
                                             r"table steps has no column t_loader"),
    "missing_stats_value": Damage(sql("ALTER TABLE stats DROP COLUMN value"), r"table stats has no column value"),
    "missing_entities_info": Damage(sql("ALTER TABLE entities DROP COLUMN info"),
                                    r"table entities has no column info"),
    "wrong_declared_type": Damage(sql(
        "CREATE TABLE h2 (step INTEGER NOT NULL, entity INTEGER NOT NULL, lo REAL, hi REAL, counts BLOB NOT NULL)",
        "INSERT INTO h2 SELECT * FROM histograms", "DROP TABLE histograms", "ALTER TABLE h2 RENAME TO histograms"),
        r"histograms.counts is declared BLOB, expected TEXT"),
    # meta
    "meta_without_magic": Damage(sql("DELETE FROM meta WHERE key = 'magic'"), r"meta has no 'magic' key"),
    "meta_foreign_magic": Damage(sql("""UPDATE meta SET value = '"other-tool"' WHERE key = 'magic'"""),
                                 r"not a modeldebug run record \(meta magic is 'other-tool'"),
    "meta_without_version": Damage(sql("DELETE FROM meta WHERE key = 'schema_version'"),
                                   r"meta has no 'schema_version' key"),
    "meta_version_as_text": Damage(sql("""UPDATE meta SET value = '"2"' WHERE key = 'schema_version'"""),
                                   r"meta key 'schema_version' is '2', expected int"),
    "meta_future_version": Damage(sql("UPDATE meta SET value = '99' WHERE key = 'schema_version'"),
                                  r"has record schema 99; .* upgrade modeldebug"),
    "meta_bad_json": Damage(sql("UPDATE meta SET value = '{oops' WHERE key = 'status'"),
                            r"meta key 'status' is not valid JSON"),
    "meta_wrong_type": Damage(sql("""UPDATE meta SET value = '"slow"' WHERE key = 'duration_s'"""),
                              r"meta key 'duration_s' is 'slow', expected int or float"),
    # cells
    "text_in_steps_loss": Damage(sql("UPDATE steps SET loss = 'abc' WHERE step = 3"),
                                 r"steps step 3: loss holds the text 'abc', expected a number"),
    "text_nan_in_steps_lr": Damage(sql("UPDATE steps SET lr = 'nan' WHERE step = 0"),
                                   r"steps step 0: lr holds the text 'nan', expected a number"),
    "blob_in_steps_grad_norm": Damage(sql("UPDATE steps SET grad_norm = x'00ff' WHERE step = 1"),
                                      r"steps step 1: grad_norm holds a blob of 2 bytes"),
    "text_in_stats_value": Damage(sql(
        "UPDATE stats SET value = 'abc' WHERE rowid = (SELECT min(rowid) FROM stats WHERE stat = 'grad_norm')"),
        r"stats row \d+: value holds the text 'abc', expected a number"),
    "text_nan_in_stats_value": Damage(sql(
        "UPDATE stats SET value = 'nan' WHERE rowid = (SELECT max(rowid) FROM stats WHERE stat = 'grad_norm')"),
        r"stats row \d+: value holds the text 'nan', expected a number"),
    "blob_in_stats_value": Damage(sql(
        "UPDATE stats SET value = x'ff' WHERE rowid = (SELECT min(rowid) FROM stats WHERE stat = 'dead_frac')"),
        r"stats row \d+: value holds a blob of 1 bytes, expected a number"),
    "text_in_stats_step": Damage(sql(
        "UPDATE stats SET step = 'x' WHERE rowid = (SELECT min(rowid) FROM stats WHERE stat = 'dead_frac')"),
        r"stats row \d+: step holds the text 'x', expected an integer"),
    "text_in_a_stat_no_rule_reads": Damage(sql(
        "UPDATE stats SET value = 'abc' WHERE rowid = (SELECT min(rowid) FROM stats WHERE stat = 'ch3_std')"),
        SAME, {"csv": r"stats row \d+: value holds the text 'abc'", "parquet": r"stats row \d+: value holds"}),
    "blob_as_entity_name": Damage(sql("UPDATE entities SET name = x'00' WHERE id = 2"),
                                  r"entities row 2: name holds a blob of 1 bytes, expected text"),
    "text_in_events_step": Damage(sql("UPDATE events SET step = 'later' WHERE id = 1"),
                                  r"events row 1: step holds the text 'later', expected an integer"),
    "events_bad_json": Damage(sql("UPDATE events SET data = '{\"type\": ' WHERE kind = 'optimizer'"),
                              r"events row \d+ \(optimizer\): data is not valid JSON"),
    "events_json_not_an_object": Damage(sql("UPDATE events SET data = '[1, 2]' WHERE kind = 'optimizer'"),
                                        r"events row \d+ \(optimizer\): data holds JSON list, expected dict"),
    "events_json_nested_too_deeply": Damage(
        sql("UPDATE events SET data = '" + "[" * 100_000 + "]" * 100_000 + "' WHERE kind = 'optimizer'"),
        r"events row \d+ \(optimizer\): data is not valid JSON \(nested too deeply\)"),
    "entities_info_bad_json": Damage(sql("UPDATE entities SET info = '{\"leaf\": tru' WHERE id = 3"),
                                     r"entities row 3 \(module '1'\): info is not valid JSON"),
    "histogram_counts_bad_json": Damage(sql(
        "UPDATE histograms SET counts = '[1, 2' WHERE rowid = (SELECT min(h.rowid) FROM histograms h "
        "JOIN entities e ON e.id = h.entity WHERE e.kind = 'loss')"),
        r"histograms row of 'cross_entropy' at step 0: counts is not valid JSON"),
    "histogram_counts_not_numbers": Damage(sql(
        "UPDATE histograms SET counts = '[\"a\"]' WHERE rowid = (SELECT min(h.rowid) FROM histograms h "
        "JOIN entities e ON e.id = h.entity WHERE e.kind = 'loss')"),
        r"histograms row of 'cross_entropy' at step 0: counts holds a value that is not a number"),
    "orphan_stats_rows": Damage(sql("INSERT INTO stats VALUES (0, 999, 'grad_norm', 1.0)"), SAME),
    "rows_out_of_order": Damage(sql(
        "CREATE TABLE s2 AS SELECT * FROM stats ORDER BY step DESC", "DELETE FROM stats",
        "INSERT INTO stats SELECT * FROM s2", "DROP TABLE s2"), SAME),
}


def test_the_fuzzer_covers_at_least_25_kinds_of_damage() -> None:
    assert len(DAMAGES) >= 25
    assert sum(d.expect is not SAME for d in DAMAGES.values()) >= 25


@pytest.mark.parametrize("name", list(DAMAGES))
def test_a_damaged_record_is_refused_in_one_line_or_read_right(
        name: str, base: Path, healthy: dict[str, Outcome], tmp_path: Path) -> None:
    damage = DAMAGES[name]
    db = tmp_path / f"{name}.db"
    shutil.copyfile(base, db)
    damage.apply(db)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    for command in COMMANDS:
        out = tmp_path / f"out-{command}"
        out.mkdir()
        got = _run(command, db, out)
        expected = damage.expected(command)
        assert "Traceback" not in got.err, (command, got.err)
        if expected is SAME:
            assert got.code == 0 and got.files, (command, got.err)
            assert got.findings == healthy[command].findings, command
        else:
            lines = got.err.splitlines()
            assert got.code == 2 and len(lines) == 1, (command, got.code, got.err)
            assert lines[0].startswith("modeldebug: ") and db.name in lines[0], (command, lines[0])
            assert re.search(expected, lines[0]), (command, lines[0])
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest, "reading a record must not change it"


@pytest.mark.slow  # MLflow creates its SQLite store with alembic migrations: ~2 s
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_mlflow_export_of_damaged_records(base: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for name in ("meta_future_version", "text_in_stats_value", "older_layout_v1_early"):
        damage = DAMAGES[name]
        db = tmp_path / f"{name}.db"
        shutil.copyfile(base, db)
        damage.apply(db)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["export", str(db), "--to", "mlflow", "--tracking-uri", uri])
        if damage.expect is SAME:
            assert code == 0, (name, err.getvalue())
        else:
            lines = err.getvalue().splitlines()
            assert code == 2 and len(lines) == 1 and db.name in lines[0], (name, lines)
            assert re.search(damage.expect, lines[0]), (name, lines[0])


def test_a_record_from_before_the_loop_columns_reads_them_as_not_measured(base: Path, tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    shutil.copyfile(base, db)
    DAMAGES["older_layout_v1_early"].apply(db)
    rec = Record.open(db)
    assert rec.schema_version == 1 and rec.n_steps == 24
    for name in LOOP_COLUMNS:
        col = rec.column(name)
        assert len(col) == 24 and np.isnan(col.values).all()  # not measured
    assert rec.column("loss").values.tolist() == Record.open(base).column("loss").values.tolist()


# -- a rule that could not run -------------------------------------------------------------------------
def _rule_breaking_record(base: Path, tmp_path: Path) -> Path:
    """Schema-valid but wrong-shaped event data: the optimizer rule (OPT001) cannot run on it."""
    db = tmp_path / "odd-optimizer.db"
    shutil.copyfile(base, db)
    sql("""UPDATE events SET data = '{"type": "SGD", "groups": 5}' WHERE kind = 'optimizer'""")(db)
    return db


def test_a_rule_that_could_not_run_is_in_the_report_and_the_others_still_run(base: Path, tmp_path: Path) -> None:
    report = Report.from_record(Record.open(_rule_breaking_record(base, tmp_path)))
    failed_codes = [f.evidence["rule"] for f in report.rules_failed()]
    assert {f.code for f in report.rules_failed()} == {"INT001"}  # the catalogue's code for a rule that failed
    assert "OPT001" in failed_codes  # (WGT001 reads the same optimizer event, and may fail on it too)
    assert report.findings[0].code == "ACT001"  # the other rules ran
    failed = report.to_dict()["run"]["rules_failed"]
    assert len(failed) == len(failed_codes) and any(f.startswith("OPT001: TypeError: ") for f in failed)
    assert "could not run" in report.to_text()


def test_fail_on_fails_when_a_rule_could_not_run(base: Path, tmp_path: Path) -> None:
    record = Record.open(_rule_breaking_record(base, tmp_path))
    everything = Report.from_record(record)
    assert everything.exit_code(None) == 0
    assert everything.exit_code("high") == 1  # ACT001 is high whatever OPT001 would have said
    only_opt = Report.from_record(record, md.DebuggingConfig(select=["OPT001"]))
    assert [(f.code, f.evidence["rule"]) for f in only_opt.findings] == [("INT001", "OPT001")]
    for severity in ("low", "medium", "high"):  # the rule's own failure is not a finding that passes or fails
        with pytest.raises(DebuggingError, match=rf"--fail-on {severity} cannot pass: 1 rule\(s\) could not "
                                                 r"run, so their verdict is unknown: OPT001 \(TypeError: "):
            only_opt.exit_code(severity)
    healthy_selection = Report.from_record(record, md.DebuggingConfig(select=["NUM001"]))
    assert healthy_selection.rules_failed() == [] and healthy_selection.exit_code("low") == 0


def test_report_fail_on_exits_2_with_one_line_when_a_rule_could_not_run(base: Path, tmp_path: Path) -> None:
    db = _rule_breaking_record(base, tmp_path)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["report", str(db), "--select", "OPT001", "--fail-on", "high", "--quiet"])
    assert code == 2 and err.getvalue().splitlines()[-1].startswith("modeldebug: --fail-on high cannot pass")
