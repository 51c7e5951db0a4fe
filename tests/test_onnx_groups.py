"""compare on exports where nodes and modules do not line up one to one.

Both of torch's exporters fold an eval-mode BatchNorm into the Conv before it (the TorchScript-based
one names the fused node after the Conv, the torch.export-based one after the BatchNorm), so a
correct model must not be flagged, and a weight changed in a later Conv must be blamed on that
Conv's group, not on the first Conv. Every model is a real export made here, with both exporters.
"""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from modeldebug.onnx import ONNXConfig, compare
from modeldebug.onnx.graph import module_scope

FAST = ONNXConfig(op_level=False)  # module-level matching: the level fusions confuse


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=cin != 3)  # one conv without bias: BN gives it one
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class BNNet(nn.Module):
    """Three Conv+BN+ReLU blocks in a Sequential, then a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(ConvBlock(3, 6), ConvBlock(6, 6), ConvBlock(6, 4))
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def bn_net() -> BNNet:
    torch.manual_seed(0)
    m = BNNet()
    for bn in (b for b in m.modules() if isinstance(b, nn.BatchNorm2d)):  # statistics far from (0, 1): folding matters
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.3, 3)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    return m.eval()


def export(model: nn.Module, args: tuple[torch.Tensor, ...], *, dynamo: bool, names: list[str]) -> onnx.ModelProto:
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            return torch.onnx.export(model, args, dynamo=True, input_names=names, verbose=False).model_proto
        buf = io.BytesIO()
        torch.onnx.export(model, args, buf, dynamo=False, input_names=names)
    return onnx.load_from_string(buf.getvalue())


@pytest.fixture(scope="module", params=[True, False], ids=["dynamo", "torchscript"])
def bn_export(request: pytest.FixtureRequest) -> tuple[bool, onnx.ModelProto]:
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    return request.param, export(bn_net(), (x,), dynamo=request.param, names=["x"])


def test_both_exporters_fold_batchnorm(bn_export: tuple[bool, onnx.ModelProto]) -> None:
    """The premise: no BatchNormalization node is left, and the exporters name the fused node differently."""
    dynamo, m = bn_export
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    assert "BatchNormalization" not in {n.op_type for n in m.graph.node} and len(convs) == 3
    assert module_scope(convs[2]) == ("features.2.bn" if dynamo else "features.2.conv")


def test_correct_model_with_folded_batchnorm_agrees(bn_export: tuple[bool, onnx.ModelProto]) -> None:
    _, m = bn_export
    r = compare(bn_net(), m, config=FAST)
    assert r.passed and [f.code for f in r.findings] == []
    assert all(c.status == "ok" for c in r.checks)
    assert r.grouping["fusions"] == [f"features.{k}.conv+features.{k}.bn" for k in range(3)]
    fused = [c for c in r.checks if c.reference.startswith("modules")]
    assert len(fused) == 3  # each fused Conv is compared with its BatchNorm's output


def perturb_conv(m: onnx.ModelProto, index: int, channel: int = 1) -> tuple[onnx.ModelProto, str]:
    """A copy of `m` with one weight of output `channel` of its `index`-th Conv raised by 0.5."""
    out = onnx.ModelProto()
    out.CopyFrom(m)
    conv = [n for n in out.graph.node if n.op_type == "Conv"][index]
    init = next(t for t in out.graph.initializer if t.name == conv.input[1])
    arr = numpy_helper.to_array(init).copy()
    arr[channel, 0, 1, 1] += 0.5
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    return out, conv.name


def test_changed_weight_in_a_later_conv_is_blamed_on_its_group(bn_export: tuple[bool, onnx.ModelProto]) -> None:
    _, m = bn_export
    faulty, conv = perturb_conv(m, 2)
    r = compare(bn_net(), faulty)  # default config: module groups first, ops only if they cannot name one node
    d = r.first_divergent
    assert d is not None and d.node == conv and d.op_type == "Conv"
    assert d.group is not None and d.group["modules"] == ["features.2.conv", "features.2.bn"]
    assert d.group["kind"] == "fusion"
    # the initializer is compared with the Conv's weight folded with the BatchNorm: exactly the 0.5 planted
    (diff,) = d.initializer_diffs
    assert diff["expected_from"] == "PyTorch's features.2.conv.weight folded with features.2.bn"
    assert diff["max_abs"] == pytest.approx(0.5, abs=1e-5)
    assert [c.node for c in r.checks if c.status == "introduces"] == [conv] and d.segment == [conv]
    assert not r.op_level  # one node already: no re-export was needed
    (f,) = [f for f in r.findings if f.code == "ONX101"]
    assert f.location == conv and "features.2.conv+features.2.bn" in f.description


def test_nodes_without_a_pytorch_counterpart_are_named(bn_export: tuple[bool, onnx.ModelProto]) -> None:
    dynamo, m = bn_export
    r = compare(bn_net(), m, config=FAST)
    mean = next(n.name for n in m.graph.node if n.op_type == "ReduceMean")  # x.mean() in the model's own forward
    if dynamo:  # the exporter recorded the op it came from: it has a counterpart
        assert mean not in r.grouping["no_counterpart"]
    else:
        assert mean in r.grouping["no_counterpart"]
        assert "no PyTorch module or op counterpart" in r.to_text()


class Decomposed(nn.Module):
    """GELU and LayerNorm that an old opset spells as several nodes each."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.norm = nn.LayerNorm(6)
        self.act = nn.GELU()
        self.out = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.norm(self.fc(x))))


def test_one_module_many_nodes_is_compared_at_its_boundary() -> None:
    torch.manual_seed(0)
    model = Decomposed().eval()
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(2))
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=13)  # no LayerNormalization before 17
    m = onnx.load_from_string(buf.getvalue())
    r = compare(model, m, config=FAST)
    assert r.passed and r.findings == []
    assert {"norm", "act"} <= set(r.grouping["decompositions"])
    assert {c.reference for c in r.checks} >= {"module norm", "module act"}
    # the epsilon inside the decomposed LayerNorm mistranslated (1e-5 -> 1.0): blamed on the norm group
    eps = next(n for n in m.graph.node if n.name == "/norm/Constant_1")
    eps.attribute[0].t.CopyFrom(numpy_helper.from_array(np.array(1.0, np.float32), eps.output[0]))
    r = compare(model, m, config=FAST)
    d = r.first_divergent
    assert d is not None and d.group is not None and d.group["modules"] == ["norm"]
    assert d.group["kind"] == "decomposition" and d.node.startswith("/norm/") and d.verdict == "translation"
    assert "/norm/Add" in d.segment and len(d.segment) > 5  # the whole LayerNorm was re-run as one group
