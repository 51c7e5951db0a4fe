"""Cross-rank rules: per-rank records in, findings out (pure; no torch, no I/O).

Each rank's record holds fingerprints (`dist_params`, `dist_grads`, `dist_bn`, `dist_batches`),
timings (`dist_times`), sampler iterations (`dist_sampler`) and stalls (`dist_hang`) written by
`DistWatch`. The rules compare them step by step; a rule that crashes is reported under its
code, as the training rules are.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ..catalogue import CATALOGUE, Catalogue, Finding, Recommendation
from ..config import DebuggingConfig
from ..record import Record

__all__ = ["DIST_RULES", "RankRun", "cross_rank_findings"]

_REL = 1e-6  # fingerprints of replicated tensors agree to this relative difference


@dataclass
class RankRun:
    """One rank's record, read for the cross-rank rules."""

    rank: int
    record: Record

    def fps(self, kind: str) -> dict[int, dict[str, list[float | None]]]:
        """step -> name -> [sum, sum of squares], from events of `kind`."""
        out: dict[int, dict[str, list[float | None]]] = {}
        for e in self.record.events(kind):
            if e.step is not None:
                out.setdefault(e.step, {}).update(zip(e.data.get("names", []), e.data.get("fp", [])))
        return out

    @cached_property
    def times(self) -> dict[str, dict[int, float | None]]:
        """phase -> step -> seconds (also "lr" -> step -> learning rate)."""
        out: dict[str, dict[int, float | None]] = {"data": {}, "forward": {}, "step": {}, "lr": {}}
        for e in self.record.events("dist_times"):
            steps = e.data.get("steps", [])
            for key, by_step in out.items():
                by_step.update(zip(steps, e.data.get(key, [])))
        return out

    @cached_property
    def batches(self) -> dict[int, tuple[Any, ...]]:
        out: dict[int, tuple[Any, ...]] = {}
        for e in self.record.events("dist_batches"):
            for s, shape, fp in zip(e.data.get("steps", []), e.data.get("shapes", []), e.data.get("fp", [])):
                out[s] = (tuple(shape), *(fp or ()))
        return out

    @cached_property
    def model(self) -> dict[str, Any]:
        ev = self.record.events("dist_model")
        return ev[0].data if ev else {}


def _differs(a: list[float | None] | None, b: list[float | None] | None) -> float:
    """The largest relative difference of two fingerprints (0 when equal; inf when one is missing or NaN)."""
    if a is None or b is None or len(a) != len(b):
        return 0.0
    worst = 0.0
    for x, y in zip(a, b):
        if x is None or y is None:
            if (x is None) != (y is None):
                return math.inf
            continue
        scale = max(abs(x), abs(y), 1e-12)
        worst = max(worst, abs(x - y) / scale)
    return worst


def _module_of(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


def _fp_compare(runs: list[RankRun], kind: str) -> list[dict[str, Any]]:
    """Per common step: which tensors differ between rank 0 (the lowest) and each other rank."""
    base, others = runs[0], runs[1:]
    fps = {r.rank: r.fps(kind) for r in runs}
    out = []
    for step in sorted(fps[base.rank]):
        if not all(step in fps[o.rank] for o in others):
            continue
        ref = fps[base.rank][step]
        differing: dict[str, float] = {}
        ranks: set[int] = set()
        for o in others:
            for name, fp in fps[o.rank][step].items():
                d = _differs(ref.get(name), fp)
                if d > _REL:
                    differing[name] = max(differing.get(name, 0.0), d)
                    ranks.add(o.rank)
        out.append({"step": step, "n": len(ref), "differing": differing, "ranks": sorted(ranks),
                    "values": {name: {r.rank: fps[r.rank][step].get(name) for r in runs}
                               for name in list(differing)[:1]}})
    return out


def _diverged(runs: list[RankRun], kind: str, code: str, what: str, recs: list[Recommendation],
              extra: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None) -> list[Finding]:
    if any(r.model.get("sharded") for r in runs):
        return []  # FSDP and DTensor shard parameters on purpose
    checks = _fp_compare(runs, kind)
    bad = [c for c in checks if c["differing"]]
    if not bad:
        return []
    first = bad[0]
    name = max(first["differing"], key=first["differing"].get)
    ev = {"first_step": first["step"], "steps_checked": [c["step"] for c in checks],
          "steps_differing": [c["step"] for c in bad], "ranks_differing_from_rank0": first["ranks"],
          "tensors_differing": len(first["differing"]), "tensors": first["n"],
          "largest_relative_difference": round(max(first["differing"].values()), 6),
          "example": {"tensor": name, "fingerprint_by_rank": {str(k): v for k, v in first["values"].get(
              name, {}).items()}},
          "first_differing": sorted(first["differing"])[:10]}
    if extra:
        ev.update(extra(checks))
    spec = CATALOGUE[code]
    return [spec.finding(
        severity="high", confidence=0.9 if len(bad) > 1 else 0.75,
        title=f"{what} of {len(first['differing'])} of {first['n']} tensors differ across ranks from step "
              f"{first['step']} (rank(s) {', '.join(map(str, first['ranks']))} vs rank 0)",
        description=f"{what} should be identical on every rank of a data-parallel job; at step {first['step']} "
                    f"{len(first['differing'])} tensors differ (largest relative difference "
                    f"{ev['largest_relative_difference']:.3g}, e.g. {name}), and they still differed at "
                    f"{len(bad)} of {len(checks)} compared steps.",
        location=_module_of(name), step=first["step"], evidence=ev, recommendations=recs)]


def params_diverged(runs: list[RankRun]) -> list[Finding]:
    return _diverged(runs, "dist_params", "DST001", "Parameters", [
        Recommendation("fix", "Make every rank start from the same weights: load checkpoints and change weights "
                       "before wrapping the model in DDP (DDP broadcasts rank 0's weights when it is built), "
                       "and never change weights on one rank only.",
                       "model.load_state_dict(torch.load(ckpt, map_location=device))  # on every rank\n"
                       "model = DDP(model, device_ids=[local_rank])"),
        Recommendation("best_practice", "Check the replicas once after setup.",
                       "for p in model.parameters():\n    ref = p.detach().clone(); dist.broadcast(ref, 0)\n"
                       "    assert torch.equal(ref, p)")])


def grads_unsynced(runs: list[RankRun]) -> list[Finding]:
    def sync(_: list[dict[str, Any]]) -> dict[str, Any]:
        off = {r.rank: [e.step for e in r.record.events("dist_sync") if not e.data.get("require_backward_grad_sync")]
               for r in runs}
        return {"ddp": [r.model.get("ddp") for r in runs],
                "no_sync_active_at_steps": {str(k): v for k, v in off.items() if v}}

    return _diverged(runs, "dist_grads", "DST002", "Gradients before the optimizer step", [
        Recommendation("fix", "Let DDP average the gradients: call backward on the DDP-wrapped model's output, "
                       "and use no_sync() only for the accumulation micro-steps, leaving it before the last "
                       "backward of each step.",
                       "for i, (x, y) in enumerate(loader):\n"
                       "    ctx = model.no_sync() if (i + 1) % accum else contextlib.nullcontext()\n"
                       "    with ctx:\n        loss_fn(model(x), y).backward()\n"
                       "    if (i + 1) % accum == 0:\n        opt.step(); opt.zero_grad()"),
        Recommendation("fix", "Do not move a model after wrapping it in DDP: move it to its device first.",
                       "model = model.to(device)\nmodel = DDP(model, device_ids=[local_rank])")], extra=sync)


def _common(runs: list[RankRun], series: Callable[[RankRun], dict[int, Any]]) -> tuple[list[int], dict[int, dict[int, Any]]]:
    data = {r.rank: series(r) for r in runs}
    steps = sorted(set.intersection(*(set(d) for d in data.values()))) if data else []
    return steps, data


def same_data(runs: list[RankRun]) -> list[Finding]:
    steps, data = _common(runs, lambda r: r.batches)
    steps = [s for s in steps if all(data[r.rank][s] and len(data[r.rank][s]) == 3 for r in runs)]
    if len(steps) < 3:
        return []
    same = [s for s in steps if all(data[r.rank][s] == data[runs[0].rank][s] for r in runs[1:])]
    if len(same) < 0.9 * len(steps):
        return []
    samplers = {r.rank: len({e.data.get("sampler") for e in r.record.events("dist_sampler")}) for r in runs}
    no_sampler = not any(samplers.values())
    return [CATALOGUE["DST003"].finding(
        severity="high", confidence=0.9 if len(steps) >= 10 else 0.7,
        title=f"Every rank trained on the same batches ({len(same)} of {len(steps)} steps identical on all "
              f"{len(runs)} ranks)",
        description=f"The first input batch of each step had the same shape, sum and sum of squares on every rank "
                    f"at {len(same)} of {len(steps)} steps: the ranks repeat each other's work, so the job learns "
                    f"no faster than one process while using {len(runs)}."
                    + (" No DistributedSampler was iterated on any rank." if no_sampler else ""),
        step=same[0], evidence={"steps_compared": len(steps), "steps_identical": len(same),
                                "distributed_samplers_seen": {str(k): v for k, v in samplers.items()},
                                "first_batch_fingerprint": data[runs[0].rank][same[0]]},
        recommendations=[Recommendation(
            "fix", "Give each rank its own shard with a DistributedSampler (and drop shuffle=True from the "
            "DataLoader: the sampler shuffles).",
            "sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True)\n"
            "loader = DataLoader(dataset, batch_size=bs, sampler=sampler)")])]


def same_order(runs: list[RankRun]) -> list[Finding]:
    out = []
    for r in runs:
        by_sampler: dict[Any, list[dict[str, Any]]] = {}
        for e in r.record.events("dist_sampler"):
            by_sampler.setdefault(e.data.get("sampler"), []).append(e.data)
        for idx, its in by_sampler.items():
            shuffled = [d for d in its if d.get("shuffle")]
            epochs = [d.get("epoch") for d in shuffled]
            if len(shuffled) >= 2 and len(set(epochs)) == 1:
                out.append((r.rank, idx, len(shuffled), epochs[0]))
    if not out:
        return []
    ranks = sorted({o[0] for o in out})
    n, epoch = out[0][2], out[0][3]
    return [CATALOGUE["DST004"].finding(
        severity="medium", confidence=0.9,
        title=f"The DistributedSampler shuffled {n} epochs in the same order (epoch stayed {epoch}: set_epoch "
              "was never called)",
        description=f"A shuffling DistributedSampler was iterated {n} times with the same epoch ({epoch}) on "
                    f"rank(s) {', '.join(map(str, ranks))}: its order depends only on the seed and the epoch, so "
                    "every epoch visits the samples in the same order and each rank sees the same shard every epoch.",
        evidence={"ranks": ranks, "iterations": n, "epoch": epoch,
                  "per_rank": [{"rank": a, "sampler": b, "iterations": c, "epoch": d} for a, b, c, d in out]},
        recommendations=[Recommendation("fix", "Call set_epoch at the start of every epoch, on every rank.",
                                        "for epoch in range(epochs):\n    sampler.set_epoch(epoch)\n"
                                        "    for x, y in loader:\n        ...")])]


def _schedule(runs: list[RankRun], code: str, what: str, series: Callable[[RankRun], dict[int, Any]],
              judge: Callable[[dict[int, float]], float | None], recs: list[Recommendation],
              words: Callable[[float], str]) -> list[Finding]:
    steps, data = _common(runs, series)
    rows = []
    for s in steps:
        vals = {r.rank: data[r.rank][s] for r in runs}
        if any(v is None or not math.isfinite(v) for v in vals.values()):
            continue
        rows.append((s, vals))
    if len(rows) < 3:
        return []
    scores = [(s, vals, judge(vals)) for s, vals in rows]
    bad = [(s, vals, sc) for s, vals, sc in scores if sc is not None]
    if len(bad) < max(2, 0.5 * len(rows)):
        return []
    s0, vals0, score = bad[0]
    return [CATALOGUE[code].finding(
        severity="high" if code == "DST005" else "medium", confidence=min(0.95, 0.5 + 0.5 * len(bad) / len(rows)),
        title=f"{what} differs across ranks at {len(bad)} of {len(rows)} steps ({words(score)})",
        description=f"At step {s0} {what.lower()} was " + ", ".join(f"{v:.4g} on rank {k}" for k, v in vals0.items())
                    + ": every rank of a data-parallel job should follow the same schedule.",
        step=s0, evidence={"steps_compared": len(rows), "steps_differing": len(bad),
                           "first": {"step": s0, **{f"rank{k}": v for k, v in vals0.items()}},
                           "median_by_rank": {str(r.rank): statistics.median(v[r.rank] for _, v in rows) for r in runs}},
        recommendations=recs)]


def _lr_judge(vals: dict[int, float]) -> float | None:
    lo, hi = min(vals.values()), max(vals.values())
    return hi / lo if hi > 0 and lo >= 0 and (hi - lo) > 1e-9 * max(abs(hi), 1e-12) else None


def lr_mismatch(runs: list[RankRun]) -> list[Finding]:
    def lr(r: RankRun) -> dict[int, Any]:
        return r.times["lr"]

    return _schedule(runs, "DST005", "The learning rate", lr, _lr_judge, [
        Recommendation("fix", "Compute the learning rate and the scheduler from values that are the same on every "
                       "rank (not from the rank, the local batch count or a per-rank config).",
                       "lr = base_lr * world_size  # the same on every rank\n"
                       "sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30)  # stepped once per step, everywhere")],
        lambda x: f"up to {x:.3g}x between ranks" if math.isfinite(x) else "zero on some ranks")


def loss_mismatch(runs: list[RankRun]) -> list[Finding]:
    def loss(r: RankRun) -> dict[int, Any]:
        s = r.record.column("loss")
        return {int(k): float(v) for k, v in zip(s.steps, s.values)}

    def judge(vals: dict[int, float]) -> float | None:
        pos = [abs(v) for v in vals.values()]
        lo, hi = min(pos), max(pos)
        return hi / lo if lo > 0 and hi / lo > 3 else (math.inf if lo == 0 < hi else None)

    found = _schedule(runs, "DST006", "The loss", loss, judge, [
        Recommendation("fix", "Use the same loss function, reduction and scaling on every rank, and give every rank "
                       "data prepared the same way (normalisation, label mapping) from the same distribution.",
                       "loss = loss_fn(model(x), y)  # no rank-dependent weights, scales or divisions")],
        lambda x: f"up to {x:.3g}x between ranks")
    if found:  # a ratio above 3 at one step can be noise; consistent ratios cannot
        ratios = found[0].evidence["median_by_rank"]
        vals = [abs(v) for v in ratios.values()]
        if min(vals) > 0 and max(vals) / min(vals) < 3:
            return []
    return found


def batchnorm_unsynced(runs: list[RankRun]) -> list[Finding]:
    if not any(r.model.get("batchnorm") for r in runs):
        return []
    checks = _fp_compare(runs, "dist_bn")
    bad = [c for c in checks if c["differing"]]
    if not bad or len(bad) < max(1, len(checks) // 2):
        return []
    first = bad[0]
    layers = sorted({_module_of(n) for n in first["differing"]})
    bb = {str(r.rank): r.model.get("broadcast_buffers") for r in runs}
    return [CATALOGUE["DST007"].finding(
        severity="medium", confidence=0.85,
        title=f"BatchNorm running statistics of {len(layers)} layer(s) differ across ranks (from step {first['step']})",
        description=f"As the BatchNorm layers were entered, their running mean and variance differed between "
                    f"ranks at {len(bad)} of {len(checks)} sampled steps (e.g. {layers[0]}): each rank normalises "
                    "with statistics of its own shard, and a checkpoint saved on rank 0 evaluates differently "
                    "from the model the other ranks hold.",
        location=layers[0], step=first["step"],
        evidence={"layers": layers, "steps_checked": len(checks), "steps_differing": len(bad),
                  "batchnorm_types": runs[0].model.get("batchnorm"), "ddp_broadcast_buffers": bb},
        recommendations=[Recommendation("fix", "Synchronise BatchNorm across ranks (GPU), or at least let DDP "
                                        "broadcast rank 0's buffers each forward.",
                                        "model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)\n"
                                        "model = DDP(model, device_ids=[local_rank])  # broadcast_buffers=True")])]


def straggler(runs: list[RankRun]) -> list[Finding]:
    best: tuple[float, int, str, dict[str, Any]] | None = None
    for phase in ("data", "forward", "step"):
        steps, data = _common(runs, lambda r, ph=phase: r.times[ph])
        steps = [s for s in steps[2:] if all(data[r.rank][s] is not None for r in runs)]  # skip warm-up
        if len(steps) < 5:
            continue
        for r in runs:
            excess, slower = [], 0
            for s in steps:
                others = statistics.median(data[o.rank][s] for o in runs if o.rank != r.rank)
                mine = data[r.rank][s]
                excess.append(mine - others)
                slower += mine > 1.5 * others + 0.002
            med_excess = statistics.median(excess)
            step_med = statistics.median(data[r.rank][s] for s in steps) if phase != "step" else None
            total = statistics.median(r.times["step"][s] or 0.0 for s in steps)
            if slower >= 0.7 * len(steps) and med_excess > 0.005 and med_excess > 0.1 * total:
                ev = {"rank": r.rank, "phase": phase, "steps_compared": len(steps), "steps_slower": slower,
                      "median_excess_s": round(med_excess, 6), "median_step_s": round(total, 6),
                      "median_phase_s_by_rank": {str(o.rank): round(statistics.median(data[o.rank][s] for s in steps), 6)
                                                 for o in runs}}
                if step_med is not None:
                    ev["median_phase_s"] = round(step_med, 6)
                if best is None or med_excess > best[0]:
                    best = (med_excess, r.rank, phase, ev)
    if best is None:
        return []
    excess, rank, phase, ev = best
    share = excess / ev["median_step_s"] if ev["median_step_s"] else 0.0
    where = {"data": "waiting for data", "forward": "in the forward pass", "step": "per step"}[phase]
    return [CATALOGUE["DST008"].finding(
        severity="medium" if share > 0.2 else "low", confidence=min(0.95, ev["steps_slower"] / ev["steps_compared"]),
        title=f"Rank {rank} is a straggler: {excess * 1e3:.1f} ms slower {where} than the other ranks "
              f"({ev['steps_slower']} of {ev['steps_compared']} steps)",
        description=f"Rank {rank} spent a median {excess * 1e3:.1f} ms more {where} than the median of the other "
                    f"ranks ({share:.0%} of a step): in synchronous data parallelism every rank waits for the "
                    "slowest at each gradient all-reduce, so the whole job runs at its pace.",
        location=None, step=None, evidence=ev,
        recommendations=[Recommendation(
            "fix", "Find what only this rank does: more DataLoader work (num_workers, a slower disk or a bigger "
            "shard), logging or checkpointing on this rank inside the loop, or a slower or shared device.",
            "loader = DataLoader(ds, sampler=sampler, num_workers=4, pin_memory=True, persistent_workers=True)")])]


def hangs(runs: list[RankRun]) -> list[Finding]:
    counts = {r.rank: (r.record.events("dist_collectives") or [None])[-1] for r in runs}
    counts_d = {str(k): (v.data if v is not None else {}) for k, v in counts.items()}
    status = {r.rank: r.record.meta.get("status") for r in runs}

    def fewer(rank: int, op: str | None) -> list[str]:
        if not op:
            return []
        mine = counts_d[str(rank)].get(op, 0)
        return [k for k, v in counts_d.items() if k != str(rank) and v.get(op, 0) < mine]

    # A stall the job recovered from (a slow evaluation, a checkpoint, the last barrier) is only printed:
    # it matters when the rank did not end normally or another rank entered that collective fewer times.
    stalls = [(r.rank, e.data) for r in runs for e in r.record.events("dist_hang")
              if status[r.rank] != "finished" or fewer(r.rank, (e.data.get("in_collective") or {}).get("op"))]
    if not stalls:
        return []
    rank, s = stalls[0]
    inside = s.get("in_collective") or {}
    op = inside.get("op")
    skipped = fewer(rank, op)
    where = (f"in {op} (call {inside.get('call')} on this rank, from {inside.get('where')})" if op
             else "outside any collective")
    title = f"Rank {rank} stopped making steps for {s.get('waited_s')} s after step {s.get('step')}, waiting {where}"
    if skipped:
        title += f"; rank(s) {', '.join(skipped)} entered {op} fewer times"
    return [CATALOGUE["DST009"].finding(
        severity="high", confidence=0.9 if op else 0.6, title=title,
        description="The hang watchdog saw no optimizer step finish for much longer than the median step. "
                    "A rank waiting in a collective that another rank never enters waits forever (or until "
                    "the process group's timeout): the stacks show where each rank was.",
        location=inside.get("where"), step=s.get("step"),
        evidence={"stalls": [{"rank": k, **{a: b for a, b in v.items() if a != "stack"},
                              "stack": v.get("stack", [])[-6:]} for k, v in stalls],
                  "collective_counts_by_rank": counts_d, "ranks_with_fewer_calls": skipped},
        recommendations=[Recommendation(
            "fix", "Make every rank enter the same collectives in the same order: no collective under a "
            "rank-dependent condition, the same number of batches on every rank (drop_last=True, or "
            "DDP's join context for uneven inputs).",
            "if rank == 0:\n    log(...)          # no collective inside\n"
            "dist.all_reduce(t)   # outside any `if rank ...`")])]


def uneven_steps(runs: list[RankRun]) -> list[Finding]:
    counts = {r.rank: (max(r.times["step"]) if r.times["step"] else 0) for r in runs}
    if len(set(counts.values())) <= 1 or not any(counts.values()):
        return []
    lo, hi = min(counts.values()), max(counts.values())
    return [CATALOGUE["DST010"].finding(
        severity="medium", confidence=0.9,
        title=f"The ranks ran different numbers of optimizer steps ({lo} to {hi})",
        description="Steps by rank: " + ", ".join(f"rank {k}: {v}" for k, v in counts.items())
                    + ". With DDP each step all-reduces gradients: a rank with more batches waits for partners "
                      "that have finished, and hangs or times out.",
        step=lo + 1, evidence={"steps_by_rank": {str(k): v for k, v in counts.items()}},
        recommendations=[Recommendation(
            "fix", "Give every rank the same number of batches (DistributedSampler pads by default; use "
            "drop_last=True on the loader), or wrap the loop in DDP's join context.",
            "with model.join():\n    for x, y in loader:\n        ...")])]


DIST_RULES: dict[str, Callable[[list[RankRun]], list[Finding]]] = {
    "DST001": params_diverged, "DST002": grads_unsynced, "DST003": same_data, "DST004": same_order,
    "DST005": lr_mismatch, "DST006": loss_mismatch, "DST007": batchnorm_unsynced, "DST008": straggler,
    "DST009": hangs, "DST010": uneven_steps,
}


def cross_rank_findings(records: dict[int, Record], config: DebuggingConfig | None = None) -> list[Finding]:
    """Every selected cross-rank rule on the ranks' records; a rule that fails is one internal_error finding."""
    config = config or DebuggingConfig()
    runs = [RankRun(k, records[k]) for k in sorted(records)]
    if len(runs) < 2 and not any(r.record.events("dist_hang") for r in runs):
        return []
    out: list[Finding] = []
    for code, rule in DIST_RULES.items():
        spec = CATALOGUE[code]
        if config.select and not any(Catalogue.matches(spec, s) for s in config.select):
            continue
        if any(Catalogue.matches(spec, s) for s in config.ignore):
            continue
        if len(runs) < 2 and code != "DST009":
            continue
        try:
            out.extend(rule(runs))
        except Exception as exc:  # noqa: BLE001 - a broken rule must not take the report down
            out.append(_failed(code, exc))
    return out


def _failed(code: str, exc: Exception) -> Finding:
    error = " ".join(f"{type(exc).__name__}: {exc}".split())
    return Finding(code=code, kind="internal_error", category="runtime", severity="low", confidence=1.0,
                   title=f"Rule {code} could not run, so its verdict is unknown",
                   description=f"{error}. The other rules ran. Please report this.",
                   evidence={"rule": code, "error": error})
