"""The Lightning callback, with real Lightning training tiny models on the CPU."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.modules import module as nn_module
from torch.optim import optimizer as optim_module
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data import dataloader as dataloader_module

from modeldebug.record import Record
from modeldebug.testing import classification

from helpers import found, serious

pl = pytest.importorskip("lightning.pytorch", reason="needs the lightning extra")
from lightning.pytorch.loggers import CSVLogger  # noqa: E402

from modeldebug.integrations.lightning import ModelDebugCallback  # noqa: E402

pytestmark = [
    # Lightning 2.6's own pytree helper on torch 2.13, inside Trainer.fit: not ours to fix.
    pytest.mark.filterwarnings(r"ignore:.*isinstance\(treespec, LeafSpec\). is deprecated:FutureWarning"),
]



class Classifier(pl.LightningModule):
    """A small MLP; `dead` kills the second ReLU the way a bad init does; `crash_at` raises in training_step."""

    def __init__(self, *, lr: float = 1e-2, dead: bool = False, crash_at: int | None = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
        if dead:
            with torch.no_grad():
                self.net[2].bias.fill_(-10.0)
        self.lr = lr
        self.crash_at = crash_at
        self.losses: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.crash_at is not None and self.global_step >= self.crash_at:
            raise RuntimeError("boom: the data pipeline broke")
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.losses.append(loss.detach().item())
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def _fit(tmp_path: Path, *, callbacks: list[pl.Callback], seed: int = 0, epochs: int = 2,
         logger: bool = True, **module_kw: object) -> Classifier:
    torch.manual_seed(seed)
    model = Classifier(**module_kw)  # type: ignore[arg-type]
    data = classification(n=512)
    loader = DataLoader(TensorDataset(data.x, data.y), batch_size=32, shuffle=True)
    trainer = pl.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, callbacks=callbacks,
        logger=CSVLogger(tmp_path / "logs") if logger else False, default_root_dir=tmp_path / "root",
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
    )
    trainer.fit(model, loader)
    return model


def _report(cb: ModelDebugCallback) -> dict:
    return json.loads(cb.paths["json"].read_text(encoding="utf-8"))


def _patched_functions() -> list[object]:
    return [torch.autograd.backward, torch.optim.Optimizer.__init__, torch.optim.Optimizer.zero_grad,
            nn.Module.zero_grad, nn.functional.cross_entropy, torch.nn.utils.clip_grad_norm_,
            dataloader_module._BaseDataLoaderIter.__next__]


def test_a_dead_relu_is_reported_in_the_trainers_log_dir(tmp_path: Path) -> None:
    cb = ModelDebugCallback()
    _fit(tmp_path, callbacks=[cb], dead=True)
    out = tmp_path / "logs" / "lightning_logs" / "version_0" / "modeldebug"
    assert cb.paths == {"record": out / "run.db", "json": out / "report.json", "html": out / "report.html"}
    report = _report(cb)
    dead = [f for f in report["findings"] if f["kind"] == "dead_activations"]
    assert dead and dead[0]["location"] == "net.3" and dead[0]["severity"] == "high"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "ACT001" in html and "net.3" in html
    record = Record.open(out / "run.db")
    assert record.n_steps == 32  # 512 samples / 32 per batch * 2 epochs
    assert record.meta["status"] == "finished"


def test_the_healthy_twin_has_no_serious_findings(tmp_path: Path) -> None:
    cb = ModelDebugCallback()
    _fit(tmp_path, callbacks=[cb])
    assert serious(cb.report) == []
    assert [f for f in _report(cb)["findings"] if f["severity"] != "low"] == []


def test_a_learning_rate_far_too_high_is_found(tmp_path: Path) -> None:
    cb = ModelDebugCallback()
    _fit(tmp_path, callbacks=[cb], lr=3.0)
    assert found(cb.report, "lr_too_high") is not None


def test_each_steps_loss_is_the_one_lightning_trained_on(tmp_path: Path) -> None:
    cb = ModelDebugCallback()
    model = _fit(tmp_path, callbacks=[cb], epochs=1)
    record = Record.open(cb.paths["record"])
    assert record.column("loss").values.tolist() == pytest.approx(model.losses, rel=1e-6)
    assert (record.column("grad_norm").values > 0).all()


def test_watching_does_not_change_what_is_learned(tmp_path: Path) -> None:
    plain = _fit(tmp_path / "plain", callbacks=[])
    watched = _fit(tmp_path / "watched", callbacks=[ModelDebugCallback()])
    for (name, a), (_, b) in zip(plain.state_dict().items(), watched.state_dict().items()):
        assert torch.equal(a, b), name
    assert plain.losses == watched.losses


def test_an_exception_in_training_removes_every_hook_and_is_reported(tmp_path: Path) -> None:
    before = _patched_functions()
    cb = ModelDebugCallback()
    with pytest.raises(RuntimeError, match="boom"):
        _fit(tmp_path, callbacks=[cb], crash_at=5)
    assert not nn_module._global_forward_hooks and not nn_module._global_forward_pre_hooks
    assert not nn_module._global_backward_hooks and not nn_module._global_backward_pre_hooks
    assert not optim_module._global_optimizer_pre_hooks and not optim_module._global_optimizer_post_hooks
    assert _patched_functions() == before
    record = Record.open(cb.paths["record"])
    assert record.meta["status"] == "crashed"
    crash = [f for f in _report(cb)["findings"] if f["category"] == "runtime"]
    assert crash and "boom" in json.dumps(crash[0])


def test_without_a_logger_the_report_goes_to_the_default_root_dir(tmp_path: Path) -> None:
    cb = ModelDebugCallback(html=False, dirname="diagnosis")
    _fit(tmp_path, callbacks=[cb], logger=False, epochs=1)
    assert cb.paths["json"] == tmp_path / "root" / "diagnosis" / "report.json"
    assert cb.paths["json"].is_file() and "html" not in cb.paths


class Validated(Classifier):
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return nn.functional.cross_entropy(self(batch[0]), batch[1])


def test_validation_alone_is_not_watched(tmp_path: Path) -> None:
    cb = ModelDebugCallback()
    model = Validated()
    data = classification(n=64)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, default_root_dir=tmp_path, callbacks=[cb],
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.validate(model, DataLoader(TensorDataset(data.x, data.y), batch_size=32))
    assert cb.paths == {} and cb.report is None
    assert not (tmp_path / "modeldebug").exists()


def test_without_lightning_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from modeldebug.errors import MissingDependencyError

    for name in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "modeldebug.integrations.lightning")
    with pytest.raises(MissingDependencyError, match=r"pip install 'modeldebug\[lightning\]'"):
        importlib.import_module("modeldebug.integrations.lightning")
