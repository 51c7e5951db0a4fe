"""Process and CUDA memory, read without synchronising the device."""

from __future__ import annotations

import os
import resource

import torch

__all__ = ["RssReader", "cuda_memory_mb", "peak_rss_mb", "rss_mb"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float | None:
    """Resident set size now, in MiB (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE / 2**20
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cuda_memory_mb() -> float | None:
    """Memory held by live CUDA tensors, if CUDA is in use (allocator counters: no sync)."""
    if not torch.cuda.is_initialized():  # not available, or not in use (is_available() costs ~1 µs)
        return None
    return torch.cuda.memory_allocated() / 2**20


class RssReader:
    """rss_mb() for every step: keeps /proc/self/statm open and re-reads it with pread (~µs)."""

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            self._fd = None

    def read(self) -> float | None:
        if self._fd is None:
            return None
        try:
            return int(os.pread(self._fd, 128, 0).split()[1]) * _PAGE / 2**20
        except (OSError, ValueError, IndexError):
            return None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()
