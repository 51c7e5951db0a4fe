"""Sanity probes from "A Recipe for Training Neural Networks" and practice, run on copies.

- loss at initialisation against what it should be (ln C for C classes);
- overfit one small batch within a step budget;
- input-independent baseline: with the inputs zeroed the model must do worse;
- batch mixing by backprop: one sample's output must not depend on the others;
- determinism: two runs with the same seed agree;
- learning-rate range test: the rate where the loss falls fastest, and where it blows up.
Each returns a `ProbeResult` with a verdict, its numbers, and the findings they support. These are
the agent's own detectors (no record rule can run them: they train and compare copies); their
findings are built from the catalogue's specs, and their thresholds (`init_loss_factor`,
`init_input_scale`, `mixing_fraction`) are read from the workload's config.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..capture.probes import batch_mixing
from ..jsonsafe import json_safe
from ..rules.base import Finding, Recommendation
from .request import Workload, call_model
from .tools.base import make_finding
from .trainer import RunResult, short_run

__all__ = ["ProbeResult", "batch_mixing_probe", "determinism", "input_independent", "loss_at_init",
           "lr_range_test", "overfit_one_batch"]


@dataclass
class ProbeResult:
    """One probe: `verdict` is "pass", "fail", "warn" or "skipped"; `data` holds its numbers."""

    name: str
    verdict: str
    summary: str
    data: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def to_text(self) -> str:
        return f"{self.name}: {self.verdict}: {self.summary}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["findings"] = [f.to_dict() for f in self.findings]
        return json_safe(d)


def _accuracy(work: Workload, model: torch.nn.Module) -> float | None:
    if work.classes() is None:
        return None
    x, y = work.batch
    with torch.no_grad():
        model.eval()
        out = call_model(model, x)
        out = out["logits"] if isinstance(out, dict) else out
        model.train()
    return float((out.argmax(1) == y).float().mean())


def loss_at_init(work: Workload) -> ProbeResult:
    """The first loss against the loss of a uniform prediction (ln C) for classification."""
    classes = work.classes()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(work.options.seed)
        model = work.clone()
        model.train()
        loss = float(work.loss(model))
    if classes is None or classes < 2:
        return ProbeResult("loss_at_init", "skipped" if math.isfinite(loss) else "fail",
                           f"initial loss {loss:.4g} (no class count to compare with)", {"loss": loss})
    expected = math.log(classes)
    th = work.config.thresholds
    factor = th.init_loss_factor
    x = work.inputs()
    input_std = float(x.float().std()) if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel() > 1 else 0.0
    data = {"loss": loss, "expected": expected, "classes": classes, "ratio": loss / expected, "input_std": input_std}
    if math.isfinite(loss) and loss <= factor * expected:
        return ProbeResult("loss_at_init", "pass", f"initial loss {loss:.3f} vs ln({classes}) = {expected:.3f}", data)
    if input_std > th.init_input_scale:
        return ProbeResult("loss_at_init", "warn", f"initial loss {loss:.3g} vs ln({classes}) = {expected:.3f}: the "
                           f"inputs' scale (std {input_std:.3g}) explains it, not the initialisation", data)
    finding = make_finding(
        "INI001", "poor_initialization", "model", severity="medium", confidence=0.7,
        title=f"The loss at initialisation is {loss:.3g}, {loss / expected:.1f}x the {expected:.3f} of a uniform guess",
        description=(f"A freshly initialised {classes}-class classifier should score about ln({classes}) = {expected:.3f}: "
                     "it has no reason to prefer a class yet. A much higher loss means the initial logits are large "
                     "and confidently wrong (a big output scale, unnormalised inputs), and the first steps are wasted "
                     "undoing it."),
        evidence=data, recommendations=[Recommendation(
            "fix", "Scale the last layer's initial weights down (and zero its bias) so initial logits are near zero",
            "nn.init.normal_(model.head.weight, std=1e-3); nn.init.zeros_(model.head.bias)")])
    return ProbeResult("loss_at_init", "fail", finding.title, data, [finding])


def overfit_one_batch(work: Workload, run: RunResult | None = None) -> ProbeResult:
    """Can the model memorise one batch? If not, something between input and loss is broken."""
    steps = work.options.probe_steps
    run = run or short_run(work, steps=steps)
    drop = 1 - run.final / run.first if run.first and math.isfinite(run.final) and run.first > 0 else float("nan")
    acc = _accuracy(work, run.model) if not run.diverged else None
    data = {"steps": len(run.losses), "first_loss": run.first, "final_loss": run.final, "best_loss": run.best,
            "drop": drop, "batch_accuracy": acc, "batch_size": _batch_size(work)}
    if run.diverged:
        f = make_finding("LOS001", "loss_diverging", "loss", severity="high", confidence=0.85,
                         title=f"Training on one batch blew up to a non-finite loss within {len(run.losses)} steps",
                         description="Even one small batch cannot be fitted: the loss went non-finite. The learning "
                                     "rate is too high for this model or the loss is numerically unsafe.",
                         evidence=data, recommendations=[Recommendation("fix", "Lower the learning rate 10x",
                                                                        "optimizer = torch.optim.Adam(params, lr=1e-4)")])
        return ProbeResult("overfit_one_batch", "fail", f.title, data, [f])
    memorised = (acc is not None and acc >= 0.99) or drop >= 0.9
    if memorised or (math.isfinite(drop) and drop >= 0.5):
        # Halving the loss on one batch within the budget is learning; memorising it just takes longer.
        return ProbeResult("overfit_one_batch", "pass", f"loss {run.first:.3g} -> {run.final:.3g} in {len(run.losses)} steps"
                           + (f", batch accuracy {acc:.0%}" if acc is not None else "")
                           + ("" if memorised else " (learning; not memorised yet)"), data)
    if math.isfinite(drop) and drop >= 0.1:
        return ProbeResult("overfit_one_batch", "warn", f"loss fell only {drop:.0%} in {steps} steps on one batch"
                           + (f" (accuracy {acc:.0%})" if acc is not None else ""), data)
    f = make_finding(
        "LOS002", "loss_not_decreasing", "loss", severity="high", confidence=0.85,
        title=f"The model cannot overfit a single batch of {data['batch_size']}: loss {run.first:.3g} -> {run.final:.3g} "
              f"in {steps} steps",
        description=("Memorising one small batch is the easiest task a network has; failing it means the signal does "
                     "not get from the loss to the weights (a detached or frozen path, dead units, a wrong loss or "
                     "target, a learning rate far off)."),
        evidence=data, recommendations=[Recommendation("fix", "Check the findings above for the broken link; "
                                                       "verify with a learning-rate range test", None)])
    return ProbeResult("overfit_one_batch", "fail", f.title, data, [f])


def _batch_size(work: Workload) -> int:
    x = work.inputs()
    t = x if isinstance(x, torch.Tensor) else next((v for v in (x.values() if isinstance(x, dict) else x)
                                                    if isinstance(v, torch.Tensor)), None)
    return int(t.shape[0]) if t is not None and t.dim() > 0 else 1


def _zeros(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return torch.zeros_like(x)
    if isinstance(x, dict):
        return {k: _zeros(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_zeros(v) for v in x)
    return x


def input_independent(work: Workload, real: RunResult | None = None) -> ProbeResult:
    """Train on zeroed inputs: a model that uses its inputs must do clearly worse than on real ones."""
    steps = work.options.probe_steps
    real = real or short_run(work, steps=steps)
    zero = short_run(work, steps=steps, transform=_zeros)
    data = {"real_final": real.final, "zeroed_final": zero.final, "steps": steps}
    if not (math.isfinite(real.final) and math.isfinite(zero.final)):
        return ProbeResult("input_independent", "skipped", "a run went non-finite", data)
    if real.final >= real.first:
        return ProbeResult("input_independent", "skipped", "the model did not learn with real inputs either "
                           "(see overfit_one_batch)", data)
    if zero.final > real.final * 1.1 + 1e-6:
        return ProbeResult("input_independent", "pass",
                           f"zeroed inputs end at {zero.final:.3g}, real inputs at {real.final:.3g}", data)
    f = make_finding(
        "PRB001", "input_ignored", "model", severity="high", confidence=0.75,
        title=f"The model learns as well with its inputs zeroed ({zero.final:.3g}) as with real ones ({real.final:.3g})",
        description=("Trained on the same batch with every input set to zero, the model reaches the same loss: the "
                     "inputs do not reach the output (a detached or overwritten input path), or the targets can be "
                     "predicted without them (constant labels, labels leaked into a bias)."),
        evidence=data, recommendations=[Recommendation("fix", "Trace the input through forward(): check that it is "
                                                       "used and not detached or replaced", None)])
    return ProbeResult("input_independent", "fail", f.title, data, [f])


def batch_mixing_probe(work: Workload) -> ProbeResult:
    """Backprop from one sample's output: the gradient on every other sample's input must be zero."""
    x = work.inputs()
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return ProbeResult("batch_mixing", "skipped", "needs one floating-point input tensor", {})
    model = work.clone()
    res = batch_mixing(model, (x,))
    if res is None:
        return ProbeResult("batch_mixing", "skipped", "the output has no batch axis first, or the batch is too small", {})
    frac = res["fraction_mixed"]
    if frac <= work.config.thresholds.mixing_fraction:
        return ProbeResult("batch_mixing", "pass", "samples stay independent", res)
    f = make_finding(
        "MIX001", "batch_mixing", "model", severity="high", confidence=0.95,
        title=f"Outputs depend on other samples of the batch ({frac:.0%} of them)",
        description=("The gradient of sample 0's output reaches other samples' inputs: a view/reshape/transpose "
                     "mixes the batch axis, so every prediction is a blend of several samples."),
        evidence=res, recommendations=[Recommendation("fix", "Keep the batch axis first when reshaping",
                                                      "x = x.flatten(1)  # or x.reshape(x.shape[0], -1), never x.view(-1, n)")])
    return ProbeResult("batch_mixing", "fail", f.title, res, [f])


def determinism(work: Workload, steps: int = 5) -> ProbeResult:
    """Two seeded runs of a few steps must produce the same losses."""
    a = short_run(work, steps=steps)
    b = short_run(work, steps=steps)
    diff = max((abs(x - y) for x, y in zip(a.losses, b.losses)), default=0.0)
    data = {"losses_a": a.losses, "losses_b": b.losses, "max_difference": diff}
    if a.losses == b.losses:
        return ProbeResult("determinism", "pass", f"two seeded runs of {steps} steps agree exactly", data)
    f = make_finding(
        "PRB002", "nondeterminism", "runtime", severity="low", confidence=0.8,
        title=f"Two runs with the same seed differ by up to {diff:.3g} in loss",
        description=("Something in the model or loss is not seeded or uses non-deterministic kernels, so runs "
                     "cannot be reproduced and comparisons between them are noisy."),
        evidence=data, recommendations=[Recommendation(
            "best_practice", "Seed every generator and ask for deterministic kernels while debugging",
            "torch.manual_seed(0); torch.use_deterministic_algorithms(True)")])
    return ProbeResult("determinism", "warn", f.title, data, [f])


def lr_range_test(work: Workload, *, lo: float = 1e-7, hi: float = 10.0, steps: int | None = None) -> ProbeResult:
    """Raise the learning rate exponentially each step; suggest the rate a decade below the loss minimum."""
    n = steps or max(40, min(100, 2 * work.options.probe_steps))
    lrs = [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
    run = short_run(work, steps=n, one_batch=False, lr_schedule=lambda i: lrs[min(i, n - 1)])
    smooth, avg = [], 0.0
    for i, v in enumerate(run.losses):
        if not math.isfinite(v):
            break
        avg = 0.8 * avg + 0.2 * v
        smooth.append(avg / (1 - 0.8 ** (i + 1)))
    current = work.lr(work.model)
    data: dict[str, Any] = {"lrs": lrs[:len(run.losses)], "losses": run.losses, "current_lr": current}
    if len(smooth) < 10:
        return ProbeResult("lr_range_test", "skipped", "the loss blew up almost at once", data)
    best_i = min(range(len(smooth)), key=smooth.__getitem__)
    blowup_i = next((i for i in range(best_i, len(smooth)) if smooth[i] > 4 * smooth[best_i]), None)
    if blowup_i is None and len(smooth) < n:
        blowup_i = min(len(smooth), n - 1)  # the loss went non-finite at this step
    suggested = lrs[best_i] / 10
    blowup = lrs[blowup_i] if blowup_i is not None else None
    data.update({"suggested_lr": suggested, "min_loss_lr": lrs[best_i], "blowup_lr": blowup})
    summary = f"suggested lr {suggested:.1e} (loss lowest at {lrs[best_i]:.1e}" + \
        (f", blows up from {blowup:.1e})" if blowup else ")")
    findings = []
    if current is not None and blowup is not None and current >= blowup:
        findings.append(make_finding(
            "LRN001", "lr_too_high", "optimizer", severity="high", confidence=0.8,
            title=f"The learning rate {current:.1e} is past the point where the loss blows up ({blowup:.1e})",
            description=f"In a range test the loss was lowest near {lrs[best_i]:.1e} and diverged from {blowup:.1e}; "
                        f"training at {current:.1e} overshoots.",
            evidence=data, recommendations=[Recommendation("fix", f"Use a learning rate near {suggested:.0e}",
                                                           f"for g in optimizer.param_groups: g['lr'] = {suggested:.0e}")]))
    elif current is not None and current < suggested / 1000 and smooth[best_i] < 0.9 * smooth[0]:
        findings.append(make_finding(
            "LRN002", "lr_too_low", "optimizer", severity="medium", confidence=0.65,
            title=f"The learning rate {current:.1e} is over 1000x below the range test's suggestion {suggested:.1e}",
            description="The loss keeps falling faster at much higher rates: training at this rate crawls.",
            evidence=data, recommendations=[Recommendation("fix", f"Try a learning rate near {suggested:.0e}",
                                                           f"for g in optimizer.param_groups: g['lr'] = {suggested:.0e}")]))
    return ProbeResult("lr_range_test", "fail" if findings else "pass", summary, data, findings)
