"""TensorBoard event files, read back with TensorBoard's own EventAccumulator."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from modeldebug.errors import MissingDependencyError
from modeldebug.export import to_tensorboard
from modeldebug.record import Record

from test_export_source import HOSTILE, make_run

pytest.importorskip("tensorboard", reason="needs the tensorboard extra")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.util.tensor_util import make_ndarray  # noqa: E402


def _read(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _text(acc: EventAccumulator) -> str:
    (event,) = acc.Tensors("modeldebug/findings/text_summary")
    return make_ndarray(event.tensor_proto).item().decode("utf-8")


def test_findings_and_the_weird_series_land_in_the_event_file(tmp_path: Path) -> None:
    db = make_run(tmp_path / "dead.db")
    to_tensorboard(db, tmp_path / "tb")
    acc = _read(tmp_path / "tb")
    record = Record.open(db)
    tags = set(acc.Tags()["scalars"])
    weird = f"modeldebug/weird/ACT001/{HOSTILE}/dead_frac"
    assert {"modeldebug/loss", "modeldebug/grad_norm", "modeldebug/lr", weird} <= tags
    assert not any(t.startswith("modeldebug/weird/") and "fc1" in t for t in tags)  # healthy layers stay out
    loss = acc.Scalars("modeldebug/loss")
    assert [e.step for e in loss] == list(range(record.n_steps))
    np.testing.assert_allclose([e.value for e in loss], record.column("loss").values, rtol=1e-6)
    assert all(e.value == 1.0 for e in acc.Scalars(weird))
    assert acc.Scalars("modeldebug/summary/findings_high")[0].value == 1.0
    text = _text(acc)
    assert "ACT001" in text and "&lt;script&gt;" in text and "<script>" not in text


def test_a_healthy_run_exports_only_the_summary(tmp_path: Path) -> None:
    to_tensorboard(make_run(tmp_path / "ok.db", dead=False, steps=10), tmp_path / "tb")
    acc = _read(tmp_path / "tb")
    assert not [t for t in acc.Tags()["scalars"] if t.startswith("modeldebug/weird/")]
    assert "no problems found" in _text(acc)


def test_without_tensorboard_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    with pytest.raises(MissingDependencyError, match=r"pip install 'modeldebug\[tensorboard\]'"):
        to_tensorboard(tmp_path / "any.db", tmp_path / "tb")


def test_the_command_writes_event_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modeldebug.cli import main

    db = make_run(tmp_path / "run.db", steps=10)
    assert main(["export", str(db), "--to", "tensorboard", "--out", str(tmp_path / "tb")]) == 0
    assert "tensorboard --logdir" in capsys.readouterr().out
    assert len(_read(tmp_path / "tb").Scalars("modeldebug/loss")) == 10
