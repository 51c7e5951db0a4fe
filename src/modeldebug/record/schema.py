"""The on-disk layout of a run record. Bump SCHEMA_VERSION on any incompatible change."""

from __future__ import annotations

__all__ = ["SCHEMA_VERSION", "DDL", "MAGIC"]

SCHEMA_VERSION = 1
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
    fwd_train_mode_nograd INTEGER, sampled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS stats (
    step INTEGER NOT NULL, entity INTEGER NOT NULL, stat TEXT NOT NULL, value REAL);
CREATE INDEX IF NOT EXISTS stats_by_entity ON stats (entity, stat, step);
CREATE TABLE IF NOT EXISTS histograms (
    step INTEGER NOT NULL, entity INTEGER NOT NULL, lo REAL, hi REAL, counts TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, step INTEGER, kind TEXT NOT NULL, data TEXT NOT NULL);
"""
