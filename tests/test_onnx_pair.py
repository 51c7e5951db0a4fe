"""compare without PyTorch: ONNX vs ONNX, provider vs provider, golden outputs, and user data loaders.

The models are real exports (tests/test_onnx_groups.py's BatchNorm CNN); the faults are real: one
weight changed after export; the optimised model is onnxruntime's own offline output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from test_onnx_groups import bn_net, export, perturb_conv

from modeldebug.cli import main
from modeldebug.errors import BadInputError
from modeldebug.onnx import ONNXConfig, compare, compare_onnx
from modeldebug.onnx.golden import read_golden

X = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))

LOADERS = """
import torch

def batches():
    g = torch.Generator().manual_seed(7)
    for _ in range(3):
        yield torch.randn(2, 3, 8, 8, generator=g), torch.zeros(2, dtype=torch.long)  # (x, y) as a DataLoader gives

def one_dict():
    return {"x": torch.randn(2, 3, 8, 8)}

def empty():
    return iter(())

def broken():
    raise RuntimeError("the dataset is not mounted")
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pair")
    m = export(bn_net(), (X,), dynamo=False, names=["x"])
    paths = {"clean": d / "clean.onnx", "faulty": d / "faulty.onnx", "optimised": d / "optimised.onnx",
             "nets": d / "nets.py", "loaders": d / "loaders.py"}
    onnx.save_model(m, str(paths["clean"]))
    faulty, conv = perturb_conv(m, 2, channel=2)  # a channel the last ReLU lets through: the outputs change
    onnx.save_model(faulty, str(paths["faulty"]))
    paths["conv"] = Path(conv)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(paths["optimised"])
    ort.InferenceSession(str(paths["clean"]), so, providers=["CPUExecutionProvider"])
    paths["nets"].write_text("import sys\nsys.path.insert(0, %r)\nfrom test_onnx_groups import bn_net\n"
                             "def build():\n    return bn_net()\n" % str(Path(__file__).parent), encoding="utf-8")
    paths["loaders"].write_text(LOADERS, encoding="utf-8")
    return paths


def test_onnx_vs_onnx_names_the_changed_node_and_weight(files: dict[str, Path], tmp_path: Path) -> None:
    r = compare_onnx(files["faulty"], files["clean"], X.numpy(), repro_dir=tmp_path / "repro")
    d = r.first_divergent
    assert not r.passed and d is not None and d.node == str(files["conv"]) and d.verdict == "graph_difference"
    weight = next(n.input[1] for n in onnx.load(str(files["faulty"])).graph.node if n.name == d.node)
    assert [x["name"] for x in d.initializer_diffs] == [weight]
    assert d.initializer_diffs[0]["max_abs"] == pytest.approx(0.5, abs=1e-6)
    assert d.inheritors and d.other_introducers == []
    (f,) = [f for f in r.findings if f.code == "ONX105"]
    assert f.location == d.node and f.severity == "high"
    # the reduced model reproduces on its own: one node, the planted 0.5 on one weight
    s = ort.InferenceSession(str(tmp_path / "repro" / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = dict(np.load(tmp_path / "repro" / "inputs.npz"))
    got = s.run(None, {i.name: feeds[i.name] for i in s.get_inputs()})[0]
    want = np.load(tmp_path / "repro" / "expected.npz")[d.value]
    assert len(onnx.load(str(tmp_path / "repro" / "model.onnx")).graph.node) <= 2
    assert not np.allclose(got, want, atol=1e-3)


def test_onnxruntime_optimised_file_agrees_with_the_original(files: dict[str, Path]) -> None:
    r = compare_onnx(files["optimised"], files["clean"], X.numpy())
    assert r.passed and r.findings == [] and r.first_divergent is None
    assert len(r.checks) >= 3 and all(c.status == "ok" for c in r.checks)


def test_provider_vs_provider_on_the_providers_this_build_has(files: dict[str, Path]) -> None:
    other = next((p for p in ort.get_available_providers() if p != "CPUExecutionProvider"), None)
    if other is None:
        pytest.skip("this onnxruntime has the CPU provider only")
    r = compare_onnx(files["clean"], None, X.numpy(), provider=other)
    assert r.passed and r.target_label == f"onnxruntime ({other})" and len(r.checks) >= 3
    with pytest.raises(BadInputError, match="nothing to compare"):
        compare_onnx(files["clean"], None, X.numpy())
    with pytest.raises(BadInputError, match="no such execution provider"):
        compare_onnx(files["clean"], None, X.numpy(), provider="NoSuchExecutionProvider")


def test_golden_outputs_saved_from_pytorch_then_compared_without_it(files: dict[str, Path], tmp_path: Path) -> None:
    golden = tmp_path / "golden.npz"
    compare(bn_net(), files["clean"], X.numpy(), ONNXConfig(op_level=False), save_golden=golden)
    saved = read_golden(golden)
    assert list(saved.inputs) == ["x"] and saved.meta["produced_by"] == "PyTorch BNNet"
    with torch.no_grad():
        np.testing.assert_array_equal(next(iter(saved.outputs.values())), bn_net()(X).numpy())
    assert compare_onnx(files["clean"], golden=golden).passed
    r = compare_onnx(files["faulty"], golden=golden)
    (f,) = r.findings
    assert not r.passed and f.code == "ONX105" and f.location == next(iter(saved.outputs))


def test_cli_reference_kinds_and_exit_codes(files: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    golden, out = tmp_path / "g.npz", tmp_path / "r.json"
    clean, faulty = str(files["clean"]), str(files["faulty"])
    assert main(["onnx", "compare", clean, "--torch", f"{files['nets']}:build", "--inputs",
                 f"{files['loaders']}:batches", "--save-golden", str(golden), "-q"]) == 0
    assert read_golden(golden).inputs["x"].shape == (2, 3, 8, 8)  # the loader's first batch, its x only
    assert main(["onnx", "compare", faulty, "--golden", str(golden), "--fail-on", "high", "-q"]) == 1
    assert main(["onnx", "compare", faulty, clean, "--json", str(out), "-q"]) == 0
    report = json.loads(out.read_text())
    assert report["findings"][0]["code"] == "ONX105" and report["comparison"]["first_divergent"]["node"]
    assert main(["onnx", "compare", clean, clean, "--inputs", f"{files['loaders']}:one_dict", "-q"]) == 0
    capsys.readouterr()
    for argv, needle in [
        ([clean], "nothing to compare"),
        ([clean, clean, "--torch", f"{files['nets']}:build"], "one reference"),
        ([clean, "--golden", str(golden), "--save-golden", str(golden)], "is the same file as --golden"),
        ([clean, clean, "--inputs", f"{files['loaders']}:broken"], "the dataset is not mounted"),
        ([clean, clean, "--inputs", f"{files['loaders']}:empty"], "yielded nothing"),
        ([clean, "--golden", str(tmp_path / "missing.npz")], "no such file"),
        ([clean, "--provider", "NoSuchExecutionProvider"], "no such execution provider"),
    ]:
        assert main(["onnx", "compare", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err, err
