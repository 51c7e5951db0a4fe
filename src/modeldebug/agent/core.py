"""ModelDebuggingAgent: a model, a batch and a complaint in; ranked, evidenced, verified findings out.

The deterministic path, in order:
1. validate the request (`Workload`) and snapshot the user's model (`ModelGuard`);
2. try one training step (ErrorDiagnoser): a crash is the answer, explained, and the rest is skipped;
3. a short training run on a copy under `modeldebug.watch` at the comprehensive level, so the
   whole rule catalogue judges it (on one batch it doubles as the overfit-one-batch probe);
4. the tools, in the order the complaint suggests (each writes what it measures into an in-memory
   record that the same rules judge, with the same config), and the sanity probes;
5. keep what the config's select/ignore keep, merge findings that say the same thing, fold
   symptoms into causes, rank (severity, then relevance to the complaint);
6. try the mechanical fixes for the top findings on copies and report before/after;
7. check the user's model is exactly as it came.
No language model is involved; one can explain the result afterwards.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from ..capture.resources import rss_mb
from ..config import DebuggingConfig
from ..rules.base import SEVERITY_ORDER, Finding
from ..rules.ranking import rank
from . import probes
from .fixes import VerifiedFix, candidate_fixes, verify
from .guard import ModelGuard
from .measure import selected
from .planner import plan
from .request import DebuggingRequest, Workload
from .response import AgentMetrics, DebuggingResponse
from .tools import TOOLS
from .trainer import short_run

__all__ = ["ModelDebuggingAgent"]

log = logging.getLogger(__name__)


def _same_place(a: str | None, b: str | None) -> bool:
    """Same location, or one module inside the other ("encoder" and "encoder.0")."""
    a, b = a or "", b or ""
    return a == b or (bool(a) and bool(b) and (a.startswith(b + ".") or b.startswith(a + ".")))


def _merge(groups: list[tuple[str, list[Finding]]]) -> list[Finding]:
    """One finding per kind and place: the first source's, with the others named as confirming it."""
    kept: list[Finding] = []
    for source, findings in groups:
        for f in findings:
            first = next((k for k in kept if k.kind == f.kind and _same_place(k.location, f.location)), None)
            if first is None:
                f.evidence.setdefault("found_by", [source])
                kept.append(f)
                continue
            if source not in first.evidence["found_by"]:
                first.evidence["found_by"].append(source)
            first.confidence = max(first.confidence, f.confidence)
            if SEVERITY_ORDER[f.severity] > SEVERITY_ORDER[first.severity]:
                first.severity = f.severity
    return kept


class ModelDebuggingAgent:
    """Debugs a model actively: tools, sanity probes and verified fixes, ranked by the user's complaint.

    ```python
    agent = modeldebug.ModelDebuggingAgent()
    response = agent.debug_model(modeldebug.DebuggingRequest(
        model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss(), issue="Model not converging"))
    print(response.to_text())
    ```
    `config` is the one every judgement uses: the watched run, each tool's measurements (judged by
    the same rules as `modeldebug run`), the probes' thresholds and a stored `request.record`, so
    `DebuggingConfig(thresholds={"dead_fraction": 0.9})` changes the verdict everywhere.
    `lm` (optional) is used only to explain the result afterwards; nothing here needs it.
    """

    def __init__(self, config: DebuggingConfig | None = None, *, lm: Any = None) -> None:
        self.config = config or DebuggingConfig(analysis_level="comprehensive")
        if isinstance(lm, str):  # a model string: fail on a bad one now, not after the analysis
            from ..llm import make_lm

            lm = make_lm(lm)
        self.lm = lm

    def debug_model(self, request: DebuggingRequest) -> DebuggingResponse:
        t0 = time.perf_counter()
        work = Workload(request, config=self.config)
        rss0 = rss_mb() or 0.0
        peak = [rss0]
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        the_plan = plan(request.issue)
        timings: dict[str, float] = {}
        results: dict[str, Any] = {}
        probe_results: dict[str, Any] = {}
        groups: list[tuple[str, list[Finding]]] = []
        fixes: list[VerifiedFix] = []
        record = None

        def timed(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
            s = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timings[name] = round(time.perf_counter() - s, 4)
                peak.append(rss_mb() or 0.0)

        with ModelGuard(request.model) as guard:
            errors = timed("error_diagnoser", TOOLS["error_diagnoser"](request.options, config=self.config).timed, work)
            results["error_diagnoser"] = errors
            if errors.failed:
                groups.append(("error_diagnoser", errors.findings))
            else:
                watched = timed("watched_run", short_run, work, steps=request.options.probe_steps,
                                one_batch=request.batch is not None, watch_level="comprehensive")
                if watched.report is not None:
                    record = watched.report.record
                    groups.append(("watched_run", watched.report.findings))
                for name in the_plan.tools:
                    if name == "error_diagnoser":
                        continue
                    try:
                        results[name] = timed(name, TOOLS[name](request.options, config=self.config).timed, work)
                        groups.append((name, results[name].findings))
                    except Exception as exc:  # noqa: BLE001 - one failing tool must not take the answer down
                        log.warning("modeldebug: the %s tool failed: %s", name, exc)
                        timings[name + "_error"] = 0.0
                overfit = watched if request.batch is not None else None
                for name, fn, args in (
                        ("loss_at_init", probes.loss_at_init, (work,)),
                        ("overfit_one_batch", probes.overfit_one_batch, (work, overfit)),
                        ("input_independent", probes.input_independent, (work, overfit)),
                        ("batch_mixing", probes.batch_mixing_probe, (work,)),
                        ("determinism", probes.determinism, (work,)),
                        ("lr_range_test", probes.lr_range_test, (work,))):
                    try:
                        probe_results[name] = timed(name, fn, *args)
                        groups.append((name, probe_results[name].findings))
                    except Exception as exc:  # noqa: BLE001
                        log.warning("modeldebug: the %s probe failed: %s", name, exc)
            if request.record is not None:
                groups.insert(0, ("run_record", self._record_findings(request.record)))
            groups = [(source, [f for f in found if selected(self.config, f)]) for source, found in groups]
            findings = the_plan.order(rank(_merge(groups), request.options.probe_steps))
            if request.options.verify_fixes and not errors.failed:
                fixes = timed("verified_fixes", self._verify, findings, work, probe_results)
            visuals = timed("visualizations", self._visualize, request, results, record) if request.visualizations else {}
        peak_mb = (torch.cuda.max_memory_allocated() / 2**20) if cuda else max(0.0, max(peak) - rss0)
        response = DebuggingResponse(
            issue=request.issue, findings=findings, tool_results=results, probes=probe_results, fixes=fixes,
            visualizations=visuals, metrics=AgentMetrics(tool_time_s=timings), model_unchanged=not guard.changed,
            changed=guard.changed, record=record,
            run={"script": f"agent: {type(request.model).__name__}", "issue": request.issue,
                 "steps": request.options.probe_steps, "mode": "agent", "context": request.context,
                 "torch": torch.__version__})
        response.metrics.analysis_time_s = round(time.perf_counter() - t0, 3)
        response.metrics.issues_found = len(findings)
        response.metrics.recommendations_given = len(response.recommendations)
        response.metrics.peak_memory_mb = round(peak_mb, 2)
        response.run["duration_s"] = response.metrics.analysis_time_s
        if self.lm is not None:
            from ..llm import attach_explanation

            attach_explanation(response, self.lm, request.issue or None, work=work)
        return response

    def _record_findings(self, record: Any) -> list[Finding]:
        from ..record import Record
        from ..report import Report

        rec = record if isinstance(record, Record) else Record.open(record)
        return Report.from_record(rec, self.config).findings

    def _verify(self, findings: list[Finding], work: Workload, probe_results: dict[str, Any]) -> list[VerifiedFix]:
        """Try the mechanical fixes for the three most important findings that have one."""
        lr_test = probe_results.get("lr_range_test")
        suggested = lr_test.data.get("suggested_lr") if lr_test is not None else None
        out: list[VerifiedFix] = []
        tried: set[str] = set()
        for f in findings:
            if len({v.for_kind for v in out}) >= 3:
                break
            for cand in candidate_fixes(f, work, suggested_lr=suggested):
                if cand.name in tried:
                    continue
                tried.add(cand.name)
                out.append(verify(cand, f, work))
        return out

    def _visualize(self, request: DebuggingRequest, results: dict[str, Any], record: Any) -> dict[str, str]:
        from .plots import write_visualizations

        return write_visualizations(request, results, record)
