"""Accelerate on the CPU (launched by `torchrun --nproc-per-node 2`, gloo) with one optional bug.

    torchrun --nproc-per-node 2 accelerate_train.py [--watch DB --json OUT] [--bug lr|batchnorm]

`--watch DB` wraps the loop in `modeldebug.watch(...)` on every rank (rank 0 writes the one report
to `--json`); without it, run the script under `torchrun ... -m modeldebug run -- accelerate_train.py`.
Bugs: `lr`: the learning rate depends on the rank (DST005); `batchnorm`: DDP does not broadcast the
BatchNorm buffers, so each rank keeps its own running statistics (DST007). No bug: the healthy twin.
"""

import argparse
import contextlib
import warnings

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

warnings.filterwarnings("ignore")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bug", default="none")
    p.add_argument("--watch", default="")
    p.add_argument("--json", default="report.json")
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    ddp_kwargs = DistributedDataParallelKwargs(broadcast_buffers=args.bug != "batchnorm")
    accelerator = Accelerator(cpu=True, kwargs_handlers=[ddp_kwargs])
    rank = accelerator.process_index
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(256, 1)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))
    lr = 0.05 * (rank + 1) if args.bug == "lr" else 0.05
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    model, opt, loader = accelerator.prepare(model, opt, loader)  # each rank its own shard
    session = None
    if args.watch:
        import modeldebug

        session = modeldebug.watch(model, optimizer=opt, db=args.watch)
    with session or contextlib.nullcontext():
        for _ in range(args.epochs):
            for xb, yb in loader:
                opt.zero_grad()
                accelerator.backward(nn.functional.mse_loss(model(xb), yb))
                opt.step()
    accelerator.wait_for_everyone()
    if session is not None:
        report = session.report()  # rank 0: one report over all ranks; another rank: its own record's
        if accelerator.is_main_process:
            report.to_json(args.json)
    accelerator.end_training()


if __name__ == "__main__":
    main()
