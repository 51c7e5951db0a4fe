"""Is a convolution's input channels-last data reshaped, not permuted, to channels-first?

`x.view(B, C, T)` of sensor windows stored `[B, T, C]` (or `frame.reshape(3, H, W)` of an `H x W x 3`
image) has the shape the convolution wants and scrambles its content: along the last axis the values
cycle through the C original channels, so a value sits next to another channel's and C places from its
own channel's next time step. Read along that axis, values C apart are then much closer than neighbours,
where a real time axis or image row is smoothest between neighbours (or, for noise, alike at every lag).

On the first sampled training steps, the input of the first Conv1d or Conv2d a model calls is measured
(the mean squared difference at lags 1 .. 2C + 1 along its last axis, read with the step's one host copy)
and recorded as a `conv_input_layout` event; DAT002 judges it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .. import measures as M

__all__ = ["LayoutProbe", "PaddingProbe", "interleave"]

_PROBES = 3  # sampled steps measured per model
_ROWS = 64  # samples read from the batch
_MAX_CHANNELS = 32  # raw inputs: sensors, colours (a wider input is a feature map or an embedding)
_MAX_ROWS = 1 << 22  # embedding tables whose distinct ids are counted (a mark per row)


def interleave(x: torch.Tensor, channels: int) -> torch.Tensor | None:
    """The mean squared difference between values k apart along `x`'s last axis, k = 1 .. 2C + 1, as one tensor
    on `x`'s device (read with the step's one host copy, not here); None where the axis is too short to show a
    period of `channels`."""
    length = int(x.shape[-1])
    if channels < 2 or channels > _MAX_CHANNELS or length < 4 * channels:
        return None
    with torch.no_grad():
        rows = x.detach()[:_ROWS].reshape(-1, length).float()
        return torch.stack([(rows[:, k:] - rows[:, :-k]).pow(2).mean() for k in range(1, 2 * channels + 2)])


def _measurable(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.numel() > 0 and x.device.type != "meta" and type(x) is torch.Tensor


class _Probes:
    """Which modules are probed, at most once a step and `_PROBES` times in all; `done` holds the modules not to
    call again (the tracer tests it before calling: the later calls of a conv net's other layers cost nothing)."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.done: set[int] = set()  # ids of modules probed enough, or never to be probed
        self._left: dict[int, int] = {}
        self._last: dict[int, int] = {}

    def take(self, module: nn.Module) -> bool:
        """Probe `module` now? (once per step, `_PROBES` steps)"""
        key, step = id(module), self.tracer.step
        if self._last.get(key) == step:
            return False
        left = self._left.get(key, _PROBES)
        self._left[key], self._last[key] = left - 1, step
        if left <= 1:
            self.done.add(key)
        return left > 0


class LayoutProbe(_Probes):
    """Measures the input of each model's first convolution on its first `_PROBES` sampled training steps."""

    def __init__(self, tracer: Any) -> None:
        super().__init__(tracer)
        self.first: dict[int, int] = {}  # model (its id) -> its first convolution (its id)
        self.on = M.CONV_INPUT_LAYOUT in tracer.plan

    def called(self, module: nn.Module, info: Any, args: tuple[Any, ...]) -> None:
        """A leaf module's call on a sampled training pass (tracer `_post`)."""
        if self.first.setdefault(id(info.root), id(module)) != id(module):
            self.done.add(id(module))  # not its model's first convolution
            return
        if not args or not _measurable(args[0]) or not self.take(module):
            return
        x = args[0]
        if x.dim() != module.weight.dim() or not x.is_floating_point():
            return
        profile = interleave(x, int(module.in_channels))
        if profile is None:
            return
        tr, step = self.tracer, self.tracer.step
        data = {"module": info.name, "in_channels": int(module.in_channels), "shape": list(x.shape)}

        def sink(values: list[float]) -> None:
            if values[0] > 0:  # (a constant input says nothing)
                tr.writer.add_event(step, M.CONV_INPUT_LAYOUT.name, {**data, "profile": list(values)})

        tr.buffer.add(profile, sink)


class PaddingProbe(_Probes):
    """An `nn.Embedding(padding_idx=p)` read one id per sample (no sequence to pad), where id p is drawn like
    any other: its row gets no gradient and stays as it was built, so the samples with id p (relation 0 of a
    knowledge graph, category 0 of a table) never get a learned vector. Measured on the first sampled training
    steps and recorded as an `embedding_padding` event; OPT001 judges it."""

    def __init__(self, tracer: Any) -> None:
        super().__init__(tracer)
        self.on = M.EMBEDDING_PADDING in tracer.plan

    def called(self, module: nn.Module, info: Any, args: tuple[Any, ...]) -> None:
        pad = getattr(module, "padding_idx", None)
        if pad is None:
            self.done.add(id(module))
            return
        if not args or not _measurable(args[0]) or not self.take(module):
            return
        ids = args[0]
        if ids.dim() == 0 or ids.is_floating_point():
            return
        rows = int(module.num_embeddings)
        with torch.no_grad():
            flat = ids.detach().flatten()
            share = (flat == pad).float().mean()
            # a batch of sequences [B, T]: the share of positions that are padding in every sequence (a batch
            # padded to a fixed length, not to its longest sequence: computed over for nothing)
            columns = (1.0 - (ids.detach() != pad).any(0).float().mean()) if ids.dim() == 2 and ids.shape[1] >= 8 \
                else torch.full((), float("nan"), device=flat.device)
            # distinct ids among the first 4096, without `unique` (a device sync): a mark per row of the table
            distinct = (torch.zeros(rows, device=flat.device).index_fill_(0, flat[:4096].long(), 1.0).sum()
                        if rows <= _MAX_ROWS else torch.full((), float("nan"), device=flat.device))
        tr, step = self.tracer, self.tracer.step
        data = {"module": info.name, "padding_idx": int(pad), "num_embeddings": rows, "input_shape": list(ids.shape),
                "one_id_per_sample": ids.dim() == 1 or (ids.dim() == 2 and ids.shape[1] == 1)}

        def sink(values: list[float]) -> None:
            tr.writer.add_event(step, M.EMBEDDING_PADDING.name, {
                **data, "padding_share": values[0], "distinct_ids": int(values[1]) if values[1] == values[1] else None}
                | ({"padding_columns_share": values[2]} if values[2] == values[2] else {}))

        tr.buffer.add(torch.stack([share, distinct, columns.to(share.dtype)]), sink)
