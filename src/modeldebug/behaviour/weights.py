"""Do the weights look trained? All-zero, non-finite, or statistics of a fresh initialisation.

A model that "knows nothing" most often has weights that never loaded. We read (never change) each
parameter and compare it with the initialisation its layer would get:

- PyTorch's default for Linear/Conv (``kaiming_uniform_(a=sqrt(5))``): uniform within
  +-1/sqrt(fan_in), so every value lies inside that bound and the kurtosis is 1.8;
- PyTorch's default for RNN/GRU/LSTM: uniform within +-1/sqrt(hidden_size);
- Hugging Face's ``_init_weights``: normal with std ``initializer_range`` (0.02; output projections
  scaled down by sqrt(2 * layers) in GPT-2-style models), kurtosis 3.

Trained weights leave those shapes (they grow past the bound, get heavier tails). Embeddings start
as N(0, 1) and can stay close to it during short training, so they are reported but do not vote.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["TensorStats", "WeightCheck", "check_weights"]

_SAMPLE = 200_000  # elements used for the shape statistics of one big tensor


@dataclass
class TensorStats:
    """Summary statistics of one parameter, and the initialisation it resembles (if any)."""

    name: str
    shape: list[int]
    nonfinite: int
    zero_fraction: float
    mean: float
    std: float
    absmax: float
    kurtosis: float | None
    init_like: str | None = None


@dataclass
class WeightCheck:
    """The verdict on a model's weights, with the per-tensor evidence."""

    n_tensors: int = 0
    n_params: int = 0
    nonfinite_tensors: list[str] = field(default_factory=list)
    zero_fraction: float = 0.0
    zero_matrices: list[str] = field(default_factory=list)
    checked: int = 0
    init_like: list[str] = field(default_factory=list)
    training_mode: bool = False
    active_dropout: list[str] = field(default_factory=list)
    tensors: list[TensorStats] = field(default_factory=list)

    @property
    def verdict(self) -> str | None:
        """'nonfinite', 'all_zero', 'random_init', 'zero_matrices' or None (looks trained)."""
        if self.nonfinite_tensors:
            return "nonfinite"
        if self.n_params and self.zero_fraction >= 0.99:
            return "all_zero"
        if self.checked and len(self.init_like) / self.checked >= 0.75:
            return "random_init"
        if self.zero_matrices:
            return "zero_matrices"
        return None

    def to_dict(self, *, tensors: int = 12) -> dict[str, Any]:
        d = asdict(self)
        d["tensors"] = [asdict(t) for t in self.tensors[:tensors]]
        d["verdict"] = self.verdict
        return d


def _stats(name: str, p: Any) -> TensorStats:
    import torch

    flat = p.detach().reshape(-1)
    finite = torch.isfinite(flat)
    nonfinite = int((~finite).sum())
    sample = flat[:_SAMPLE].float()
    sample = sample[torch.isfinite(sample)]
    if sample.numel() == 0:
        return TensorStats(name, list(p.shape), nonfinite, 0.0, float("nan"), float("nan"), float("nan"), None)
    mean = float(sample.mean())
    std = float(sample.std()) if sample.numel() > 1 else 0.0
    kurt = float(((sample - mean) ** 4).mean() / std ** 4) if std > 0 and sample.numel() >= 64 else None
    return TensorStats(name, list(p.shape), nonfinite, float((flat == 0).float().mean()), mean, std,
                       float(sample.abs().max()), kurt)


def _uniform_like(s: TensorStats, bound: float) -> bool:
    return (s.kurtosis is not None and s.absmax <= bound * (1 + 1e-5) and 1.5 <= s.kurtosis <= 2.1
            and abs(s.mean) <= 0.2 * bound)


def _hf_normal_like(s: TensorStats, init_std: float) -> bool:
    # Output projections get init_std / sqrt(2 * n_layers) in GPT-2-style models, hence the range below.
    return (s.kurtosis is not None and 0.1 * init_std <= s.std <= 1.1 * init_std and 2.7 <= s.kurtosis <= 3.3
            and abs(s.mean) <= 0.1 * s.std)


def check_weights(module: Any) -> WeightCheck:
    """Inspect `module`'s parameters (read-only) and say whether they look trained."""
    import torch
    from torch import nn

    check = WeightCheck(training_mode=bool(module.training))
    init_std = getattr(getattr(module, "config", None), "initializer_range", None)
    zeros = 0
    seen: set[int] = set()  # tied weights (embedding = output layer) are counted once
    with torch.no_grad():
        for mod_name, mod in module.named_modules():
            if isinstance(mod, nn.Dropout) and mod.p > 0 and mod.training:
                check.active_dropout.append(mod_name or type(mod).__name__)
            for p_name, p in mod.named_parameters(recurse=False):
                if not p.is_floating_point() or p.numel() == 0 or id(p) in seen:
                    continue
                seen.add(id(p))
                name = f"{mod_name}.{p_name}" if mod_name else p_name
                s = _stats(name, p)
                check.n_tensors += 1
                check.n_params += p.numel()
                zeros += round(s.zero_fraction * p.numel())
                if s.nonfinite:
                    check.nonfinite_tensors.append(name)
                if p.dim() >= 2 and s.zero_fraction == 1.0:
                    check.zero_matrices.append(name)
                if p.dim() < 2 or s.kurtosis is None or isinstance(mod, nn.Embedding):
                    check.tensors.append(s)
                    continue  # biases, norms and embeddings do not vote (see the module docstring)
                check.checked += 1
                if isinstance(mod, (nn.Linear, nn.modules.conv._ConvNd)) and p_name == "weight":
                    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(p)
                    if fan_in and _uniform_like(s, 1 / fan_in ** 0.5):
                        s.init_like = f"uniform(+-1/sqrt({fan_in}))"
                elif isinstance(mod, nn.RNNBase) and _uniform_like(s, 1 / mod.hidden_size ** 0.5):
                    s.init_like = f"uniform(+-1/sqrt({mod.hidden_size}))"
                if s.init_like is None and _hf_normal_like(s, init_std or 0.02):
                    s.init_like = f"normal(0, {init_std or 0.02:g})"
                if s.init_like:
                    check.init_like.append(name)
                check.tensors.append(s)
    check.zero_fraction = zeros / check.n_params if check.n_params else 0.0
    # The evidence shows the damning tensors first.
    check.tensors.sort(key=lambda t: (not t.nonfinite, t.init_like is None, -len(t.shape)))
    return check
