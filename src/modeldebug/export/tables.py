"""A run as three flat tables, for pandas users: Parquet (pyarrow) or CSV (no dependency).

- ``steps``: one row per step, every column of the record's steps table (docs/record.md);
- ``stats``: long format, one row per (step, entity, statistic): ``step, kind, entity, stat, value``;
- ``findings``: one row per finding, most important first; evidence and recommendations as JSON text.

Missing values (never recorded, or NaN: the record stores NaN as NULL) are nulls in Parquet and empty
cells in CSV; an infinity is kept (``inf`` in CSV, which pandas reads back as a float), since a gradient
norm that overflowed says something a missing one does not.
A CSV text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
``'`` (the OWASP defence against formula injection: a module named ``=HYPERLINK(...)`` must not run
as a formula when the file is opened in a spreadsheet); numbers are written as numbers.

```python
import pandas as pd
from modeldebug.export import to_parquet

paths = to_parquet("run.db", "tables/")
stats = pd.read_parquet(paths["stats"])
stats.pivot_table(index="step", columns=["entity", "stat"], values="value")
```
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError
from .source import Exportable, findings_records, load

__all__ = ["TABLES", "csv_cell", "table_rows", "to_csv", "to_parquet"]

TABLES = ("steps", "stats", "findings")

_FINDING_COLUMNS = [("rank", "int"), ("code", "str"), ("kind", "str"), ("category", "str"), ("severity", "str"),
                    ("confidence", "float"), ("title", "str"), ("description", "str"), ("location", "str"),
                    ("step", "int"), ("evidence", "str"), ("recommendations", "str")]
_STATS_COLUMNS = [("step", "int"), ("kind", "str"), ("entity", "str"), ("stat", "str"), ("value", "float")]


def table_rows(run: Exportable) -> dict[str, tuple[list[tuple[str, str]], list[tuple[Any, ...]]]]:
    """Each table as (columns with their type: int, float or str; rows). NaN is stored as None."""
    out: dict[str, tuple[list[tuple[str, str]], list[tuple[Any, ...]]]] = {}
    if run.record is not None:
        # The record's bulk reads (checked: damage is a one-line error, never a bad cell in a table).
        names, rows = run.record.steps()
        # SQLite's types are per value: a column is int when every value in it is.
        columns = [(n, "int" if all(isinstance(r[i], int) for r in rows if r[i] is not None) else "float")
                   for i, n in enumerate(names)]
        out["steps"] = (columns, rows)
        out["stats"] = (_STATS_COLUMNS, run.record.stat_rows())
    else:
        out["steps"] = ([("step", "int")], [])
        out["stats"] = (_STATS_COLUMNS, [])
    names = [c for c, _ in _FINDING_COLUMNS]
    out["findings"] = (_FINDING_COLUMNS, [tuple(r[c] for c in names) for r in findings_records(run.report)])
    return out


def _out_dir(out: str | Path) -> Path:
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    return path


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """`value` as a CSV cell: None empty, text that a spreadsheet would run as a formula quoted with '."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(source: Any, out: str | Path) -> dict[str, Path]:
    """Write steps.csv, stats.csv and findings.csv into directory `out`; returns their paths."""
    run = load(source)
    folder = _out_dir(out)
    paths = {}
    for name, (columns, rows) in table_rows(run).items():
        path = folder / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow([csv_cell(c) for c, _ in columns])
            writer.writerows([csv_cell(v) for v in row] for row in rows)
        paths[name] = path
    return paths


def to_parquet(source: Any, out: str | Path) -> dict[str, Path]:
    """Write steps.parquet, stats.parquet and findings.parquet into directory `out`; returns their paths."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("Parquet export", "export") from None
    types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}
    run = load(source)
    folder = _out_dir(out)
    paths = {}
    for name, (columns, rows) in table_rows(run).items():
        schema = pa.schema([(c, types[t]) for c, t in columns])
        data = {c: [row[i] for row in rows] for i, (c, _) in enumerate(columns)}
        table = pa.table(data, schema=schema)
        table = table.replace_schema_metadata({"modeldebug.run": run.name, "modeldebug.table": name})
        path = folder / f"{name}.parquet"
        pq.write_table(table, path)
        paths[name] = path
    return paths
