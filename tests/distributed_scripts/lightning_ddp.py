"""Lightning DDP on the CPU (2 processes, gloo) under `ModelDebugCallback`, with one optional bug.

    python lightning_ddp.py OUT_DIR [--bug lr|batchnorm] [--strategy ddp|ddp_spawn]

Bugs: `lr`: the learning rate depends on the rank (DST005); `batchnorm`: DDP does not broadcast
the BatchNorm buffers, so each rank keeps its own running statistics (DST007). Without `--bug`
it is the healthy twin (BatchNorm broadcast by DDP, the same learning rate everywhere).
"""

import argparse
import warnings

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import DDPStrategy
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from modeldebug.integrations.lightning import ModelDebugCallback

warnings.filterwarnings("ignore")


class Regressor(pl.LightningModule):
    def __init__(self, bug: str) -> None:
        super().__init__()
        self.bug = bug
        self.net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        lr = 0.05 * (self.global_rank + 1) if self.bug == "lr" else 0.05
        return torch.optim.SGD(self.parameters(), lr=lr)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--bug", default="none")
    p.add_argument("--strategy", default="ddp")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(256, 1)
    loader = DataLoader(TensorDataset(x, y), batch_size=32)  # Lightning adds the DistributedSampler
    # "popen" is strategy="ddp" (the script runs again for rank 1); "spawn" is strategy="ddp_spawn"
    strategy = DDPStrategy(broadcast_buffers=args.bug != "batchnorm",
                           start_method="spawn" if args.strategy == "ddp_spawn" else "popen")
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy=strategy, max_epochs=2, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=args.out, callbacks=[ModelDebugCallback(html=False)])
    trainer.fit(Regressor(args.bug), loader)


if __name__ == "__main__":
    main()
