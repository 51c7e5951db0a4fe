"""The on-disk layout of a run record, declared once: tables, columns, declared types, meta keys.

Bump SCHEMA_VERSION on any change of layout, and add the step that reads the previous version in
memory to `migrations.MIGRATIONS`. The reader (`Record`) checks a file against `TABLES` and `META`
on open; the writer creates it from `DDL`, which a test keeps equal to `TABLES`.

Versions:
- 1: the first layout. Records from early 0.1.0 development lack the steps columns
  `LOOP_COLUMNS`, which were added without a version bump.
- 2: the same tables with every column guaranteed (`LOOP_COLUMNS` included).
- 3: ``steps.t_cpu``, the process's CPU seconds per step (a busy machine adds wall time, not CPU time).
- 4: ``steps.t_inference``, the part of the gap before a step's forward pass spent in forward passes
  without gradients (a distillation teacher, a target network, an evaluation): not data loading.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DDL", "LOOP_COLUMNS", "MAGIC", "META", "OLDEST_SCHEMA", "REQUIRED_META", "SCHEMA_VERSION", "TABLES",
           "Column"]

SCHEMA_VERSION = 4
OLDEST_SCHEMA = 1  # the oldest version `migrations` can read
MAGIC = "modeldebug-run"

# steps: one row per optimizer step (or per backward pass when a script has no optimizer).
# entities: modules, parameters and losses, by stable string name (never by Python class or id()).
# stats: long table of (step, entity, statistic, value); histograms and events beside it.
DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entities (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, type TEXT,
    model TEXT, info TEXT, UNIQUE (kind, name));
CREATE TABLE IF NOT EXISTS steps (
    step INTEGER PRIMARY KEY, loss REAL, lr REAL, n_backward INTEGER, grad_norm REAL,
    t_data REAL, t_forward REAL, t_backward REAL, t_optimizer REAL, t_step REAL,
    rss_mb REAL, cuda_mb REAL, t_loader REAL, zero_grad_calls INTEGER, carried_grad_norm REAL,
    clip_norm REAL, clip_max REAL, live_losses INTEGER, fwd_eval_mode INTEGER,
    fwd_train_mode_nograd INTEGER, sampled INTEGER NOT NULL DEFAULT 0, t_cpu REAL,
    t_inference REAL);
CREATE TABLE IF NOT EXISTS stats (
    step INTEGER NOT NULL, entity INTEGER NOT NULL, stat TEXT NOT NULL, value REAL);
CREATE INDEX IF NOT EXISTS stats_by_entity ON stats (entity, stat, step);
CREATE TABLE IF NOT EXISTS histograms (
    step INTEGER NOT NULL, entity INTEGER NOT NULL, lo REAL, hi REAL, counts TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, step INTEGER, kind TEXT NOT NULL, data TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Column:
    """One declared column: its SQLite type (INTEGER, REAL or TEXT) and whether NULL is allowed
    (never for an INTEGER PRIMARY KEY, which is the row id)."""

    name: str
    type: str
    nullable: bool = True


def _columns(spec: str) -> tuple[Column, ...]:
    """'name TYPE, name TYPE!' -> Columns; a trailing ! means NOT NULL."""
    out = []
    for item in spec.split(","):
        name, type_ = item.split()
        out.append(Column(name, type_.rstrip("!"), nullable=not type_.endswith("!")))
    return tuple(out)


TABLES: dict[str, tuple[Column, ...]] = {
    "meta": _columns("key TEXT, value TEXT!"),
    "entities": _columns("id INTEGER!, kind TEXT!, name TEXT!, type TEXT, model TEXT, info TEXT"),
    "steps": _columns(
        "step INTEGER!, loss REAL, lr REAL, n_backward INTEGER, grad_norm REAL, t_data REAL, t_forward REAL, "
        "t_backward REAL, t_optimizer REAL, t_step REAL, rss_mb REAL, cuda_mb REAL, t_loader REAL, "
        "zero_grad_calls INTEGER, carried_grad_norm REAL, clip_norm REAL, clip_max REAL, live_losses INTEGER, "
        "fwd_eval_mode INTEGER, fwd_train_mode_nograd INTEGER, sampled INTEGER!, t_cpu REAL, t_inference REAL"),
    "stats": _columns("step INTEGER!, entity INTEGER!, stat TEXT!, value REAL"),
    "histograms": _columns("step INTEGER!, entity INTEGER!, lo REAL, hi REAL, counts TEXT!"),
    "events": _columns("id INTEGER!, step INTEGER, kind TEXT!, data TEXT!"),
}

# Steps columns that version-1 records from early 0.1.0 development do not have.
LOOP_COLUMNS = ("t_loader", "zero_grad_calls", "carried_grad_norm", "clip_norm", "clip_max", "live_losses",
                "fwd_eval_mode", "fwd_train_mode_nograd")

# Meta values are JSON. These keys must be present; the others are optional, but when present their
# decoded value must have the type given here (None is always allowed for optional keys).
REQUIRED_META: dict[str, tuple[type, ...]] = {"magic": (str,), "schema_version": (int,)}
_NUMBER = (int, float)
META: dict[str, tuple[type, ...]] = {
    **REQUIRED_META,
    **dict.fromkeys(("created", "started", "duration_s", "overhead_s"), _NUMBER),
    **dict.fromkeys(("exit_code", "steps", "pid"), (int,)),
    **dict.fromkeys(("script", "cwd", "mode", "status", "level", "python", "torch", "device", "platform",
                     "modeldebug"), (str,)),
    **dict.fromkeys(("argv", "models", "optimizers"), (list,)),
    "config": (dict,),
}
