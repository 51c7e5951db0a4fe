"""Reading older record layouts in memory: the file is never written.

A record's layout is what its file holds: for each table, the columns present and their declared
types. The reader turns it into a *read plan*: for every table of the current schema, the SQL
expression that reads each declared column from the file. Each migration upgrades the plan of one
version to the next (a column added later reads as NULL, a renamed one reads from its old name), so
an old record reads exactly like a new one and the rest of modeldebug sees one layout.

To change the layout: bump `schema.SCHEMA_VERSION`, change `schema.DDL` and `schema.TABLES`, and
add the step from the previous version here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .schema import LOOP_COLUMNS, OLDEST_SCHEMA, SCHEMA_VERSION, TABLES

__all__ = ["MIGRATIONS", "Plan", "TableRead", "plan_reads"]


@dataclass
class TableRead:
    """How to read one table: from which table of the file, each column by which SQL expression."""

    source: str
    columns: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)  # declared types of the columns read as they are

    def select(self, names: list[str] | None = None) -> str:
        """`SELECT <expressions AS names> FROM main."<source>"` for the given columns (all by default);
        a name that is not a column is taken as an SQL expression over the columns as they are."""
        names = names or list(self.columns)
        cols = ", ".join(n if n not in self.columns else e if e == _q(n) else f"{e} AS {_q(n)}"
                         for n, e in ((n, self.columns.get(n, "")) for n in names))
        return f"SELECT {cols} FROM main.{_q(self.source)}"


Plan = dict[str, TableRead]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _v1_to_v2(plan: Plan) -> None:
    # Early version-1 records predate the training-loop columns: they read as "not measured".
    steps = plan.get("steps")
    if steps is not None:
        for name in LOOP_COLUMNS:
            steps.columns.setdefault(name, "NULL")


def _v2_to_v3(plan: Plan) -> None:
    # Version 3 added the process CPU time per step: older records read it as "not measured".
    steps = plan.get("steps")
    if steps is not None:
        steps.columns.setdefault("t_cpu", "NULL")


def _v3_to_v4(plan: Plan) -> None:
    # Version 4 split the inference between steps out of the gap: older records read it as "not measured".
    steps = plan.get("steps")
    if steps is not None:
        steps.columns.setdefault("t_inference", "NULL")


# version -> the step that makes a plan of that version read as version + 1
MIGRATIONS: dict[int, Callable[[Plan], None]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4}


def plan_reads(version: int, layout: dict[str, dict[str, str]]) -> Plan:
    """The read plan for a file of schema `version` whose tables hold `layout` ({table: {column: type}}).

    Tables and columns that are still missing after the migrations are left out of the plan; the
    caller reports them as damage.
    """
    if not OLDEST_SCHEMA <= version <= SCHEMA_VERSION:
        raise ValueError(f"no read plan for schema {version}")
    plan: Plan = {}
    for table, cols in layout.items():
        plan[table] = TableRead(table, {c: _q(c) for c in cols}, dict(cols))
    for v in range(version, SCHEMA_VERSION):
        MIGRATIONS[v](plan)
    for table, read in plan.items():  # the declared order, whatever order the file has them in
        if table in TABLES:
            order = [c.name for c in TABLES[table] if c.name in read.columns]
            read.columns = {c: read.columns[c] for c in order}
    return plan
