"""Context: what every rule reads, computed once per analysis from a Record.

Also the small robust-statistics helpers rules share (windows, running medians, noise levels), so
that each threshold is relative to the run's own history rather than an absolute constant.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any, TypeVar

import numpy as np

from ..config import DebuggingConfig, Thresholds
from ..record import Entity, Record, Series
from ..smoothing import window

__all__ = ["Context", "fmt", "module_ref", "running_median", "trailing_medians", "window"]

T = TypeVar("T")

from ..measures import RELU_LIKE  # noqa: E402  (module types whose outputs are exactly zero for inactive units)


def running_median(values: np.ndarray, w: int) -> np.ndarray:
    """Trailing running median (robust to single spikes); the first w-1 points use what came before."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0 or w <= 1:
        return values.copy()
    w = min(w, n)
    out = np.empty(n)
    start = min(w - 1, n)  # the growing windows at the start; when long, exact each time one grows by 1/64
    coarse = start * start // 2 > _EXACT_CELLS
    i = 0
    while i < start:
        step = max(1, i // 64) if coarse else 1
        out[i: min(i + step, start)] = np.median(values[: i + 1])
        i += step
    if n >= w:  # the full windows, vectorised
        windows = np.lib.stride_tricks.sliding_window_view(values, w)
        every = max(1, w // 64) if (n - w + 1) * w > _EXACT_CELLS else 1
        if every == 1:
            out[w - 1:] = _row_medians(windows, np.arange(len(windows)))
        else:  # a long run: the exact median every `every` steps (< 2% of a window), held until the next one
            at = np.arange(0, len(windows), every)
            held = np.repeat(_row_medians(windows, at), every)[: len(windows)]
            out[w - 1:] = held
            out[-1] = np.median(windows[-1])
    return out


def _row_medians(windows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`np.median(windows[rows], axis=1)`, a block of rows at a time: the median copies what it
    partitions, and a block of a few MB stays in the cache where a whole 10,000-step run's windows
    (150 MB) would not."""
    per = max(1, _BLOCK_CELLS // windows.shape[1])
    return np.concatenate([np.median(windows[rows[i:i + per]], axis=1) for i in range(0, len(rows), per)])


def trailing_medians(values: np.ndarray, w: int) -> np.ndarray:
    """`np.median(values[t - w:t])` for every t in range(w, len(values)): the median of the w points
    before each point, in vectorised blocks (a few MB at a time) instead of one call per point."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if w < 1 or n <= w:
        return np.empty(0)
    windows = np.lib.stride_tricks.sliding_window_view(values[:-1], w)  # windows[i] is values[i:i + w]
    return _row_medians(windows, np.arange(len(windows)))


_BLOCK_CELLS = 1_000_000

# Above this many window cells (a quarter-run window on a 69,000-step run is 1.2e9) the running median
# is computed exactly at every w/64-th step and held in between: trailing, never looking ahead.
_EXACT_CELLS = 20_000_000


def module_ref(name: str, root: str = "model") -> str:
    """Python that reaches a module by qualified name: model.encoder.fc or model.get_submodule('net.0')."""
    parts = name.split(".")
    if name and all(p.isidentifier() for p in parts):
        return f"{root}.{name}"
    return f"{root}.get_submodule({name!r})"


def fmt(x: float | None) -> str:
    """A number for a message: 3 significant digits, scientific when tiny or huge."""
    if x is None or not np.isfinite(x):
        return str(x)
    ax = abs(x)
    if ax != 0 and (ax < 1e-3 or ax >= 1e5):
        return f"{x:.2e}"
    return f"{x:.3g}"


class Context:
    """A Record plus config, with the derived views rules share."""

    def __init__(self, record: Record, config: DebuggingConfig | None = None) -> None:
        self.record = record
        self.config = config or DebuggingConfig()
        self._shared: dict[str, Any] = {}

    def shared(self, key: str, compute: Callable[[], T]) -> T:
        """`compute()`, once per analysis: a measurement several rules read (the weight shrink, the
        oscillation detector) is computed by the first that asks and handed to the others as is, so
        callers must not change what they get."""
        if key not in self._shared:
            self._shared[key] = compute()
        return self._shared[key]  # type: ignore[no-any-return]

    def running_median(self, values: np.ndarray, w: int) -> np.ndarray:
        """`running_median(values, w)`, computed once per analysis for the same values and window:
        several loss-curve rules smooth the same loss, and on a long run each smoothing is tens of
        milliseconds. Keyed by the values themselves; the array returned is read-only."""
        values = np.ascontiguousarray(values, dtype=float)
        key = f"running_median/{w}/{len(values)}"
        memo: dict[bytes, np.ndarray] = self.shared(key, dict)
        raw = values.tobytes()
        if raw not in memo:
            smooth = running_median(values, w)
            smooth.flags.writeable = False
            memo[raw] = smooth
        return memo[raw]

    @property
    def t(self) -> Thresholds:
        return self.config.thresholds

    def option(self, name: str) -> Any:
        """A rule option's value: the user's if set in `DebuggingConfig.thresholds`, else the catalogue's
        default. A name no spec declares is an error, never a silent fallback."""
        return getattr(self.config.thresholds, name)

    @property
    def n_steps(self) -> int:
        return self.record.n_steps

    @cached_property
    def loss(self) -> Series:
        """Training loss per step (NaN where it was not finite).

        A step without a loss of its own is left out: an optimizer step with no backward pass since
        the last one (two models' losses both backpropagated, then their two optimizers stepped) is
        a row whose loss is missing, not NaN (the record stores both as NULL)."""
        s = self.record.column("loss")
        n_back = self.record.column("n_backward").values
        lossless = np.isnan(s.values) & (n_back == 0)
        if not lossless.any():
            return s
        return Series(s.steps[~lossless], s.values[~lossless])

    @cached_property
    def lr(self) -> float | None:
        lr = self.record.column("lr").finite().values
        return float(lr[-1]) if len(lr) else None

    def events_by(self, kind: str, key: str = "module") -> dict[str, list[dict[str, Any]]]:
        """The `kind` events' data, grouped by their `key` field (a probe's events per module), in order."""
        out: dict[str, list[dict[str, Any]]] = {}
        for ev in self.record.events(kind):
            out.setdefault(str(ev.data.get(key)), []).append(ev.data)
        return out

    def lr_at(self, step: int | None) -> float | None:
        """The learning rate at `step` (the last one recorded at or before it): the rate a finding dated
        there blames. A schedule moves it, and the run's last rate (`lr`: a one-cycle's 2e-06 at its end)
        is not the one that was too high at a spike in the middle."""
        col = self.record.column("lr").finite()
        if step is None or not len(col):
            return self.lr
        at = col.values[col.steps <= step]
        return float(at[-1]) if len(at) else float(col.values[0])

    @cached_property
    def modules(self) -> dict[str, Entity]:
        return {e.name: e for e in self.record.entities("module")}

    @cached_property
    def params(self) -> dict[str, Entity]:
        return {e.name: e for e in self.record.entities("param")}

    @cached_property
    def grad_norms(self) -> dict[str, Series]:
        return self.record.stat("grad_norm", kind="param")

    def param_stat(self, stat: str) -> dict[str, Series]:
        return self.record.stat(stat, kind="param")

    def module_stat(self, stat: str) -> dict[str, Series]:
        return self.record.stat(stat, kind="module")

    @cached_property
    def optimizer_params(self) -> set[str] | None:
        """Names of parameters held by any optimizer (None when the run used no optimizer)."""
        events = self.record.events("optimizer")
        if not events:
            return None
        return {name for e in events for g in e.data.get("groups", []) for name in g.get("params", [])}

    def label(self, module: str | None) -> str:
        """A module name for a sentence: 'fc2 (Linear)', '3 (ReLU)'."""
        if not module:
            return "the model"
        e = self.modules.get(module)
        return f"{module} ({e.type})" if e is not None and e.type else module

    @cached_property
    def _leaves(self) -> list[Entity]:
        return [e for e in self.modules.values() if e.info.get("leaf")]

    @cached_property
    def _leaf_index(self) -> dict[str, int]:
        return {e.name: i for i, e in enumerate(self._leaves)}

    def leaf_modules_in_order(self) -> list[Entity]:
        return self._leaves

    def next_leaf(self, module: str) -> Entity | None:
        """The leaf module registered right after `module` (None at the end or when unknown)."""
        i = self._leaf_index.get(module)
        return self._leaves[i + 1] if i is not None and i + 1 < len(self._leaves) else None

    def previous_layer(self, module: str) -> Entity | None:
        """The nearest leaf module with parameters registered before `module` (forward order guess)."""
        i = self._leaf_index.get(module)
        if i is None:
            return None
        return next((e for e in reversed(self._leaves[:i]) if e.info.get("params")), None)

    def evidence_series(self, s: Series, limit: int = 8) -> dict[str, Any]:
        """A short sample of a series for a finding's evidence."""
        idx = np.linspace(0, len(s) - 1, num=min(limit, len(s))).astype(int) if len(s) else []
        return {"steps": [int(s.steps[i]) for i in idx], "values": [float(s.values[i]) for i in idx]}
