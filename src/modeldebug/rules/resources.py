"""Resource rules: memory that keeps growing, steps that wait for data, steps that get slower.

Timings come from a possibly busy machine, so these rules judge large effects over many steps
with robust statistics (medians, a Theil-Sen slope), relative to the run's own early behaviour.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import measures as M
from ..record import Series
from .base import Finding, Recommendation, Rule
from .context import Context, fmt
from .curve import one_sample_per_call, same_batch_every_step
from .loop import validation_steps

__all__ = ["DataloaderBottleneck", "MemoryGrowth", "SlowStep"]


# Timing trends need enough steps per quarter of the run to have medians worth comparing.
_MIN_TIMED_STEPS = 40

# live_losses counts the previous 7 steps' losses still held (see docs/record.md); 6 or more at
# the median means every loss is being kept, not just the last one for logging.
_KEPT_LOSSES = 6


def _theil_sen(x: np.ndarray, y: np.ndarray, max_points: int = 150) -> float:
    """Median of pairwise slopes: robust to spikes and page-sized jumps (points subsampled evenly)."""
    if len(x) > max_points:
        idx = np.linspace(0, len(x) - 1, max_points).astype(int)
        x, y = x[idx], y[idx]
    dx = x[None, :] - x[:, None]
    dy = y[None, :] - y[:, None]
    upper = dx > 0
    return float(np.median(dy[upper] / dx[upper])) if upper.any() else 0.0


def _rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho (ties broken by position): how consistently y rises with x."""
    rx = np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(float)
    ry = np.argsort(np.argsort(y, kind="stable"), kind="stable").astype(float)
    return float(np.corrcoef(rx, ry)[0, 1]) if len(x) > 2 and rx.std() > 0 and ry.std() > 0 else 0.0


def _timed_steps(ctx: Context, warmup: int) -> np.ndarray:
    """Steps whose time says something about the training loop itself (a boolean mask).

    Left out: the first `warmup` steps (lazy initialisation, allocator growth); steps whose gap
    held a validation pass (validation losses recorded, or no-grad forward passes in train mode);
    and steps on which modeldebug sampled activation statistics, its own periodic extra work,
    unless nearly every step was sampled (then they all cost the same).
    """
    rec = ctx.record
    t_step = rec.column("t_step").values
    if len(t_step) == 0:
        return np.zeros(0, dtype=bool)
    val = np.isin(rec.column("t_step").steps, validation_steps(ctx))
    val |= np.nan_to_num(rec.column("fwd_train_mode_nograd").values) > 0
    if val.mean() >= 0.5:  # something on most steps is no periodic validation pass (a teacher model)
        val[:] = False
    sampled = np.nan_to_num(rec.column("sampled").values) > 0
    if sampled.mean() >= 0.5:
        sampled[:] = False
    keep = np.isfinite(t_step) & (t_step > 0) & ~val & ~sampled
    keep[:warmup] = False
    return keep


#: What `_timed_steps` reads to leave validation and sampled steps out.
_TIMED = (M.T_STEP, M.SAMPLED, M.FWD_TRAIN_MODE_NOGRAD, M.VAL_LOSS, M.LOSS_CALLS)


class MemoryGrowth(Rule):
    """Detects MEM001; its documentation and options are in the catalogue (`modeldebug explain MEM001`)."""

    code = "MEM001"
    requires = (M.RSS_MB, M.CUDA_MB, M.LIVE_LOSSES, M.FWD_EVAL_MODE, *_TIMED)

    def check(self, ctx: Context) -> Iterator[Finding]:
        min_steps = int(ctx.t.min_steps)
        kept = self._kept_losses(ctx)
        best: tuple[float, str, dict, int] | None = None
        for col in ("cuda_mb", "rss_mb"):
            growth = self._steady_growth(ctx.record.column(col).finite(), min_steps)
            if growth is None:
                continue
            # after one change of level, evaluation passes do not lower the bar: a pass whose graphs were
            # kept would have raised memory at every evaluation (a staircase), not once
            eval_grad = 0 if growth["after_jump"] else self._eval_passes(ctx, growth["since_step"])
            rel = growth["growth_mb"] / growth["level_mb"]
            needed = ctx.option("memory_growth")
            if kept or eval_grad:
                needed = min(needed, ctx.option("memory_growth_with_cause"))
            if rel >= needed and (best is None or rel > best[0]):
                best = (rel, col, growth, eval_grad)
        if best is not None:
            rel, col, growth, eval_grad = best
            yield self._growth_finding(ctx, rel, col, growth, kept=kept, eval_grad=eval_grad)
        elif kept:
            yield self._kept_finding(ctx, kept)

    @staticmethod
    def _eval_passes(ctx: Context, since: int) -> int:
        """Forward passes in eval mode with autograd on from step `since` on: a cause of growth when
        they are evaluations whose outputs are kept. Not when they ARE the training passes (a model
        left in eval mode after validation, `model.train()` never called again): their graphs are
        used by backward and freed, and the sampled steps show the trained modules in eval mode."""
        col = ctx.record.column("fwd_eval_mode")
        at = col.steps >= since
        passes = int(np.nansum(col.values[at]))
        if not passes:
            return 0
        trained_in_train_mode = False
        for s in ctx.module_stat("training").values():
            late = s.steps >= since
            if late.any() and np.nanmax(s.values[late]) > 0:
                trained_in_train_mode = True
                break
        return passes if trained_in_train_mode or not ctx.module_stat("training") else 0

    @staticmethod
    def _kept_losses(ctx: Context) -> dict | None:
        live = ctx.record.column("live_losses")
        v = live.values[live.steps >= 8]  # the window is full from step 8
        v = v[np.isfinite(v)]
        if len(v) < 4 or np.median(v) < _KEPT_LOSSES:
            return None
        return {"median_live_losses": float(np.median(v)), "first_step": int(live.steps[np.argmax(live.values >= _KEPT_LOSSES)])}

    @staticmethod
    def _steady_growth(s: Series, min_steps: int, *, after_jump: bool = False) -> dict | None:
        n = len(s)
        if n < max(min_steps, 20):
            return None
        x, v = s.steps.astype(float), s.values
        level = float(np.median(v[n // 10: n // 2]))
        if level <= 0:
            return None
        if not after_jump:
            # One change of level (a validation pass's graphs, a buffer allocated once) is not a leak:
            # when one quarter-to-quarter rise after warm-up holds most of the rise, and one step at
            # least half of it, only what follows that jump is judged (a leak there is still a leak)
            post = v[n // 10:]
            quarters = [float(np.median(q)) for q in np.array_split(post, 4)]
            rises = np.diff(quarters)
            total = quarters[-1] - quarters[0]
            steps_up = np.diff(post)
            # (and one step holds at least half of it: a ramp that starts late is a leak, not a jump)
            if total > 0 and rises.max() > 0.75 * total and steps_up.max() >= 0.5 * total:
                j = n // 10 + int(np.argmax(steps_up)) + 1
                return MemoryGrowth._steady_growth(Series(s.steps[j:], v[j:]), min_steps, after_jump=True)
        lx, lv = x[n // 2:], v[n // 2:]
        slope = _theil_sen(lx, lv)
        if slope <= 0:
            return None
        resid = lv - slope * lx
        noise = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
        late_growth = slope * (lx[-1] - lx[0])
        quarters = [float(np.median(q)) for q in np.array_split(lv, 4)]
        rising = all(b >= a for a, b in zip(quarters, quarters[1:])) and quarters[-1] > quarters[0]
        if late_growth <= 5 * noise or not rising:
            return None
        end = float(np.median(v[-max(3, n // 20):]))
        rate = _theil_sen(x[n // 10:], v[n // 10:])  # MiB per step after warm-up, for the projection
        # Where it began: the first step after warm-up a tenth of the way from the level to the end.
        above = np.flatnonzero(v[n // 10:] >= level + 0.1 * max(end - level, 0.0))
        since = int(s.steps[n // 10 + above[0]]) if len(above) else int(s.steps[n // 2])
        return {"level_mb": level, "end_mb": end, "growth_mb": max(end - level, late_growth),
                "slope_mb_per_step": max(rate, slope), "late_quarter_medians_mb": quarters, "noise_mb": noise,
                "steps": n, "since_step": since, "after_jump": after_jump}

    def _growth_finding(self, ctx: Context, rel: float, col: str, g: dict, *, kept: dict | None,
                        eval_grad: int) -> Finding:
        what = "GPU memory held by tensors" if col == "cuda_mb" else "Process memory (RSS)"
        causes, recs = [], []
        if kept:
            causes.append(f"loss tensors of earlier steps stay alive ({fmt(kept['median_live_losses'])} of the last 7 "
                          "at the median): something stores the loss tensor itself, which keeps its autograd graph")
            recs.append(Recommendation("fix", "Store the loss as a Python number, not the tensor.",
                                       "history.append(loss.item())     # not history.append(loss)\n"
                                       "running_loss += loss.item()     # not running_loss += loss"))
        if eval_grad:
            causes.append(f"{eval_grad} forward passes ran in eval mode with autograd on (validation without "
                          "torch.no_grad()): any output or loss kept from them keeps all their activations")
            recs.append(Recommendation("fix", "Run validation without autograd.",
                                       "model.eval()\nwith torch.no_grad():\n"
                                       "    val_loss += loss_fn(model(x_val), y_val).item()\nmodel.train()"))
        if not recs:
            recs.append(Recommendation("fix", "Keep numbers or detached copies, never tensors that carry a graph.",
                                       "history.append(loss.item())\n"
                                       "outputs.append(out.detach().cpu())   # not outputs.append(out)\n"
                                       "with torch.no_grad():                # around validation and metrics\n"
                                       "    ..."))
        recs.append(Recommendation("best_practice", "Find what grows: compare live tensors between two steps.",
                                   "import gc, collections, torch\n"
                                   "count = lambda: collections.Counter(tuple(o.shape) for o in gc.get_objects()\n"
                                   "                                    if torch.is_tensor(o))\n"
                                   "before = count(); ...one more step...; print(count() - before)"))
        per_1000 = g["slope_mb_per_step"] * 1000
        cause = (" Likely cause: " + "; ".join(causes) + ".") if causes else (
            " No kept loss tensors were seen: look for tensors appended to a list or added to a running total "
            "every step, or a cache without a bound.")
        return self.finding(
            severity="high" if rel >= 0.5 else "medium", confidence=0.85 if causes else 0.7,
            title=f"{what} grew steadily from {fmt(g['level_mb'])} to {fmt(g['end_mb'])} MiB "
                  f"(+{fmt(rel * 100)}%, {fmt(per_1000)} MiB per 1000 steps)",
            description=(f"{what} kept rising from step {g['since_step']} on, through the second half of the run, "
                         f"at {fmt(g['slope_mb_per_step'] * 1024)} KiB per step, every quarter higher than the last: "
                         f"{', '.join(fmt(q) for q in g['late_quarter_medians_mb'])} MiB. At this rate 100,000 steps "
                         f"need {fmt(per_1000 * 100)} MiB more.{cause}"),
            step=g["since_step"],
            evidence={"series": col, "growth_fraction": rel, **g, "kept_losses": kept, "eval_mode_grad_passes": eval_grad,
                      col: ctx.evidence_series(ctx.record.column(col).finite())},
            recommendations=recs,
        )

    def _kept_finding(self, ctx: Context, kept: dict) -> Finding:
        return self.finding(
            severity="low", confidence=0.6,
            title="Loss tensors of earlier steps are kept alive, each with its autograd graph",
            description=(f"From step {kept['first_step']}, {fmt(kept['median_live_losses'])} of the previous 7 steps' "
                         "loss tensors were still alive at the median. Memory did not grow measurably in this run, "
                         "but a list that keeps every loss grows with the run."),
            step=kept["first_step"], evidence=kept,
            recommendations=[Recommendation("fix", "Store the loss as a Python number, not the tensor.",
                                            "history.append(loss.item())     # not history.append(loss)")],
        )


_LOADER_FIX = ("loader = DataLoader(dataset, batch_size=64, shuffle=True,\n"
               "                    num_workers=4,            # prepare batches in parallel with training\n"
               "                    pin_memory=True,          # faster copies to the GPU\n"
               "                    persistent_workers=True,  # keep the workers between epochs\n"
               "                    prefetch_factor=4)")
# A CPU run has no host-to-GPU copy to speed up: pinned memory would only cost memory there.
_LOADER_FIX_CPU = ("loader = DataLoader(dataset, batch_size=64, shuffle=True,\n"
                   "                    num_workers=4,            # prepare batches in parallel with training\n"
                   "                    persistent_workers=True,  # keep the workers between epochs\n"
                   "                    prefetch_factor=4)")
_NO_LOADER_FIX = ("class Batches(torch.utils.data.Dataset):\n"
                  "    def __getitem__(self, i): return prepare(i)   # the per-batch work of the loop\n"
                  "    def __len__(self): return num_batches\n"
                  "loader = DataLoader(Batches(), batch_size=None, num_workers=4, persistent_workers=True)")


class DataloaderBottleneck(Rule):
    """Detects PRF001; its documentation and options are in the catalogue (`modeldebug explain PRF001`)."""

    code = "PRF001"
    requires = (M.T_LOADER, M.T_DATA, M.T_INFERENCE, M.LR, M.CUDA_MB, M.MODEL_INPUT, M.INPUT_REUSED, M.GAP_PROFILE, M.DATALOADER,
                M.LOADER_ITERATOR_PER_BATCH, *_TIMED)

    def check(self, ctx: Context) -> Iterator[Finding]:
        rec = ctx.record
        t_step = rec.column("t_step").values
        t_loader = rec.column("t_loader").values
        # the gap less the passes without gradients in it (a teacher's inference, an evaluation): not data
        t_data = np.maximum(rec.column("t_data").values - np.nan_to_num(rec.column("t_inference").values), 0.0)
        steps = rec.column("t_step").steps
        keep = _timed_steps(ctx, warmup=1)  # the first step's time includes everything before training
        if keep.sum() < max(ctx.t.min_steps, 10):
            return
        uses_loader = bool(np.mean(np.nan_to_num(t_loader[keep]) > 0) >= 0.5)
        # Several optimizers stepping on each batch (one net each, stepped in turn) close several steps
        # per batch, and only the first waits for it: judged per iteration, a batch and its steps.
        per_batch = len(rec.events("optimizer"))
        if (not uses_loader and per_batch >= 2 and rec.events(M.DATALOADER.name)
                and float(np.mean(np.nan_to_num(t_loader[keep]) > 0)) >= 0.8 / per_batch):
            uses_loader = True
            t_step, t_loader, t_data, keep = (*(_iterations(v, keep, per_batch) for v in (t_step, t_loader, t_data)),
                                              _iterations(keep, keep, per_batch, kept=True))
            steps = steps[:len(keep) * per_batch:per_batch]  # each iteration's first step
        else:
            per_batch = 1
        if not uses_loader and not np.isfinite(rec.column("lr").values).any():
            # Without an optimizer, steps close at the next backward pass: the time "between
            # steps" then holds the forward pass and the hand-written update too.
            return
        if not uses_loader and same_batch_every_step(ctx):
            # Tensors built once and fed whole every step: no batch is prepared between steps, so the
            # time there is the loop's other work (plotting, logging, evaluation), not data.
            return
        # (with workers only: an iterator over the training process's own data set starts in microseconds, and
        # the gap then holds the loop's other work)
        fresh = [e for e in rec.events(M.LOADER_ITERATOR_PER_BATCH.name) if e.data.get("num_workers")] if uses_loader else []
        wait = np.nan_to_num(t_loader if uses_loader else t_data)[keep]
        if fresh:  # a new iterator per batch: its start (and its workers' stop) run outside __next__, in the gap
            wait = np.maximum(wait, np.nan_to_num(t_data)[keep])
        step = t_step[keep]
        share = float(wait.sum() / step.sum())
        median_share = float(np.median(np.minimum(wait / step, 1.0)))
        needed = ctx.option("dataloader_share")
        # Either measure may decide, if the other agrees half-way: the total resists a run where
        # only some steps wait, the median resists a few steps stalled by something else.
        if max(share, median_share) < needed or min(share, median_share) < needed / 2:
            return
        if np.median(wait) * 1e3 < ctx.option("dataloader_min_wait_ms"):
            return
        compute = float(np.median(step - np.nan_to_num(t_data[keep])))
        where = ("starting a new DataLoader iterator and waiting for its first batch" if fresh else
                 "inside the DataLoader iterator" if uses_loader else "between steps, before the forward pass")
        profile = gap_profile(ctx)
        top = named_line(profile)
        speedup = 1 / max(1 - share, 1e-6)
        gpu = _on_gpu(ctx)
        loader = _loader_settings(ctx) if uses_loader else None
        workers = int(loader.get("num_workers") or 0) if loader else 0
        if not uses_loader:
            recs = [Recommendation("fix", "Prepare batches in a Dataset served by a DataLoader with workers, so the "
                                   "next batch is ready when the step ends.", _NO_LOADER_FIX)]
        elif workers:  # the usual advice is already followed: start from what the loader has
            recs = _worker_fixes(loader, gpu, float(np.median(wait)) * 1e3)  # type: ignore[arg-type]
        else:
            recs = [Recommendation("fix", "Load batches in parallel worker processes, ahead of the training step.",
                                   _LOADER_FIX if gpu else _LOADER_FIX_CPU),
                    Recommendation("optimization", "Make each sample cheaper: decode once and cache, and move "
                                   "augmentation to the GPU on whole batches.",
                                   "x = augment(x.to(device, non_blocking=True))   # batched, after the loader")
                    if gpu else
                    Recommendation("optimization", "Make each sample cheaper: decode once and cache, and augment "
                                   "whole batches after the loader instead of one sample at a time.",
                                   "x = augment(x)   # on the whole batch, after the loader")]
        if fresh:
            recs.insert(0, _fresh_iterator_fix(fresh[0].data))
        if top is not None and not uses_loader:
            # the line the time went to: the user can tell a batch being prepared from a plot being drawn
            recs.insert(0, Recommendation(
                "fix", f"Make {top['where']} cheaper or rarer: it holds {top['share']:.0%} of the time between steps. "
                "If it prepares the batch, move it into a Dataset served by a DataLoader with workers; if it plots, "
                "logs or evaluates, do it every few hundred steps.",
                f"if step % 100 == 0:   # step: your loop's counter\n    {top['code']}   # {top['where']}"))
        title = (f"Training waits for data: {max(share, median_share):.0%} of step time is spent {where}"
                 if uses_loader or top is None else
                 f"{max(share, median_share):.0%} of step time is spent between steps, "
                 f"{'mostly' if top['share'] >= 0.5 else 'the most'} at {top['where']}: `{top['code']}`")
        if fresh:
            title = _fresh_iterator_title(fresh[0].data, max(share, median_share))
        waits = None if uses_loader else deliberate_wait(profile)
        yield self.finding(
            severity="low" if waits else "medium", confidence=0.85 if uses_loader else 0.6,
            title=title,
            description=((f"Each batch feeds {per_batch} optimizer steps (one per optimizer), so the steps below are "
                          f"iterations of {per_batch}. " if per_batch > 1 else "")
                         + f"Over {int(keep.sum())} steps, {fmt(float(wait.sum()))} s of {fmt(float(step.sum()))} s went to "
                         + (f"waiting for the next batch ({where})" if uses_loader or top is None else
                            "the gaps between steps, before the forward pass")
                         + f"; the median step waited {fmt(float(np.median(wait)) * 1e3)} ms "
                         f"for {fmt(compute * 1e3)} ms of forward, backward and optimizer work. "
                         + ("With the data ready in time" if uses_loader or top is None else "Without those gaps")
                         + f" the run would be up to {fmt(speedup)}x faster."
                         + ("" if uses_loader or top is not None else " No DataLoader was used: this time also "
                            "includes whatever else the loop does between steps.")
                         + (_fresh_iterator_sentence(fresh[0].data) if fresh else
                            _workers_sentence(loader, float(np.median(wait)) * 1e3) if workers else "")
                         + (gap_sentence(profile) if profile else "")
                         + (_WAIT_NOTE if waits else "")),
            step=int(steps[keep][0]),
            evidence={"wait_share": share, "median_step_wait_share": median_share, "uses_dataloader": uses_loader,
                      "device": "gpu" if gpu else "cpu",
                      "median_wait_ms": float(np.median(wait)) * 1e3, "median_compute_ms": compute * 1e3,
                      "possible_speedup": speedup, "steps": int(keep.sum())}
                     | ({"gap_profile": profile} if profile else {}) | ({"loader": loader} if loader else {}),
            recommendations=recs,
        )


def _fresh_iterator_title(d: dict[str, Any], share: float) -> str:
    """(`d`: a `loader_iterator_per_batch` event of a loader with workers: PRF001 reads no other.)"""
    where = f" ({os.path.basename(str(d['file']))}:{d['line']}: `{d.get('code')}`)" if d.get("file") else ""
    n = int(d["num_workers"])
    return (f"A new DataLoader iterator for every batch{where}: its {n} worker process{'es' if n > 1 else ''} start "
            f"and stop at each step, {share:.0%} of step time")


def _fresh_iterator_sentence(d: dict[str, Any]) -> str:
    n = int(d["num_workers"])
    return (f" {d.get('new_iterators')} of the first {d.get('batches')} training batches were the first batch of a new "
            f"iterator (iter(loader) called for each batch): each one starts {n} worker process{'es' if n > 1 else ''}, "
            f"waits for {'their' if n > 1 else 'its'} first batch, and shuts them down when the iterator is dropped, "
            "time spent outside the step."
            + (" Every one of those batches held the same values: see DAT005." if d.get("same_batch") else ""))


def _fresh_iterator_fix(d: dict[str, Any]) -> Recommendation:
    where = f"   # was: {d.get('code')}" if d.get("code") else ""
    return Recommendation(
        "fix", "Make one iterator per epoch and read every batch from it, instead of a new iterator for each batch.",
        f"for x, y in train_loader:{where}\n    ...\n# or, for a fixed number of steps:\n"
        "it = iter(train_loader)\nfor step in range(steps):\n    try:\n        x, y = next(it)\n"
        "    except StopIteration:\n        it = iter(train_loader)\n        x, y = next(it)")


def _iterations(values: np.ndarray, keep: np.ndarray, n: int, *, kept: bool = False) -> np.ndarray:
    """`values` summed over consecutive blocks of `n` steps (one batch's iteration whatever block
    boundary: each block holds one wait and `n` steps' work); `kept`: whether every step of a block
    is kept, for the mask itself."""
    m = len(values) // n * n
    blocks = np.asarray(values[:m]).reshape(-1, n)
    if kept:
        return blocks.all(axis=1)
    return np.nan_to_num(blocks.astype(float)).sum(axis=1)


def _loader_settings(ctx: Context) -> dict | None:
    """The training loader's settings (capture/loop.py: the first data set a DataLoader served with
    autograd on; a validation loop read first, such as Lightning's sanity check, runs without), or
    None for a record made before they were kept."""
    events = ctx.record.events(M.DATALOADER.name)
    training = [e for e in events if e.data.get("grad_enabled", True)]
    return dict((training or events)[0].data) if events else None


#: What receiving one batch from a worker process costs the training process (its tensors passed
#: through shared memory and a queue): around a millisecond. A wait this small a batch, from workers
#: over samples held in memory, is that cost, not the samples'.
_WORKER_HANDOFF_MS = 2.0


def _handoff_bound(loader: dict, median_wait_ms: float) -> bool:
    return bool(loader.get("in_memory")) and median_wait_ms <= _WORKER_HANDOFF_MS


def _workers_sentence(loader: dict, median_wait_ms: float) -> str:
    n = int(loader["num_workers"])
    return (f" The loader already runs {n} worker process{'es' if n > 1 else ''}"
            + (" (started again each epoch: persistent_workers is off)" if not loader.get("persistent_workers") else "")
            + (f", and {loader.get('dataset', 'its data set')} holds its samples in memory: making a batch is "
               "indexing them, cheaper than receiving it from another process (each batch is copied through "
               "shared memory and a queue, around a millisecond, the wait seen here)."
               if _handoff_bound(loader, median_wait_ms) else "."))


def _worker_fixes(loader: dict, gpu: bool, median_wait_ms: float) -> list[Recommendation]:
    """Advice for a loader that already has worker processes: for samples held in memory whose batches
    wait about a worker's hand-off, no workers; otherwise, workers kept between epochs and cheaper samples."""
    bs = loader.get("batch_size") or 64
    keep = Recommendation(
        "fix", "Keep the workers between epochs and let each prepare more batches ahead; if they still fall "
        "behind, make each sample cheaper (decode once and cache; augment whole batches after the loader).",
        f"loader = DataLoader(dataset, batch_size={bs}, shuffle=True, num_workers={max(4, int(loader['num_workers']))},\n"
        "                    persistent_workers=True, prefetch_factor=4" + (", pin_memory=True)" if gpu else ")"))
    if not _handoff_bound(loader, median_wait_ms):
        return [keep]
    return [Recommendation(
        "fix", "Load in the training process: the samples are already tensors in memory, so a worker process "
        "costs more to receive each batch from than the batch costs to make. Larger batches also cut the "
        "per-batch cost.",
        f"loader = DataLoader(dataset, batch_size={bs}, shuffle=True, num_workers=0)"), keep]


def _on_gpu(ctx: Context) -> bool:
    """Did the run train on a GPU? CUDA was there (`meta.device`) and tensors were held on it."""
    if not str(ctx.record.meta.get("device") or "").startswith("cuda"):
        return False
    cuda = ctx.record.column("cuda_mb").values
    finite = cuda[np.isfinite(cuda)]
    return bool(finite.max() > 0) if len(finite) else True  # memory not measured: trust the device


def gap_profile(ctx: Context) -> dict | None:
    """What the stack sampler saw between steps (capture/gaps.py), with each line's place as the
    user reads it (`train.py:63`), or None when it did not run (the gaps never held much of the time)."""
    events = ctx.record.events(M.GAP_PROFILE.name)
    if not events or not events[0].data.get("lines"):
        return None
    data = dict(events[0].data)
    script = str(ctx.record.meta.get("script") or "")
    cwd = str(ctx.record.meta.get("cwd") or "")
    base = os.path.dirname(os.path.join(cwd, script) if cwd else os.path.abspath(script)) if script else ""
    lines = []
    for ln in data["lines"]:
        file = str(ln.get("file") or "")
        shown = os.path.relpath(file, base) if base and file.startswith(base + os.sep) else os.path.basename(file)
        lines.append({**ln, "where": f"{shown}:{ln.get('line')}" if file else "library code"})
    data["lines"] = lines
    return data


# Calls that wait on purpose: a sleep, a plot shown for a moment, a prompt. Matched on the line's code
# with its strings left out; `wait`/`show`/`input` of other objects (a collective's `work.wait()`, a
# prefetch thread's event) are work, not waiting.
_WAITS = re.compile(r"(?:^|[^\w.])(?:time\.sleep|sleep|plt\.pause|pyplot\.pause|plt\.show|pyplot\.show|input)\(")
_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_WAITING_CALLS = ("time.sleep", "matplotlib.pyplot.pause", "matplotlib.pyplot.show")


#: At least this share of a batch's positions padding in every sequence: padded to a fixed length.
_PADDED_COLUMNS = 0.5
_ATTENTION_LAYERS = frozenset({"MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer",
                               "TransformerEncoder", "TransformerDecoder", "Transformer"})


def deliberate_wait(profile: dict | None) -> dict | None:
    """The line that held most of the time between steps when it waits on purpose: a pause to show
    a plot (`plt.pause`), a `time.sleep`, `input()`. Such a run is slow by design, not by a
    bottleneck to fix; None otherwise (no profile, or the top line does work)."""
    if not profile:
        return None
    top = profile["lines"][0]
    # the line's whole share: its samples are split by the call they were in (`plt.draw(); plt.pause(0.1)`
    # on one line: 35% in draw, 48% in pause)
    where = top.get("where")
    share = sum(float(line.get("share", 0.0)) for line in profile["lines"] if line.get("where") == where) \
        if where else float(top["share"])
    if share < 0.5:
        return None
    code = _STRINGS.sub("''", str(top.get("code") or ""))
    if str(top.get("inside") or "") in _WAITING_CALLS or _WAITS.search(code):
        return top
    return None


# Training frameworks that run the loop themselves: the user's own innermost line is the call that
# starts it (`trainer.fit(model)`), which no fix should make rarer.
_FRAMEWORKS = ("transformers.", "lightning.", "pytorch_lightning.", "accelerate.", "ignite.", "fastai.", "keras.",
               "composer.", "deepspeed.")


def named_line(profile: dict | None) -> dict | None:
    """The top line of a gap profile when it can be named and acted on: it has code, and it is not
    the call that hands the loop to a training framework."""
    if not profile:
        return None
    top = profile["lines"][0]
    if not top.get("code") or str(top.get("inside") or "").startswith(_FRAMEWORKS):
        return None
    return top


def gap_sentence(profile: dict) -> str:
    """The lines that held the time between steps, in a sentence."""
    parts = []
    for ln in profile["lines"][:3]:
        code = f" `{ln['code']}`" if ln.get("code") else ""
        inside = f" (in {ln['inside']})" if ln.get("inside") else ""
        parts.append(f"{ln['where']}{code}{inside} {ln['share']:.0%}")
    return (f" Where the time between steps went ({profile['samples']} samples of the stack, steps "
            f"{profile['first_step']}-{profile['last_step']}): " + "; ".join(parts) + ".")


def _cpu_seconds(ctx: Context) -> np.ndarray | None:
    """Process CPU seconds per step, when capture records them (column `t_cpu`); else None."""
    try:
        v = ctx.record.column("t_cpu").values
    except KeyError:
        return None
    return v if np.isfinite(v).mean() >= 0.5 else None


def _own_growth(ctx: Context, parts: list[np.ndarray], t: np.ndarray) -> float:
    """How much the run's OWN work per step grew from the first quarter of the timed steps to the last.

    With the process's CPU time per step, that is its growth: other processes using the CPU add
    wall time, not CPU time. Without it, the fastest tenth of the steps: a busy machine slows the
    typical step but leaves some steps undisturbed, while work that grows with the run slows them all.
    """
    cpu = _cpu_seconds(ctx)
    if cpu is not None:
        early, late = (float(np.nanmedian(cpu[p])) for p in (parts[0], parts[-1]))
    else:
        early, late = (float(np.percentile(t[p], 10)) for p in (parts[0], parts[-1]))
    return late / early if early > 0 else 0.0


_WAIT_NOTE = (" The first of these lines waits on purpose (a pause to show a plot, a sleep): the run is slow by"
              " design, not held up by a bottleneck; drop it, or do it less often, where the run must be fast.")

_PHASES = {"t_data": "between steps, before the forward pass", "t_forward": "in the forward pass and loss",
           "t_backward": "in the backward pass", "t_optimizer": "in the optimizer step"}
_PHASE_FIX = {
    "t_backward": ("Cut the autograd graph between steps: each backward pass runs through every earlier step.",
                   "hidden = hidden.detach()          # carry the state's value, not its history\n"
                   "output, hidden = model(x, hidden)\n"
                   "loss.backward()                   # no retain_graph=True\n"
                   "running_loss += loss.item()       # a number, not the tensor and its graph"),
    "t_forward": ("Bound what the forward pass reads: something it uses grows every step.",
                  "memory = torch.cat([memory, h.detach()])[-max_len:]   # keep caches bounded and detached"),
    "t_optimizer": ("Keep the optimizer's work constant: do not add parameter groups or state every step.",
                    "optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)   # once, before the loop"),
    "t_data": ("Keep per-step bookkeeping constant-time: do not recompute over the whole history.",
               "running_loss = 0.98 * running_loss + 0.02 * loss.item()   # not np.mean(all_losses) every step"),
}


def _a_pass_over_other_data(ctx: Context) -> bool:
    """Are the losses without gradients an evaluation over other data, not a teacher's loss on the training
    batch (a distillation teacher called with the labels computes one under no_grad at every step)? At
    least two such calls before the median step (a pass over several validation batches), or a batch size
    other than the training loss's."""
    losses = ctx.record.entities("loss")
    train = {(e.info.get("input_shape") or [None])[0] for e in losses if e.info.get("phase") == "train"}
    for e in losses:
        if e.info.get("phase") != "val":
            continue
        if (e.info.get("input_shape") or [None])[0] not in train:
            return True
        _, calls = np.unique(ctx.record.series(e.name, "val_loss", kind="loss").steps, return_counts=True)
        if len(calls) and float(np.median(calls)) >= 2:
            return True
    return False


class SlowStep(Rule):
    """Detects PRF002; its documentation and options are in the catalogue (`modeldebug explain PRF002`)."""

    code = "PRF002"
    requires = (M.T_DATA, M.T_FORWARD, M.T_BACKWARD, M.T_OPTIMIZER, M.T_LOADER, M.RSS_MB, M.MODEL_INPUT, M.GAP_PROFILE,
                M.LOSS_CALLS, M.ANOMALY_MODE, M.T_INFERENCE, M.EMBEDDING_PADDING, *_TIMED)
    # Work that grows with the run (a longer history, a bigger graph) needs more memory too.

    def check(self, ctx: Context) -> Iterator[Finding]:
        anomaly = self._anomaly_mode(ctx)
        if anomaly is not None:
            yield anomaly
        padded = self._padded_to_a_fixed_length(ctx)
        if padded is not None:
            yield padded
        every = self._evaluation_every_step(ctx)
        if every is not None:
            yield every
        rec = ctx.record
        t_step = rec.column("t_step").values
        n = len(t_step)
        keep = _timed_steps(ctx, warmup=max(2, n // 10))
        if keep.sum() < max(ctx.t.min_steps, _MIN_TIMED_STEPS):
            return
        idx = np.flatnonzero(keep)
        trend = self._trend(ctx, idx)
        if trend is not None:
            yield trend
            return
        stalls = self._stalls(ctx, idx)
        if stalls is not None:
            yield stalls

    def _padded_to_a_fixed_length(self, ctx: Context) -> Finding | None:
        """Batches of token sequences whose last (or first) positions are padding in every sequence: padded to
        a fixed length, not to the batch's longest sequence. Every layer after the embedding computes over
        those positions for nothing. Read from the embedding probe (`embedding_padding`, the first sampled
        training steps): half of the positions or more, on every probe."""
        for module, probes in ctx.events_by(M.EMBEDDING_PADDING.name).items():
            shares = [float(p["padding_columns_share"]) for p in probes if "padding_columns_share" in p]
            if not shares or len(shares) < len(probes) or min(shares) < _PADDED_COLUMNS:
                continue
            share = float(np.median(shares))
            d = probes[0]
            t = (d.get("input_shape") or [0, 0])[-1]
            types = {m.type for m in ctx.modules.values()}
            if "Flatten" in types:
                continue  # a layer sized for the padded length (a TextCNN's Flatten -> Linear): the length is fixed
            rnn = sorted(types & {"LSTM", "GRU", "RNN"})
            attention = bool(types & _ATTENTION_LAYERS)
            return self.finding(
                # attention computes over every pair of positions, at any length: the padding is pure waste;
                # a recurrent model may pack its sequences (pack_padded_sequence skips the padding there),
                # and other models may need the length they were built for
                severity="medium" if attention and not rnn else "low", confidence=0.7,
                title=(f"Batches are padded to a fixed length: {share:.0%} of the {t} positions are padding in every "
                       "sequence of the batch"),
                description=(f"{module} reads token ids of shape {tuple(d.get('input_shape') or [])}, and on each of the "
                             f"first {len(shares)} sampled training steps {fmt(min(shares) * 100)}-"
                             f"{fmt(max(shares) * 100)}% of the positions held the padding id {d.get('padding_idx')} in "
                             "every sequence: the batch is padded to a fixed length, not to its longest sequence. A "
                             "mask keeps the results right, but every layer after the embedding (attention grows "
                             "with the square of the length) computes over those positions for nothing: the step "
                             f"costs up to {fmt(1 / max(1 - share, 1e-3))}x what the batch needs."
                             + (f" The model has {', '.join(rnn)}: if it packs its sequences (pack_padded_sequence) "
                                "the recurrence skips the padding, and only the layers before it pay." if rnn else "")),
                location=module, step=None,
                evidence={"module": module, "padding_columns_share": share, "probes": len(shares),
                          "input_shape": d.get("input_shape"), "padding_idx": d.get("padding_idx")},
                recommendations=[Recommendation(
                    "optimization", "Pad each batch to its longest sequence (dynamic padding) in the collate function.",
                    "def collate(batch):\n    length = max(len(ids) for ids, _ in batch)     # not a fixed max_length\n"
                    "    x = torch.full((len(batch), length), PAD)\n    for i, (ids, _) in enumerate(batch):\n"
                    "        x[i, :len(ids)] = torch.as_tensor(ids)\n    return x, torch.tensor([y for _, y in batch])\n"
                    "# Hugging Face: tokenizer(..., padding='longest') or DataCollatorWithPadding; with torch.compile,\n"
                    "# a few fixed bucket lengths keep the shapes static")])
        return None

    def _evaluation_every_step(self, ctx: Context) -> Finding | None:
        """A validation pass after every training step (`validate()` indented into the batch loop): losses
        computed without gradients before at least 80% of the steps, and the passes without gradients
        (`t_inference`) holding at least half of the median step. A teacher's or a target network's
        inference has no loss of its own without gradients, so it is not read as one."""
        rec = ctx.record
        t_step, t_inf = rec.column("t_step"), rec.column("t_inference")
        n = len(t_step)
        if n < _MIN_TIMED_STEPS or len(t_inf.values) != n:
            return None
        body = slice(max(1, n // 10), n)  # (after warm-up)
        steps = t_step.steps[body]
        val = np.isin(steps, validation_steps(ctx))
        if val.mean() < 0.8 or not _a_pass_over_other_data(ctx):
            return None
        share = np.nan_to_num(t_inf.values[body]) / np.maximum(t_step.values[body], 1e-9)
        median = float(np.median(share))
        if median < 0.5:
            return None
        total = float(np.nansum(t_inf.values[body]) / np.nansum(t_step.values[body]))
        profile = gap_profile(ctx)
        per_step = float(np.median(np.nan_to_num(t_inf.values[body]))) * 1e3
        return self.finding(
            severity="medium", confidence=0.85,
            title=(f"A validation pass after every training step: {total:.0%} of the run's time goes to forward "
                   "passes without gradients between steps"),
            description=(f"Before {val.mean():.0%} of steps {int(steps[0])}-{int(steps[-1])}, a loss was computed "
                         f"without gradients (an evaluation), and the passes without gradients took a median "
                         f"{fmt(per_step)} ms of each step ({median:.0%}). Evaluation meant for the end of an epoch "
                         "has most likely been indented into the batch loop: the run spends most of its time "
                         f"evaluating, up to {fmt(1 / max(1 - total, 1e-6))}x longer than training alone."
                         + (gap_sentence(profile) if profile else "")),
            step=int(steps[0]),
            evidence={"steps_with_evaluation": float(val.mean()), "median_share": median, "total_share": total,
                      "median_inference_ms": per_step} | ({"gap_profile": profile} if profile else {}),
            recommendations=[Recommendation(
                "fix", "Evaluate once per epoch (or every few hundred steps), after the batch loop.",
                "for epoch in range(epochs):\n    for x, y in train_loader:\n        train_step(x, y)\n"
                "    val_loss, val_acc = validate()     # after the batch loop, not inside it")])

    def _anomaly_mode(self, ctx: Context) -> Finding | None:
        """torch.autograd's anomaly detection left on for training: debugging mode, every step pays for it."""
        on = ctx.record.events(M.ANOMALY_MODE.name)
        sampled = int(np.nansum(ctx.record.column("sampled").values))
        if len(on) < 3 or len(on) < 0.5 * sampled:  # on for most of the run, not one step being debugged
            return None
        nan = any(e.data.get("check_nan", True) for e in on)
        return self.finding(
            severity="medium", confidence=0.9,
            title=f"Anomaly detection is on for training: {len(on)} of {sampled} sampled steps ran with it",
            description=("torch.autograd.set_detect_anomaly(True) (or a detect_anomaly() block) stays on while the model "
                         "trains. It is a debugging mode: every forward operation records its Python stack trace "
                         "for the backward pass" + (", and every backward operation's output is checked for NaN"
                                                     if nan else "")
                         + ", which typically makes a step 1.5 to 3 times slower (more for models of many small "
                         "operations). The numbers it computes are the same."),
            step=int(on[0].step) if on[0].step is not None else None,
            evidence={"sampled_steps_with_anomaly_mode": len(on), "sampled_steps": sampled, "check_nan": nan},
            recommendations=[Recommendation(
                "fix", "Turn it off for training; switch it on only around the step you are debugging.",
                "torch.autograd.set_detect_anomaly(False)        # the default\n"
                "# to find the op that makes a NaN, for one step only:\n"
                "with torch.autograd.detect_anomaly():\n    loss.backward()")])

    def _trend(self, ctx: Context, idx: np.ndarray) -> Finding | None:
        rec = ctx.record
        steps = rec.column("t_step").steps
        t = rec.column("t_step").values
        parts = np.array_split(idx, 4)
        q = [float(np.median(t[p])) for p in parts]
        growth = q[-1] / q[0] if q[0] > 0 else 0.0
        # Spread over the run, not one change of pace: no quarter-to-quarter rise holds more than
        # three quarters of the total rise, and none falls back.
        steps_up = np.diff(q) / max(q[-1] - q[0], 1e-12)
        rising = bool(steps_up.max() <= 0.75 and steps_up.min() >= -0.05)
        needed = ctx.option("slow_step_growth")
        if growth < needed or not rising or _rank_correlation(idx, t[idx]) < 0.5:
            return None
        own = _own_growth(ctx, parts, t)
        if own < needed:
            return None  # the wall clock slowed, the process's own work did not: a busy machine
        increase, grew = {}, {}
        for phase in _PHASES:
            v = np.nan_to_num(rec.column(phase).values)
            early, late = float(np.median(v[parts[0]])), float(np.median(v[parts[-1]]))
            increase[phase] = late - early
            if early > 0:
                grew[phase] = late / early
        # A machine that got busier slows every phase alike; work that grows with the run grows
        # in some phases and leaves another one as it was.
        if not grew or min(grew.values()) > growth / 2:
            return None
        phase = max(increase, key=lambda p: increase[p])
        share = increase[phase] / max(q[-1] - q[0], 1e-12)
        mem = rec.column("rss_mb").finite().values
        mem_note = ""
        if len(mem) > 8 and mem[-1] > mem[len(mem) // 4] * 1.01:
            mem_note = (f" Process memory rose too ({fmt(float(mem[len(mem) // 4]))} -> {fmt(float(mem[-1]))} MiB), "
                        "as it does when the graph of earlier steps is kept.")
        desc, code = _PHASE_FIX[phase]
        first, last = parts[0], parts[-1]
        # One sample per forward call, and the forward pass grew with the step: the calls per step
        # grew (an episode that lasts longer as the policy improves, a sequence fed one element at
        # a time), which is the script's design more often than a leak. The calls are not counted.
        per_call = one_sample_per_call(ctx) and grew.get("t_forward", 0.0) >= growth / 2
        if per_call:
            mem_note += (" The model is fed one sample per call and its forward pass grew with the step: if each "
                         "step makes more calls by design (longer episodes, longer sequences), this is expected.")
        return self.finding(
            severity="low" if per_call else "high" if growth >= 5 * needed else "medium",
            confidence=0.4 if per_call else 0.8,
            title=f"Steps get slower as the run goes on: {fmt(growth)}x, from {fmt(q[0] * 1e3)} to "
                  f"{fmt(q[-1] * 1e3)} ms (median), mostly {_PHASES[phase]}",
            description=(f"The median step took {fmt(q[0] * 1e3)} ms over steps {int(steps[first[0]])}-{int(steps[first[-1]])} "
                         f"and {fmt(q[-1] * 1e3)} ms over steps {int(steps[last[0]])}-{int(steps[last[-1]])}, rising through "
                         f"the quarters of the run ({', '.join(fmt(x * 1e3) for x in q)} ms). {fmt(min(share, 1.0) * 100)}% of "
                         f"the increase is {_PHASES[phase]}: its work grows with the number of steps done."
                         + mem_note),
            step=int(steps[first[0]]),
            evidence={"growth": growth, "own_growth": own, "quarter_median_ms": [x * 1e3 for x in q], "phase": phase, "one_sample_per_call": per_call,
                      "phase_increase_ms": {p: v * 1e3 for p, v in increase.items()},
                      "t_step": ctx.evidence_series(rec.column("t_step").finite())},
            recommendations=[Recommendation("fix", desc, code)],
        )

    def _stalls(self, ctx: Context, idx: np.ndarray) -> Finding | None:
        rec = ctx.record
        steps = rec.column("t_step").steps
        t = rec.column("t_step").values[idx]
        loader = np.nan_to_num(rec.column("t_loader").values[idx])
        med = float(np.median(t))
        excess = t - med
        # Stalls spent in the DataLoader (workers starting each epoch) are the data rule's business.
        stall = (t >= ctx.option("slow_step_spike") * med) & (loader < 0.5 * excess)
        if stall.sum() < 4:
            return None
        at = steps[idx][stall]
        gaps = np.diff(at)
        values, counts = np.unique(gaps, return_counts=True)
        period = int(values[np.argmax(counts)])
        # A burst of consecutive slow steps (period 1) is the machine being busy, not periodic work.
        periodic = period >= 2 and counts.max() >= 0.75 * len(gaps)
        lost = float(excess[stall].sum() / t.sum())
        if not periodic or lost < ctx.option("slow_step_spike_share"):
            return None
        phase_excess = {p: float(np.median(np.nan_to_num(rec.column(p).values[idx])[stall])
                                 - np.median(np.nan_to_num(rec.column(p).values[idx]))) for p in _PHASES}
        phase = max(phase_excess, key=lambda p: phase_excess[p])
        profile = gap_profile(ctx) if phase == "t_data" else None
        top = named_line(profile)
        fix = (f"if step % {period * 10} == 0:                  # less often\n"
               "    torch.save(model.state_dict(), path)   # and no torch.cuda.empty_cache() in the loop")
        if top is not None:
            fix = (f"if step % {period * 10} == 0:   # was every {period} steps (optimizer steps)\n"
                   f"    {top['code']}   # {top['where']}")
        waits = deliberate_wait(profile)
        return self.finding(
            severity="low" if waits else "medium", confidence=0.7,
            title=f"Every {period} steps a stall of {fmt(float(np.median(t[stall])) * 1e3)} ms "
                  f"({fmt(float(np.median(t[stall])) / med)}x the median step) costs {lost:.0%} of the run",
            description=(f"{int(stall.sum())} steps, every {period} steps from step {int(at[0])}, took at least "
                         f"{fmt(ctx.option('slow_step_spike'))}x the median step ({fmt(med * 1e3)} ms), "
                         f"mostly {_PHASES[phase]}; together {lost:.0%} of the run's step time. Periodic work "
                         "such as checkpointing, logging or cache clearing is the usual cause."
                         + (gap_sentence(profile) if profile else "") + (_WAIT_NOTE if waits else "")),
            step=int(at[0]),
            evidence={"period": period, "stalls": int(stall.sum()), "stall_steps": [int(s) for s in at[:20]],
                      "median_step_ms": med * 1e3, "median_stall_ms": float(np.median(t[stall])) * 1e3,
                      "time_share": lost, "phase": phase} | ({"gap_profile": profile} if profile else {})
            # a pause on purpose holds no memory: a growth beside it is a finding of its own
            | ({"explains_only": []} if waits else {}),
            recommendations=[Recommendation(
                "fix", "Do the periodic work less often, or off the training path"
                + (f": {top['where']} holds {top['share']:.0%} of the time between steps." if top else "."), fix)],
        )
