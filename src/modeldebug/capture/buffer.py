"""StepBuffer: device tensors measured during a step, copied to the host in one go.

Hooks only append (kind, step, key, tensor) entries; nothing syncs the device until `drain`, which
concatenates the entries of each device and copies them once.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["StepBuffer"]

Entry = tuple[str, int, Any, torch.Tensor]


class StepBuffer:
    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, kind: str, step: int, key: Any, values: torch.Tensor) -> None:
        self.entries.append((kind, step, key, values))

    def __len__(self) -> int:
        return len(self.entries)

    def drain(self, first: Entry | None = None) -> list[tuple[str, int, Any, list[float]]]:
        """Every entry with its values on the host: one device-to-host copy per device."""
        entries = ([first] if first is not None else []) + self.entries
        self.entries = []
        if not entries:
            return []
        by_device: dict[torch.device, list[int]] = {}
        for i, e in enumerate(entries):
            by_device.setdefault(e[3].device, []).append(i)
        host: list[list[float]] = [[] for _ in entries]
        for idx in by_device.values():
            flat = torch.cat([entries[i][3].reshape(-1) for i in idx]).tolist()  # cat promotes dtypes
            pos = 0
            for i in idx:
                n = entries[i][3].numel()
                host[i] = flat[pos:pos + n]
                pos += n
        return [(k, s, key, v) for (k, s, key, _), v in zip(entries, host)]
