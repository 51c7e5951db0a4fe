"""What every exporter writes: the run's findings, a few summary series, and the series behind each finding.

"Log only what is weird": besides the loss, gradient norm, learning rate and validation loss, an
exporter gets only the statistics that show a finding (the dead fraction of the ReLU that died,
the gradient norms of the layer that exploded), named ``modeldebug/weird/<CODE>/<where>/<stat>``.
Nothing here imports torch or an exporter's library.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BadInputError

if TYPE_CHECKING:
    from ..config import DebuggingConfig
    from ..record import Record, Series
    from ..report import Report

__all__ = ["KIND_SERIES", "PREFIX", "Exportable", "findings_records", "load", "safe_key"]

PREFIX = "modeldebug"

# The statistics that show each kind of finding: (source, statistic), where the source is "step"
# (a column of the steps table) or an entity kind of the record, resolved at the finding's location.
KIND_SERIES: dict[str, tuple[tuple[str, str], ...]] = {
    "exploding_gradients": (("param", "grad_norm"),),
    "vanishing_gradients": (("param", "grad_norm"),),
    "dead_activations": (("module", "dead_frac"), ("module", "zero_frac")),
    "saturated_activations": (("module", "saturated_frac"),),
    "nonfinite": (("module", "nonfinite"),),
    "params_not_updating": (("param", "update_ratio"),),
    "lr_too_high": (("param", "update_ratio"),),
    "lr_too_low": (("param", "update_ratio"),),
    "weight_collapse": (("param", "param_norm"),),
    "poor_initialization": (("module", "std"),),
    "input_not_normalized": (("input", "mean"), ("input", "std")),
    "channel_order": (("input", "ch0_mean"), ("input", "ch2_mean")),
    "memory_growth": (("step", "rss_mb"), ("step", "cuda_mb")),
    "slow_step": (("step", "t_step"),),
    "dataloader_bottleneck": (("step", "t_loader"), ("step", "t_data")),
    "excessive_grad_clipping": (("step", "clip_norm"),),
    "missing_zero_grad": (("step", "carried_grad_norm"),),
    "train_mode_misuse": (("step", "fwd_eval_mode"), ("step", "fwd_train_mode_nograd")),
}

# A finding at a module with many parameters exports at most this many parameter series.
MAX_PARAMS_PER_FINDING = 8

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /:]")


def safe_key(name: str) -> str:
    """A metric name every tracker accepts (MLflow allows only ``[A-Za-z0-9_-. /:]``, 250 chars)."""
    return _UNSAFE.sub("_", name)[:250]


def _md(text: Any) -> str:
    """Markdown-escape text from the user's run (module names, messages): it renders as text."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|#])", r"\\\1", s)


def _fence(code: str) -> str:
    ticks = "```"
    while ticks in code:
        ticks += "`"
    return f"{ticks}python\n{code}\n{ticks}"


@dataclass
class Exportable:
    """A run ready to export: its record (None for a report built without one), report and name."""

    record: Record | None
    report: Report
    name: str

    # -- series --------------------------------------------------------------------------------------
    def summary_series(self) -> dict[str, Series]:
        """Loss, gradient norm, learning rate and validation loss: the few series always exported."""
        rec = self.record
        if rec is None:
            return {}
        out: dict[str, Series] = {}
        for col in ("loss", "grad_norm", "lr"):
            out[f"{PREFIX}/{col}"] = rec.column(col).finite()
        val = {e.name: rec.series(e.name, "val_loss", kind="loss").finite() for e in rec.entities("loss")}
        val = {k: v for k, v in val.items() if len(v)}
        for name, series in val.items():
            short = name[:-5] if name.endswith("[val]") else name
            out[f"{PREFIX}/val_loss" if len(val) == 1 else f"{PREFIX}/val_loss/{short}"] = series
        return {k: v for k, v in out.items() if len(v)}

    def weird_series(self, *, max_params: int = MAX_PARAMS_PER_FINDING) -> dict[str, Series]:
        """The statistics behind each finding, at its location (see `KIND_SERIES`)."""
        rec = self.record
        if rec is None:
            return {}
        out: dict[str, Series] = {}
        for f in self.report.findings:
            for source, stat in KIND_SERIES.get(f.kind, ()):
                if source == "step":
                    series = rec.column(stat).finite() if rec.n_steps else None
                    if series is not None and len(series):
                        out[f"{PREFIX}/weird/{f.code}/{stat}"] = series
                    continue
                for name in self._entities_at(source, f.location)[:max_params]:
                    series = rec.series(name, stat, kind=source).finite()
                    if len(series):
                        out[f"{PREFIX}/weird/{f.code}/{name}/{stat}"] = series
        return out

    def _entities_at(self, kind: str, location: str | None) -> list[str]:
        """Entities of `kind` a finding at `location` is about: the module itself, or its parameters."""
        assert self.record is not None
        entities = self.record.entities(kind)
        if kind == "input":  # one per model; a finding names the model or nothing
            return [e.name for e in entities if location in (None, e.name)] or [e.name for e in entities[:1]]
        if location is None:
            return []
        exact = [e.name for e in entities if e.name == location]
        if exact or kind != "param":
            return exact
        return [e.name for e in entities
                if e.info.get("module") == location or e.name.startswith(location + ".")]

    def all_series(self) -> dict[str, Series]:
        return {**self.summary_series(), **self.weird_series()}

    # -- numbers and text ---------------------------------------------------------------------------
    def scalars(self) -> dict[str, float]:
        """One number each: findings by severity, steps, duration, overhead, first and final loss."""
        fs = self.report.findings
        out: dict[str, float] = {"findings": len(fs)}
        for sev in ("high", "medium", "low"):
            out[f"findings_{sev}"] = sum(1 for f in fs if f.severity == sev)
        run = self.report.run
        for key in ("steps", "duration_s", "overhead_s", "first_loss", "final_loss"):
            v = run.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out[key] = float(v)
        if run.get("final_loss_finite") is False:  # the run ended NaN/Inf: `final_loss` was its last finite loss
            if "final_loss" in out:
                out["last_finite_loss"] = out.pop("final_loss")
            out["final_loss_finite"] = 0.0
        return {f"{PREFIX}/{k}": v for k, v in out.items()}

    def tags(self) -> dict[str, str]:
        """Short strings a tracker can filter runs by."""
        return {f"{PREFIX}.worst": self.report.worst() or "none",
                f"{PREFIX}.codes": ",".join(dict.fromkeys(f.code for f in self.report.findings)) or "none",
                f"{PREFIX}.status": str(self.report.run.get("status") or "unknown")}

    def findings_json(self) -> str:
        """The contract's JSON report."""
        return self.report.to_json()

    def findings_markdown(self) -> str:
        """The findings as Markdown: a ranked table, then each finding with its evidence and fix."""
        fs = self.report.findings
        if not fs:
            return f"**modeldebug**: no problems found in {_md(self.name)}."
        worst = self.report.worst()
        lines = [f"**modeldebug**: {len(fs)} problem{'s' if len(fs) != 1 else ''} found in {_md(self.name)} "
                 f"(worst: {worst}), root causes first.", "",
                 "| # | severity | code | kind | where | step | title |", "|---|---|---|---|---|---|---|"]
        for i, f in enumerate(fs, 1):
            step = "" if f.step is None else str(f.step)
            cells = [str(i), f.severity, f.code, f.kind, f.location or "", step, f.title]
            lines.append("| " + " | ".join(_md(c).replace("\n", " ") for c in cells) + " |")
        for i, f in enumerate(fs, 1):
            where = f" at {_md(f.location)}" if f.location else ""
            lines += ["", f"#### {i}. [{f.severity.upper()}] {f.code} {f.kind}{where}", "", _md(f.description)]
            numbers = [(k, v) for k, v in f.evidence.items() if isinstance(v, (int, float, str))][:8]
            if numbers:
                lines += ["", "Evidence: " + ", ".join(f"{_md(k)} = {_md(_short(v))}" for k, v in numbers)]
            for r in f.recommendations:
                lines += ["", f"**{r.type.replace('_', ' ')}**: {_md(r.description)}"]
                if r.implementation:
                    lines += ["", _fence(r.implementation)]
        return "\n".join(lines)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)[:80]


def load(source: Any, *, config: DebuggingConfig | None = None) -> Exportable:
    """A run record path, `Record`, `Report` or `WatchSession`, ready to export."""
    from ..record import Record
    from ..report import Report

    if isinstance(source, Report):
        record, report = source.record, source
    elif isinstance(source, Record):
        record, report = source, Report.from_record(source, config)
    elif isinstance(source, (str, Path)):
        record = Record.open(source)
        report = Report.from_record(record, config)
    elif callable(getattr(source, "report", None)) and isinstance(getattr(source, "record", None), Record):
        record, report = source.record, source.report(config)  # a WatchSession
    else:
        raise BadInputError(f"cannot export a {type(source).__name__}: pass a run record path, a Record, "
                            "a Report or a WatchSession")
    return Exportable(record, report, _run_name(record, report))


def _run_name(record: Record | None, report: Report) -> str:
    if record is not None and record.path not in (None, ":memory:"):
        return Path(record.path).stem
    script = report.run.get("script")
    return Path(str(script)).stem if script else "run"


def findings_records(report: Report) -> list[dict[str, Any]]:
    """One flat dict per finding (evidence and recommendations as JSON text), for tables."""
    rows = []
    as_json = report.to_dict()["findings"]  # NaN/Inf already spelled out for JSON
    for rank, (f, d) in enumerate(zip(report.findings, as_json), 1):
        rows.append({"rank": rank, "code": f.code, "kind": f.kind, "category": f.category, "severity": f.severity,
                     "confidence": f.confidence, "title": f.title, "description": f.description,
                     "location": f.location, "step": f.step,
                     "evidence": json.dumps(d["evidence"], allow_nan=False),
                     "recommendations": json.dumps(d["recommendations"], allow_nan=False)})
    return rows
