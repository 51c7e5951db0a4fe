"""Comparing two arrays without crying wolf near zero, at a tolerance that fits their precision.

An element fails only if BOTH its absolute error exceeds `atol` AND its relative error exceeds
`rtol` (Polygraphy's semantics): a 1e-7 difference on a value of 1e-9 is not a mismatch, nor is a
1e-3 difference on a value of 1e4. NaN equals NaN and an infinity equals the same infinity; a
non-finite value against a finite one always fails.

The default tolerances scale with the floating-point type the value was computed in (its own,
its reference's and every float it depends on, the lowest precision of them): fp16 rounding of a
few 1e-4 is not a divergence, while the same error in float64 is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["DTYPE_TOLERANCES", "ErrorStats", "Tolerance", "compare_arrays", "float_name", "lowest_precision",
           "tolerance_for"]

#: Default (atol, rtol) per floating-point type. float32 is measured on exported models (errors of a
#: few 1e-7 relative); the others scale with their machine epsilon (fp16 ~1e-3, bf16 ~8e-3, fp64 ~2e-16).
#: fp16 exports of the test transformer differ from PyTorch's fp16 by up to 4.9e-4 abs / 1.6e-2 rel.
DTYPE_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-8, 1e-7),
    "float32": (1e-4, 1e-3),
    "float16": (1e-3, 1e-2),
    "bfloat16": (1e-2, 5e-2),
}
# float8 and other narrow types: looser than bf16 (3 mantissa bits or fewer).
_NARROW = (1e-1, 2.5e-1)
_RANK = {"float64": 4, "float32": 3, "float16": 2, "bfloat16": 1}


def float_name(dtype: Any) -> str | None:
    """The name of a floating-point dtype (numpy or ml_dtypes), None for other types."""
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name in _RANK or name.startswith("float8") or name.startswith("float4"):
        return name
    try:
        return name if np.dtype(dtype).kind in "fc" else None
    except TypeError:
        return None


def lowest_precision(dtypes: Any) -> str:
    """The lowest-precision floating-point type among `dtypes` ('float32' when none is a float)."""
    names = [n for n in (float_name(d) for d in dtypes) if n is not None]
    if not names:
        return "float32"
    return min(names, key=lambda n: _RANK.get(n, 0 if n.startswith(("float8", "float4")) else 3))


@dataclass(frozen=True)
class Tolerance:
    """The tolerance one comparison used, and why: the default for a dtype, or given by the user."""

    atol: float
    rtol: float
    dtype: str
    given: bool = False

    def describe(self) -> str:
        how = "given" if self.given else f"default for {self.dtype}"
        return f"abs > {self.atol:g} AND rel > {self.rtol:g} ({how})"


def tolerance_for(dtypes: Any, *, atol: float | None = None, rtol: float | None = None,
                  table: dict[str, tuple[float, float]] | None = None) -> Tolerance:
    """The tolerance for values computed in `dtypes` (the lowest precision decides).

    `atol`/`rtol` given by the user win over the per-dtype default; one given alone keeps the
    default of the other.
    """
    name = lowest_precision(dtypes)
    default = (table or DTYPE_TOLERANCES).get(name, DTYPE_TOLERANCES.get(name, _NARROW))
    return Tolerance(default[0] if atol is None else atol, default[1] if rtol is None else rtol, name,
                     atol is not None or rtol is not None)


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
    atol: float | None = None
    rtol: float | None = None
    shapes: tuple[list[int], list[int]] | None = None  # (actual, expected) when they differ

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def brief(self) -> str:
        if self.shape_mismatch:
            return f"shapes differ: {self.shapes[0]} vs {self.shapes[1]} in the reference" if self.shapes else \
                "shapes differ"
        # the abs/rel figures are of the elements finite on both sides: say the NaN/Inf ones, or a FAIL reads
        # 'max abs 0'
        nonfinite = (f" ({self.nonfinite_mismatch} NaN/Inf where the other side has another value)"
                     if self.nonfinite_mismatch else "")
        return (f"max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}, p99 abs {self.p99_abs:.3g}, "
                f"{self.mismatch_fraction:.1%} of {self.elements} elements out of tolerance{nonfinite}")


def compare_arrays(actual: np.ndarray, expected: np.ndarray, *, atol: float, rtol: float) -> ErrorStats:
    """Error statistics of `actual` against the reference `expected`."""
    a, e = np.asarray(actual), np.asarray(expected)
    if a.shape != e.shape:
        return ErrorStats(False, float("inf"), float("inf"), float("inf"), float("inf"), 1.0, int(e.size), True,
                          atol=atol, rtol=rtol, shapes=(list(a.shape), list(e.shape)))
    if e.size == 0:
        return ErrorStats(True, 0.0, 0.0, 0.0, 0.0, 0.0, 0, atol=atol, rtol=rtol)
    if float_name(a.dtype) is None or float_name(e.dtype) is None:
        bad = a != e
        frac = float(bad.mean())
        numeric = a.dtype.kind in "iuf" and e.dtype.kind in "iuf"  # not bool, not strings (a Cast to STRING)
        diff = float(np.abs(a.astype(np.float64) - e.astype(np.float64)).max()) if numeric else frac
        return ErrorStats(not bad.any(), diff, 0.0, diff, 0.0, frac, int(e.size), atol=atol, rtol=rtol)
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
        mismatch_fraction=float(failing.mean()), elements=int(e.size), nonfinite_mismatch=int(nonfinite_bad.sum()),
        atol=atol, rtol=rtol)
