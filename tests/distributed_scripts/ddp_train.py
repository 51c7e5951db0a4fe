"""A tiny DDP job on gloo with one optional, real distributed bug (`--bug NAME`); its healthy twin without.

Runs under torchrun (RANK/WORLD_SIZE set) or starts its own ranks with `--spawn N`
(torch.multiprocessing.spawn). Bugs: params, grads, same_data, order, lr, loss, batchnorm,
straggler, hang, uneven. `--watch DB` wraps the training loop in `modeldebug.watch(...)` on every rank
(records DB.rank<N>.db) and rank 0 writes the session's report to `--json` after the job.
"""

import argparse
import contextlib
import os
import time
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset


def train(rank: int, world: int, args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    device = torch.device("cpu")
    if args.backend == "nccl" or args.device == "cuda":  # benchmarks/distributed_nccl_check.py; NCCL: a GPU per rank
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        torch.cuda.set_device(device)
    dist.init_process_group(args.backend, rank=rank, world_size=world, timeout=timedelta(seconds=args.timeout))
    bug = args.bug
    torch.manual_seed(0)
    x_all = torch.randn(args.samples, 8)
    y_all = x_all @ torch.randn(8, 1) + 0.1 * torch.randn(args.samples, 1)
    if bug == "loss" and rank == 1:
        y_all = y_all * 10  # this rank's shard was prepared in other units
    norm = nn.BatchNorm1d(16) if bug == "batchnorm" or args.bn else nn.Identity()
    model = nn.Sequential(nn.Linear(8, 16), norm, nn.ReLU(), nn.Linear(16, 1)).to(device)
    ids = [device.index] if device.type == "cuda" else None
    # no buffer sync in forward: each rank's BatchNorm keeps its own running statistics
    ddp = DDP(model, device_ids=ids, forward_sync_buffers=False) if bug == "batchnorm" else DDP(model, device_ids=ids)
    if bug == "params" and rank == 0:
        with torch.no_grad():  # e.g. a checkpoint loaded on rank 0 after DDP broadcast the weights
            model[0].weight.mul_(1.01)
    lr = 0.05 * (rank + 1) if bug == "lr" else 0.05
    opt = torch.optim.SGD(ddp.parameters(), lr=lr)
    ds = TensorDataset(x_all, y_all)
    sampler = None
    if bug == "same_data":
        loader = DataLoader(ds, batch_size=32, shuffle=True)  # same seed everywhere: the same batches
    else:
        sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=0)
        loader = DataLoader(ds, batch_size=32, sampler=sampler)
    sync_off = ddp.no_sync() if bug == "grads" else contextlib.nullcontext()
    loss_fn = nn.MSELoss()
    session = None
    if args.watch:
        import modeldebug

        session = modeldebug.watch(ddp, optimizer=opt, db=args.watch)
    with session or contextlib.nullcontext(), sync_off:
        for epoch in range(args.epochs):
            if sampler is not None and bug != "order":
                sampler.set_epoch(epoch)
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                if bug == "straggler" and rank == 1:
                    time.sleep(0.03)  # a slow disk on this rank only
                opt.zero_grad()
                loss = loss_fn(ddp(x), y)
                loss.backward()
                opt.step()
    if bug == "uneven":  # rank 0 has one batch more than rank 1: its backward waits in DDP's all-reduce
        if rank == 0:
            x, y = next(iter(loader))
            loss_fn(ddp(x.to(device)), y.to(device)).backward()
        else:
            time.sleep(args.timeout + 20)
    if bug == "hang":
        if rank == 0:
            dist.all_reduce(torch.ones(1, device=device))  # rank 1 never enters it: rank 0 waits until gloo's timeout
        else:
            time.sleep(args.timeout + 20)  # rank 1 is busy elsewhere (evaluating, saving) and stays alive: the launcher ends it
    if bug not in ("hang", "uneven"):
        dist.barrier()
    dist.destroy_process_group()
    if session is not None:
        report = session.report()  # rank 0: one report over both ranks; rank 1: its own record's
        report.to_json(args.json if rank == 0 else f"{args.json}.rank{rank}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bug", default="none")
    p.add_argument("--spawn", type=int, default=0)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--samples", type=int, default=512)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--bn", action="store_true")
    p.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--watch", default="")
    p.add_argument("--json", default="report.json")
    args = p.parse_args()
    if args.spawn:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        torch.multiprocessing.spawn(train, args=(args.spawn, args), nprocs=args.spawn)
    else:
        train(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), args)


if __name__ == "__main__":
    main()
