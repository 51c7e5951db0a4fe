"""Rendering: terminal (rich), JSON; reads findings and series, computes nothing new."""

from .model import REPORT_VERSION, Report

__all__ = ["REPORT_VERSION", "Report"]
