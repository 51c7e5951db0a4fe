"""Replay the step a repro bundle saved: bit for bit, then under anomaly mode, then bisect the model.

A watched run saves ``RUN.bundle.pt`` at its first non-finite loss or gradient, loss spike or crash
(`modeldebug.capture.bundle`); ``modeldebug replay RUN.bundle.pt`` (or `replay()`) re-executes that
step and says whether the same values came back and which module first left the healthy range.
"""

from __future__ import annotations

from .core import ReplayResult, replay
from .load import load_bundle

__all__ = ["ReplayResult", "load_bundle", "replay"]
