"""The time axis: an autoregressive model's output at position t must not depend on inputs after t.

For a sequence input, (batch, time) integer tokens or (batch, time, ...) values, the probe runs a
private copy of the model in eval mode and backpropagates from output position t (a seeded random
projection of it: the rows of a softmax sum to one, so a plain sum would hide a dependence) to the
inputs. Tokens have no gradient, so for them the output of the embedding that embeds the token
tensor stands in for the input: a forward hook (capture.probes.EmbeddedTokens, shared with the
watch's probes) replaces it with a leaf tensor. Only the
same samples' later positions are read (other samples are the batch-mixing probe's business).

It makes a claim only about a model known to be autoregressive (`claimed_causal`): a bidirectional
encoder looks at the future by design. Hooks live on the copy and are removed in `finally`.

```python
result = causality_probe(work)      # ProbeResult: pass, fail (PRB003 causality_leak) or skipped
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextlib import ExitStack
from typing import Any

import torch
from torch import nn

from ..capture.isolation import set_training
from ..capture.probes import EmbeddedTokens
from ..rules.base import Recommendation
from .probes import ProbeResult
from .request import Workload, call_model
from .tools.base import make_finding

__all__ = ["CAUSAL_WORDS", "causality_probe", "claimed_causal", "sequence_input", "token_batch_mixing"]

#: words in the request's issue or context that say the model is autoregressive
CAUSAL_WORDS = re.compile(r"\b(causal|auto-?regressive|language[- ]model\w*|next[- ]token|decoder[- ]only|gpt\w*)\b",
                          re.IGNORECASE)
#: a later position counts as seen when its gradient is above this fraction of the largest one
_LEAK = 1e-6
_SAMPLES = 4
_MAX_MODULES = 64


def sequence_input(x: Any) -> torch.Tensor | None:
    """The sequence the model reads: the input tensor, or `input_ids` of a mapping; None otherwise."""
    if isinstance(x, Mapping):
        x = x.get("input_ids")
    return x if isinstance(x, torch.Tensor) and x.dim() >= 2 and x.shape[1] >= 2 else None


def claimed_causal(work: Workload) -> str | None:
    """Why the model is known to be autoregressive (targets shifted by one, HF labels, the user's words), or None."""
    x, y = work.batch
    seq = sequence_input(x)
    if seq is not None and isinstance(y, torch.Tensor) and y.shape == seq.shape and y.dtype == seq.dtype:
        same = (y[:, :-1] == seq[:, 1:]).float().mean()
        if float(same) >= 0.9:
            return "the targets are the inputs shifted by one (next-token prediction)"
    if isinstance(x, Mapping) and seq is not None and isinstance(x.get("labels"), torch.Tensor):
        labels = x["labels"]
        if labels.shape == seq.shape:
            kept = labels != -100
            if bool(kept.any()) and bool((labels[kept] == seq[kept]).all()):
                return "the model's labels are its input_ids (a causal language model's own loss)"
    request = work.request
    text = " ".join([request.issue or "", *(f"{k} {v}" for k, v in (request.context or {}).items())])
    m = CAUSAL_WORDS.search(text)
    return f"the request says {m.group(0)!r}" if m else None


def _logits(out: Any) -> Any:
    if isinstance(out, Mapping):
        return out.get("logits")
    if hasattr(out, "logits") and not isinstance(out, torch.Tensor):
        return out.logits
    if isinstance(out, (tuple, list)) and out:
        return out[0]
    return out


class _Forward:
    """One forward of a private copy with the sequence as a leaf tensor, and the outputs of its modules."""

    def __init__(self, work: Workload) -> None:
        self.work = work
        x = work.inputs()
        self.seq = sequence_input(x)
        self.leaf: torch.Tensor | None = None
        self.embedding: str | None = None
        self.outputs: list[tuple[str, torch.Tensor]] = []
        self.out: Any = None
        self.reason = ""

    def run(self, *, record_modules: bool = False) -> bool:
        """Forward once; False (with `reason`) when there is nothing to differentiate."""
        seq = self.seq
        assert seq is not None
        model = self.work.clone()
        set_training(model, False)
        x = self.work.inputs()
        shape = tuple(seq.shape[:2])
        embedded: EmbeddedTokens | None = None
        with ExitStack() as stack:
            if seq.is_floating_point():
                self.leaf = seq.detach().clone().requires_grad_(True)
                x = {**x, "input_ids": self.leaf} if isinstance(x, Mapping) else self.leaf
            else:
                embedded = EmbeddedTokens(model, seq.shape)
                stack.callback(embedded.remove)
            if record_modules:
                def keep(name: str, output: Any) -> None:
                    t = output[0] if isinstance(output, (tuple, list)) and output else output
                    embedded_yet = self.leaf is not None or (embedded is not None and embedded.found)
                    if (embedded_yet and isinstance(t, torch.Tensor) and t.is_floating_point()
                            and t.requires_grad and tuple(t.shape[:2]) == shape and len(self.outputs) < _MAX_MODULES):
                        self.outputs.append((name, t))

                for name, m in model.named_modules():
                    if name and not isinstance(m, nn.Embedding):
                        stack.callback(m.register_forward_hook(lambda mod, a, o, _n=name: keep(_n, o)).remove)
            with torch.random.fork_rng(devices=[]), torch.enable_grad():
                self.out = _logits(call_model(model, x))
            if embedded is not None:
                leaf, name = embedded.leaf_for(sequence_input(x))
                if leaf is not None and tuple(leaf.shape[:2]) == shape:  # not an EmbeddingBag's [B, D]
                    self.leaf, self.embedding = leaf, name
        if self.leaf is None:
            self.reason = "no nn.Embedding embeds the token tensor: there is nothing to differentiate"
            return False
        out = self.out
        if not isinstance(out, torch.Tensor) or not out.is_floating_point() or out.dim() < 2 or not out.requires_grad:
            self.reason = "the model's output is not a tensor that depends on its input"
            return False
        return True

    def dependence(self, target: torch.Tensor, t: int, seed: int) -> torch.Tensor | None:
        """|d target[:, t] / d input| per (sample, position), for the first samples; None when unrelated."""
        n = min(_SAMPLES, target.shape[0])
        g = torch.Generator().manual_seed(seed + t)
        picked = target[:n, t]
        weights = torch.randn(picked.shape, generator=g).to(device=picked.device, dtype=picked.dtype)
        assert self.leaf is not None
        (grad,) = torch.autograd.grad((picked * weights).sum(), self.leaf, retain_graph=True, allow_unused=True)
        if grad is None:
            return None
        return grad[:n].detach().abs().flatten(2).amax(2) if grad.dim() > 2 else grad[:n].detach().abs()


def _leaks(per_pos: torch.Tensor | None, t: int) -> list[int]:
    """Later positions (> t) whose gradient is above `_LEAK` of the largest."""
    if per_pos is None:
        return []
    top = float(per_pos.max())
    if top <= 0:
        return []
    later = per_pos[:, t + 1:].amax(0)
    return [t + 1 + int(i) for i in torch.nonzero(later > _LEAK * top).flatten().tolist()]


def causality_probe(work: Workload) -> ProbeResult:
    """Output position t must not depend on inputs after t, for a model known to be autoregressive."""
    fwd = _Forward(work)
    if fwd.seq is None:
        return ProbeResult("causality", "skipped", "needs a (batch, time[, ...]) sequence input", {})
    why = claimed_causal(work)
    if why is None:
        return ProbeResult("causality", "skipped", "not known to be autoregressive (a bidirectional encoder may look "
                           "ahead by design): train on next-token targets or say 'causal' in the issue", {})
    if not fwd.run(record_modules=True):
        return ProbeResult("causality", "skipped", fwd.reason, {"why_causal": why})
    out, steps = fwd.out, int(fwd.seq.shape[1])
    layout = "(batch, time, ...)"
    if out.dim() == 3 and out.shape[0] == fwd.seq.shape[0] and out.shape[1] != steps and out.shape[2] == steps:
        # (batch, classes, time): the layout CrossEntropyLoss takes a sequence's logits in
        out, layout = out.transpose(1, 2), "(batch, classes, time)"
    if tuple(out.shape[:2]) != tuple(fwd.seq.shape[:2]):
        return ProbeResult("causality", "skipped", f"the output {tuple(out.shape)} has no time axis aligned with the "
                           f"input {tuple(fwd.seq.shape)}", {"why_causal": why})
    seed = work.options.seed
    positions = sorted({p for p in (0, 1, steps // 2, steps - 2) if 0 <= p <= steps - 2})
    data: dict[str, Any] = {"why_causal": why, "sequence_length": steps, "positions_checked": positions,
                            "samples": min(_SAMPLES, out.shape[0]), "through": fwd.embedding or "the input",
                            "output_layout": layout}
    leak_t, seen = None, []
    for t in positions:
        seen = _leaks(fwd.dependence(out, t, seed), t)
        if seen:
            leak_t = t
            break
    if leak_t is None:
        return ProbeResult("causality", "pass", f"output t depends only on inputs up to t (checked t = "
                           f"{', '.join(map(str, positions))} on {data['samples']} samples)", data)
    module = next((name for name, h in fwd.outputs if _leaks(fwd.dependence(h, leak_t, seed), leak_t)), None)
    data.update({"first_leaking_position": leak_t, "sees_positions": seen, "module": module})
    f = make_finding(
        "PRB003", "causality_leak", "model", severity="high", confidence=0.9 if "targets" in why or "labels" in why else 0.8,
        title=f"Output position {leak_t} depends on later inputs (positions {_span(seen)}): the model sees the future",
        description=(f"This model is autoregressive ({why}), so its output at position t may use inputs up to t only. "
                     f"The gradient of output {leak_t} reaches input positions {_span(seen)} of the same sample"
                     + (f", first in the output of {module}" if module else "")
                     + ". Trained like this it learns to copy the next token, and generation, where the future does "
                       "not exist yet, fails."),
        location=module, evidence=data, recommendations=[Recommendation(
            "fix", "Mask attention to the past (a causal mask), and check that no layer mixes the time axis forwards",
            "mask = nn.Transformer.generate_square_subsequent_mask(T)\n"
            "h = self.blocks(h, mask=mask, is_causal=True)\n"
            "# or: F.scaled_dot_product_attention(q, k, v, is_causal=True)")])
    return ProbeResult("causality", "fail", f.title, data, [f])


def _span(positions: list[int]) -> str:
    if len(positions) > 2 and positions == list(range(positions[0], positions[-1] + 1)):
        return f"{positions[0]}-{positions[-1]}"
    return ", ".join(map(str, positions[:8])) + (", ..." if len(positions) > 8 else "")


def token_batch_mixing(work: Workload) -> dict[str, Any] | None:
    """Batch mixing for token ids given in a mapping (`input_ids`), through the embedding: the capture
    probe's numbers, or None. A token tensor goes to `capture.probes.batch_mixing` itself.

    The gradient of samples 0's and N-1's outputs (random projections) on the other samples'
    embedded tokens must be zero.
    """
    fwd = _Forward(work)
    seq = fwd.seq
    if seq is None or seq.is_floating_point() or seq.shape[0] < 3 or not fwd.run():
        return None
    out = fwd.out
    if out.shape[0] != seq.shape[0]:
        return None
    g = torch.Generator().manual_seed(work.options.seed)
    ends = torch.stack([out[0], out[-1]])
    weights = torch.randn(ends.shape, generator=g).to(device=out.device, dtype=out.dtype)
    assert fwd.leaf is not None
    (grad,) = torch.autograd.grad((ends * weights).sum(), fwd.leaf, allow_unused=True)
    if grad is None:
        return None
    per_sample = grad.detach().flatten(1).abs().amax(1)
    others = per_sample[1:-1]
    return {"batch": int(seq.shape[0]), "probed_samples": [0, int(seq.shape[0]) - 1], "own_grad": float(per_sample[0]),
            "mixed_samples": int((others > 0).sum()), "max_other_grad": float(others.max()),
            "fraction_mixed": float((others > 0).float().mean()), "through": fwd.embedding}
