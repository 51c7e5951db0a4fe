"""Replicas that drift apart: parameters (DST001), gradients (DST002), BatchNorm statistics (DST007)."""

from __future__ import annotations

from typing import Any

from ...catalogue import CATALOGUE, Finding, Recommendation
from .base import RankRun, diverged, fp_compare, module_of

__all__ = ["batchnorm_unsynced", "grads_unsynced", "params_diverged"]


def params_diverged(runs: list[RankRun]) -> list[Finding]:
    return diverged(runs, "dist_params", "DST001", "Parameters", [
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

    return diverged(runs, "dist_grads", "DST002", "Gradients before the optimizer step", [
        Recommendation("fix", "Let DDP average the gradients: call backward on the DDP-wrapped model's output, "
                       "and use no_sync() only for the accumulation micro-steps, leaving it before the last "
                       "backward of each step.",
                       "for i, (x, y) in enumerate(loader):\n"
                       "    ctx = model.no_sync() if (i + 1) % accum else contextlib.nullcontext()\n"
                       "    with ctx:\n        loss_fn(model(x), y).backward()\n"
                       "    if (i + 1) % accum == 0:\n        opt.step(); opt.zero_grad()"),
        Recommendation("fix", "Do not move a model after wrapping it in DDP: move it to its device first.",
                       "model = model.to(device)\nmodel = DDP(model, device_ids=[local_rank])")], extra=sync)


def batchnorm_unsynced(runs: list[RankRun]) -> list[Finding]:
    if not any(r.model.get("batchnorm") for r in runs):
        return []
    checks = fp_compare(runs, "dist_bn")
    bad = [c for c in checks if c["differing"]]
    if not bad or len(bad) < max(1, len(checks) // 2):
        return []
    first = bad[0]
    layers = sorted({module_of(n) for n in first["differing"]})
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
