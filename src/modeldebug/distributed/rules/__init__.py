"""Cross-rank rules: per-rank records in, findings out (pure; no torch, no I/O).

Each rank's record holds fingerprints (`dist_params`, `dist_grads`, `dist_bn`, `dist_batches`),
timings (`dist_times`), sampler iterations (`dist_sampler`) and stalls (`dist_hang`) written by
`DistWatch`. The rules compare them step by step; a rule that crashes is reported under its
code, as the training rules are.

The rules live in modules by group: `replicas` (DST001, DST002, DST007), `data` (DST003,
DST004), `schedules` (DST005, DST006), `timing` (DST008, DST009, DST010); `base` is what they share.
"""

from __future__ import annotations

from collections.abc import Callable

from ...catalogue import CATALOGUE, Catalogue, Finding
from ...config import DebuggingConfig
from ...record import Record
from .base import RankRun
from .data import same_data, same_order
from .replicas import batchnorm_unsynced, grads_unsynced, params_diverged
from .schedules import loss_mismatch, lr_mismatch
from .timing import hangs, straggler, uneven_steps

__all__ = ["DIST_RULES", "RankRun", "cross_rank_findings"]

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
    return CATALOGUE["INT001"].finding(confidence=1.0, title=f"Rule {code} could not run, so its verdict is unknown",
                                       description=f"{error}. The other rules ran. Please report this.",
                                       evidence={"rule": code, "error": error})
