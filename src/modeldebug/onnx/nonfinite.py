"""NaN and Inf in the all-intermediates run: the first node that introduces them, and the ones by design.

Attention masks are built from `-inf` on purpose (a constant, or `masked_fill(mask, -inf)`), and
the scores they are added to hold `-inf` wherever the mask says so. Such values are by design and
are not a finding: an infinity (never a NaN) that comes from a constant or initializer, or flows
from one, or that the PyTorch reference holds at the same elements. The first NaN, or an infinity
made from finite inputs (an overflow, `log(0)`), is reported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .graph import GraphIndex

__all__ = ["nonfinite_report"]


def _floating(arr: Any) -> bool:
    return isinstance(arr, np.ndarray) and arr.dtype.kind in "fc"


def _same_nonfinite(arr: np.ndarray, ref: np.ndarray | None) -> bool:
    """The reference has exactly the same non-finite values at exactly the same elements."""
    if ref is None or not _floating(ref) or ref.shape != arr.shape:
        return False
    bad = ~np.isfinite(arr)
    return bool(np.array_equal(bad, ~np.isfinite(ref)) and np.array_equal(arr[bad], ref[bad]))


def nonfinite_report(g: GraphIndex, values: dict[str, np.ndarray], ref: Any,
                     feeds: dict[str, np.ndarray]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the first node that introduces NaN/Inf not by design, a summary of the by-design values)."""
    nan_feeds = {k: int(np.isnan(v).sum()) for k, v in feeds.items() if _floating(v) and np.isnan(v).any()}
    design: set[str] = {k for k, v in feeds.items() if _floating(v) and k not in nan_feeds
                        and not np.isfinite(v).all()}
    carried: set[str] = set(nan_feeds)  # values the NaN of the inputs flows into
    carrier: dict[str, Any] | None = None
    sources: list[str] = []
    constants: dict[str, bool] = {}

    def nonfinite_constant(name: str) -> bool:
        if name not in constants:
            arr = g.constant(name) if name in g.initializers else None
            constants[name] = arr is not None and _floating(arr) and not np.isfinite(arr).all() \
                and not np.isnan(arr).any()
            if constants[name]:
                design.add(name)
                sources.append(name)
        return constants[name]

    count = 0
    for i in g.order:
        node = g.nodes[i]
        for name in g.inputs_of(i):
            nonfinite_constant(name)
        for v in node.output:
            arr = values.get(v)
            if arr is None or not _floating(arr) or np.isfinite(arr).all():
                continue
            has_nan = bool(np.isnan(arr).any())
            if any(n in carried for n in g.inputs_of(i)):  # the inputs' NaN, passed on
                carried.add(v)
                carrier = carrier or {"node": g.label(i), "op_type": node.op_type, "value": v,
                                      "count": int((~np.isfinite(arr)).sum())}
                continue
            bad_inputs = [n for n in g.inputs_of(i) if n in design or (
                _floating(x := values.get(n)) and not np.isfinite(x).all())]
            torch_arr = ref.values.get(v)
            if not has_nan and (node.op_type == "Constant" or _same_nonfinite(arr, torch_arr)
                                or (bad_inputs and all(n in design for n in bad_inputs))):
                design.add(v)
                count += 1
                if node.op_type == "Constant":
                    sources.append(g.label(i))
                continue
            in_torch = (torch_arr is not None and _floating(torch_arr) and not np.isfinite(torch_arr).all()) or any(
                not np.isfinite(o).all() for o in ref.outputs if _floating(o))
            first = {"node": g.label(i), "op_type": node.op_type, "value": v,
                     "count": int((~np.isfinite(arr)).sum()), "nan": has_nan, "nonfinite_inputs": bad_inputs,
                     "fed": [n for n in bad_inputs if n in feeds],
                     "torch_nonfinite": bool(in_torch)}
            return first, _summary(count, sources)
    if carrier is not None:
        in_torch = any(_floating(o) and not np.isfinite(o).all() for o in ref.outputs)
        return {**carrier, "nan": True, "nonfinite_inputs": list(nan_feeds), "from_inputs": nan_feeds,
                "input_sizes": {k: int(feeds[k].size) for k in nan_feeds}, "torch_nonfinite": in_torch}, \
            _summary(count, sources)
    return None, _summary(count, sources)


def _summary(count: int, sources: list[str]) -> dict[str, Any] | None:
    if not count and not sources:
        return None
    return {"values": count, "sources": sources[:20]}
