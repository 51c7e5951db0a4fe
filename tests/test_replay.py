"""Repro bundles and `modeldebug replay`, with real training scripts run by `modeldebug run`.

The NaN script: a tiny model whose last module takes the log of a Linear's output; a planted bias
and a target far below zero make SGD drive that output negative within a few steps, so the loss
turns NaN at a step found here by training the same script without modeldebug. Its healthy twin
differs by the target only. Dropout is on, so a replay that did not restore the random state
would draw other masks and miss the bits.
"""

from __future__ import annotations

import json
import math
import runpy
from pathlib import Path

import pytest
import torch

from modeldebug.capture.bundle import SpikeWatch, bundle_path
from modeldebug.cli import main
from modeldebug.record import Record

NAN_SCRIPT = '''
import sys
import torch
from torch import nn
import torch.nn.functional as F


class LogLayer(nn.Module):
    def forward(self, x):
        return torch.log(x)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.drop = nn.Dropout(0.1)
        self.fc2 = nn.Linear(8, 1)
        self.log = LogLayer()

    def forward(self, x):
        return self.log(self.fc2(self.drop(torch.relu(self.fc1(x)))))


def make_model():
    return Net()


def train(target, steps=8):
    torch.manual_seed(0)
    model = make_model()
    with torch.no_grad():
        model.fc2.bias.fill_(5.0)  # log's input starts well above 0
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.rand(16, 4)
    y = torch.full((16, 1), target)
    losses = []
    for step in range(steps):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


if __name__ == "__main__":
    train(float(sys.argv[1]))
'''

SPIKE_SCRIPT = '''
import sys
import torch
from torch import nn
import torch.nn.functional as F


def make_model():
    return nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Dropout(0.1), nn.Linear(32, 1))


def train(jump_at, steps=30):
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(64, 8)
    y = x.sum(1, keepdim=True)
    losses = []
    for step in range(steps):
        if step == jump_at:
            for g in opt.param_groups:
                g["lr"] = 5.0  # a learning rate 100x too high from here on
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


if __name__ == "__main__":
    train(int(sys.argv[1]))
'''

CRASH_SCRIPT = '''
import torch
from torch import nn
import torch.nn.functional as F


def make_model():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


if __name__ == "__main__":
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    for step in range(6):
        batch = x if step != 3 else x[:, :3]  # step 3: a batch with a column missing
        opt.zero_grad()
        F.mse_loss(model(batch), y).backward()
        opt.step()
'''


CNN_SCRIPT = """
import torch
from torch import nn


def make_model():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.2), nn.Flatten(),
                         nn.Linear(8 * 6 * 6, 10))


if __name__ == "__main__":
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    x, y = torch.randn(32, 3, 8, 8), torch.randint(0, 10, (32,))
    for step in range(10):
        if step == 7:
            with torch.no_grad():
                model[5].weight[3, 0] = float("inf")  # a planted overflow in the head
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
"""


def _script(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _run(script: Path, *args: str, db: str = "run.db", extra: tuple[str, ...] = ()) -> int:
    return main(["run", "--db", db, "-q", "--no-progress", *extra, "--", str(script), *args])


def _replay(bundle: Path, *extra: str) -> tuple[int, dict]:
    code = main(["replay", str(bundle), "--json", "replay.json", "-q", *extra])
    return code, json.loads(Path("replay.json").read_text())


def test_nan_bundle_replays_bit_for_bit_and_names_the_module(tmp_path: Path) -> None:
    script = _script(tmp_path, "nan_train.py", NAN_SCRIPT)
    plain = runpy.run_path(str(script), run_name="plain")["train"](-10.0)
    first_nan = next(i for i, v in enumerate(plain) if not math.isfinite(v))
    assert _run(script, "-10") == 0
    bundle = bundle_path("run.db")
    assert bundle.is_file()
    meta = Record.open("run.db").meta["bundle"]
    assert meta["saved"] and meta["trigger"] == "nonfinite_loss" and meta["step"] == first_nan

    raw = torch.load(bundle, weights_only=True)  # tensors and plain containers only
    assert raw["trigger"]["step"] == first_nan and raw["with_state"]
    assert raw["script"]["path"] == str(script.resolve()) and len(raw["script"]["sha256"]) == 64
    assert raw["optimizer"]["class"] == "torch.optim.sgd.SGD"
    assert math.isnan(float(raw["expected"]["loss"][-1]))
    # the state is the one BEFORE the failing update: the run's own weights at that step were finite
    assert all(torch.isfinite(v).all() for v in raw["model_state"].values())

    code, out = _replay(bundle)
    assert code == 0, out
    assert out["status"] == "bit-for-bit"
    assert any("the same 64 bits" in line for line in out["details"])
    assert any("gradients: all 4 identical" in line for line in out["details"])
    assert out["built_with"] == "nan_train.py:make_model"
    assert out["bisect"]["module"] == "log" and out["bisect"]["type"] == "LogLayer"
    assert out["bisect"]["inputs_finite"] is True
    first_bad = next(m for m in out["anomaly"]["modules"] if m["nan"] or m["inf"])
    assert first_bad["name"] == "log"


def test_classifier_with_adam_batchnorm_and_a_loss_module(tmp_path: Path) -> None:
    """Adam's moments, BatchNorm, dropout and CrossEntropyLoss(label_smoothing) all replayed; the head named."""
    script = _script(tmp_path, "cnn.py", CNN_SCRIPT)
    assert _run(script) == 0
    raw = torch.load(bundle_path("run.db"), weights_only=True)
    assert raw["trigger"]["step"] == 7 and raw["loss_call"]["function"] == "cross_entropy"
    assert raw["loss_call"]["kwargs"]["label_smoothing"] == 0.1
    code, out = _replay(bundle_path("run.db"))
    assert code == 0 and out["status"] == "bit-for-bit" and out["optimizer"] == "Adam"
    assert out["bisect"]["module"] == "5" and "own weights were already non-finite" in out["bisect"]["why"]


def test_nonfinite_gradient_with_a_finite_loss_is_named_by_anomaly_mode(tmp_path: Path) -> None:
    """torch.where's unselected branch: sqrt of a negative value is never selected, yet its gradient is NaN."""
    script = _script(tmp_path, "where.py", NAN_SCRIPT.replace(
        "return self.log(self.fc2(self.drop(torch.relu(self.fc1(x)))))",
        "h = self.fc2(self.drop(torch.relu(self.fc1(x))))\n"
        "        return torch.where(h > 0, torch.sqrt(h), torch.zeros_like(h))"))
    assert _run(script, "-10") == 0
    raw = torch.load(bundle_path("run.db"), weights_only=True)
    assert raw["trigger"]["kind"] == "nonfinite_gradient"
    assert math.isfinite(float(raw["expected"]["loss"][-1]))
    code, out = _replay(bundle_path("run.db"))
    assert code == 0 and out["status"] == "bit-for-bit"
    assert "SqrtBackward0" in out["anomaly"]["autograd"]
    assert out["bisect"]["module"] is None  # every output finite: the NaN is born in backward


def test_replay_without_the_rng_state_misses_the_bits(tmp_path: Path) -> None:
    """The dropout masks come from the saved random state: a bundle whose state was swapped says so."""
    script = _script(tmp_path, "spike.py", SPIKE_SCRIPT)
    assert _run(script, "25") == 0
    bundle = torch.load(bundle_path("run.db"), weights_only=True)
    bundle["rng"]["torch"] = torch.Generator().manual_seed(12345).get_state()
    torch.save(bundle, "other.bundle.pt")
    code, out = _replay(Path("other.bundle.pt"), "--no-bisect")
    assert code == 1 and out["status"] == "not-reproduced"
    assert any("different bits" in line for line in out["details"])


def test_functional_op_in_forward_is_named_as_the_models_own_code(tmp_path: Path) -> None:
    script = _script(tmp_path, "fn.py", NAN_SCRIPT.replace(
        "return self.log(self.fc2(", "return torch.log(self.fc2("))
    assert _run(script, "-10") == 0
    code, out = _replay(bundle_path("run.db"))
    assert code == 0 and out["status"] == "bit-for-bit"
    assert out["bisect"]["module"] == "" and out["bisect"]["type"] == "Net"  # the root: its own forward()
    assert out["bisect"]["previous"] == "fc2"


def test_watch_session_bundle_needs_model_when_the_code_is_not_a_script(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """In a watch() session inside another program, the class cannot be found: --model builds it."""
    import torch.nn.functional as F

    import modeldebug

    script = _script(tmp_path, "nan_train.py", NAN_SCRIPT)
    make_model = runpy.run_path(str(script), run_name="user_code")["make_model"]
    torch.manual_seed(0)
    model = make_model()
    with torch.no_grad():
        model.fc2.bias.fill_(5.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.rand(16, 4), torch.full((16, 1), -10.0)
    with modeldebug.watch(model, optimizer=opt, db="w.db"):
        for _ in range(8):
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            opt.step()
    assert bundle_path("w.db").is_file()
    capsys.readouterr()
    assert main(["replay", str(bundle_path("w.db")), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model" in err[0]
    code, out = _replay(bundle_path("w.db"), "--model", f"{script}:make_model")
    assert code == 0 and out["status"] == "bit-for-bit" and out["bisect"]["module"] == "log"


def test_a_script_that_trains_when_imported_gets_a_hint_that_works(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Its own make_model cannot be imported without training: the hint names another module, and that works."""
    top = NAN_SCRIPT.replace('if __name__ == "__main__":\n    train(', 'train(')
    assert top != NAN_SCRIPT
    script = _script(tmp_path, "top_train.py", top)
    assert _run(script, "-10") == 0
    capsys.readouterr()
    assert main(["replay", str(bundle_path("run.db")), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "would run its training" in err[0] and "top_train.py:make_model" not in err[0]
    assert "models.py:make_model" in err[0] and 'if __name__ == "__main__":' in err[0]
    _script(tmp_path, "models.py", NAN_SCRIPT)  # the user follows the hint: the factory in a module that does not train
    code, out = _replay(bundle_path("run.db"), "--model", "models.py:make_model")
    assert code == 0 and out["status"] == "bit-for-bit"


def test_healthy_twin_saves_no_bundle(tmp_path: Path) -> None:
    script = _script(tmp_path, "nan_train.py", NAN_SCRIPT)
    assert all(math.isfinite(v) for v in runpy.run_path(str(script), run_name="plain")["train"](1.5))
    assert _run(script, "1.5") == 0
    assert not bundle_path("run.db").exists()
    assert "bundle" not in Record.open("run.db").meta


def test_loss_spike_bundle(tmp_path: Path) -> None:
    script = _script(tmp_path, "spike.py", SPIKE_SCRIPT)
    assert _run(script, "25") == 0
    meta = Record.open("run.db").meta["bundle"]
    assert meta["trigger"] == "loss_spike" and meta["step"] > 25
    code, out = _replay(bundle_path("run.db"))
    assert code == 0 and out["status"] == "bit-for-bit"
    assert out["envelopes"] > 0  # the record beside the bundle gave each module's healthy range
    # a record named without .db: the bundle names its record, the envelopes are found all the same
    assert _run(script, "25", db="spike-record") == 0
    assert _replay(bundle_path("spike-record"))[1]["envelopes"] == out["envelopes"]
    # its twin without the learning-rate jump: no spike, no bundle
    assert _run(script, "-1", db="twin.db") == 0
    assert not bundle_path("twin.db").exists()


def test_crash_bundle_reproduces_the_exception(tmp_path: Path) -> None:
    script = _script(tmp_path, "crash.py", CRASH_SCRIPT)
    assert _run(script) == 1
    meta = Record.open("run.db").meta["bundle"]
    assert meta["trigger"] == "crash" and meta["step"] == 3
    code, out = _replay(bundle_path("run.db"))
    assert code == 0 and out["status"] == "bit-for-bit"
    assert out["trigger"]["exception"]["type"] == "RuntimeError"


def test_bundle_over_the_size_bound_is_saved_without_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = _script(tmp_path, "nan_train.py", NAN_SCRIPT)
    assert _run(script, "-10", extra=("--bundle-max-mb", "0.0005")) == 0  # 512 bytes: the batch fits, the state not
    err = capsys.readouterr().err
    assert "NOT the model's state" in err
    assert "It cannot be replayed without them: run again with a larger --bundle-max-mb" in err
    assert "Replay it" not in err  # replay refuses such a bundle: it is not offered
    raw = torch.load(bundle_path("run.db"), weights_only=True)
    assert raw["with_state"] is False and "model_state" not in raw and raw["batch"] is not None
    assert any("over its bound" in n for n in raw["notes"])
    assert main(["replay", str(bundle_path("run.db"))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "without the model's state" in err[0]


def test_batch_over_the_size_bound_is_left_out_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = _script(tmp_path, "nan_train.py", NAN_SCRIPT)
    assert _run(script, "-10", extra=("--bundle-max-mb", "0.0001")) == 0  # 104 bytes: not even the 320-byte batch
    raw = torch.load(bundle_path("run.db"), weights_only=True)
    assert raw["batch"] is None and raw["with_state"] is False and raw["trigger"]["kind"] == "nonfinite_loss"
    assert any("the batch" in n and "not saved" in n for n in raw["notes"])
    capsys.readouterr()
    assert main(["replay", str(bundle_path("run.db"))]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_bundles_off(tmp_path: Path) -> None:
    script = _script(tmp_path, "nan_train.py", NAN_SCRIPT)
    assert _run(script, "-10", extra=("--bundle-max-mb", "0")) == 0
    assert not bundle_path("run.db").exists()


@pytest.mark.parametrize("content", [b"not a bundle at all", b"PK\x03\x04 truncated zip", "torch-other", "pickle"])
def test_replay_refuses_what_is_not_a_bundle(tmp_path: Path, content: object,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.bundle.pt"
    if content == "torch-other":
        torch.save({"weights": torch.ones(2)}, path)
    elif content == "pickle":
        torch.save(torch.nn.Linear(2, 2), path)  # needs code to load: weights_only refuses it
    else:
        path.write_bytes(content)  # type: ignore[arg-type]
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x.bundle.pt" in err[0] and "Traceback" not in err[0]


@pytest.mark.parametrize("damage", ["rng", "trigger", "state", "batch", "rng_bytes", "numpy", "python", "grads",
                                    "optimizer", "optimizer_groups"])
def test_replay_refuses_a_damaged_bundle(tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]) -> None:
    script = _script(tmp_path, "nan_train.py", NAN_SCRIPT)
    assert _run(script, "-10") == 0
    bundle = torch.load(bundle_path("run.db"), weights_only=True)
    if damage == "rng":
        bundle["rng"]["torch"] = torch.zeros(3)
    elif damage == "rng_bytes":  # the right type, not a state torch's generator takes
        bundle["rng"]["torch"] = torch.zeros(3, dtype=torch.uint8)
    elif damage == "numpy":
        del bundle["rng"]["numpy"]["keys"]
    elif damage == "python":
        bundle["rng"]["python"] = [3]
    elif damage == "grads":
        bundle["grads"] = {"fc1.weight": 3}
    elif damage == "optimizer":
        bundle["optimizer"]["state"] = 5
    elif damage == "optimizer_groups":
        bundle["optimizer"]["param_names"] = ["fc1.weight"]
    elif damage == "trigger":
        del bundle["trigger"]["kind"]
    elif damage == "state":
        bundle["model_state"]["fc1.weight"] = "not a tensor"
    else:
        bundle["batch"] = [1, 2]
    torch.save(bundle, "damaged.bundle.pt")
    capsys.readouterr()
    assert main(["replay", "damaged.bundle.pt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "damaged repro bundle" in err[0], err


def test_replay_of_a_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "nowhere.bundle.pt"]) == 2
    assert "no bundle at" in capsys.readouterr().err


def test_spike_watch_follows_the_rule() -> None:
    """The online spike test is lr_too_high's: a jump over 2x the recent level undoing half the progress."""
    w = SpikeWatch(2.0, 20)
    losses = [10.0 / (1 + i) for i in range(30)]
    assert all(w.spike(v) is None for v in losses)
    assert w.spike(losses[-1] * 1.9) is None  # below 2x the level
    assert w.spike(6.0) is not None


KWARGS_SCRIPT = '''
import torch
from torch import nn
import torch.nn.functional as F


class Tiny(nn.Module):
    """Transformer-ish: called with keyword arguments, an output head tied to the embedding, a buffer."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.ln = nn.LayerNorm(8)
        self.head = nn.Linear(8, 20, bias=False)
        self.head.weight = self.emb.weight
        self.register_buffer("scale", torch.tensor(1.0))

    def forward(self, input_ids, attention_mask=None):
        h = self.ln(self.emb(input_ids) * self.scale)
        return self.head(h * attention_mask[..., None])


def make_model():
    return Tiny()


if __name__ == "__main__":
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    for step in range(6):
        ids = torch.randint(0, 20, (4, 5))
        if step == 4:
            with torch.no_grad():
                model.scale.fill_(float("nan"))  # a corrupted buffer
        logits = model(input_ids=ids, attention_mask=torch.ones(4, 5))
        loss = F.cross_entropy(logits.reshape(-1, 20), ids.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
'''


def test_model_called_with_keyword_arguments_replays_bit_for_bit(tmp_path: Path) -> None:
    """Pre-hooks see no keyword arguments: the bundle reads them from the call (it was an empty batch)."""
    script = _script(tmp_path, "kw.py", KWARGS_SCRIPT)
    assert _run(script) == 0
    raw = torch.load(bundle_path("run.db"), weights_only=True)
    assert raw["batch"]["args"] == () and sorted(raw["batch"]["kwargs"]) == ["attention_mask", "input_ids"]
    # the tracer's own NaN replay called the model with them too: NUM001 names where the NaN appeared
    origin = Record.open("run.db").events("nonfinite")[-1].data["origin"]
    assert origin["module"] == "ln" and origin["where"] == "between_modules", origin
    code, out = _replay(bundle_path("run.db"))
    assert code == 0 and out["status"] == "bit-for-bit", out
    assert not out["warnings"]
    assert out["nonfinite_state"] == ["scale (buffer)"]  # what the bisection cannot name: the model's buffer
    assert out["bisect"]["module"] == "ln" and out["bisect"]["inputs_finite"] is False


def test_a_batch_that_does_not_fit_forward_is_said(tmp_path: Path) -> None:
    script = _script(tmp_path, "kw.py", KWARGS_SCRIPT)
    assert _run(script) == 0
    raw = torch.load(bundle_path("run.db"), weights_only=True)
    raw["batch"]["kwargs"] = {}  # as bundles saved keyword calls before
    torch.save(raw, "old.bundle.pt")
    code, out = _replay(Path("old.bundle.pt"), "--no-bisect")
    assert code == 1
    assert any("does not fit Tiny.forward()" in w and "input_ids" in w for w in out["warnings"])


AMP_SCRIPT = '''
import torch
from torch import nn
import torch.nn.functional as F


def make_model():
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))


if __name__ == "__main__":
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(8):
        x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
        if step == 5:
            x[0, 0] = float("inf")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
'''


def test_a_step_under_autocast_is_replayed_under_it(tmp_path: Path) -> None:
    """bfloat16 autocast on the CPU: without it the replay's gradients differ in their bits."""
    script = _script(tmp_path, "amp.py", AMP_SCRIPT)
    assert _run(script) == 0
    raw = torch.load(bundle_path("run.db"), weights_only=True)
    assert raw["autocast"] == {"forward": {"cpu": "bfloat16"}, "loss": {"cpu": "bfloat16"}}
    code, out = _replay(bundle_path("run.db"), "--no-bisect")
    assert code == 0 and out["status"] == "bit-for-bit", out
    raw["autocast"] = {"forward": None, "loss": None}  # the twin: replayed in float32
    torch.save(raw, "fp32.bundle.pt")
    code, out = _replay(Path("fp32.bundle.pt"), "--no-bisect")
    assert out["status"] != "bit-for-bit"


def test_a_model_of_another_width_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = _script(tmp_path, "crash.py", CRASH_SCRIPT)
    assert _run(script) == 1
    _script(tmp_path, "wide.py", "from torch import nn\n\ndef make():\n"
            "    return nn.Sequential(nn.Linear(4, 9), nn.ReLU(), nn.Linear(9, 1))\n")
    capsys.readouterr()
    assert main(["replay", str(bundle_path("run.db")), "--model", "wide.py:make"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not match the bundle's state" in err and "0.weight" in err


LBFGS_SCRIPT = '''
import torch
from torch import nn
import torch.nn.functional as F


def make_model():
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))


if __name__ == "__main__":
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=3)
    x = torch.randn(32, 3)
    y = x.sum(1, keepdim=True)
    for step in range(6):
        target = y if step < 4 else y * float("nan")  # step 4: a corrupted target

        def closure():
            opt.zero_grad()
            loss = F.mse_loss(model(x), target)
            loss.backward()
            return loss

        opt.step(closure)
'''


def test_lbfgs_step_is_replayed_without_its_closure(tmp_path: Path) -> None:
    """LBFGS.step() needs the script's closure: said, not a TypeError in the replayed step."""
    script = _script(tmp_path, "lbfgs.py", LBFGS_SCRIPT)
    assert _run(script) == 0
    code, out = _replay(bundle_path("run.db"), "--no-bisect")
    assert "LBFGS.step() needs the script's closure" in out["optimizer"]
    assert not any("TypeError" in line for line in out["details"]), out["details"]
    assert code == 0 and out["status"] == "bit-for-bit"


def test_a_shared_bundle_whose_script_is_not_here_says_what_builds_the_model(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An nn.Sequential is torch's class, built by the script: not a class the script defines."""
    script = _script(tmp_path, "crash.py", CRASH_SCRIPT)
    assert _run(script) == 1
    raw = torch.load(bundle_path("run.db"), weights_only=True)
    raw["script"]["path"] = str(tmp_path / "elsewhere" / "crash.py")  # the bundle shared to another machine
    torch.save(raw, "shared.bundle.pt")
    capsys.readouterr()
    assert main(["replay", "shared.bundle.pt"]) == 2
    err = capsys.readouterr().err
    assert "Sequential that" in err and "builds, and that script is not here" in err and "--model" in err
    assert "that defines Sequential" not in err


def test_a_truncated_bundle_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = _script(tmp_path, "crash.py", CRASH_SCRIPT)
    assert _run(script) == 1
    data = bundle_path("run.db").read_bytes()
    Path("cut.bundle.pt").write_bytes(data[: len(data) // 2])  # half a copy
    capsys.readouterr()
    assert main(["replay", "cut.bundle.pt"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "it is truncated" in err and "there is a high" not in err, err


STRUCT_SCRIPT = '''
import sys
from collections import namedtuple
from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F


@dataclass
class DataBatch:
    x: torch.Tensor
    y: torch.Tensor


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, batch):
        return self.fc(batch.x)


def make_model():
    return Net()


if __name__ == "__main__":
    Batch = namedtuple("Batch", "x y")
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(6):
        x, y = torch.randn(8, 4), torch.randn(8, 1)
        if step == 3:
            x[0, 0] = float("nan")
        batch = Batch(x, y) if sys.argv[1] == "namedtuple" else DataBatch(x, y)
        loss = F.mse_loss(model(batch), batch.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
'''


@pytest.mark.parametrize("kind", ["namedtuple", "dataclass"])
def test_a_namedtuple_or_dataclass_batch_is_rebuilt(tmp_path: Path, kind: str) -> None:
    """Its fields are saved and rebuilt by name (a namedtuple was a bare tuple, a dataclass saved no bundle)."""
    script = _script(tmp_path, "structs.py", STRUCT_SCRIPT)
    assert _run(script, kind) == 0
    raw = torch.load(bundle_path("run.db"), weights_only=True)
    assert raw["batch"]["args"][0]["name"] == ("Batch" if kind == "namedtuple" else "DataBatch")
    code, out = _replay(bundle_path("run.db"), "--no-bisect")
    assert code == 0 and out["status"] == "bit-for-bit", out


LOSS_IN_FORWARD_SCRIPT = '''
import torch
from torch import nn
import torch.nn.functional as F


class LM(nn.Module):
    """Hugging Face style: forward(input_ids, labels=...) computes the loss and returns it with the logits."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(30, 16)
        self.drop = nn.Dropout(0.1)
        self.out = nn.Linear(16, 30)

    def forward(self, input_ids, labels=None):
        logits = self.out(self.drop(self.emb(input_ids)))
        loss = None if labels is None else F.cross_entropy(logits.view(-1, 30), labels.view(-1))
        return {"loss": loss, "logits": logits}


def make_model():
    return LM()


if __name__ == "__main__":
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    for step in range(7):
        ids = torch.randint(0, 30, (4, 6))
        if step == 5:
            with torch.no_grad():
                model.out.bias[3] = float("inf")
        out = model(input_ids=ids, labels=ids)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
'''


def test_a_loss_computed_in_forward_is_the_one_replayed(tmp_path: Path) -> None:
    """The loss call ran inside forward() on the logits: the model's output holds the loss, not the logits."""
    script = _script(tmp_path, "lm.py", LOSS_IN_FORWARD_SCRIPT)
    assert _run(script) == 0
    code, out = _replay(bundle_path("run.db"))
    assert code == 0 and out["status"] == "bit-for-bit", out
    assert out["bisect"]["module"] == "out" and "own weights were already non-finite" in out["bisect"]["why"]


HAND_LOSS_SCRIPT = '''
import sys
import torch
from torch import nn


def make_model():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


if __name__ == "__main__":
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(6):
        x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
        if step == 3 and sys.argv[1] == "batch":
            x[2, 1] = float("nan")  # a corrupt sample
        p = torch.softmax(model(x), -1)
        if step == 3 and sys.argv[1] == "loss":
            p = p * 0  # the loss below takes log(0)
        loss = -torch.log(p[torch.arange(16), y]).mean()  # a loss written by hand: not in the bundle
        opt.zero_grad()
        loss.backward()
        opt.step()
'''


def test_a_hand_written_loss_is_judged_from_the_models_output(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The loss is not replayed; a non-finite output of the model is the symptom, its batch named as the cause.
    Its twin, a NaN born in the hand-written loss itself, stays not reproduced."""
    script = _script(tmp_path, "hand.py", HAND_LOSS_SCRIPT)
    assert _run(script, "batch") == 0
    code, out = _replay(bundle_path("run.db"))
    assert code == 0 and out["status"] == "symptom", out
    assert any("the model's output is non-finite again" in line for line in out["details"])
    assert out["bisect"]["module"] == "0" and out["bisect"]["previous"] is None and out["batch_finite"] is False
    capsys.readouterr()
    assert main(["replay", str(bundle_path("run.db"))]) == 0
    assert "the batch the model was called with holds NaN/Inf" in capsys.readouterr().err
    assert _run(script, "loss", db="loss.db") == 0
    code, out = _replay(bundle_path("loss.db"))
    assert code == 1 and out["status"] == "not-reproduced" and out["batch_finite"] is True


def test_json_output_is_checked_before_the_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--json train.py` overwrote the script; a missing folder failed only after the replay."""
    script = _script(tmp_path, "crash.py", CRASH_SCRIPT)
    assert _run(script) == 1
    capsys.readouterr()
    assert main(["replay", str(bundle_path("run.db")), "--json", str(script), "-q"]) == 2
    assert script.read_text() == CRASH_SCRIPT
    assert "would overwrite a .py file" in capsys.readouterr().err
    assert main(["replay", str(bundle_path("run.db")), "--json", "no/such/folder/r.json"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "modeldebug replay" not in err  # refused before replaying


def test_an_unstorable_keyword_argument_is_left_out_not_the_bundle(tmp_path: Path) -> None:
    """`model(x, cache=SomeObject())`: the bundle is saved without that argument, and says so."""
    script = _script(tmp_path, "cache.py", KWARGS_SCRIPT.replace(
        "def forward(self, input_ids, attention_mask=None):",
        "def forward(self, input_ids, attention_mask=None, cache=None):").replace(
        "logits = model(input_ids=ids, attention_mask=torch.ones(4, 5))",
        "logits = model(input_ids=ids, attention_mask=torch.ones(4, 5), cache=object())"))
    assert _run(script) == 0
    raw = torch.load(bundle_path("run.db"), weights_only=True)
    assert sorted(raw["batch"]["kwargs"]) == ["attention_mask", "input_ids"]
    assert any("cache= holds a object" in n and "left out" in n for n in raw["notes"]), raw["notes"]
    code, out = _replay(bundle_path("run.db"), "--no-bisect")
    assert code == 0 and out["status"] == "bit-for-bit"
    assert any(w.startswith("when saved: the keyword argument cache=") for w in out["warnings"])


def test_model_from_a_package_in_the_current_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--model replay_models.nets:make` from the project's folder (the console script does not put the current
    folder on sys.path: it was 'No module named'); a factory that exits is one line."""
    script = _script(tmp_path, "crash.py", CRASH_SCRIPT)
    assert _run(script) == 1
    pkg = tmp_path / "replay_models"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text("import sys\nfrom torch import nn\n\n\ndef make():\n"
                                 "    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))\n\n\n"
                                 "def needs_config():\n    sys.exit('give --config')\n")
    assert main(["replay", str(bundle_path("run.db")), "--model", "replay_models.nets:make", "-q"]) == 0
    capsys.readouterr()
    assert main(["replay", str(bundle_path("run.db")), "--model", "replay_models.nets:needs_config"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "called sys.exit('give --config')" in err


def test_a_record_reused_by_a_later_run_is_not_read_as_the_bundles(tmp_path: Path) -> None:
    """`--db run.db` again, a healthy run this time: the old bundle stays, the record beside it is not its run."""
    script = _script(tmp_path, "spike.py", SPIKE_SCRIPT)
    assert _run(script, "25") == 0
    assert _run(script, "-1") == 0  # the same record name: replaced by a run that saved no bundle
    code, out = _replay(bundle_path("run.db"))
    assert code == 0 and out["envelopes"] == 0
    assert any("beside the bundle is of another run" in w for w in out["warnings"]), out["warnings"]


def test_a_step_that_clips_its_gradients_is_replayed_with_the_clip(tmp_path: Path) -> None:
    """The saved gradients are clipped (clip_grad_norm_ ran before the optimizer step): replay clips them too."""
    script = _script(tmp_path, "clip.py", SPIKE_SCRIPT.replace(
        "        loss.backward()\n", "        loss.backward()\n"
        "        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n"))
    assert _run(script, "25") == 0
    raw = torch.load(bundle_path("run.db"), weights_only=True)
    assert raw["trigger"]["kind"] == "loss_spike" and raw["clip"] == {"max_norm": 1.0}
    code, out = _replay(bundle_path("run.db"), "--no-bisect")
    assert code == 0 and out["status"] == "bit-for-bit", out["details"]
    assert any("gradient clipping: replayed" in line for line in out["details"])
    raw["clip"] = None  # the twin: replayed without the clip, the gradients cannot match
    torch.save(raw, "noclip.bundle.pt")
    code, out = _replay(Path("noclip.bundle.pt"), "--no-bisect")
    assert out["status"] == "symptom" and any("gradients: 4 of 4 differ" in line for line in out["details"])


def test_json_on_stdout_stays_json_when_the_models_code_prints(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    noisy = NAN_SCRIPT.replace("    def forward(self, x):\n        return self.log(",
                               "    def forward(self, x):\n        print('forward', x.shape)\n        return self.log(")
    assert noisy != NAN_SCRIPT
    assert _run(_script(tmp_path, "noisy.py", noisy), "-10") == 0
    capsys.readouterr()
    assert main(["replay", str(bundle_path("run.db")), "--json", "-", "-q"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["status"] == "bit-for-bit" and "forward" in err
