"""The Hugging Face Trainer callback.

Two ways in: the real `Trainer` (needs accelerate, which transformers' Trainer requires), and the
callback driven by transformers' own `CallbackHandler`, `TrainerState` and `TrainerControl` around
a loop that fires the Trainer's events in the Trainer's order (runs with transformers alone).
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.modules import module as nn_module
from torch.optim import optimizer as optim_module

from modeldebug.record import Record
from modeldebug.testing import classification

from helpers import serious

pytest.importorskip("transformers", reason="needs the transformers extra")
from transformers import TrainerControl, TrainerState  # noqa: E402
from transformers.trainer_callback import CallbackHandler  # noqa: E402

from modeldebug.integrations.transformers import ModelDebugCallback  # noqa: E402


@pytest.fixture(autouse=True)
def _hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing from or to the Hub
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


class Classifier(nn.Module):
    """A plain module the way the Trainer takes one: keyword inputs, a dict with "loss" out."""

    def __init__(self, *, dead: bool = False, crash_at: int | None = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
        if dead:
            with torch.no_grad():
                self.net[2].bias.fill_(-10.0)
        self.crash_at = crash_at
        self.calls = 0

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.crash_at is not None and self.calls > self.crash_at:
            raise RuntimeError("boom: a corrupt batch")
        logits = self.net(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out


class Samples(torch.utils.data.Dataset):
    def __init__(self, n: int = 512) -> None:
        self.data = classification(n=n)

    def __len__(self) -> int:
        return len(self.data.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.data.x[i], "labels": self.data.y[i]}


def _no_hooks_left() -> None:
    assert not nn_module._global_forward_hooks and not nn_module._global_forward_pre_hooks
    assert not optim_module._global_optimizer_pre_hooks and not optim_module._global_optimizer_post_hooks
    assert not hasattr(torch.autograd.backward, "__wrapped__")


# -- the callback through transformers' own event machinery ---------------------------------------------
@dataclass
class Args:
    """The fields of TrainingArguments the callback reads (TrainingArguments itself needs accelerate)."""

    output_dir: str


def _loop(model: nn.Module, cb: ModelDebugCallback, out: Path, *, steps: int = 40, main: bool = True) -> None:
    """The Trainer's training loop and event order, without the Trainer."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    handler = CallbackHandler([cb], model, None, opt, None)
    args, state, control = Args(str(out)), TrainerState(is_world_process_zero=main), TrainerControl()
    loader = torch.utils.data.DataLoader(Samples(), batch_size=32, shuffle=True)
    model.zero_grad()
    handler.on_train_begin(args, state, control)
    batches = iter(loader)
    for _ in range(steps):
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        handler.on_step_begin(args, state, control)
        model.train()
        model(**batch)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        handler.on_pre_optimizer_step(args, state, control)
        opt.step()
        handler.on_optimizer_step(args, state, control)
        model.zero_grad()
        state.global_step += 1
        handler.on_step_end(args, state, control)
    handler.on_train_end(args, state, control)


def test_a_dead_relu_is_reported_in_the_output_dir(tmp_path: Path) -> None:
    cb = ModelDebugCallback()
    _loop(Classifier(dead=True), cb, tmp_path / "out")
    assert not cb.watching
    _no_hooks_left()
    out = tmp_path / "out" / "modeldebug"
    assert cb.paths == {"record": out / "run.db", "json": out / "report.json", "html": out / "report.html"}
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    dead = [f for f in report["findings"] if f["kind"] == "dead_activations"]
    assert dead and dead[0]["location"] == "net.3"
    record = Record.open(out / "run.db")
    assert record.n_steps == 40
    assert record.column("loss").finite().values.size == 40


def test_the_healthy_twin_has_no_serious_findings(tmp_path: Path) -> None:
    cb = ModelDebugCallback()
    _loop(Classifier(), cb, tmp_path)
    assert serious(cb.report) == []


def test_used_as_a_context_manager_a_crash_is_reported_and_unhooked(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with ModelDebugCallback() as cb:
            _loop(Classifier(crash_at=7), cb, tmp_path)
    _no_hooks_left()
    assert Record.open(cb.paths["record"]).meta["status"] == "crashed"
    crash = [f for f in cb.report.findings if f.category == "runtime"]
    assert crash and "boom" in json.dumps(crash[0].to_dict())


def test_a_crashed_watch_is_closed_by_close_or_the_next_training(tmp_path: Path) -> None:
    cb = ModelDebugCallback()
    with pytest.raises(RuntimeError):
        _loop(Classifier(crash_at=3), cb, tmp_path / "first")
    assert cb.watching  # the Trainer has no failure event: still on
    _loop(Classifier(), cb, tmp_path / "second", steps=5)  # the next training closes it first
    _no_hooks_left()
    assert Record.open(tmp_path / "first" / "modeldebug" / "run.db").meta["status"] == "interrupted"
    assert Record.open(cb.paths["record"]).n_steps == 5
    with pytest.raises(RuntimeError):
        _loop(Classifier(crash_at=3), cb, tmp_path / "third")
    cb.close()
    _no_hooks_left()
    assert not cb.watching and cb.paths["json"].is_file()
    assert Record.open(cb.paths["record"]).meta["status"] == "interrupted"
    cb.close()  # nothing left to close: a no-op


def test_only_the_main_process_watches(tmp_path: Path) -> None:
    cb = ModelDebugCallback()
    _loop(Classifier(), cb, tmp_path, steps=3, main=False)
    assert cb.paths == {} and not (tmp_path / "modeldebug").exists()


def test_an_unwritable_output_dir_leaves_training_unwatched_not_failed(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    cb = ModelDebugCallback()
    model = Classifier()
    _loop(model, cb, blocker / "out", steps=3)
    assert model.calls == 3 and cb.paths == {} and cb.report is None
    _no_hooks_left()
    assert "not watching this training" in caplog.text


def test_without_transformers_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from modeldebug.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.delitem(sys.modules, "modeldebug.integrations.transformers")
    with pytest.raises(MissingDependencyError, match=r"pip install 'modeldebug\[transformers\]'"):
        importlib.import_module("modeldebug.integrations.transformers")


# -- the real Trainer ------------------------------------------------------------------------------------
def _train(tmp_path: Path, cb: ModelDebugCallback | None, **model_kw: object) -> nn.Module:
    pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate>=1.1 (not installed here)")
    from transformers import Trainer, TrainingArguments

    torch.manual_seed(0)
    model = Classifier(**model_kw)  # type: ignore[arg-type]
    args = TrainingArguments(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, num_train_epochs=2, per_device_train_batch_size=32,
        learning_rate=1e-2, logging_strategy="no", save_strategy="no", disable_tqdm=True, seed=0,
        dataloader_pin_memory=False)
    trainer = Trainer(model=model, args=args, train_dataset=Samples(), callbacks=[cb] if cb else [])
    trainer.train()
    return model


@pytest.mark.slow
def test_the_real_trainer_writes_the_report_into_its_output_dir(tmp_path: Path) -> None:
    cb = ModelDebugCallback()
    _train(tmp_path, cb, dead=True)
    _no_hooks_left()
    report = json.loads((tmp_path / "modeldebug" / "report.json").read_text(encoding="utf-8"))
    assert any(f["kind"] == "dead_activations" for f in report["findings"])


@pytest.mark.slow
def test_the_real_trainer_learns_the_same_with_and_without_watching(tmp_path: Path) -> None:
    plain = _train(tmp_path / "plain", None)
    watched = _train(tmp_path / "watched", ModelDebugCallback())
    for (name, a), (_, b) in zip(plain.state_dict().items(), watched.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.slow
def test_the_real_trainer_crash_is_reported_with_the_callback_as_context_manager(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with ModelDebugCallback() as cb:
            _train(tmp_path, cb, crash_at=5)
    _no_hooks_left()
    assert Record.open(cb.paths["record"]).meta["status"] == "crashed"
