"""Deferred host copies (deferred.py): an unsampled step's numbers arrive late, its row does not change.

No GPU here: `LaggingCopier` copies at once but says "not ready" for `lag` queries, as a GPU running
behind the host would, so the queue, the order of rows, late non-finite values and the end-of-run
drain run for real, under `modeldebug.watch`, on real tiny models. The CUDA copier itself is
checked by the last test (skipped without CUDA) and benchmarks/cuda_sync_check.py.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import modeldebug as md
from modeldebug.capture.assembler import SPIKE_SYNC_STEPS
from modeldebug.capture.buffer import pack, unpack
from modeldebug.capture.deferred import CudaCopier, LaggingCopier
from modeldebug.capture.sampler import EARLY_STEPS
from modeldebug.config import DebuggingConfig

TIMING = {"t_data", "t_forward", "t_backward", "t_optimizer", "t_step", "t_cpu", "t_loader", "rss_mb", "cuda_mb"}
STEPS = 60  # sampled (basic, a small model): 0, 1, 2, 5, 10, 20, 50; the rest are deferred


class SqrtOfSquare(nn.Module):
    """|z| as sqrt(z * z): finite forward, but a NaN gradient wherever z is exactly 0."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z * z).sqrt()


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))


def batches(n: int, nan_at: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A learnable regression (the loss falls smoothly: no spike), with a NaN input at `nan_at`."""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(6, 1, generator=g)
    xs = [torch.randn(64, 6, generator=g) for _ in range(n)]
    out = [(x, x @ w + 0.1 * torch.randn(64, 1, generator=g)) for x in xs]
    if nan_at is not None:
        out[nan_at][0][3, 2] = float("nan")
    return out


def run(model: nn.Module, data: list[tuple[torch.Tensor, torch.Tensor]], copier: LaggingCopier | None,
        *, each: Callable[[Any, int], None] | None = None, clip: bool = True) -> Any:
    """Train under watch (with `copier` deferring the steps when given); the session."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with md.watch(model, optimizer=opt, db=":memory:", config=DebuggingConfig(bundle_max_mb=0)) as s:
        if copier is not None:
            s.tracer.assembler.copier = copier
        for i, (x, y) in enumerate(data):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            if clip:
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if each is not None:
                each(s, i)
    return s


def content(s: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The step rows without their timing columns, the statistics and the events, sorted."""
    names, rows = s.record.steps()
    keep = [i for i, n in enumerate(names) if n not in TIMING]
    steps = [tuple(r[i] for i in keep) for r in rows]
    conn = s.writer.conn
    stats = conn.execute("SELECT step, entity, stat, value FROM stats ORDER BY step, entity, stat").fetchall()
    events = conn.execute("SELECT step, kind, data FROM events WHERE kind != 'optimizer' ORDER BY id").fetchall()
    return steps, stats, events


def test_deferred_rows_are_the_synchronous_rows() -> None:
    sync = run(mlp(), batches(STEPS), None)
    copier = LaggingCopier(lag=2)
    late = run(mlp(), batches(STEPS), copier)
    assert copier.started == STEPS - 7  # every unsampled step was deferred, no sampled one
    assert len(late.tracer.assembler.pending) == 0  # drained at the end of the run
    s_steps, s_stats, s_events = content(sync)
    l_steps, l_stats, l_events = content(late)
    assert len(l_steps) == STEPS
    assert l_steps == s_steps  # loss, grad_norm, clip columns, sampled flag ... of each step
    assert l_stats == s_stats
    assert l_events == s_events
    names, rows = late.record.steps()
    assert all(r[names.index("loss")] is not None and r[names.index("clip_norm")] is not None for r in rows)
    assert sync.tracer.assembler.copier is None and len(sync.tracer.assembler.pending) == 0


def written(s: Any) -> int:
    """Step rows written so far (flushed to SQLite or still buffered), checked to be steps 0..n-1."""
    flushed = [r[0] for r in s.writer.conn.execute("SELECT step FROM steps ORDER BY rowid")]
    steps = flushed + [r[0] for r in s.writer._steps]
    assert steps == list(range(len(steps)))
    return len(steps)


def test_rows_are_written_in_step_order_as_their_copies_land() -> None:
    seen: list[tuple[int, int]] = []  # (rows written, step under way) after each step
    copier = LaggingCopier(lag=2)
    run(mlp(), batches(40), copier, each=lambda s, i: seen.append((written(s), i)))
    # a GPU 2 steps behind: step t's row is written at step t+3's sync point, or at the next
    # sampled step, which reads everything pending first
    for n, i in seen:
        sampled_since = [t for t in EARLY_STEPS if t <= i]
        expected = i + 1 if i in EARLY_STEPS else max(i - 2, max(sampled_since) + 1)
        assert n == expected, (i, n)
    assert copier.waits <= 2 * len([t for t in EARLY_STEPS if 0 < t < 40])  # only at sampled steps


def test_a_full_queue_waits_on_its_oldest_copy_only() -> None:
    copier = LaggingCopier(lag=10**9)  # a GPU that never catches up by itself
    lengths: list[int] = []
    s = run(mlp(), batches(STEPS), copier, each=lambda s, i: lengths.append(len(s.tracer.assembler.pending)))
    bound = s.tracer.assembler.pending.bound
    assert max(lengths) == bound
    assert copier.waits == STEPS - 7  # each deferred copy waited for once: by the full queue or a drain
    _, rows = s.record.steps()
    assert [r[0] for r in rows] == list(range(STEPS))


def test_a_late_nonfinite_loss_is_recorded_at_its_own_step() -> None:
    copier = LaggingCopier(lag=2)
    s = run(mlp(), batches(STEPS, nan_at=33), copier)
    ev = s.record.events("nonfinite")
    assert len(ev) == 1 and ev[0].step == 33 and ev[0].data["what"] == "loss"
    late = ev[0].data["late"]
    assert late["step"] == 33 and late["found_at_step"] == 36
    # the weights moved on (NaN after step 33's update): the replay of step 36 says so
    assert "origin" in ev[0].data and "already non-finite" in ev[0].data["origin"]["detail"]
    names, rows = s.record.steps()
    assert rows[33][names.index("loss")] is None and rows[32][names.index("loss")] is not None
    assert copier.started == 33 + 3 - 6  # once found late, every later step is read synchronously


def test_the_same_nan_on_the_synchronous_path_is_not_late() -> None:
    s = run(mlp(), batches(STEPS, nan_at=33), None)
    ev = s.record.events("nonfinite")
    assert len(ev) == 1 and ev[0].step == 33 and "late" not in ev[0].data
    assert ev[0].data["origin"]["where"] == "input"


def test_a_healthy_run_with_late_copies_has_no_nonfinite_event() -> None:
    s = run(mlp(), batches(STEPS), LaggingCopier(lag=2))
    assert s.record.events("nonfinite") == []
    assert not s.tracer.assembler.sync_only


def _sqrt_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8, bias=False), SqrtOfSquare(), nn.Linear(8, 1))


def test_a_late_nonfinite_gradient_with_a_finite_loss_is_recorded_at_its_own_step() -> None:
    data = batches(STEPS)
    data[41][0][0].zero_()  # a zero row: sqrt(0 * 0) has a NaN gradient, the loss stays finite
    s = run(_sqrt_model(), data, LaggingCopier(lag=1), clip=False)
    ev = s.record.events("nonfinite")
    assert len(ev) == 1 and ev[0].step == 41 and ev[0].data["what"] == "gradient"
    assert ev[0].data["late"]["found_at_step"] == 43
    names, rows = s.record.steps()
    assert math.isfinite(rows[41][names.index("loss")]) and rows[41][names.index("grad_norm")] is None


def test_a_healthy_twin_of_the_sqrt_model_has_no_event() -> None:
    s = run(_sqrt_model(), batches(STEPS), LaggingCopier(lag=1), clip=False)
    assert s.record.events("nonfinite") == []


def test_a_crash_mid_run_still_writes_every_pending_row() -> None:
    model, data = mlp(), batches(40)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    copier = LaggingCopier(lag=5)
    with (pytest.raises(RuntimeError, match="the user's own error"),
          md.watch(model, optimizer=opt, db=":memory:", config=DebuggingConfig(bundle_max_mb=0)) as s):
        s.tracer.assembler.copier = copier
        for i, (x, y) in enumerate(data):
            if i == 37:
                raise RuntimeError("the user's own error")
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    names, rows = s.record.steps()
    assert [r[0] for r in rows] == list(range(37))
    assert all(r[names.index("loss")] is not None for r in rows)


def test_a_breakpoint_listener_keeps_every_step_synchronous() -> None:
    model, data = mlp(), batches(30)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    copier = LaggingCopier(lag=2)
    with md.watch(model, optimizer=opt, db=":memory:", config=DebuggingConfig(bundle_max_mb=0)) as s:
        s.tracer.assembler.copier = copier
        s.tracer.listeners.append(lambda info: None)  # a listener that must see each step at once
        for x, y in data:
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    assert copier.started == 0 and s.record.n_steps == 30


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without a pinned-memory allocator")
def test_a_copy_that_cannot_start_falls_back_to_synchronous_reads_said_once(caplog: Any) -> None:
    """The real CUDA copier where no pinned memory can be had (this CPU-only torch: ``pin_memory=True``
    raises), switched in mid-run after 30 steps deferred by a lagging GPU: the steps still pending are
    written first, in order, every later step is read synchronously, the record is the synchronous
    one, one warning, nothing raised into the loop."""
    copier = CudaCopier()

    def switch(s: Any, i: int) -> None:
        if i == 29:
            assert len(s.tracer.assembler.pending) > 0  # deferred steps still on their way
            s.tracer.assembler.copier = copier

    sync = run(mlp(), batches(STEPS), None)
    with caplog.at_level(logging.WARNING, logger="modeldebug"):
        failed = run(mlp(), batches(STEPS), LaggingCopier(lag=3), each=switch)
    warnings = [r for r in caplog.records if "deferred device-to-host copies are off" in r.getMessage()]
    assert len(warnings) == 1 and "pin_memory" in warnings[0].getMessage()
    a = failed.tracer.assembler
    assert a.deferral_failed is not None and copier.created == 0 and len(a.pending) == 0
    assert content(failed) == content(sync)
    assert failed.record.events("internal_error") == []  # no probe switched off


def test_pack_reads_a_tensor_of_another_device_now_and_detaches() -> None:
    """A CPU loss beside values on an accelerator (here the meta device): ``torch.cat`` of both would
    raise, so the CPU one is read on the host and only the accelerator's are concatenated; nothing
    packed keeps an autograd graph."""
    got: dict[str, list[float]] = {}
    w = torch.ones(3, requires_grad=True)
    loss = (w * 2.0).sum().reshape(1)  # requires grad, on the CPU
    on_meta = torch.ones(4, device="meta")
    entries = [(loss, lambda v: got.__setitem__("loss", v)), (on_meta, lambda v: got.__setitem__("meta", v))]
    flat, layout = pack(entries, torch.device("meta"))  # type: ignore[arg-type]
    assert flat is not None and flat.device.type == "meta" and flat.numel() == 4
    for sink, v in unpack(layout, [7.0, 8.0, 9.0, 10.0]):
        sink(v)
    assert got == {"loss": [6.0], "meta": [7.0, 8.0, 9.0, 10.0]}
    # every tensor on the copy's device (or no device given): all packed, detached
    flat, layout = pack([(loss, lambda v: None), (torch.tensor([1.0, 2.0]), lambda v: None)])  # type: ignore[list-item]
    assert flat is not None and flat.tolist() == [6.0, 1.0, 2.0] and not flat.requires_grad
    assert [v for _, v in layout] == [1, 2]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_steps_are_deferred_and_their_rows_match_the_synchronous_ones() -> None:
    def cuda_run(synchronous: bool) -> Any:
        model = mlp().cuda()
        data = [(x.cuda(), y.cuda()) for x, y in batches(STEPS)]
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        with md.watch(model, optimizer=opt, db=":memory:", config=DebuggingConfig(bundle_max_mb=0)) as s:
            s.tracer.assembler.sync_only = synchronous
            for x, y in data:
                opt.zero_grad()
                nn.functional.mse_loss(model(x), y).backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
        return s

    deferred, sync = cuda_run(False), cuda_run(True)
    copier = deferred.tracer.assembler._cuda_copier
    assert isinstance(copier, CudaCopier) and deferred.tracer.assembler.deferral_failed is None
    assert 0 < copier.created <= copier.keep  # pinned buffers and events pooled, not made each step
    assert content(deferred) == content(sync)


def _bundle_run(tmp_path: Any, nan_at: int | None) -> Any:
    model, data = mlp(), batches(STEPS, nan_at=nan_at)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with md.watch(model, optimizer=opt, db=tmp_path / "run.db") as s:
        s.tracer.assembler.copier = LaggingCopier(lag=2)
        for x, y in data:
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    return s


def test_a_late_nan_turns_the_run_synchronous_so_the_bundle_catches_the_next_bad_step(tmp_path: Any) -> None:
    s = _bundle_run(tmp_path, nan_at=33)
    bundle = s.record.meta["bundle"]
    # step 33's state before its update is gone when its NaN is found (at step 36's sync point);
    # step 36 is then read synchronously, before its update, and its loss is NaN too
    assert bundle["saved"] and bundle["trigger"] == "nonfinite_loss" and bundle["step"] == 36
    assert (tmp_path / "run.bundle.pt").is_file()


def test_a_healthy_run_with_a_bundle_armed_saves_none_and_stays_deferred(tmp_path: Any) -> None:
    s = _bundle_run(tmp_path, nan_at=None)
    assert "bundle" not in s.record.meta and not (tmp_path / "run.bundle.pt").exists()
    assert not s.tracer.assembler.sync_only


def test_a_late_loss_spike_makes_the_next_steps_synchronous_for_the_bundle(tmp_path: Any) -> None:
    model, data = mlp(), batches(STEPS)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    copier = LaggingCopier(lag=2)
    with md.watch(model, optimizer=opt, db=tmp_path / "run.db") as s:
        s.tracer.assembler.copier = copier
        for i, (x, y) in enumerate(data):
            if i == 40:  # the fault: the learning rate raised 40x mid-run; the loss spikes at step 41
                opt.param_groups[0]["lr"] = 2.0
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    bundle = s.record.meta["bundle"]
    # step 41's spike is found at step 44, too late for its bundle; from then on the steps are read
    # synchronously, and the first bad step caught before its update is saved
    assert bundle["saved"] and 44 <= bundle["step"] <= 46
    assert s.tracer.assembler._sync_until >= 44 + SPIKE_SYNC_STEPS
    assert copier.started == 44 - 6


def _by_hand(copier: LaggingCopier | None) -> Any:
    """A loop with no optimizer object (the weights updated by hand): each backward pass is a step."""
    model = mlp()
    with md.watch(model, db=":memory:", config=DebuggingConfig(bundle_max_mb=0)) as s:
        s.tracer.assembler.copier = copier
        for x, y in batches(STEPS):
            model.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.05 * p.grad
    return s


def test_a_loop_without_an_optimizer_gets_the_same_rows_deferred() -> None:
    copier = LaggingCopier(lag=3)
    late, sync = _by_hand(copier), _by_hand(None)
    assert copier.started > 0
    assert content(late) == content(sync)
    assert late.record.n_steps == STEPS
