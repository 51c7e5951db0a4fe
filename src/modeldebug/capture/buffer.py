"""StepBuffer: device tensors measured during a step, copied to the host in one go.

Collectors only append ``(values, sink)`` entries: a tensor on the device and the function that
stores its numbers once they are on the host (a few statistic rows, a step column). Nothing syncs
the device until `drain`, which concatenates the entries of each device and copies them once, then
hands each sink its own values. So there is no dispatch on what an entry is: whoever measured it
said where it goes.

`drain` is the synchronous read (every CPU step, sampled and first steps on an accelerator);
`pack` and `unpack` split it in two for a deferred copy (deferred.py): `pack` concatenates the
device values into one flat tensor, `unpack` hands each sink its slice once the copy has landed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..record import RunWriter

__all__ = ["Layout", "Sink", "StepBuffer", "pack", "read_host", "stats_sink", "unpack"]

Sink = Callable[[list[float]], None]
Entry = tuple[torch.Tensor, Sink]  # or (list[float], Sink): numbers already on the host
#: a deferred step's sinks, each with its host values or the number of its values in the copy
Layout = list[tuple[Sink, "list[float] | int"]]


def stats_sink(writer: RunWriter, step: int, rows: list[tuple[int, str | None]]) -> Sink:
    """A sink that writes value i as the statistic ``rows[i] = (entity, name)`` of `step`; a value
    whose name is None is not kept (one kernel computes a family; the plan keeps what is read)."""

    def sink(values: list[float]) -> None:
        writer.add_stat_values(step, rows, values)

    return sink


class StepBuffer:
    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, values: torch.Tensor, sink: Sink) -> None:
        self.entries.append((values, sink))

    def add_host(self, values: list[float], sink: Sink) -> None:
        """Numbers already on the host (measured on the CPU): handed to `sink` in order, at the copy."""
        self.entries.append((values, sink))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.entries)

    def take(self, first: Entry | None = None) -> list[Entry]:
        """The step's entries (`first` first), leaving the buffer empty."""
        entries = self.entries
        self.entries = []
        if first is not None:
            entries.insert(0, first)
        return entries

    def drain(self, first: Entry | None = None) -> list[tuple[Sink, list[float]]]:
        """Every entry's sink with its values on the host, now (`read`)."""
        return self.read(self.take(first))

    @classmethod
    def read(cls, entries: list[Entry]) -> list[tuple[Sink, list[float]]]:
        """Every entry's sink with its values on the host: one device-to-host copy per device.

        CPU tensors are read one by one (``tolist`` of a small tensor costs about 0.5 µs, a
        ``torch.cat`` about 5 µs); the entries of an accelerator are concatenated and copied once."""
        out = read_host(entries)
        return out if out is not None else cls._drain_devices(entries)

    @staticmethod
    def _drain_devices(entries: list[Entry]) -> list[tuple[Sink, list[float]]]:
        """`drain` with entries on an accelerator: one concatenated copy per device."""
        host: list[list[float]] = [[] for _ in entries]
        by_device: dict[torch.device, list[int]] = {}
        for i, (t, _) in enumerate(entries):
            if isinstance(t, list):
                host[i] = t
            elif t.device.type == "cpu":
                v = (t if t.dim() <= 1 else t.reshape(-1)).tolist()
                host[i] = v if isinstance(v, list) else [v]
            else:
                by_device.setdefault(t.device, []).append(i)
        for idx in by_device.values():
            flat = torch.cat([entries[i][0].reshape(-1) for i in idx]).tolist()  # cat promotes dtypes
            pos = 0
            for i in idx:
                n = entries[i][0].numel()
                host[i] = flat[pos:pos + n]
                pos += n
        return [(sink, v) for (_, sink), v in zip(entries, host)]


def read_host(entries: list[Entry]) -> list[tuple[Sink, list[float]]] | None:
    """Every entry's sink with its values when all are on the host (the CPU's common case, read in
    order); None as soon as one is on an accelerator."""
    out: list[tuple[Sink, list[float]]] = []
    for t, sink in entries:
        if type(t) is list:
            out.append((sink, t))  # type: ignore[arg-type]
        elif t.device.type == "cpu":
            v = (t if t.dim() <= 1 else t.reshape(-1)).tolist()
            out.append((sink, v if isinstance(v, list) else [v]))
        else:
            return None
    return out


def pack(entries: list[Entry], device: torch.device | None = None) -> tuple[torch.Tensor | None, Layout]:
    """The tensors of `entries` on `device` concatenated into one flat tensor (no copy to the host
    yet, no sync), and where each sink's values will be: its host list, or how many values it takes
    from the flat. A tensor on another device (a CPU loss beside CUDA gradients) is read now, as the
    synchronous path would (``torch.cat`` refuses two devices); `device` None: every tensor is packed.
    Tensors are detached: a deferred copy must not keep an autograd graph alive for steps."""
    tensors: list[torch.Tensor] = []
    layout: Layout = []
    for t, sink in entries:
        if type(t) is list:
            layout.append((sink, t))  # type: ignore[arg-type]
        elif device is not None and t.device != device:
            v = t.detach().reshape(-1).tolist()
            layout.append((sink, v))
        else:
            tensors.append((t.detach() if t.requires_grad else t).reshape(-1))
            layout.append((sink, t.numel()))
    if not tensors:
        return None, layout
    return (tensors[0] if len(tensors) == 1 else torch.cat(tensors)), layout  # cat promotes dtypes


def unpack(layout: Layout, flat: list[float]) -> list[tuple[Sink, list[float]]]:
    """Each sink with its values, `flat` being the host copy of what `pack` concatenated."""
    out: list[tuple[Sink, list[float]]] = []
    pos = 0
    for sink, v in layout:
        if type(v) is int:
            out.append((sink, flat[pos:pos + v]))
            pos += v
        else:
            out.append((sink, v))  # type: ignore[arg-type]
    return out
