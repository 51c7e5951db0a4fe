"""Sanity probes from "A Recipe for Training Neural Networks" and practice, run on copies.

- loss at initialisation against what it should be (ln C for C classes);
- overfit one small batch within a step budget;
- input-independent baseline: with the inputs zeroed the model must do worse;
- batch mixing by backprop: one sample's output must not depend on the others (tokens: through
  the embedding's output);
- determinism: two runs with the same seed agree;
- learning-rate range test: the rate where the loss falls fastest, and where it blows up.
A verdict that compares two noisy numbers (loss at init against ln C, real against zeroed inputs,
the loss's drop on one batch, the current rate against the range test's) reads an interval over
seeded repeats (`intervals.py`) and may be "inconclusive". The causality probe for sequence models
is in `causality.py`.
Each returns a `ProbeResult` with a verdict, its numbers, and the findings they support. These are
the agent's own detectors (no record rule can run them: they train and compare copies); their
findings are built from the catalogue's specs, and their thresholds (`init_loss_factor`,
`init_input_scale`, `mixing_fraction`) are read from the workload's config.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..capture.probes import batch_mixing
from ..rules.data import mixing_where
from ..jsonsafe import json_safe
from ..rules.base import Finding, Recommendation
from .intervals import interval, tail_noise
from .request import Workload, call_model
from .tools.base import make_finding
from .trainer import RunResult, short_run

__all__ = ["ProbeResult", "batch_mixing_probe", "determinism", "input_independent", "loss_at_init",
           "lr_range_test", "overfit_one_batch", "seeded_runs"]


@dataclass
class ProbeResult:
    """One probe: `verdict` is "pass", "fail", "warn", "inconclusive" or "skipped"; `data` holds its numbers.

    "inconclusive": the numbers straddle the threshold within their noise (over the seeded repeats);
    no finding is made, and the summary says what would settle it.
    """

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


def seeded_runs(work: Workload, first: RunResult | None = None, *, transform: Any = None) -> list[RunResult]:
    """`AnalysisOptions.probe_seeds` short runs on the first batch, seeded `seed`, `seed + 1`, ...

    `first`, when given, is the run for `seed` already made (the watched run): it is reused. When the
    second seed gives exactly the losses of the first, nothing in the run depends on the seed (no
    dropout, no random layer) and further seeds would repeat it: the repeats stop there, and the
    verdicts' margin is the runs' own step-to-step noise.
    """
    n = max(1, work.options.probe_seeds)
    runs = [first] if first is not None else []
    while len(runs) < n:
        runs.append(short_run(work, steps=work.options.probe_steps, seed=work.options.seed + len(runs),
                              transform=transform))
        if len(runs) == 2 and runs[1].losses == runs[0].losses:
            break
    return runs


def _as_runs(work: Workload, run: RunResult | list[RunResult] | None) -> list[RunResult]:
    if isinstance(run, list):
        return run
    return seeded_runs(work, run)


def _final_noise(run: RunResult) -> float:
    """The noise of `run.final` (a mean of the last 5 losses) from the run's own step-to-step wobble."""
    return tail_noise(run.losses) / math.sqrt(5)


def loss_at_init(work: Workload) -> ProbeResult:
    """The first loss against the loss of a uniform prediction (ln C) for classification.

    Measured in training mode under each probe seed (dropout draws differ); the verdict reads the interval.
    """
    classes = work.classes()
    losses = []
    for i in range(max(1, work.options.probe_seeds)):
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(work.options.seed + i)
            model = work.clone()
            model.train()
            losses.append(float(work.loss(model)))
    loss = losses[0]
    if not all(math.isfinite(v) for v in losses):  # NaN weights or inputs: nothing to compare with ln C
        bad = next(v for v in losses if not math.isfinite(v))
        return ProbeResult("loss_at_init", "fail", f"the loss at initialisation is {bad}, not a number to compare "
                           "with anything: the model or the batch is already non-finite (see the findings)",
                           {"loss": bad, "losses": losses})
    if classes is None or classes < 2:
        return ProbeResult("loss_at_init", "skipped", f"initial loss {loss:.4g} (no class count to compare with)",
                           {"loss": loss})
    expected = math.log(classes)
    th = work.config.thresholds
    limit = th.init_loss_factor * expected
    iv = interval(losses)
    finite = all(math.isfinite(v) for v in losses)
    loss = iv.mean if finite else loss
    x = work.inputs()
    input_std = float(x.float().std()) if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel() > 1 else 0.0
    data = {"loss": loss, "expected": expected, "classes": classes, "ratio": loss / expected, "input_std": input_std,
            "limit": limit, "interval": iv.to_dict()}
    if finite and not iv.above(limit):
        if iv.high <= limit:
            return ProbeResult("loss_at_init", "pass", f"initial loss {loss:.3f} vs ln({classes}) = {expected:.3f}", data)
        return ProbeResult("loss_at_init", "inconclusive", f"initial loss {iv.text()} over {iv.n} seeds straddles "
                           f"{th.init_loss_factor:g} x ln({classes}) = {limit:.3f}", data)
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


#: a batch is memorised when its loss is at most this fraction of where it started. Derived, not tuned
#: to a model: a model that feeds probabilities to cross-entropy (a softmax before the loss) cannot get
#: below log(1 + (C - 1) / e) / ln C of the uniform start, over 0.45 for every C >= 2, so halving the
#: loss proves nothing; memorising (Karpathy: "close to zero") does.
_MEMORISED = 0.1


def _memorised(losses: list[float]) -> bool:
    tail = losses[-5:]
    return bool(tail) and all(math.isfinite(v) for v in tail) and sum(tail) / len(tail) <= _MEMORISED * losses[0]


def _window_fall(losses: list[float], w: int) -> tuple[float, float]:
    """(fall of the mean loss from the window before the last to the last, its noise) over windows of `w`."""
    prev, cur = losses[-2 * w:-w], losses[-w:]
    noise = tail_noise(losses, window=min(w, 20)) * math.sqrt(2 / w)
    return sum(prev) / len(prev) - sum(cur) / len(cur), noise


def _long_run(work: Workload) -> RunResult:
    """Seed 0 trained on the batch until memorised, stalled (no fall beyond noise over a window), or out of budget.

    `extras["out_of_time"]`: `overfit_seconds` ended it.
    """
    opts = work.options
    w = max(5, opts.probe_steps)
    deadline = [math.inf]  # `overfit_seconds` counts from the end of the first window (the seeded runs' length)
    timed_out = [False]

    def stop(losses: list[float]) -> bool:
        if len(losses) == w:
            deadline[0] = time.perf_counter() + opts.overfit_seconds
        if _memorised(losses):
            return True
        if time.perf_counter() > deadline[0]:
            timed_out[0] = True
            return True
        if len(losses) >= 2 * w and len(losses) % w == 0:
            fall, noise = _window_fall(losses, w)
            return fall <= 2 * noise
        return False

    run = short_run(work, steps=max(opts.probe_steps, opts.overfit_max_steps), seed=opts.seed, stop=stop)
    run.extras["out_of_time"] = timed_out[0]
    return run


def overfit_one_batch(work: Workload, run: RunResult | list[RunResult] | None = None) -> ProbeResult:
    """Can the model memorise one batch (loss to a tenth of its start)? If not, something is broken.

    `run`: the seeded runs already made (a list), or the first of them (the watched run); a run of
    `probe_steps` that blew up on any seed fails. Otherwise, unless the batch is already memorised,
    the first seed goes on training on the batch with the request's optimizer (`overfit_max_steps`,
    `overfit_seconds`), stopping once memorised or once the loss stops falling beyond its noise over a
    window of `probe_steps`. Then: memorised, pass; still falling fast enough to get there within as
    many steps again, warn (slow: the learning rate may be low); otherwise fail (LOS002).
    """
    steps = work.options.probe_steps
    runs = _as_runs(work, run)
    first = runs[0]
    drops = [1 - r.final / r.first if r.first and r.first > 0 and math.isfinite(r.final) else math.nan for r in runs]
    floor = max((_final_noise(r) / r.first for r in runs if r.first and r.first > 0 and not r.diverged), default=0.0)
    drop = interval(drops, floor=floor)
    diverged = [r for r in runs if r.diverged]
    data: dict[str, Any] = {"steps": len(first.losses), "first_loss": first.first, "final_loss": first.final,
                            "best_loss": first.best, "drop": drop.mean, "drop_interval": drop.to_dict(),
                            "batch_size": _batch_size(work), "seeds": len(runs), "diverged_runs": len(diverged)}
    if diverged and all(not math.isfinite(r.first) for r in diverged):
        return ProbeResult("overfit_one_batch", "fail", "the loss is non-finite at the first step, before any update: "
                           "the learning rate is not to blame (the model or the batch is already non-finite)", data)
    if diverged:
        f = make_finding("LOS001", "loss_diverging", "loss", severity="high", confidence=0.85,
                         title=f"Training on one batch blew up to a non-finite loss within {len(diverged[0].losses)} steps"
                               + (f" ({len(diverged)} of {len(runs)} seeded runs)" if len(runs) > 1 else ""),
                         description="Even one small batch cannot be fitted: the loss went non-finite. The learning "
                                     "rate is too high for this model or the loss is numerically unsafe.",
                         evidence=data, recommendations=[Recommendation("fix", "Lower the learning rate 10x",
                                                                        "optimizer = torch.optim.Adam(params, lr=1e-4)")])
        return ProbeResult("overfit_one_batch", "fail", f.title, data, [f])
    if not first.losses or not first.first > 0:
        return ProbeResult("overfit_one_batch", "skipped", "no positive loss to compare with", data)
    long = first if all(_memorised(r.losses) for r in runs) else _long_run(work)
    losses, n, start = long.losses, len(long.losses), long.first
    acc = _accuracy(work, long.model)
    ratio = long.final / start if math.isfinite(long.final) else math.nan
    data.update({"long_steps": n, "long_final": long.final, "ratio": ratio, "batch_accuracy": acc,
                 "memorised_at": _MEMORISED})
    accuracy = f", batch accuracy {acc:.0%}" if acc is not None else ""
    head = f"loss {start:.3g} -> {long.final:.3g} ({ratio:.0%} of the start) in {n} steps{accuracy}"
    if long.diverged:
        return ProbeResult("overfit_one_batch", "warn", f"loss went non-finite after {n} steps on one batch "
                           f"(fine for the first {len(first.losses)})", data)
    if _memorised(losses):
        return ProbeResult("overfit_one_batch", "pass", f"memorised: {head}", data)
    w = max(5, min(steps, n // 2))
    fall, noise = _window_fall(losses, w) if n >= 2 * w else (0.0, 0.0)
    rate = fall / w
    needed = (long.final - _MEMORISED * start) / rate if fall > 2 * noise and rate > 0 else math.inf
    data.update({"fall_per_step": rate, "steps_to_memorise": needed})
    if long.extras.get("out_of_time") and fall > 2 * noise and needed > n:
        return ProbeResult("overfit_one_batch", "inconclusive", f"{head}, still falling when overfit_seconds "
                           f"({work.options.overfit_seconds:g} s) ran out: give it more time "
                           "(AnalysisOptions.overfit_seconds)", data)
    if needed <= n:
        return ProbeResult("overfit_one_batch", "warn", f"learning, slowly: {head}; at its current pace it needs about "
                           f"{needed:.0f} more steps to memorise the batch (a low learning rate?)", data)
    f = make_finding(
        "LOS002", "loss_not_decreasing", "loss", severity="high", confidence=0.85,
        title=f"The model cannot overfit a single batch of {data['batch_size']}: {head}",
        description=("Memorising one small batch is the easiest task a network has: a working model brings the loss "
                     f"to near zero (under {_MEMORISED:.0%} of its start). This one stalls at {ratio:.0%}: the signal "
                     "does not get from the loss to the weights (a detached or frozen path, dead units), or the loss "
                     "cannot fall that far (probabilities fed to a loss that expects logits, a wrong target), or the "
                     f"learning rate is far off. Over the first {steps} steps ({drop.spread(what='seed')}) the loss "
                     f"fell {drop.mean:.0%}."),
        evidence=data, recommendations=[Recommendation("fix", "Check the findings above for the broken link; "
                                                       "verify with a learning-rate range test", None)])
    return ProbeResult("overfit_one_batch", "fail", f.title, data, [f])


def _batch_size(work: Workload) -> int:
    x = work.inputs()
    t = x if isinstance(x, torch.Tensor) else next((v for v in (x.values() if isinstance(x, dict) else x)
                                                    if isinstance(v, torch.Tensor)), None)
    return int(t.shape[0]) if t is not None and t.dim() > 0 else 1


#: mapping keys that hold what the model is scored against, never zeroed
_TARGET_KEYS = frozenset({"labels", "label", "targets", "target", "y", "attention_mask", "token_type_ids"})


def _zeros(x: Any, *, top: bool = True) -> Any:
    """`x` with its inputs zeroed: floating-point tensors, and token ids (a lone integer tensor or `input_ids`).

    Other integer tensors (labels passed to a model that computes its own loss) and mapping entries
    named like targets or masks are left alone: zeroing them would change the task, not the input.
    """
    if isinstance(x, torch.Tensor):
        return torch.zeros_like(x) if x.is_floating_point() or top else x
    if isinstance(x, dict):
        return {k: v if k in _TARGET_KEYS else _zeros(v, top=k == "input_ids") for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_zeros(v, top=False) for v in x)
    return x


def _changed(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return a is not b
    if isinstance(a, dict):
        return any(_changed(v, b[k]) for k, v in a.items())
    if isinstance(a, (tuple, list)):
        return any(_changed(u, v) for u, v in zip(a, b))
    return False


#: the inputs' share of what the model learned: at most this (whole interval) is "ignored" ...
_IGNORED_SHARE = 0.1
#: ... and a share this small is no use of the input at all (high severity)
_NO_SHARE = 0.02


def input_independent(work: Workload, real: RunResult | list[RunResult] | None = None) -> ProbeResult:
    """Train on zeroed inputs: a model that uses its inputs must do clearly worse than on real ones.

    Paired seeded runs (real and zeroed under the same seed). What is compared is the inputs' share
    of the learning: (zeroed final - real final) / (start - real final), 1 when the zeroed copy
    learns nothing, 0 when it learns as much. A slow learner has a small drop but a large share.
    The start is the lower of the two first losses: with zeroed inputs the model's first output is
    a constant guess (about chance), while unnormalised real inputs (pixels in 0..255, values in
    the thousands) can start orders of magnitude above it, and that inflated start must not make
    a model that ends far below the zeroed copy look as if it learned nothing from its inputs.
    """
    steps = work.options.probe_steps
    if not _changed(work.inputs(), _zeros(work.inputs())):
        return ProbeResult("input_independent", "skipped", "no input tensor to zero (only labels or masks)", {})
    reals = _as_runs(work, real)
    zeros = seeded_runs(work, transform=_zeros)[:len(reals)]
    data: dict[str, Any] = {"real_final": reals[0].final, "zeroed_final": zeros[0].final, "steps": steps,
                            "seeds": len(reals)}
    if any(not (math.isfinite(r.final) and math.isfinite(z.final)) for r, z in zip(reals, zeros)):
        return ProbeResult("input_independent", "skipped", "a run went non-finite", data)
    noise = [math.hypot(_final_noise(r), _final_noise(z)) for r, z in zip(reals, zeros)]
    drops = [min(r.first, z.first) - r.final for r, z in zip(reals, zeros)]  # below a constant guess's start
    drop = interval(drops, floor=max(_final_noise(r) for r in reals))
    gap = interval([z.final - r.final for r, z in zip(reals, zeros)], floor=max(noise))
    data.update(real_drop=drop.to_dict(), gap=gap.to_dict())
    if not drop.above(0):
        return ProbeResult("input_independent", "skipped", "with real inputs the model did not get below where it "
                           "started with zeroed ones (see overfit_one_batch)", data)
    share = interval([(z.final - r.final) / d for r, z, d in zip(reals, zeros, drops)],
                     floor=max(n / d for n, d in zip(noise, drops)))
    data["input_share"] = share.to_dict()
    said = (f"zeroed inputs end at {zeros[0].final:.3g}, real inputs at {reals[0].final:.3g}: "
            + (f"the inputs account for {share.mean:.0%} of the loss drop ({share.spread()})" if share.mean >= 0 else
               "the model does better without its inputs than with them" if share.below(0) else
               f"the inputs account for none of the loss drop ({share.spread()})"))
    if gap.above(0) and share.low >= _IGNORED_SHARE:
        return ProbeResult("input_independent", "pass", said, data)
    if not share.below(_IGNORED_SHARE):
        return ProbeResult("input_independent", "inconclusive", said + "; too close to call: run more steps "
                           "(AnalysisOptions.probe_steps) or seeds (probe_seeds)", data)
    none = share.below(_NO_SHARE)
    f = make_finding(
        "PRB001", "input_ignored", "model", severity="high" if none else "medium", confidence=0.8 if none else 0.6,
        title=(f"The model learns better with its inputs zeroed ({zeros[0].final:.3g}) than with real ones "
               f"({reals[0].final:.3g})" if share.below(0) else
               f"The model learns as well with its inputs zeroed ({zeros[0].final:.3g}) as with real ones "
               f"({reals[0].final:.3g})" if none else
               f"The inputs account for only {share.mean:.0%} of what the model learns (zeroed {zeros[0].final:.3g}, "
               f"real {reals[0].final:.3g})"),
        description=("Trained on the same batch with every input set to zero, the model reaches nearly the same loss "
                     f"({said}): the inputs do not reach the output (a detached or overwritten input path), or the "
                     "targets can be predicted without them (constant labels, labels leaked into a bias)."),
        evidence=data, recommendations=[Recommendation("fix", "Trace the input through forward(): check that it is "
                                                       "used and not detached or replaced", None)])
    return ProbeResult("input_independent", "fail", f.title, data, [f])


class _KeywordCall(torch.nn.Module):
    """The model called with its keyword inputs, one of them (`key`) given positionally: the handle the
    capture probe takes its gradient at."""

    def __init__(self, model: torch.nn.Module, inputs: dict[str, Any], key: str) -> None:
        super().__init__()
        self.model = model
        self.rest = {k: v for k, v in inputs.items() if k != key}
        self.key = key

    def forward(self, value: Any) -> Any:
        return self.model(**self.rest, **{self.key: value})


def _float_entry(x: dict[str, Any]) -> str | None:
    """The first mapping entry that is a floating-point input with samples on its first axis."""
    return next((k for k, v in x.items() if k not in _TARGET_KEYS and isinstance(v, torch.Tensor)
                 and v.is_floating_point() and v.dim() >= 2), None)


def batch_mixing_probe(work: Workload) -> ProbeResult:
    """Backprop from one sample's output: the gradient on every other sample's input must be zero.

    The input is the batch's tensor, the first floating-point tensor of positional inputs, or of a
    mapping's entries (passed by keyword, the others as they are); token ids through their embedding.
    """
    x = work.inputs()
    why: list[str] = []
    if isinstance(x, torch.Tensor):  # values, or token ids through their embedding: the watch's own probe
        res = batch_mixing(work.clone(), (x,), why=why)
    elif isinstance(x, (tuple, list)):  # several positional inputs: the first floating one (or token ids)
        res = batch_mixing(work.clone(), tuple(x), why=why)
    elif isinstance(x, dict) and (key := _float_entry(x)) is not None:
        res = batch_mixing(_KeywordCall(work.clone(), x, key), (x[key],), why=why)
        why = [f"{w} (input {key!r})" for w in why]
    else:  # a mapping of token ids (a Hugging Face model's input_ids): through the first embedding's output
        from .causality import token_batch_mixing

        res = token_batch_mixing(work)
        if res is None:
            return ProbeResult("batch_mixing", "skipped", "the inputs hold no floating-point tensor with samples "
                               "first, and no (batch, time) token ids read by an nn.Embedding", {})
    if res is None:
        return ProbeResult("batch_mixing", "skipped", why[0] if why else "the probe does not apply to this model", {})
    if "skipped" in res:  # the batch size is also another axis's size, and samples read along it stay apart
        return ProbeResult("batch_mixing", "skipped", res["skipped"], res)
    frac = res["fraction_mixed"]
    if frac <= work.config.thresholds.mixing_fraction:
        return ProbeResult("batch_mixing", "pass", "samples stay independent", res)
    where, location = mixing_where(res.get("site"))
    f = make_finding(
        "MIX001", "batch_mixing", "model", severity="high", confidence=0.95,
        title=f"Outputs depend on other samples of the batch ({frac:.0%} of them)",
        description=("The gradient of sample 0's output reaches other samples' inputs: a view/reshape/transpose "
                     "mixes the batch axis, so every prediction is a blend of several samples." + where),
        location=location, evidence=res, recommendations=[Recommendation("fix", "Keep the batch axis first when reshaping",
                                                      "x = x.flatten(1)  # or x.reshape(x.shape[0], -1), never x.view(-1, n)")])
    return ProbeResult("batch_mixing", "fail", f.title, res, [f])


def determinism(work: Workload, steps: int = 5) -> ProbeResult:
    """Two seeded runs of a few steps must produce the same losses."""
    a = short_run(work, steps=steps)
    b = short_run(work, steps=steps)
    pairs = list(zip(a.losses, b.losses))
    diff = max((abs(x - y) for x, y in pairs if math.isfinite(x) and math.isfinite(y)), default=0.0)
    data = {"losses_a": a.losses, "losses_b": b.losses, "max_difference": diff}
    # the same value, or the same non-finite one (NaN weights give NaN in both runs: that is agreement)
    same = len(a.losses) == len(b.losses) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in pairs)
    if same:
        return ProbeResult("determinism", "pass", f"two seeded runs of {steps} steps agree exactly", data)
    split = next((i for i, (x, y) in enumerate(pairs) if math.isfinite(x) != math.isfinite(y)), None)
    if split is None and len(a.losses) != len(b.losses):
        split = min(len(a.losses), len(b.losses)) - 1  # one run stopped at a non-finite loss, the other went on
    f = make_finding(
        "PRB002", "nondeterminism", "runtime", severity="low", confidence=0.8,
        title=(f"Two runs with the same seed differ by up to {diff:.3g} in loss" if split is None else
               f"Two runs with the same seed differ: one's loss went non-finite at step {split} and the other's did not"),
        description=("Something in the model or loss is not seeded or uses non-deterministic kernels, so runs "
                     "cannot be reproduced and comparisons between them are noisy."),
        evidence=data, recommendations=[Recommendation(
            "best_practice", "Seed every generator and ask for deterministic kernels while debugging",
            "torch.manual_seed(0); torch.use_deterministic_algorithms(True)")])
    return ProbeResult("determinism", "warn", f.title, data, [f])


def lr_range_test(work: Workload, *, lo: float = 1e-7, hi: float = 10.0, steps: int | None = None) -> ProbeResult:
    """The learning-rate range test (`lr_range.range_test`): a suggested rate, and a verdict on the current one."""
    from .lr_range import range_test

    return range_test(work, lo=lo, hi=hi, steps=steps)
