"""Distributed: rank detection, this rank's hooks (fingerprints checked against direct computation,
no hook left behind), the cross-rank rules on hand-built per-rank records, the merged report, the watchdog."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from modeldebug.catalogue import CATALOGUE
from modeldebug.config import DebuggingConfig
from modeldebug.distributed import merged_report, rank_path, rank_paths
from modeldebug.distributed.fingerprint import SAMPLE, fingerprint
from modeldebug.distributed.merge import wait_for_records
from modeldebug.distributed.ranks import RankInfo, rank_from_env
from modeldebug.distributed.rules import cross_rank_findings
from modeldebug.distributed.watch import DistWatch, sampled
from modeldebug.distributed.watchdog import Collective, HangSettings, Progress, Watchdog
from modeldebug.record import Record, RunWriter


# -- ranks -------------------------------------------------------------------------------------------
def test_rank_comes_from_the_launchers_environment() -> None:
    assert rank_from_env({}) is None
    assert rank_from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None  # one process is not a distributed job
    r = rank_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert r == RankInfo(1, 2, 1, "torchrun")
    assert rank_from_env({"SLURM_PROCID": "3", "SLURM_NTASKS": "4"}) == RankInfo(3, 4, 3, "slurm")
    assert rank_from_env({"RANK": "5", "WORLD_SIZE": "2"}) is None  # inconsistent: not trusted


def test_rank_paths_sit_beside_the_base() -> None:
    assert rank_path("out/run.db", 3) == Path("out/run.rank3.db")
    assert rank_path("out/run.rank0.db", 1) == Path("out/run.rank1.db")
    assert rank_paths("run", 2) == [Path("run.rank0.db"), Path("run.rank1.db")]


# -- this rank's hooks -----------------------------------------------------------------------------
def _train(steps: int, *, bn: bool = False, seed: int = 0, scale: float = 1.0) -> None:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8) if bn else nn.Identity(), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 4, generator=g) * scale
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()


def _record(rank: int, world: int, steps: int, **kw: object) -> Record:
    writer = RunWriter(":memory:")
    watch = DistWatch(writer, RankInfo(rank, world, rank, "test"), hang=HangSettings(min_s=60))
    watch.attach()
    try:
        _train(steps, **kw)  # type: ignore[arg-type]
    finally:
        watch.detach()
    writer.flush()
    return Record(writer.conn)


def test_fingerprint_is_sum_and_sum_of_squares_of_the_strided_sample() -> None:
    t = torch.randn(1000, 7)
    v = t.reshape(-1)[:: t.numel() // SAMPLE][:SAMPLE].double()
    assert fingerprint(t).tolist() == pytest.approx([v.sum().item(), (v * v).sum().item()])
    small = torch.arange(5.0)
    assert fingerprint(small).tolist() == [10.0, 30.0]


def test_hooks_write_fingerprints_at_sampled_steps_and_leave_nothing_behind() -> None:
    before = (dict(torch.nn.modules.module._global_forward_pre_hooks), dict(torch.nn.modules.module._global_forward_hooks))
    import torch.distributed as dist

    all_reduce = dist.all_reduce
    rec = _record(0, 2, 6, bn=True)
    assert (dict(torch.nn.modules.module._global_forward_pre_hooks), dict(torch.nn.modules.module._global_forward_hooks)) == before
    assert dist.all_reduce is all_reduce
    params = rec.events("dist_params")
    assert [e.step for e in params] == [s for s in range(1, 7) if sampled(s)]
    assert params[0].data["names"][:2] == ["0.weight", "0.bias"]
    grads = rec.events("dist_grads")
    assert len(grads) == len(params) and all(len(e.data["fp"]) == 6 for e in grads)
    bn = rec.events("dist_bn")
    assert bn and bn[0].data["names"] == ["1.running_mean", "1.running_var"]
    batches = rec.events("dist_batches")
    assert [s for e in batches for s in e.data["steps"]] == list(range(1, 7)) and batches[0].data["shapes"][0] == [16, 4]
    times = [e.data for e in rec.events("dist_times")]
    assert [s for t in times for s in t["steps"]] == list(range(1, 7))
    assert all(x > 0 for t in times for x in t["step"]) and times[0]["lr"][0] == 0.1
    assert rec.events("dist_model")[0].data["batchnorm"] == ["BatchNorm1d"]


def test_param_fingerprint_matches_the_trained_weights() -> None:
    writer = RunWriter(":memory:")
    watch = DistWatch(writer, RankInfo(0, 2, 0, "test"), hang=HangSettings(min_s=60)).attach()
    torch.manual_seed(0)
    model = nn.Linear(300, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    try:
        opt.zero_grad()
        model(torch.randn(4, 300)).sum().backward()
        opt.step()
    finally:
        watch.detach()
    writer.flush()
    ev = Record(writer.conn).events("dist_params")[0].data
    assert ev["fp"][0] == pytest.approx(fingerprint(model.weight).tolist(), rel=1e-12)


# -- cross-rank rules on real per-rank records -----------------------------------------------------
def _codes(records: dict[int, Record]) -> list[str]:
    return sorted(f.code for f in cross_rank_findings(records))


def test_identical_ranks_give_no_finding() -> None:
    assert _codes({0: _record(0, 2, 8, bn=True), 1: _record(1, 2, 8, bn=True)}) == ["DST003"]  # same data: flagged
    # the healthy twin: other data per rank (a sharded loader), same weights
    recs = {0: _record(0, 2, 8), 1: _record(1, 2, 8)}
    assert "DST001" not in _codes(recs)


def test_replicas_that_train_apart_are_flagged_with_evidence() -> None:
    recs = {0: _record(0, 2, 8, seed=0), 1: _record(1, 2, 8, seed=1)}
    found = {f.code: f for f in cross_rank_findings(recs)}
    assert {"DST001", "DST002", "DST007"} - set(found) == {"DST007"}  # no BatchNorm: DST007 quiet
    f = found["DST001"]
    assert f.step == 1 and f.evidence["ranks_differing_from_rank0"] == [1] and f.location in ("0", "3")
    assert "DST003" not in found  # each rank drew other batches


def test_batchnorm_statistics_that_differ_are_flagged() -> None:
    recs = {0: _record(0, 2, 8, bn=True, seed=0), 1: _record(1, 2, 8, bn=True, seed=0, scale=30.0)}
    found = {f.code: f for f in cross_rank_findings(recs)}
    assert found["DST007"].location == "1" and found["DST007"].evidence["steps_differing"] >= 2


def test_a_rule_selection_and_ignore_apply_to_cross_rank_rules() -> None:
    recs = {0: _record(0, 2, 6, seed=0), 1: _record(1, 2, 6, seed=1)}
    assert {f.code for f in cross_rank_findings(recs, DebuggingConfig(ignore=["DST001"]))} == {"DST002"}
    assert {f.code for f in cross_rank_findings(recs, DebuggingConfig(select=["DST001"]))} == {"DST001"}


def test_merged_report_folds_per_rank_findings_and_ranks_causes_first() -> None:
    recs = {0: _record(0, 2, 6, seed=0), 1: _record(1, 2, 6, seed=1)}
    report = merged_report(recs)
    codes = [f.code for f in report.findings]
    assert codes[0] == "DST002"  # unsynced gradients explain the diverged parameters
    assert "DST001" in [s["code"] for s in report.findings[0].evidence["symptoms"]]
    assert report.run["world_size"] == 2 and [r["rank"] for r in report.run["ranks"]] == [0, 1]
    assert ", 2 ranks" in report.to_text().splitlines()[0]  # the terminal's first line says it is a job's report
    missing = merged_report({0: _record(0, 2, 6, seed=0)}, missing=[1])
    assert "2 ranks (rank 1 missing)" in missing.to_text().splitlines()[0]


def test_every_distributed_code_is_in_the_catalogue_with_docs() -> None:
    from modeldebug.distributed.rules import DIST_RULES

    assert set(DIST_RULES) == {s.code for s in CATALOGUE.family("distributed")}


# -- waiting for the other ranks -------------------------------------------------------------------
def test_wait_returns_finished_records_and_gives_up_on_missing_ones(tmp_path: Path) -> None:
    w = RunWriter(tmp_path / "a.rank1.db")
    w.set_meta(status="finished")
    t = threading.Timer(0.2, w.finish)
    t.start()
    found = wait_for_records([tmp_path / "a.rank1.db", tmp_path / "a.rank2.db"], timeout=0.5, poll=0.05)
    t.join()
    assert list(found) == [tmp_path / "a.rank1.db"]


# -- the watchdog ----------------------------------------------------------------------------------
def test_watchdog_names_the_collective_the_main_thread_waits_in() -> None:
    progress = Progress()
    for _ in range(3):
        progress.step_done(time.monotonic())
    progress.counts = {"all_reduce": 4}
    progress.current = Collective("all_reduce", 4, 3, "train.py:31", time.monotonic())
    out = io.StringIO()
    dog = Watchdog(progress, HangSettings(factor=10, min_s=0.05, poll_s=0.01), rank=1, stream=out)
    progress.last_step = time.monotonic() - 1.0  # a second without a step
    dog.start()
    deadline = time.monotonic() + 5
    while not dog.stalls and time.monotonic() < deadline:
        dog._stop_event.wait(0.01)
    dog.stop()
    text = out.getvalue()
    assert "[rank 1]" in text and "torch.distributed.all_reduce (call 4" in text and "train.py:31" in text
    assert "test_watchdog_names_the_collective" in text  # the main thread's stack
    assert len(dog.stalls) == 1  # once per stall


def _stalled(rank: int, status: str, counts: dict[str, int]) -> Record:
    w = RunWriter(":memory:")
    w.set_meta(status=status)
    w.add_event(5, "dist_hang", {"rank": rank, "waited_s": 12.0, "step": 5, "stack": ["  File x"],
                                 "in_collective": {"op": "all_reduce", "call": counts.get("all_reduce", 0),
                                                   "step": 5, "where": "train.py:9"}})
    w.add_event(5, "dist_collectives", counts)
    w.flush()
    return Record(w.conn)


def test_a_stall_the_job_recovered_from_is_not_a_finding_a_skipped_collective_is() -> None:
    ok = {0: _stalled(0, "finished", {"all_reduce": 3}), 1: _stalled(1, "finished", {"all_reduce": 3})}
    assert "DST009" not in _codes(ok)
    bad = {0: _stalled(0, "crashed", {"all_reduce": 4}), 1: _stalled(1, "finished", {"all_reduce": 3})}
    f = next(f for f in cross_rank_findings(bad) if f.code == "DST009")
    assert f.evidence["ranks_with_fewer_calls"] == ["1"] and f.location == "train.py:9"


# -- through capture's patch manager -----------------------------------------------------------------
def test_dist_watch_patches_through_the_manager_and_a_users_own_patch_survives() -> None:
    import torch.distributed as dist
    import torch.multiprocessing as mp

    from modeldebug.capture.patches import PATCHES

    all_reduce, barrier, init, spawn = dist.all_reduce, dist.barrier, dist.init_process_group, mp.spawn
    idle = DistWatch(RunWriter(":memory:"), None, hang=HangSettings(min_s=60)).attach()  # no rank yet
    assert dist.init_process_group is not init and mp.spawn is not spawn and dist.all_reduce is all_reduce
    idle.detach()
    assert PATCHES.installed() == [] and (dist.init_process_group, mp.spawn) == (init, spawn)

    w = DistWatch(RunWriter(":memory:"), RankInfo(0, 2, 0, "test"), hang=HangSettings(min_s=60)).attach()
    assert dist.all_reduce.__wrapped__ is all_reduce  # type: ignore[attr-defined]

    def mine(*args: object, **kwargs: object) -> object:  # the user's own wrapper, made while watching
        return barrier(*args, **kwargs)

    dist.barrier = mine
    try:
        w.detach()
        assert dist.all_reduce is all_reduce and dist.barrier is mine and PATCHES.installed() == []
    finally:
        dist.barrier = barrier


# -- watch() on each rank: its own record, rank 0's report over all ----------------------------------
def _watched_rank(monkeypatch: pytest.MonkeyPatch, rank: int, *, lr: float, seed: int) -> object:
    import modeldebug

    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", "2")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)  # each rank its own shard of data
    with modeldebug.watch(model, optimizer=opt, db="run.db") as session:
        for _ in range(8):
            opt.zero_grad()
            model(torch.randn(16, 4, generator=g)).pow(2).mean().backward()
            opt.step()
    return session.report()


@pytest.mark.parametrize(("lr1", "lr_differs"), [(0.05, False), (0.1, True)])
def test_watch_on_each_rank_writes_its_record_and_rank0_reports_over_all(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lr1: float, lr_differs: bool) -> None:
    """Two ranks in turn in this process (torchrun's variables, no process group, so no gradient
    averaging: DST002 is right in both); the real multi-process twins are in test_distributed_jobs."""
    own = _watched_rank(monkeypatch, 1, lr=lr1, seed=1)
    assert "ranks" not in own.run  # type: ignore[attr-defined]  # rank 1: its own record's report
    meta = Record.open(tmp_path / "run.rank1.db").meta
    assert (meta["rank"], meta["world_size"], meta["launcher"]) == (1, 2, "torchrun")
    report = _watched_rank(monkeypatch, 0, lr=0.05, seed=0)
    assert report.run["world_size"] == 2 and [r["rank"] for r in report.run["ranks"]] == [0, 1]  # type: ignore[attr-defined]
    codes = {f.code for f in report.findings}  # type: ignore[attr-defined]
    assert "DST002" in codes and ("DST005" in codes) is lr_differs
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["run.rank0.db", "run.rank1.db"]


def test_a_nested_watch_leaves_the_hang_watchdog_to_the_outer_one() -> None:
    outer = DistWatch(RunWriter(":memory:"), RankInfo(0, 2, 0, "test"), hang=HangSettings(min_s=60)).attach()
    inner = DistWatch(RunWriter(":memory:"), RankInfo(0, 2, 0, "test"), hang=HangSettings(min_s=60)).attach()
    try:
        assert outer.watchdog is not None and outer.watchdog.is_alive() and inner.watchdog is None
    finally:
        inner.detach()
        outer.detach()
    assert not outer.watchdog.is_alive()


def test_after_the_first_step_only_the_model_and_its_batchnorm_layers_are_hooked() -> None:
    from torch.nn.modules import module as nn_module

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    writer = RunWriter(":memory:")
    w = DistWatch(writer, RankInfo(0, 2, 0, "test"), hang=HangSettings(min_s=60)).attach()
    try:
        for step in range(1, 23):
            opt.zero_grad()
            model(torch.randn(16, 4)).pow(2).mean().backward()
            opt.step()
            if step == 1:  # the global module hooks are gone; the model and its BatchNorm keep one each
                assert not nn_module._global_forward_pre_hooks and not nn_module._global_forward_hooks
                assert len(model._forward_pre_hooks) == 1 and len(model[1]._forward_pre_hooks) == 1
                assert not model[0]._forward_pre_hooks and not model[3]._forward_pre_hooks
    finally:
        w.detach()
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())
    writer.flush()
    rec = Record(writer.conn)
    assert [s for e in rec.events("dist_batches") for s in e.data["steps"]] == list(range(1, 23))
    assert [e.step for e in rec.events("dist_bn")] == [s for s in range(1, 23) if sampled(s)]
    times = [e.data for e in rec.events("dist_times")]
    assert all(f is not None and f > 0 for t in times for f in t["forward"])  # the model's own post-hook
