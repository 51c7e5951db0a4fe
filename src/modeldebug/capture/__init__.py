"""Capture: the only package that registers hooks on or patches PyTorch."""

from .launcher import RunResult, run_script
from .session import WatchSession, watch
from .tracer import Tracer

__all__ = ["RunResult", "Tracer", "WatchSession", "run_script", "watch"]
