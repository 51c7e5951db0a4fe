"""Comparing two arrays without crying wolf near zero.

An element fails only if BOTH its absolute error exceeds `atol` AND its relative error exceeds
`rtol` (Polygraphy's semantics): a 1e-7 difference on a value of 1e-9 is not a mismatch, nor is a
1e-3 difference on a value of 1e4. NaN equals NaN and an infinity equals the same infinity; a
non-finite value against a finite one always fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["ErrorStats", "compare_arrays"]


@dataclass
class ErrorStats:
    """How far `actual` is from `expected`. Relative errors are taken where |expected| > atol."""

    passed: bool
    max_abs: float
    max_rel: float
    p99_abs: float
    p99_rel: float
    mismatch_fraction: float
    elements: int
    shape_mismatch: bool = False
    nonfinite_mismatch: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def brief(self) -> str:
        if self.shape_mismatch:
            return "shapes differ"
        return (f"max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}, p99 abs {self.p99_abs:.3g}, "
                f"{self.mismatch_fraction:.1%} of {self.elements} elements out of tolerance")


def compare_arrays(actual: np.ndarray, expected: np.ndarray, *, atol: float, rtol: float) -> ErrorStats:
    """Error statistics of `actual` against the reference `expected`."""
    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape:
        return ErrorStats(False, float("inf"), float("inf"), float("inf"), float("inf"), 1.0, int(e.size), True)
    if e.size == 0:
        return ErrorStats(True, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    if a.dtype.kind not in "fc" or e.dtype.kind not in "fc":
        bad = a != e
        frac = float(bad.mean())
        diff = float(np.abs(a.astype(np.float64) - e.astype(np.float64)).max()) if a.dtype.kind != "b" else frac
        return ErrorStats(not bad.any(), diff, 0.0, diff, 0.0, frac, int(e.size))
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    fa, fe = np.isfinite(a64), np.isfinite(e64)
    same_nonfinite = (~fa & ~fe) & ((np.isnan(a64) & np.isnan(e64)) | (a64 == e64))
    nonfinite_bad = (~fa | ~fe) & ~same_nonfinite
    both = fa & fe
    abs_err = np.zeros_like(a64)
    abs_err[both] = np.abs(a64[both] - e64[both])
    scale = np.abs(e64)
    rel_err = np.zeros_like(a64)
    np.divide(abs_err, scale, out=rel_err, where=both & (scale > 0))
    rel_err[both & (scale == 0) & (abs_err > 0)] = np.inf
    failing = nonfinite_bad | (both & (abs_err > atol) & (rel_err > rtol))
    finite_abs = abs_err[both]
    meaningful = rel_err[both & (scale > atol)]
    return ErrorStats(
        passed=not failing.any(),
        max_abs=float(finite_abs.max()) if finite_abs.size else 0.0,
        max_rel=float(meaningful.max()) if meaningful.size else 0.0,
        p99_abs=float(np.percentile(finite_abs, 99)) if finite_abs.size else 0.0,
        p99_rel=float(np.percentile(meaningful, 99)) if meaningful.size else 0.0,
        mismatch_fraction=float(failing.mean()), elements=int(e.size), nonfinite_mismatch=int(nonfinite_bad.sum()))
