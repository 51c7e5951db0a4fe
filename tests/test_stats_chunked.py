"""Large outputs measured a slice at a time give the one-piece statistics (`capture/stats_chunked.py`)."""

from __future__ import annotations

import pytest
import torch

from modeldebug.capture import stats as S
from modeldebug.capture import stats_chunked as C


def _output(shape: tuple[int, ...], dtype: torch.dtype = torch.float32, nan: bool = False) -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.relu(torch.randn(shape)) + 0.5 * (torch.rand(shape) < 0.002)
    if x.dim() >= 2:
        x[:, 0] = 0.0  # a dead unit on axis 1
        x[:, 1] = 0.0
        x[0, 1] = 3.0  # ... and an inactive one
    if x.dim() == 3:
        x[:, :, 2] = 0.0  # and on the last axis
    if nan:
        x.view(-1)[7] = float("nan")
    return x.to(dtype)


SHAPES = [(64, 300), (6, 50, 40), (1, 200, 30), (4, 8, 10, 12), (5000,), (3, 1000), (40, 5, 6)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_sliced_statistics_equal_the_one_piece_ones(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    x = _output(shape, dtype)
    names = S.ACTIVATION_STATS
    whole = S._activation_stats_device(x.float(), names)
    sliced = C.activation_stats_chunked(x, names, S.ACTIVATION_STATS, S.INACTIVE_BELOW, chunk=97)
    assert sliced is not None
    assert sliced.tolist() == pytest.approx(whole.tolist(), rel=1e-4, abs=1e-6)
    assert C.slices(x, 97) is not None and max(p.numel() for p in C.slices(x, 97)[1]) <= max(97, x.numel() // max(x.shape))


def test_a_non_finite_output_and_a_subset_of_statistics() -> None:
    x = _output((6, 50, 40), nan=True)
    names = ("mean", "max", "nonfinite", "dead_frac")
    sliced = C.activation_stats_chunked(x, names, S.ACTIVATION_STATS, S.INACTIVE_BELOW, chunk=100)
    whole = S._activation_stats_device(x, names)
    assert sliced is not None and len(sliced) == 4
    got, want = sliced.tolist(), whole.tolist()
    assert got[2] == want[2] == 1.0  # non-finite
    assert got[3] == pytest.approx(want[3])  # a NaN unit is alive in both


@pytest.mark.parametrize("kind", ["Tanh", "Sigmoid"])
def test_sliced_saturation_equals_the_one_piece_one(kind: str) -> None:
    torch.manual_seed(1)
    x = torch.tanh(3 * torch.randn(20, 70)) if kind == "Tanh" else torch.sigmoid(5 * torch.randn(20, 70))
    sliced = C.saturation_chunked(x, kind, chunk=64)
    assert sliced is not None and sliced.tolist() == pytest.approx(S.saturation(x, kind).tolist(), rel=1e-6)


def test_small_outputs_are_measured_whole_and_large_ones_a_slice_at_a_time() -> None:
    assert C.slices(torch.zeros(10, 10)) is None
    assert C.slices(torch.zeros(2, C.CHUNK_VALUES_CPU // 2)) is None
    x = torch.zeros(2, C.CHUNK_VALUES_CPU // 2 + 8)  # just over the CPU's limit: 16M-value slices
    axis, parts = C.slices(x)  # type: ignore[misc]
    assert axis == 1 and len(parts) == 5 and max(p.numel() for p in parts) <= C.SLICE_VALUES_CPU
    # the outermost axis whose slices fit; the longest when none does
    assert C.slices(torch.zeros(2, 50, 40), 200)[0] == 1  # type: ignore[index]
    assert C.slices(torch.zeros(2, 50, 40), 10)[0] == 1  # type: ignore[index]
    x[:, :5] = 1.0
    values = S.activation_values(x, S.ACTIVATION_STATS)
    assert isinstance(values, torch.Tensor)
    assert values.tolist() == pytest.approx(S._activation_stats_device(x, S.ACTIVATION_STATS).tolist(), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("shape", [(300, 7), (6, 5, 40), (1000,)], ids=str)
@pytest.mark.parametrize("target", ["classes", "same-shape", "none"])
def test_a_large_loss_input_and_target_sliced_give_the_one_piece_values(shape: tuple[int, ...], target: str) -> None:
    from modeldebug.capture import losses

    torch.manual_seed(2)
    x = torch.randn(shape) * 2
    x.view(-1)[3] = float("inf")
    tgt = {"classes": torch.randint(0, shape[-1], shape[:1]), "same-shape": torch.rand(shape), "none": None}[target]
    whole = losses._loss_io_device(x, tgt)
    sliced = C.loss_io_chunked(x, tgt, chunk=50)
    assert sliced is not None and sliced.dtype == torch.float64
    got, want = sliced.tolist(), whole.tolist()
    assert got == pytest.approx(want, rel=1e-5, abs=1e-7, nan_ok=True)
    if len(shape) >= 2:  # the class axis (1) is never sliced: the row sums are whole
        assert C.slices(x, 50, keep=1)[0] != 1  # type: ignore[index]


@pytest.mark.parametrize("shape", [(16, 3, 9, 10), (1, 3, 40, 30), (50, 60), (7, 5, 20), (400,)], ids=str)
def test_a_large_model_input_sliced_gives_the_one_piece_values(shape: tuple[int, ...]) -> None:
    torch.manual_seed(3)
    x = torch.randn(shape) * 3 + 1
    if len(shape) >= 2 and shape[0] > 1:
        x[:, 0] = 2.0  # constant features
    x.view(-1)[-3] = float("nan")
    whole = S.input_values(x)  # (a non-finite value: the general path, not the CPU's fast one)
    assert isinstance(whole, torch.Tensor)
    sliced = C.input_chunked(x, chunk=60)
    assert sliced is not None
    assert sliced.tolist() == pytest.approx(whole.tolist(), rel=1e-4, abs=1e-6, nan_ok=True)
    if len(shape) == 4:  # the channel axis is never sliced
        assert C.slices(x, 60, keep=1)[0] != 1  # type: ignore[index]


def test_an_empty_loss_input_with_a_large_target_is_left_to_the_one_piece_path() -> None:
    assert C.loss_io_chunked(torch.zeros(0, 5), torch.rand(500), chunk=50) is None


def test_a_tensor_subclass_is_measured_in_one_piece() -> None:
    class Tagged(torch.Tensor):
        pass

    x = torch.zeros(300, 7).as_subclass(Tagged)
    assert C.slices(x, 50) is None and C.slices(x.as_subclass(torch.Tensor), 50) is not None
