"""What each rank reads: the same batches everywhere (DST003), the same order every epoch (DST004)."""

from __future__ import annotations

from typing import Any

from ...catalogue import CATALOGUE, Finding, Recommendation
from .base import RankRun, common_steps

__all__ = ["same_data", "same_order"]


def same_data(runs: list[RankRun]) -> list[Finding]:
    steps, data = common_steps(runs, lambda r: r.batches)
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
