"""Parquet and CSV tables, read back with pandas."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from modeldebug.errors import MissingDependencyError
from modeldebug.export import to_csv, to_parquet
from modeldebug.record import Record

from test_export_source import HOSTILE, make_run

pd = pytest.importorskip("pandas", reason="needs the export extra")
pytest.importorskip("pyarrow", reason="needs the export extra")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("tables") / "dead.db")


def _check_tables(frames: dict[str, "pd.DataFrame"], record: Record) -> None:
    steps, stats, findings = frames["steps"], frames["stats"], frames["findings"]
    assert steps["step"].tolist() == list(range(record.n_steps))
    np.testing.assert_allclose(steps["loss"].to_numpy(dtype=float), record.column("loss").values)
    np.testing.assert_allclose(steps["grad_norm"].to_numpy(dtype=float), record.column("grad_norm").values)
    assert steps["cuda_mb"].isna().all()  # never recorded on a CPU: missing, not zero
    assert list(stats.columns) == ["step", "kind", "entity", "stat", "value"]
    n_stats = record.conn.execute("SELECT count(*) FROM stats").fetchone()[0]
    assert len(stats) == n_stats
    dead = stats[(stats.entity == HOSTILE) & (stats.stat == "dead_frac")]
    expected = record.series(HOSTILE, "dead_frac", kind="module")
    assert dead["step"].tolist() == expected.steps.tolist() and (dead["value"] == 1.0).all()
    grads = stats[(stats.kind == "param") & (stats.stat == "grad_norm")].pivot(index="step", columns="entity", values="value")
    np.testing.assert_allclose(grads["fc1.weight"].to_numpy(), record.series("fc1.weight", "grad_norm").values)
    assert findings["code"].tolist() == ["ACT001"] and findings["location"].tolist() == [HOSTILE]
    evidence = json.loads(findings["evidence"][0])
    assert evidence["dead_fraction"] == 1.0
    assert json.loads(findings["recommendations"][0])[0]["type"] == "fix"


def test_parquet_tables_read_back_with_pandas(db: Path, tmp_path: Path) -> None:
    paths = to_parquet(db, tmp_path / "pq")
    assert set(paths) == {"steps", "stats", "findings"}
    frames = {name: pd.read_parquet(path) for name, path in paths.items()}
    _check_tables(frames, Record.open(db))
    assert str(frames["steps"]["sampled"].dtype) == "int64" and str(frames["stats"]["value"].dtype) == "float64"


def test_csv_tables_read_back_with_pandas(db: Path, tmp_path: Path) -> None:
    paths = to_csv(db, tmp_path / "csv")
    frames = {name: pd.read_csv(path) for name, path in paths.items()}
    _check_tables(frames, Record.open(db))


def test_a_run_without_findings_has_an_empty_findings_table(tmp_path: Path) -> None:
    db = make_run(tmp_path / "healthy.db", dead=False, steps=10)
    frames = {n: pd.read_parquet(p) for n, p in to_parquet(db, tmp_path / "pq").items()}
    assert len(frames["findings"]) == 0 and "severity" in frames["findings"].columns
    assert len(frames["steps"]) == 10


def test_parquet_without_pyarrow_names_the_extra_and_csv_still_works(db: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'modeldebug\[export\]'"):
        to_parquet(db, tmp_path / "pq")
    assert not (tmp_path / "pq").exists()
    assert to_csv(db, tmp_path / "csv")["steps"].is_file()


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted_and_numbers_stay_numbers(tmp_path: Path) -> None:
    import csv

    from modeldebug.report import Report
    from modeldebug.rules import Finding
    from modeldebug.testing import build_record

    hostile = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]
    record = build_record(loss=[-1.5, -0.25, 2.0], params={name: {"grad_norm": [-1.0, 0.5, 3.0]} for name in hostile})
    findings = [Finding(code="XXX001", kind="nonfinite", category="numerics", severity="high", confidence=0.5,
                        title=text, description=text, location=text, step=-1) for text in hostile]
    paths = to_csv(Report(findings, {"script": "hand.py"}, record), tmp_path / "csv")
    with paths["findings"].open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["title"] for r in rows] == ["'" + text for text in hostile]
    assert all(r["location"] == r["description"] == r["title"] for r in rows)
    assert {r["step"] for r in rows} == {"-1"} and {r["confidence"] for r in rows} == {"0.5"}  # numbers as written
    with paths["stats"].open(newline="", encoding="utf-8") as fh:
        stats = list(csv.DictReader(fh))
    assert {r["entity"] for r in stats if r["kind"] == "param"} == {"'" + text for text in hostile}
    assert sorted({float(r["value"]) for r in stats if r["stat"] == "grad_norm"}) == [-1.0, 0.5, 3.0]
    frames = pd.read_csv(paths["steps"])
    assert frames["loss"].tolist() == [-1.5, -0.25, 2.0] and str(frames["loss"].dtype) == "float64"
