"""MLflow export into a SQLite tracking store, read back with MlflowClient."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from modeldebug.errors import MissingDependencyError
from modeldebug.export import to_mlflow
from modeldebug.record import Record

from test_export_source import HOSTILE, make_run

# MLflow sends usage telemetry from a thread started at import unless told not to (it only notices
# pytest while a test runs, not at collection, when this module imports it).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
pytest.importorskip("mlflow", reason="needs the mlflow extra")
from mlflow.tracking import MlflowClient  # noqa: E402

pytestmark = [
    pytest.mark.slow,  # MLflow creates its SQLite schema with alembic migrations: ~2 s per store
    # MLflow 3.x's SQLAlchemy store uses a loader strategy SQLAlchemy 2.1 deprecates: not ours to fix.
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite tracking store for the module: creating its schema is the slow part."""
    return tmp_path_factory.mktemp("mlflow") / "mlflow.db"


def test_metrics_tags_and_artifacts_read_back(store: Path, tmp_path: Path) -> None:
    db = make_run(tmp_path / "dead.db")
    uri = f"sqlite:///{store}"
    run_id = to_mlflow(db, tracking_uri=uri)
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "dead"
    assert client.get_experiment(run.info.experiment_id).name == "modeldebug"
    assert run.data.tags["modeldebug.worst"] == "high" and run.data.tags["modeldebug.codes"] == "ACT001"
    record = Record.open(db)
    loss = client.get_metric_history(run_id, "modeldebug/loss")
    assert sorted(m.step for m in loss) == list(range(record.n_steps))
    np.testing.assert_allclose([m.value for m in sorted(loss, key=lambda m: m.step)], record.column("loss").values)
    # the dead ReLU's name holds characters MLflow refuses in a metric name: made safe, still findable
    weird = [k for k in run.data.metrics if k.startswith("modeldebug/weird/ACT001/") and k.endswith("/dead_frac")]
    assert weird == ["modeldebug/weird/ACT001/_script_alert_1__/script_/dead_frac"]
    assert run.data.metrics["modeldebug/findings_high"] == 1.0
    artifacts = {a.path for a in client.list_artifacts(run_id, "modeldebug")}
    assert artifacts == {"modeldebug/report.json", "modeldebug/report.html", "modeldebug/findings.md"}
    local = Path(client.download_artifacts(run_id, "modeldebug/report.json", str(tmp_path / "dl")))
    report = json.loads(local.read_text(encoding="utf-8"))
    assert [f["code"] for f in report["findings"]] == ["ACT001"] and report["findings"][0]["location"] == HOSTILE
    # artifacts of a new SQLite store live beside it, not in the current directory
    assert (store.parent / "mlartifacts" / run_id).is_dir() and not Path("mlruns").exists()


def test_into_an_existing_run_that_stays_open(store: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{store}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("mine", artifact_location=(tmp_path / "art").as_uri())
    mine = client.create_run(exp).info.run_id
    assert to_mlflow(make_run(tmp_path / "ok.db", dead=False, steps=10), tracking_uri=uri, run_id=mine) == mine
    run = client.get_run(mine)
    assert run.info.status == "RUNNING" and run.data.tags["modeldebug.worst"] == "none"
    assert len(client.get_metric_history(mine, "modeldebug/loss")) == 10
    assert not [k for k in run.data.metrics if "/weird/" in k]


def test_without_mlflow_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'modeldebug\[mlflow\]'"):
        to_mlflow(tmp_path / "any.db")


def test_the_command_with_out_keeps_its_store_there(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modeldebug.cli import main

    db = make_run(tmp_path / "cli.db", steps=10)
    assert main(["export", str(db), "--to", "mlflow", "--out", str(store.parent), "--experiment", "from-cli"]) == 0
    printed = capsys.readouterr().out
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    (run,) = client.search_runs([client.get_experiment_by_name("from-cli").experiment_id])
    assert run.info.run_id in printed and run.info.run_name == "cli"
    assert len(client.get_metric_history(run.info.run_id, "modeldebug/loss")) == 10
