"""MLflow: the summary and weird series as metrics, the findings (JSON, Markdown) and the HTML report as artifacts.

```python
from modeldebug.export import to_mlflow
run_id = to_mlflow("run.db", tracking_uri="sqlite:///mlflow.db")     # a new run in experiment "modeldebug"
to_mlflow(session, run_id=mlflow.active_run().info.run_id)            # or into your own run
```
Without `tracking_uri` MLflow's own default applies (``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``).
A new experiment on a SQLite store keeps its artifacts in ``mlartifacts/`` beside the database file.
Artifacts land under ``modeldebug/``: ``report.json``, ``report.html``, ``findings.md``.
Everything is written through an explicit ``MlflowClient``: MLflow's global state (the active run,
the tracking URI set by ``mlflow.set_tracking_uri``) is left as it was.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import BadInputError, MissingDependencyError
from .source import Exportable, load, safe_key

__all__ = ["to_mlflow"]

_BATCH = 1000  # MLflow's limit of metrics per log_batch call


def _artifact_root(uri: str) -> str | None:
    """Beside the database for a SQLite store; the store's own default otherwise."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite" or not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        return None
    db = Path(uri[len("sqlite:///"):])
    return (db.parent.resolve() / "mlartifacts").as_uri()


def _metrics(run: Exportable, metric_cls: Any) -> list[Any]:
    now = int(time.time() * 1000)
    out = []
    last = 0
    for tag, series in run.all_series().items():
        key = safe_key(tag)
        for step, value in zip(series.steps.tolist(), series.values.tolist()):
            out.append(metric_cls(key, float(value), now, int(step)))
            last = max(last, int(step))
    out += [metric_cls(safe_key(k), v, now, last) for k, v in run.scalars().items()]
    return out


def _write_artifacts(run: Exportable, folder: Path) -> None:
    run.report.to_json(folder / "report.json")
    run.report.to_html(folder / "report.html")
    (folder / "findings.md").write_text(run.findings_markdown() + "\n", encoding="utf-8")


def to_mlflow(source: Any, *, tracking_uri: str | None = None, experiment: str = "modeldebug",
              run_name: str | None = None, run_id: str | None = None) -> str:
    """Log a run to MLflow; returns the MLflow run id.

    A new run is created in `experiment` (created if needed) unless `run_id` names an existing
    run, which is then added to and left open.
    """
    try:
        import mlflow
        from mlflow.entities import Metric, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MissingDependencyError("MLflow export", "mlflow") from None
    from mlflow.exceptions import MlflowException

    run = load(source)
    uri = tracking_uri or mlflow.get_tracking_uri()
    _check_uri(uri)
    try:
        return _log(run, uri, MlflowClient, Metric, RunTag, experiment=experiment, run_name=run_name, run_id=run_id)
    except MlflowException as exc:
        raise BadInputError(_explain(uri, exc)) from exc


def _check_uri(uri: str) -> None:
    """Refuse what MLflow would get wrong quietly: a SQLite store whose folder does not exist (it creates it),
    and a store that is a run record (MLflow would add its tables to the record: the export's own input)."""
    from ..record.lock import is_record

    if uri.startswith("sqlite:///") and not uri.endswith(":memory:"):
        db = Path(uri[len("sqlite:///"):])
        if not db.parent.is_dir():
            raise BadInputError(f"MLflow tracking URI {uri!r}: the folder {str(db.parent)!r} does not exist; "
                                "create it first, or give --out DIR")
        if db.is_file() and is_record(db):
            raise BadInputError(f"MLflow tracking URI {uri!r} names a modeldebug run record: MLflow would write its "
                                "tables into it; give the store a file of its own, e.g. sqlite:///mlflow.db")


def _explain(uri: str, exc: Exception) -> str:
    """One line for an MLflow failure: the URI and the first sentence of MLflow's own message."""
    text = " ".join(str(exc).split())
    scheme = urlparse(uri).scheme
    if "unsupported URI" in text or "Unsupported URI" in text:
        return (f"MLflow tracking URI {uri!r}: MLflow has no store for the scheme {scheme!r}; use e.g. "
                "sqlite:///path/mlflow.db or http(s)://your-mlflow-server")
    first = text.split(". ")[0][:300]
    if "filesystem tracking backend" in text:
        first += "; use a database store such as sqlite:///path/mlflow.db"
    return f"MLflow tracking URI {uri!r}: {first}"


def _log(run: Exportable, uri: str, client_cls: Any, metric_cls: Any, tag_cls: Any, *, experiment: str,
         run_name: str | None, run_id: str | None) -> str:
    """`to_mlflow` once the URI is checked: the MLflow classes are passed in, imported by the caller."""
    client = client_cls(tracking_uri=uri)
    tags = {**run.tags(), "modeldebug.run": run.name,
            "modeldebug.record": str(run.record.path) if run.record is not None else "none",
            "modeldebug.level": str(run.report.run.get("level") or "")}
    own = run_id is None
    if own:
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(
            experiment, artifact_location=_artifact_root(uri))
        run_id = client.create_run(exp_id, run_name=run_name or run.name).info.run_id
    assert run_id is not None
    try:
        metrics = _metrics(run, metric_cls)
        for i in range(0, max(len(metrics), 1), _BATCH):
            client.log_batch(run_id, metrics=metrics[i:i + _BATCH],
                             tags=[tag_cls(k, v) for k, v in tags.items()] if i == 0 else [])
        with tempfile.TemporaryDirectory(prefix="modeldebug-mlflow-") as tmp:
            _write_artifacts(run, Path(tmp))
            client.log_artifacts(run_id, tmp, artifact_path="modeldebug")
    except BaseException:
        if own:
            client.set_terminated(run_id, "FAILED")
        raise
    if own:
        client.set_terminated(run_id, "FINISHED")
    return run_id
