"""Real PyTorch models exported with torch.onnx.export (the torch.export-based exporter), once per
test session, for every ONNX test module; and checks of the exporter facts the ONNX code relies on.

`exported(name)` returns the ONNX bytes (all tensors inline); `torch_model(name)` a fresh seeded
copy of the same model in eval mode.
"""

from __future__ import annotations

import functools
import warnings

import onnx
import torch
from torch import nn

from modeldebug.testing import healthy_cnn, healthy_mlp, healthy_transformer

EXAMPLES = {"mlp": (healthy_mlp, (4, 20)), "cnn": (healthy_cnn, (4, 3, 8, 8)),
            "transformer": (healthy_transformer, (4, 8, 6))}


class DropoutNet(nn.Module):
    """A Linear then a Dropout: exported in train mode, the Dropout keeps training_mode=True."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc(x))


class LogNet(nn.Module):
    """log of a Linear's output: NaN wherever it is negative, in PyTorch and in ONNX alike."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.log(self.fc(x)))


def torch_model(name: str) -> nn.Module:
    if name in ("dropout", "log"):
        torch.manual_seed(0)
        return (DropoutNet() if name == "dropout" else LogNet()).eval()
    return EXAMPLES[name][0]()[0].eval()


def example(name: str, batch: int = 4) -> torch.Tensor:
    shape = (batch, 8) if name in ("dropout", "log") else (batch, *EXAMPLES[name][1][1:])
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1))


@functools.cache
def exported(name: str, *, dynamic: bool = True, train: bool = False, double: bool = False) -> bytes:
    """ONNX bytes of a test model; `dynamic` marks axis 0 as `batch`, else the batch is fixed at 2."""
    model = torch_model(name)
    x = example(name, 4 if dynamic else 2)
    if double:
        model, x = model.double(), x.double()
    model.train(train)
    with warnings.catch_warnings():
        # torch 2.13's exporter trips its own deprecation and warns about train-mode export (on purpose here)
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                category=FutureWarning)
        warnings.filterwarnings("ignore", message="Exporting a model while it is in training mode", category=UserWarning)
        prog = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=({0: "batch"},) if dynamic else None,
                                 verbose=False)
    return prog.model_proto.SerializeToString()


def proto(name: str, **kw: bool) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.ParseFromString(exported(name, **kw))
    return m


def test_exporter_records_scopes_and_fx_nodes() -> None:
    """compare maps ONNX values to PyTorch through these records; if the exporter drops them, say so here."""
    m = proto("mlp")
    keys = {p.key for n in m.graph.node for p in n.metadata_props}
    assert {"pkg.torch.onnx.name_scopes", "pkg.torch.onnx.fx_node"} <= keys
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_exporter_folds_eval_batchnorm_into_conv() -> None:
    """Why module-level matching must tolerate modules with no nodes of their own."""
    ops = [n.op_type for n in proto("cnn").graph.node]
    assert "BatchNormalization" not in ops and ops.count("Conv") == 2
