"""Read-only questions a language model may ask about a stored run, answered in short text.

Each answer is statistics (counts, first/last/min/max, a handful of evenly spaced points), names
and code locations; never a tensor or a data sample. A bad name gets an answer that lists the
good ones instead of an exception, so a model can correct itself. No DSPy here: the tool loop
wraps these methods, and they are useful (and tested) on their own.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..record import Record, Series
    from .evidence import Evidence

__all__ = ["RunQueries", "STEP_COLUMNS", "summarize_series"]

#: per-step columns of the run record (docs/record.md), asked for with entity "run"
STEP_COLUMNS = ("loss", "lr", "grad_norm", "n_backward", "t_data", "t_forward", "t_backward", "t_optimizer", "t_step",
                "t_loader", "rss_mb", "cuda_mb", "zero_grad_calls", "carried_grad_norm", "clip_norm", "clip_max",
                "live_losses", "fwd_eval_mode", "fwd_train_mode_nograd")
#: the statistics each entity kind can have (docs/record.md)
ENTITY_STATS = {
    "param": ("grad_norm", "param_norm", "update_ratio"),
    "module": ("mean", "std", "min", "max", "zero_frac", "nonfinite", "dead_frac", "saturated_frac", "training"),
    "input": ("mean", "std", "min", "max", "nonfinite_frac", "const_frac"),
    "loss": ("in_min", "in_max", "in_mean", "in_rowsum_dev", "in_frac_01", "in_nonfinite", "tgt_min", "tgt_max",
             "tgt_mean", "val_loss"),
}
_MAX_LIST = 40


def _g(v: float) -> str:
    return f"{v:.4g}"


def summarize_series(series: Series, *, points: int = 8) -> str:
    """One line: count, first/last, min/max with their steps, mean, first non-finite step, a few points."""
    n = len(series)
    if n == 0:
        return "no values recorded"
    vals, steps = series.values, series.steps
    finite = [(int(s), float(v)) for s, v in zip(steps, vals) if math.isfinite(v)]
    bad = [int(s) for s, v in zip(steps, vals) if not math.isfinite(v)]
    parts = [f"{n} values over steps {int(steps[0])}..{int(steps[-1])}"]
    if finite:
        lo = min(finite, key=lambda p: p[1])
        hi = max(finite, key=lambda p: p[1])
        mean = sum(v for _, v in finite) / len(finite)
        parts += [f"first {_g(finite[0][1])}", f"last {_g(finite[-1][1])}", f"min {_g(lo[1])} at step {lo[0]}",
                  f"max {_g(hi[1])} at step {hi[0]}", f"mean {_g(mean)}"]
    if bad:
        parts.append(f"{len(bad)} non-finite (NaN/Inf), first at step {bad[0]}")
    k = min(points, n)
    idx = sorted({round(i * (n - 1) / max(1, k - 1)) for i in range(k)})
    parts.append("points " + ", ".join(f"{int(steps[i])}:{_g(float(vals[i]))}" for i in idx))
    return "; ".join(parts)


class RunQueries:
    """Questions about one run: its findings (by id), its entities, series summaries, events."""

    def __init__(self, evidence: Evidence | None, record: Record | None = None) -> None:
        from .evidence import Evidence

        self.evidence = evidence if evidence is not None else Evidence([], "", "", record)
        self.record = record if record is not None else self.evidence.record

    # -- findings -------------------------------------------------------------------------------
    def list_findings(self) -> str:
        """Every rule finding, most important first, one line each with its id."""
        if not self.evidence.briefs:
            return "the rules found nothing"
        return "\n".join(f"{b.id} [{b.severity}, confidence {b.confidence:.2f}] {b.code} {b.kind}"
                         f"{f' at {b.location}' if b.location else ''}"
                         f"{f' from step {b.step}' if b.step is not None else ''}: {b.title}"
                         for b in self.evidence.briefs)

    def finding_details(self, finding_id: str) -> str:
        """One finding in full: description, evidence numbers, symptoms, recommendations."""
        fid = (finding_id or "").strip().upper()
        ids = self.evidence.ids
        if fid not in ids:
            return f"no finding {finding_id!r}; the ids are {', '.join(ids) or 'none'}"
        f = self.evidence.findings[ids.index(fid)]
        brief = self.evidence.briefs[ids.index(fid)]
        lines = [f"{fid} {f.code} {f.kind} ({f.category}, {f.severity}, confidence {f.confidence:.2f})",
                 f"title: {f.title}", f"description: {f.description}"]
        if f.location:
            lines.append(f"location: {f.location}")
        if f.step is not None:
            lines.append(f"from step: {f.step}")
        lines += [f"evidence {k}: {v}" for k, v in brief.evidence.items()]
        lines += [f"symptom: {s}" for s in brief.symptoms]
        lines += [f"recommendation ({r.type}): {r.description}" for r in f.recommendations]
        return "\n".join(lines)

    # -- the record -----------------------------------------------------------------------------
    def _no_record(self) -> str | None:
        return None if self.record is not None else "no run record is available for this analysis"

    def list_entities(self, kind: str = "") -> str:
        """Names of the modules, parameters, inputs and losses recorded (optionally of one kind)."""
        if (msg := self._no_record()) is not None:
            return msg
        kind = (kind or "").strip() or None
        if kind is not None and kind not in ENTITY_STATS:
            return f"unknown kind {kind!r}; kinds are {', '.join(ENTITY_STATS)}"
        ents = self.record.entities(kind)  # type: ignore[union-attr]
        lines = [f"{e.kind} {e.name}{f' ({e.type})' if e.type else ''}" for e in ents[:_MAX_LIST]]
        if len(ents) > _MAX_LIST:
            lines.append(f"... and {len(ents) - _MAX_LIST} more")
        lines.append(f"per-step columns (entity 'run'): {', '.join(STEP_COLUMNS)}")
        return "\n".join(lines)

    def series_summary(self, entity: str, stat: str) -> str:
        """Summary of one statistic over steps; entity 'run' reads a per-step column (loss, lr, grad_norm, ...)."""
        if (msg := self._no_record()) is not None:
            return msg
        rec = self.record
        entity, stat = (entity or "").strip(), (stat or "").strip()
        if entity in ("", "run", "steps"):
            if stat not in STEP_COLUMNS:
                return f"unknown per-step column {stat!r}; columns are {', '.join(STEP_COLUMNS)}"
            try:
                return f"run.{stat}: " + summarize_series(rec.column(stat))  # type: ignore[union-attr]
            except KeyError:
                return f"run.{stat}: not recorded in this run"
        ents = [e for e in rec.entities() if e.name == entity]  # type: ignore[union-attr]
        if not ents:
            names = [e.name for e in rec.entities()][:_MAX_LIST]  # type: ignore[union-attr]
            return f"no entity named {entity!r}; entities are {', '.join(names) or 'none'} (or 'run')"
        out = []
        for e in ents:
            s = rec.series(e.name, stat, kind=e.kind)  # type: ignore[union-attr]
            if len(s):
                out.append(f"{e.kind} {e.name}.{stat}: {summarize_series(s)}")
        if out:
            return "\n".join(out)
        have = [st for e in ents for st in ENTITY_STATS.get(e.kind, ())
                if len(rec.series(e.name, st, kind=e.kind))]  # type: ignore[union-attr]
        return f"{entity} has no {stat!r} statistic; it has {', '.join(have) or 'none'}"

    def loss_curve(self) -> str:
        """The training loss, learning rate and total gradient norm over the run, summarised."""
        if (msg := self._no_record()) is not None:
            return msg
        return "\n".join(self.series_summary("run", c) for c in ("loss", "lr", "grad_norm"))

    def events(self, kind: str = "") -> str:
        """Events of the run (exception, nonfinite, optimizer, data_overlap, ...), at most 20."""
        if (msg := self._no_record()) is not None:
            return msg
        evs = self.record.events((kind or "").strip() or None)  # type: ignore[union-attr]
        if not evs:
            return f"no {kind + ' ' if kind else ''}events"
        return "\n".join(f"step {e.step}: {e.kind} {_brief_data(e.data)}" for e in evs[:20])


def _brief_data(data: dict[str, Any], limit: int = 400) -> str:
    text = ", ".join(f"{k}={v}" for k, v in data.items() if not isinstance(v, (list, dict)) or len(str(v)) < 120)
    return text[:limit]
