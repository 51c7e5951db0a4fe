"""Process and CUDA memory, read without synchronising the device."""

from __future__ import annotations

import os
import resource

import torch

__all__ = ["cuda_memory_mb", "peak_rss_mb", "rss_mb"]

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
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch.cuda.memory_allocated() / 2**20
