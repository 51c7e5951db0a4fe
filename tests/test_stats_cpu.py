"""The CPU's fewer-pass statistics give what the general (device) kernels give, and the kept copy
for update ratios gives the update's true norm.

The general kernels (`stats._activation_stats_device`, `losses._loss_io_device`, the masked path of
`input_stats`) run on the CPU too, so both paths are compared on the same tensors: odd shapes, NaN
and Inf, all-zero units, a large mean, non-contiguous and half-precision outputs.
"""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

import modeldebug as md
from modeldebug.capture import stats as S
from modeldebug.capture import stats_cpu
from modeldebug.capture.losses import _loss_io_device, loss_io_stats
from modeldebug.capture.stats import ACTIVATION_STATS


def _general_input_stats(x: torch.Tensor) -> list[float]:
    """`input_stats` by its masked general path (what it gave before the CPU path)."""
    xf = x.float()
    finite = torch.isfinite(xf)
    clean = torch.where(finite, xf, torch.zeros(()))
    lo, hi = torch.aminmax(clean)
    nan = torch.full((), float("nan"))
    const = (clean.reshape(xf.shape[0], -1).amax(0) == clean.reshape(xf.shape[0], -1).amin(0)).float().mean() \
        if xf.dim() >= 2 and xf.shape[0] > 1 else nan
    ch_mean, ch_std = [nan] * 4, [nan] * 4
    if xf.dim() == 4 and xf.shape[1] <= 4:
        ch_mean[:xf.shape[1]] = list(clean.mean(dim=(0, 2, 3)))
        ch_std[:xf.shape[1]] = list(clean.std(dim=(0, 2, 3)))
    return torch.stack([clean.mean(), clean.std(), lo, hi, 1.0 - finite.float().mean(), const,
                        *ch_mean, *ch_std]).tolist()


def _outputs() -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    out = {"2d": torch.randn(64, 40).relu(), "3d": torch.randn(8, 12, 20).relu(), "4d": torch.randn(4, 6, 5, 5).relu(),
           "5d": torch.randn(3, 4, 2, 3, 3).relu(), "1d": torch.randn(50), "0d": torch.tensor(2.5),
           "large mean": torch.randn(64, 40) * 0.01 + 1000, "zeros": torch.zeros(10, 10),
           "negative zeros": -torch.zeros(10, 10), "float16": torch.randn(32, 16).half(),
           "float64": torch.randn(32, 16).double(), "transposed": torch.randn(40, 64).relu().t(),
           "batch of one": torch.randn(1, 20), "overflowing sum": torch.full((10, 10), 3e38)}
    x = torch.randn(64, 40).relu()
    x[1:, :10] = 0.0  # 10 units alive on one sample of 64 (inactive), 3 never (dead)
    x[:, 10:13] = 0.0
    out["dead and inactive"] = x
    x = torch.randn(64, 40).relu()
    x[3, 5] = float("nan")
    out["nan"] = x
    x = torch.randn(64, 40).relu()
    x[3, :] = float("inf")
    out["inf"] = x
    x = torch.randn(8, 12, 20)
    x[:, :, :4] = 0.0
    x[0, 0, 0] = float("nan")  # alive, in a unit otherwise dead
    out["nan in a dead unit"] = x
    return out


@pytest.mark.parametrize("name", list(_outputs()))
def test_cpu_activation_statistics_equal_the_general_kernels(name: str) -> None:
    x = _outputs()[name]
    xf = x if x.dtype in (torch.float32, torch.float64) else x.float()
    for names in (ACTIVATION_STATS, ("mean", "std"), ("zero_frac", "dead_frac"), ("inactive_frac",), ("min", "max")):
        fast = stats_cpu.activation_values(xf, names, ACTIVATION_STATS)
        general = S._activation_stats_device(xf, names).tolist()
        assert fast == pytest.approx(general, rel=1e-5, abs=1e-6, nan_ok=True), names


def test_nan_counts_as_non_zero_in_every_zero_statistic() -> None:
    """As `x != 0` does: a NaN in a unit that is otherwise all zeros keeps it alive and active,
    and is not a zero (sign(NaN) is 0 on the CPU: the counts must not come from it)."""
    x = torch.zeros(100, 4)
    x[:, 2:] = 1.0
    x[7, 0] = float("nan")
    for values in (S.activation_stats(x).tolist(), S._activation_stats_device(x, ACTIVATION_STATS).tolist()):
        s = dict(zip(ACTIVATION_STATS, values))
        assert s["nonfinite"] == 1.0
        assert s["zero_frac"] == pytest.approx(199 / 400)  # the NaN is not a zero
        assert s["dead_frac"] == pytest.approx(0.25)  # unit 1 only
        assert s["inactive_frac"] == pytest.approx(0.5)  # unit 0 (1 sample in 100) and unit 1
    healthy = dict(zip(ACTIVATION_STATS, S.activation_stats(torch.ones(100, 4)).tolist()))
    assert healthy["zero_frac"] == healthy["dead_frac"] == healthy["inactive_frac"] == 0.0


@pytest.mark.parametrize("name", ["2d", "3d", "4d", "large mean", "float16", "transposed", "nan", "inf",
                                  "overflowing sum"])
def test_cpu_input_statistics_equal_the_masked_path(name: str) -> None:
    x = _outputs()[name]
    assert S.input_stats(x).tolist() == pytest.approx(_general_input_stats(x), rel=1e-5, abs=1e-6, nan_ok=True)


def test_cpu_input_statistics_of_an_image_batch_per_channel() -> None:
    torch.manual_seed(0)
    img = torch.rand(16, 3, 8, 8)
    img[:, :, 1, 1] = 0.5  # a constant feature in each channel
    got = S.input_stats(img).tolist()
    assert got == pytest.approx(_general_input_stats(img), rel=1e-5, abs=1e-6, nan_ok=True)
    assert got[5] == pytest.approx(3 / 192)  # 3 of 192 features are constant


@pytest.mark.parametrize("case", ["logits", "probabilities", "nan", "no target", "regression", "float16"])
def test_cpu_loss_statistics_equal_the_masked_path(case: str) -> None:
    torch.manual_seed(0)
    inp, tgt = torch.randn(32, 5), torch.randint(0, 5, (32,))
    if case == "probabilities":
        inp = inp.softmax(1)
    elif case == "nan":
        inp[0, 0] = float("nan")
    elif case == "regression":
        inp, tgt = torch.randn(20), torch.randn(20)
    elif case == "float16":
        inp = inp.half()
    target = None if case == "no target" else tgt
    got = loss_io_stats(inp, target).tolist()
    assert got == pytest.approx(_loss_io_device(inp.float(), target).tolist(), rel=1e-6, abs=1e-7, nan_ok=True)
    if case == "probabilities":
        assert got[4] == 1.0 and got[3] < 1e-5  # all in [0, 1]; rows sum to 1


@pytest.mark.parametrize("keep", [True, False])
def test_update_ratios_are_the_true_update_norms_across_sampled_steps_and_a_dtype_change(
        keep: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy's buffers are kept between sampled steps (or, over the size limit, made afresh): each
    step's ratio must still be ||w_after - w_before|| / ||w_after|| of that step, also after the
    model changes dtype."""
    from modeldebug.capture import updates

    if not keep:
        monkeypatch.setattr(updates, "_KEEP_MAX_BYTES", 0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    expected: dict[int, float] = {}
    norms: dict[int, float] = {}
    with md.watch(model, optimizer=opt, db=":memory:", level="detailed") as s:
        g = torch.Generator().manual_seed(1)
        for step in range(12):
            if step == 6:
                model.double()  # the same Parameter objects, new dtype: the buffers must follow
            dtype = next(model.parameters()).dtype
            x, y = torch.randn(16, 6, generator=g).to(dtype), torch.randint(0, 3, (16,), generator=g)
            w0 = model[0].weight.detach().clone()
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            w1 = model[0].weight.detach()
            expected[step] = float((w1 - w0).norm() / w1.norm())
            norms[step] = float(w1.norm())
    got = s.record.series("0.weight", "update_ratio")
    assert got.steps.tolist() == [0, 1, 2, 5, 10]
    for step, value in zip(got.steps.tolist(), got.values.tolist()):
        assert value == pytest.approx(expected[step], rel=1e-5)
        assert value > 0.0
    w = s.record.series("0.weight", "param_norm")
    assert w.values.tolist() == pytest.approx([norms[k] for k in w.steps.tolist()], rel=1e-6)


def test_label_counts_on_the_cpu_equal_the_remapping_path() -> None:
    """In range: one bincount; a label out of range (ignore_index -100, or >= C) takes the general
    path, which counts it in the last bin."""
    from modeldebug.capture.losses import label_histogram

    torch.manual_seed(0)
    inp = torch.randn(64, 5)
    tgt = torch.randint(0, 5, (64,))
    assert label_histogram(inp, tgt).tolist() == torch.bincount(tgt, minlength=6).double().tolist()
    for bad in (-100, 5, 7):
        t = tgt.clone()
        t[:3] = bad
        counts = label_histogram(inp, t).tolist()
        assert counts[-1] == 3.0 and sum(counts) == 64.0
        assert counts[:5] == torch.bincount(t[3:], minlength=5).double().tolist()
    assert label_histogram(inp, tgt.to(torch.int32)).tolist() == torch.bincount(tgt, minlength=6).double().tolist()
    assert label_histogram(inp, tgt.float()) is None  # not class indices


def test_an_output_measured_twice_in_a_step_is_reduced_once_with_the_same_values() -> None:
    """Dropout(0.0) and Identity return their input itself: their rows are the module's before
    them. After an in-place op (an inplace ReLU) the same tensor holds other values: measured anew."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.Dropout(0.0), nn.ReLU(inplace=True), nn.Identity(),
                          nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    reduced = []

    def profile(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code.co_name == "activation_values" and frame.f_code.co_filename == S.__file__:
            reduced.append(1)

    with md.watch(model, optimizer=opt, db=":memory:", level="detailed") as s:
        g = torch.Generator().manual_seed(1)
        x = torch.randn(64, 6, generator=g)
        sys.setprofile(profile)
        try:
            for _ in range(3):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), torch.randint(0, 3, (64,), generator=g)).backward()
                opt.step()
        finally:
            sys.setprofile(None)
    rec = s.record
    assert len(reduced) == 3 * 3  # 3 sampled steps: the Linear, the ReLU, the head; not the Dropout, the Identity
    for stat in ("mean", "std", "min", "max", "zero_frac", "dead_frac"):
        lin, drop = rec.series("0", stat).values.tolist(), rec.series("1", stat).values.tolist()
        assert lin == drop, stat  # the same tensor: the same numbers
        relu, ident = rec.series("2", stat).values.tolist(), rec.series("3", stat).values.tolist()
        assert relu == ident, stat
    assert (rec.series("0", "min").values < 0).all()  # the Linear's own output, before the inplace ReLU
    assert (rec.series("3", "min").values == 0).all()  # the Identity sees the ReLU'd values
    assert (rec.series("3", "zero_frac").values > 0.2).all() and (rec.series("0", "zero_frac").values == 0).all()


def test_update_rows_read_on_the_host_equal_the_device_tensor() -> None:
    from modeldebug.capture.updates import update_rows

    norms = [torch.tensor(0.5), torch.tensor(0.0), torch.tensor(2.0), torch.tensor(0.0)]  # a weight of norm 0
    host = update_rows(norms, 2, host=True)
    device = update_rows(norms, 2, host=False)
    assert isinstance(host, list) and isinstance(device, torch.Tensor) and device.dtype == torch.float64
    assert host == device.tolist() == [0.25, 0.0, 2.0, 0.0]
