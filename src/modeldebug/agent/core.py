"""ModelDebuggingAgent: a model, a batch and a complaint in; ranked, evidenced, verified findings out.

The deterministic path, in order:
1. validate the request (`Workload`) and snapshot the user's model (`ModelGuard`); set torch's CPU
   threads to `options.threads` (1 by default) for the analysis, and put them back after;
2. look at the model: with every parameter frozen nothing can train, and that is the answer (an
   issue with its fix); weights (or held gradients) that are already NaN/Inf, all-zero weights and
   BatchNorm fed one sample at a time are findings (NaN weights explain what every run then shows);
3. try one training step (ErrorDiagnoser): a crash is the answer, explained, and the rest is skipped;
4. a short training run on a copy under `modeldebug.watch` at the comprehensive level, so the
   whole rule catalogue judges it (on one batch it doubles as the overfit-one-batch probe, and the
   rules about the data's label distribution are left out: one batch repeated is no sample of it); a
   claim of LSS001 that only the values' range supports is tested on the model;
5. the tools, in the order the complaint suggests (each writes what it measures into an in-memory
   record that the same rules judge, with the same config), and the sanity probes, those that
   compare noisy numbers over seeded repeats;
6. keep what the config's select/ignore keep, merge findings that say the same thing, fold
   symptoms into causes, rank (severity, then relevance to the complaint);
7. try the mechanical fixes for the top findings on copies and report before/after;
8. check the user's model is exactly as it came.
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
from . import probes, structure
from .causality import causality_probe
from .fixes import VerifiedFix, candidate_fixes, verify
from .guard import ModelGuard
from .measure import selected
from .planner import plan
from .probes import ProbeResult
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


def _label_distribution(f: Finding) -> bool:
    """A finding about the data's label distribution (DAT003's class balance, LBL001's one class
    everywhere, one class per batch, batches in label order). The watched run on a single batch repeats
    that batch, so it would judge one batch, counted again at every step, as the whole data set; what
    one batch can show (a label out of range, targets off the loss's range or scale) is kept."""
    return f.code == "DAT003" or (f.code == "LBL001" and "label_counts" in f.evidence)


def _future_leak_claim(f: Finding) -> bool:
    """DAT004's "the model sees the tokens it must predict", read from the watch's one-position probe."""
    return f.code == "DAT004" and int(f.evidence.get("future_positions_seen") or 0) > 0


def _refute_future_leak(groups: list[tuple[str, list[Finding]]], probe_results: dict[str, Any]) -> None:
    """Drop DAT004's future-leak claim when the causality probe measured the model causal.

    The watch's probe reads one position of the output laid out as (batch, time, ...); a sequence's
    logits given to CrossEntropyLoss as (batch, classes, time) read so mix classes with positions,
    and a causal model was reported as seeing 5 later tokens. The causality probe reads the output
    in either layout, at four positions on four samples: when it passes, the claim is refuted.
    """
    probe = probe_results.get("causality")
    if probe is None or probe.verdict != "pass":
        return
    dropped = 0
    for i, (source, found) in enumerate(groups):
        kept = [f for f in found if not _future_leak_claim(f)]
        dropped += len(found) - len(kept)
        groups[i] = (source, kept)
    if dropped:
        probe.summary += "; DAT004's claim that the model sees later tokens is refuted by it and dropped"
        probe.data["refuted"] = "DAT004"


def _not_frozen(f: Finding, work: Workload) -> bool:
    """LOP002's "frozen BatchNorm layers still run in train mode", about layers that are not frozen.

    The rule calls a BatchNorm frozen when its parameters stop moving. The agent's runs hand the
    optimizer every parameter that requires a gradient, so in them a BatchNorm whose parameters all
    require one stops moving only because its gradient is zero (the ReLU after it is dead): a
    symptom, and "keep the frozen part in eval mode" would be the wrong fix.
    """
    layers = f.evidence.get("layers") if f.code == "LOP002" and "last_moved_step" in f.evidence else None
    if not layers:
        return False
    modules = dict(work.model.named_modules())
    params = [p for name in layers if name in modules for p in modules[name].parameters()]
    return len(params) > 0 and all(name in modules for name in layers) and all(p.requires_grad for p in params)


def _cuda_devices() -> list[int]:
    """The CUDA devices whose generators a fork must save: none unless CUDA is already in use."""
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() and torch.cuda.is_initialized() else []


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
        """Analyse `request` on copies of its model; see the module docstring for what runs.

        Runs on `request.options.threads` torch CPU threads (1 by default; restored after): the
        probes' models are small, and more threads only compete with each other on a busy machine.
        """
        t0 = time.perf_counter()
        # Reading the request draws batches from `request.data`: a shuffled DataLoader draws its order
        # from torch's global generator, which the user's own training goes on using. ModelGuard
        # snapshots it too late for that, so the draws happen on a forked generator.
        with torch.random.fork_rng(devices=_cuda_devices()):
            work = Workload(request, config=self.config)
        threads = request.options.threads
        before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            response = self._debug(work, request, t0)
            response.metrics.threads = torch.get_num_threads()
            response.run["threads"] = response.metrics.threads
        finally:
            if threads is not None:
                torch.set_num_threads(before)
        return response

    def _debug(self, work: Workload, request: DebuggingRequest, t0: float) -> DebuggingResponse:
        rss0 = rss_mb() or 0.0
        peak = [rss0]
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        the_plan = plan(work.issue)
        timings: dict[str, float] = {}
        results: dict[str, Any] = {}
        probe_results: dict[str, Any] = {}
        groups: list[tuple[str, list[Finding]]] = []
        fixes: list[VerifiedFix] = []
        record = None
        visuals: dict[str, str] = {}
        failed = False

        def timed(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
            s = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timings[name] = round(time.perf_counter() - s, 4)
                peak.append(rss_mb() or 0.0)

        with ModelGuard(request.model) as guard:
            stuck = structure.frozen(work)
            if stuck is not None:  # nothing can train: that is the answer, and every other tool needs training
                groups.append(("model_check", [stuck]))
            else:
                broken = structure.nonfinite_state(work)  # NaN weights: the cause of whatever the runs show
                if broken is not None:
                    groups.append(("model_check", [broken]))
                failed = self._analyse(work, the_plan, timed, timings, results, probe_results, groups)
                watched = results.pop("watched_run", None)
                record = watched.report.record if watched is not None and watched.report is not None else None
            if request.record is not None:
                groups.insert(0, ("run_record", self._record_findings(request.record)))
            groups = [(source, [f for f in found if selected(self.config, f)]) for source, found in groups]
            findings = the_plan.order(rank(_merge(groups), request.options.probe_steps))
            if request.options.verify_fixes and stuck is None and not failed:
                fixes = timed("verified_fixes", self._verify, findings, work, probe_results)
            if work.visualizations and stuck is None:
                visuals = timed("visualizations", self._visualize, request, work.visualizations, results, record)
        peak_mb = (torch.cuda.max_memory_allocated() / 2**20) if cuda else max(0.0, max(peak) - rss0)
        response = DebuggingResponse(
            issue=work.issue, findings=findings, tool_results=results, probes=probe_results, fixes=fixes,
            visualizations=visuals, metrics=AgentMetrics(tool_time_s=timings), model_unchanged=not guard.changed,
            changed=guard.changed, record=record,
            run={"script": f"agent: {type(request.model).__name__}", "issue": work.issue,
                 "steps": request.options.probe_steps, "mode": "agent", "context": request.context,
                 "torch": torch.__version__})
        if work.visualizations and not visuals:  # asked for, none drawn: say why rather than nothing
            response.run["visualizations_note"] = (
                "every parameter is frozen: nothing trains, so there is no gradient flow or training step to plot"
                if stuck is not None else "a training step crashed: the tools that measure the plots did not run"
                if failed else "the tools that measure the plots did not finish")
        response.metrics.analysis_time_s = round(time.perf_counter() - t0, 3)
        response.metrics.issues_found = len(findings)
        response.metrics.recommendations_given = len(response.recommendations)
        response.metrics.peak_memory_mb = round(peak_mb, 2)
        response.run["duration_s"] = response.metrics.analysis_time_s
        if self.lm is not None:
            from ..llm import attach_explanation

            attach_explanation(response, self.lm, work.issue or None, work=work)
        return response

    def _analyse(self, work: Workload, the_plan: Any, timed: Any, timings: dict[str, float], results: dict[str, Any],
                 probe_results: dict[str, Any], groups: list[tuple[str, list[Finding]]]) -> bool:
        """The error diagnoser, the watched run, the tools and the probes; True when a training step crashed."""
        request = work.request
        checks = [f for f in (structure.zero_weights(work), structure.single_sample_batchnorm(work)) if f is not None]
        errors = timed("error_diagnoser", TOOLS["error_diagnoser"](request.options, config=self.config).timed, work)
        results["error_diagnoser"] = errors
        if errors.failed:
            structure.batchnorm_advice(work, errors.findings)
            groups.append(("error_diagnoser", errors.findings))
            groups.append(("model_check", [f for f in checks if f.kind != "single_sample_batchnorm"]))
            return True
        groups.append(("model_check", checks))
        watched = timed("watched_run", short_run, work, steps=request.options.probe_steps,
                        one_batch=request.batch is not None, watch_level="comprehensive")
        results["watched_run"] = watched
        if watched.report is not None:
            found = watched.report.findings
            if request.batch is not None:  # one batch, repeated: no sample of the data's labels
                found = [f for f in found if not _label_distribution(f)]
            groups.append(("watched_run", self._checked(found, work, probe_results, timed)))
        for name in the_plan.tools:
            if name == "error_diagnoser":
                continue
            try:
                results[name] = timed(name, TOOLS[name](request.options, config=self.config).timed, work)
                groups.append((name, results[name].findings))
            except Exception as exc:  # noqa: BLE001 - one failing tool must not take the answer down
                log.warning("modeldebug: the %s tool failed: %s", name, exc)
                timings[name + "_error"] = 0.0
        real: Any = watched if request.batch is not None else None
        try:
            real = timed("seeded_runs", probes.seeded_runs, work, real)
        except Exception as exc:  # noqa: BLE001 - each probe then makes its own runs (and reports its own failure)
            log.warning("modeldebug: the seeded probe runs failed: %s", exc)
        probe_list: list[tuple[str, Any]] = [
            ("loss_at_init", lambda: probes.loss_at_init(work)),
            ("input_independent", lambda: probes.input_independent(work, real)),
            ("overfit_one_batch", lambda: probes.overfit_one_batch(work, real)),
            ("batch_mixing", lambda: probes.batch_mixing_probe(work)),
            ("causality", lambda: causality_probe(work)),
            ("determinism", lambda: probes.determinism(work)),
            ("lr_range_test", lambda: probes.lr_range_test(work))]
        for name, fn in probe_list:
            try:
                probe_results[name] = timed(name, fn)
                groups.append((name, probe_results[name].findings))
            except Exception as exc:  # noqa: BLE001
                log.warning("modeldebug: the %s probe failed: %s", name, exc)
        _refute_future_leak(groups, probe_results)
        order = ("loss_at_init", "overfit_one_batch", "input_independent")  # as people read them
        for name in [*order, *[n for n in probe_results if n not in order]]:
            if name in probe_results:
                probe_results[name] = probe_results.pop(name)
        return False

    def _checked(self, findings: list[Finding], work: Workload, probe_results: dict[str, Any], timed: Any) -> list[Finding]:
        """The watched run's findings, with LSS001's "squashed into [0, 1]" tested on the model itself.

        That variant only reads the range of the values the loss got; constant small logits of a dead
        network lie in [0, 1] too. The claim is kept when scaled and negated inputs keep the output in
        [0, 1], dropped when they do not (the check is in `probes["squashing_check"]`).
        """
        findings = [f for f in findings if not _not_frozen(f, work)]
        tol = work.config.thresholds.probability_rowsum
        claims = [f for f in findings if structure.squashed_claim(f, tol)]
        if not claims:
            return findings
        shown, why = timed("squashing_check", structure.squashing_shown, work)
        verdict = {True: "fail", False: "pass", None: "skipped"}[shown]  # "fail": the model does squash
        probe_results["squashing_check"] = ProbeResult(
            "squashing_check", verdict, f"LSS001 said the loss gets values squashed into [0, 1]: {why}"
            + ("; LSS001 is dropped" if shown is False else "; LSS001 stands" if shown else ""),
            {"shown": shown, "why": why})
        if shown is False:
            return [f for f in findings if f not in claims]
        return findings

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

    def _visualize(self, request: DebuggingRequest, names: list[str], results: dict[str, Any],
                   record: Any) -> dict[str, str]:
        from .plots import write_visualizations

        return write_visualizations(request, results, record, names=names)
