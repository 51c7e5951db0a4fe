"""One-time active probes the tracer runs on the user's batch, leaving no trace in the run.

Each probe runs on a private twin of the model (see isolation.py): a deep copy without hooks,
its ``training`` flags set directly, called with the random state forked and every global hook
suspended. The user's model, its hooks, its ``requires_grad`` flags, its state and the random
stream are never touched, so the run's losses stay bit-identical. A model that cannot be copied is
not probed; the probe says why.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch import nn

from .. import measures as M
from .isolation import TwinError, quiet, set_training, twin
from .mixing_site import CallLog, mixing_site
from .stats import first_tensor, unmeasurable

__all__ = ["TWIN_MAX_BYTES", "EmbeddedTokens", "MixingProbe", "batch_mixing", "future_leak", "weight_bytes"]


class MixingProbe:
    """Runs `batch_mixing` once per run, on the first step's own batch, when a rule reads it; and
    `future_leak` on the same batch, when the first training loss's target is the ids shifted."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.mixing = M.BATCH_MIXING_PROBE in tracer.plan
        self.leak = M.FUTURE_LEAK_PROBE in tracer.plan
        self.done = not (self.mixing or self.leak)
        self.target: torch.Tensor | None = None  # the first training loss's integer target (losses.py)

    def once(self) -> None:
        tr = self.tracer
        if self.done or tr.replay is None:
            return
        self.done = True
        root, args, _ = tr.replay
        target, self.target = self.target, None
        for wanted, measure, probe in ((self.mixing, M.BATCH_MIXING_PROBE, batch_mixing),
                                       (self.leak and target is not None, M.FUTURE_LEAK_PROBE, future_leak)):
            if not wanted:
                continue
            tr.replaying = True
            try:
                result = probe(root, args, target) if probe is future_leak else probe(root, args)
            except Exception as exc:  # noqa: BLE001 - a model the probe cannot call like this: skip it, say why
                result = {"skipped": f"{type(exc).__name__}: {exc}"}
            finally:
                tr.replaying = False
            if result is not None:
                tr.writer.add_event(tr.step, measure.name, result)


_DETACHED = "no gradient reaches the input from the output: the input's path is detached (or the output does not use it)"


def batch_mixing(root: nn.Module, args: tuple[Any, ...], *, why: list[str] | None = None) -> dict[str, Any] | None:
    """Do the outputs of the first and last samples depend on the other samples of the batch?

    Backpropagates from the outputs of samples 0 and N-1 (the last one catches a recurrence run
    along the batch axis, where sample 0 only sees itself), in eval mode (so BatchNorm, which mixes
    samples by design in training, does not count), and measures the gradient on every other
    sample's input. A model that keeps samples apart gives exactly zero there; a `.view`/`reshape`
    that mixes the batch axis gives non-zero gradients. Returns None when the probe does not apply
    (no floating input, batch of one, output without the batch axis first); raises TwinError when
    the model could not be copied.

    The batch size may also be the size of another axis (a time-first model whose sequence is as
    long as the batch: input ``[T, B, F]`` with T == B, or a ``[T, B, C]`` output): then every
    pairing of an input axis and an output axis of that size is tried, and when one of them keeps
    its samples apart (each probed sample's output depends on its own input, and on no other) the
    model is consistent with a batch there. Which axis holds the user's samples cannot be told from
    the model (an RNN run across a batch-first batch computes what a time-first one does), so the
    probe says so and finds nothing.

    Token ids (an integer input) have no gradient: the probe then takes it at the output of the
    first embedding called on a tensor of their shape (``nn.Embedding``/``EmbeddingBag``), which
    holds the same samples on the same axes. A model that embeds its ids some other way (a
    functional ``F.embedding``) is not probed.

    `why`, when given, gets the reason the probe does not apply whenever it returns None.
    """
    def skip(reason: str) -> None:
        if why is not None:
            why.append(reason)

    x = first_tensor(args)
    if x is None:  # token ids?
        x = next((a for a in args if isinstance(a, torch.Tensor) and _is_index(a)), None)
    if x is None:
        return skip("no input is a floating-point tensor or token ids")
    if x.dim() < 1 or x.shape[0] < 3:
        return skip(f"the batch has {x.shape[0] if x.dim() else 1} sample(s): it needs at least 3")
    if not any(a is x for a in args):
        return skip("the input tensor is nested inside another argument")
    tokens = _is_index(x)  # token ids: the gradient is taken at their embedding instead
    if not tokens and (unmeasurable(x) is not None or x.dim() < 2):
        return skip(f"the input is {unmeasurable(x)}" if unmeasurable(x) is not None
                    else "the input has one value per sample (no feature axis)")
    size = weight_bytes(root)
    if size > TWIN_MAX_BYTES:
        return {"skipped": f"the model holds {size / 2**30:.1f} GiB of weights: the probe's copy of it would add as "
                           "much memory at step 0, so it is not made"}
    index = next(i for i, a in enumerate(args) if a is x)
    probe = None if tokens else x.detach().clone().requires_grad_(True)
    try:
        model, call, _ = twin(root, tuple(args), replace={} if tokens else {id(x): probe})
    except TwinError as exc:
        raise TwinError(f"the model could not be copied ({exc}); the probe never runs on the model itself") from exc
    call = list(call)
    if probe is not None:  # (token ids stay the twin's own copy of them: a model may edit its ids in place)
        call[index] = probe
    set_training(model, False)
    embedded = EmbeddedTokens(model, x.shape) if tokens else None
    calls = CallLog(model, int(x.shape[0]))  # (after the embeddings' hooks: it logs the leaves they return)
    try:
        with quiet(model), torch.enable_grad():
            out = first_tensor(model(*call))
            through: dict[str, Any] = {}
            if embedded is not None:
                probe, name = embedded.leaf_for(call[index])
                if probe is None:  # no embedding reads the ids: nothing to take the gradient at
                    return skip("no nn.Embedding reads the token ids")
                through = {"through": name}
            if out is not None and out.dim() >= 1 and out.shape[0] != x.shape[0] and probe is not None \
                    and out.requires_grad:
                graphs = _graph_assignment(call, x.shape[0], out.shape[0])
                if graphs is not None:  # nodes of several graphs, one output row per graph
                    return _graph_mixing(out, probe, graphs)
            if out is None or out.dim() == 0 or out.shape[0] != x.shape[0]:
                return skip("the output has no batch axis first" if out is not None else
                            "the output is not a tensor")
            if not out.requires_grad:  # (the copy's weights need none: the input is all that could)
                return skip(_DETACHED)
            if embedded is not None and _causal_along_axis_0(out, probe):
                return {"skipped": f"token ids {list(x.shape)}: each output along axis 0 depends on that position and "
                                   "the ones before it only, as in a time-first sequence model ([T, B] ids); a "
                                   "recurrence run along the batch looks the same, so which it is cannot be told"}
            rows = embedded.rows_of(call[index]) if embedded is not None else None
            if rows is not None:
                through["reordered_before_embedding"] = True
            result = _mixing(out, probe, x.shape[0], rows)
            if result is None:
                return skip(_DETACHED)
            if "skipped" in result:
                return result
            if result["mixed_samples"] and rows is None:
                n = int(x.shape[0])
                site = mixing_site(calls, out.select(0, 0).sum() + out.select(0, -1).sum(), (0, n - 1))
                through |= {"site": site} if site is not None else {}
            elif not result["mixed_samples"] and rows is None:
                calls.remove()  # (the rows are compared without the probe's hooks: removing twice is harmless)
                if embedded is not None:
                    embedded.remove()
                moved = position_dependence(model, call, out.detach(), int(x.shape[0]))
                through |= {"position_dependent": moved} if moved is not None else {}
            return result | through
    finally:
        calls.remove()
        if embedded is not None:
            embedded.remove()


def position_dependence(model: nn.Module, call: list[Any], out: torch.Tensor, n: int) -> dict[str, Any] | None:
    """Does a sample's output depend on where it sits in the batch? Called when the gradient reading
    found the samples apart (no output reads another sample's input): the model is run again on the
    same batch in reverse order, every argument whose axis 0 has the batch's size reversed with it, and
    each output row is compared with its own sample's output in the original order (axis 0 put back, and
    any other output axis of the batch's size either way, the closer kept: a `[B, B]` score matrix of two
    encoders reverses both, a vocabulary as large as the batch reverses nothing). A model that
    keeps samples apart gives the same rows, up to rounding; one that indexes something by the batch
    position (a positional encoding sliced with ``x.size(0)`` on a batch-first input, ``torch.arange``
    over the batch) gives other values. Returns None when nothing depends on the position; when which
    axis is the batch is ambiguous (an argument with the batch's size on another axis too: a sequence
    as long as the batch, whose `[T, T]` mask or positions would be reversed wrongly); when the
    arguments cannot all be reordered (a container holding tensors); when the model does not give the
    same output twice (randomness or state in eval mode); or when it cannot run on the reversed batch."""
    tensors = [a for a in call if isinstance(a, torch.Tensor)]
    if any(isinstance(a, (list, tuple, dict)) and first_tensor((a,)) is not None for a in call):
        return None
    if any(n in t.shape[1:] for t in tensors) or out.dim() < 1:
        return None
    order = torch.arange(n - 1, -1, -1)
    flipped = [a.detach().index_select(0, order.to(a.device)) if isinstance(a, torch.Tensor) and a.dim() and a.shape[0] == n
               else a for a in call]
    try:
        with torch.no_grad():
            again = first_tensor((model(*[a.detach() if isinstance(a, torch.Tensor) else a for a in call]),))
            moved = first_tensor((model(*flipped),))
    except Exception:  # noqa: BLE001 - a model that cannot take its batch reversed (sorted for packing): not judged
        return None
    if again is None or moved is None or moved.shape != out.shape or not again.is_floating_point():
        return None
    scale = float(out.abs().amax()) + 1e-12
    if float((again - out).abs().amax()) > _POSITION_TOLERANCE * scale:
        return None  # not the same output twice: nothing to compare against
    # axis 0 put back; any other axis of the batch's size may hold the batch too (a [B, B] score matrix) or
    # only share its size (a vocabulary of 16 with a batch of 16): every choice is tried, the closest kept
    moved = moved.index_select(0, order.to(moved.device))
    others = [d for d in range(1, moved.dim()) if moved.shape[d] == n][:4]
    diff = None
    for mask in range(1 << len(others)):
        candidate = moved
        for i, axis in enumerate(others):
            if mask >> i & 1:
                candidate = candidate.index_select(axis, order.to(moved.device))
        d = (candidate - out).abs().reshape(n, -1).amax(1) / scale
        if diff is None or float(d.max()) < float(diff.max()):
            diff = d
    rows = int((diff > _POSITION_TOLERANCE).sum())  # type: ignore[operator]
    if rows == 0:
        return None
    return {"rows_changed": rows, "max_relative_change": float(diff.max()), "reordering": "reversed"}


_EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)
#: A row that changes by more than this fraction of the output's largest value when the batch is
#: reordered depends on its position; below it, rounding (a matmul's blocking changes with the order).
_POSITION_TOLERANCE = 1e-3
#: A later position's gradient above this fraction of the largest at or before the probed position is
#: a leak; below it, rounding (float32 FFTs and long sums leave ~1e-7).
_LEAK_TOLERANCE = 1e-4
#: The probe copies the model: not one whose weights hold more than this (the copy doubles them).
TWIN_MAX_BYTES = 1 << 30


def weight_bytes(root: nn.Module) -> int:
    """What a copy of `root` adds: the bytes of its parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in (*root.parameters(), *root.buffers()))


def _is_index(x: torch.Tensor) -> bool:
    return not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool


class EmbeddedTokens:
    """Forward hooks on a model copy's embeddings: each output of one called on a tensor of the token
    ids' shape becomes a leaf that requires grad (the probe's stand-in for a float input), kept with
    the input it was called on and the module's name. The watch's probes here and the agent's
    causality and batch-mixing probes (agent/causality.py) differentiate token models through it."""

    def __init__(self, model: nn.Module, shape: torch.Size) -> None:
        self.shape = shape
        self.found: list[tuple[torch.Tensor, torch.Tensor, str]] = []
        self.handles = [m.register_forward_hook(self._hook(name)) for name, m in model.named_modules()
                        if isinstance(m, _EMBEDDINGS)]

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> Any:
            if not inputs or not isinstance(inputs[0], torch.Tensor) or inputs[0].shape != self.shape:
                return None
            if not isinstance(output, torch.Tensor) or not output.is_floating_point():
                return None
            leaf = output.detach().requires_grad_(True)
            self.found.append((inputs[0], leaf, name))
            return leaf

        return hook

    def leaf_for(self, ids: Any) -> tuple[torch.Tensor | None, str | None]:
        """The embedding of `ids` itself, else of the first tensor of their shape embedded (ids the model
        converted first; an encoder-decoder called (target ids, source ids) embeds the source first);
        with the embedding module's name."""
        found = self._entry(ids)
        return (found[1], found[2]) if found is not None else (None, None)

    def _entry(self, ids: Any) -> tuple[torch.Tensor, torch.Tensor, str] | None:
        if not self.found:
            return None
        return next((f for f in self.found if f[0] is ids), self.found[0])

    def rows_of(self, ids: torch.Tensor) -> list[list[int]] | None:
        """Where each sample of `ids` sits in the batch the embedding saw, when the model reordered its
        samples first (sorted by length for `pack_padded_sequence`: ``self.emb(toks[order])``): for
        sample i, the embedding rows holding its ids, matched by content (several when the batch
        holds identical samples: which of them is whose cannot be told, nor does it matter). None
        when the embedding saw `ids` in their own order, or something that is not a reordering of them."""
        found = self._entry(ids)
        if found is None or found[0] is ids or found[0].shape != ids.shape or ids.dim() < 1:
            return None
        seen = found[0]
        if torch.equal(seen, ids):
            return None
        where: dict[tuple[int, ...], list[int]] = {}
        for j, row in enumerate(seen.reshape(seen.shape[0], -1).tolist()):
            where.setdefault(tuple(row), []).append(j)
        own = [tuple(row) for row in ids.reshape(ids.shape[0], -1).tolist()]
        if Counter(own) != {k: len(v) for k, v in where.items()}:
            return None  # not a reordering of these samples
        return [where[k] for k in own]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _target_shift(ids: torch.Tensor, target: torch.Tensor) -> tuple[int, float] | None:
    """By how many positions the loss's target follows the token ids ``[B, T]``: the k (1 first, the
    next-token objective; then 0, 2, 3) with ``target[:, j] == ids[:, j + k]``, and the share of the
    positions compared that agree. The target may be shorter than the ids (a loss inside the model
    that drops the last position: ``logits[:, :-1]`` against ``labels[:, 1:]``); positions the loss
    ignores (negative targets) are not compared. None: no such k.

    Agreement must be far beyond chance (Cohen's kappa of 0.8 or more against the agreement the two
    value distributions give by themselves: a 0/1 feature beside tags that are mostly 0 agrees on 90%
    of positions by chance), at least 90%, and for k=0, where the bug it finds passes the very same
    tensor, 99.9% (sticky data, whose tokens repeat, agrees with itself a position on). Ids of fewer
    than 4 distinct values are not token ids."""
    b, t = ids.shape
    if target.numel() % b or target.numel() // b < 3 or int(torch.unique(ids).numel()) < 4:
        return None
    tg = target.reshape(b, -1)
    length = tg.shape[1]
    for k in (1, 0, 2, 3):
        n = min(length, t - k)
        if n < 3:
            continue
        scored = tg[:, :n] >= 0  # (positions the loss ignores, ignore_index=-100, are not compared)
        if int(scored.sum()) < 3:
            return None
        a, c = tg[:, :n][scored], ids[:, k:k + n][scored]
        agree = float((a == c).float().mean())
        if agree < (0.999 if k == 0 else 0.9):
            continue
        values, counts_a = torch.unique(a, return_counts=True)
        pa = dict(zip(values.tolist(), (counts_a.double() / len(a)).tolist()))
        values_c, counts_c = torch.unique(c, return_counts=True)
        chance = sum(pa.get(v, 0.0) * float(q) for v, q in zip(values_c.tolist(), (counts_c.double() / len(c)).tolist()))
        if chance < 1 and (agree - chance) / (1 - chance) >= 0.8:
            return k, agree
    return None


def future_leak(root: nn.Module, args: tuple[Any, ...], target: torch.Tensor) -> dict[str, Any] | None:
    """Does a next-token model see the token it must predict, and is its target the right one?

    Applies when the model reads token ids ``[B, T]`` through an embedding and the loss's target is
    those ids shifted (`_target_shift`; every integer input is tried: an encoder-decoder's decoder
    input is its second argument). Shifted by one (a language model's next-token objective): on a
    private copy, in eval mode, the gradient of sample 0's output at the middle position ``p`` is
    taken at the embedding of every position (`EmbeddedTokens.leaf_for`): a causal model gives zero
    at positions after ``p`` (up to rounding, `_LEAK_TOLERANCE`); a missing or wrong attention mask
    does not. Not shifted (the target IS the input at each position): the same gradient says whether
    a causal model reads the very token it must predict (a decoder fed the target instead of the
    right-shifted target); a model that reads every position (an autoencoder) is not judged.
    Shifted by 2 or 3: the model is taught to predict that many tokens ahead (labels shifted twice),
    said without a gradient. None when it does not apply."""
    if target.is_floating_point():
        return _next_step_leak(root, args, target)
    found = None
    for a in args:
        if isinstance(a, torch.Tensor) and _is_index(a) and a.dim() == 2 and a.shape[1] >= 4 and _is_index(target):
            shift = _target_shift(a, target)
            if shift is not None:
                found = (a, *shift)
                break
    if found is None:
        return None
    ids, k, shifted = found
    b, t = ids.shape
    if k >= 2:
        return {"sequence": int(t), "target_shift": k, "targets_shifted": shifted}
    if weight_bytes(root) > TWIN_MAX_BYTES:
        return None
    index = next(i for i, a in enumerate(args) if a is ids)
    model, call, _ = twin(root, tuple(args))
    set_training(model, False)
    embedded = EmbeddedTokens(model, ids.shape)
    try:
        with quiet(model), torch.enable_grad():
            out = first_tensor(model(*call))
            (leaf, _), p = embedded.leaf_for(call[index]), t // 2
            if leaf is None or out is None or out.numel() % (b * t) or not out.requires_grad:
                return None
            row = _position_row(out, b, t, p)
            if row is None:
                return None
            # a seeded random projection, not a sum: the rows of a softmax sum to one, which would
            # hide a dependence (as in the agent's causality probe)
            weights = torch.randn(row.shape, generator=torch.Generator().manual_seed(0)).to(row.device, row.dtype)
            (grad,) = torch.autograd.grad((row * weights).sum(), leaf, allow_unused=True)
    finally:
        embedded.remove()
    if grad is None:
        return None
    per_position = grad[0].detach().flatten(1).abs().amax(1)
    # not exactly zero but rounding's: a causal convolution by FFT leaks ~1e-7 of its own gradient
    floor = _LEAK_TOLERANCE * float(per_position[:p + 1].max())
    seen = [int(i) for i in torch.nonzero(per_position[p + 1:] > floor).flatten() + p + 1]
    result = {"sequence": int(t), "position": int(p), "target_shift": k, "targets_shifted": shifted,
              "own_grad": float(per_position[p]), "argument": index}
    if k == 1:
        return result | {"future_positions_seen": len(seen), "first_future_seen": seen[0] if seen else None,
                         "max_future_grad": float(per_position[p + 1:].max())}
    # the target is the input itself: a leak when a causal model reads the token at its own position
    return result | {"reads_own_target": bool(not seen and per_position[p] > floor)}


def _series(x: torch.Tensor) -> torch.Tensor | None:
    """A univariate series batch as ``[B, T]`` (``[B, T]``, ``[B, T, 1]`` or ``[B, 1, T]``), else None."""
    if x.dim() == 3 and 1 in (x.shape[1], x.shape[2]):
        x = x.reshape(x.shape[0], -1)
    return x if x.dim() == 2 and x.shape[1] >= 8 else None


def _next_step_leak(root: nn.Module, args: tuple[Any, ...], target: torch.Tensor) -> dict[str, Any] | None:
    """`future_leak` for a next-step forecaster: a float series ``[B, T]`` (or with one channel) trained to
    output, at every position, the series' next value (the target is the input shifted by one, value for
    value, at 99% of the positions or more). On a private copy, in eval mode, the gradient of sample 0's
    output at the middle position is taken at every input position: a causal model (a left-padded
    convolution, a recurrence, a masked attention) gives zero after it; a convolution padded on both sides
    ('same' padding) reads the next value, which is its own target. None when it does not apply."""
    found = None
    tg = _series(target.detach())
    for i, a in enumerate(args):
        x = _series(a.detach()) if isinstance(a, torch.Tensor) and a.is_floating_point() else None
        if x is None or tg is None or x.shape[0] != tg.shape[0] or float(x.std()) == 0.0:
            continue
        n = min(tg.shape[1], x.shape[1] - 1)
        if n >= 8 and float((tg[:, :n] == x[:, 1:n + 1]).float().mean()) >= 0.99:
            found = i
            break
    if found is None or weight_bytes(root) > TWIN_MAX_BYTES:
        return None
    b, t = int(args[found].shape[0]), int(_series(args[found]).shape[1])  # type: ignore[union-attr]
    model, call, _ = twin(root, tuple(args))
    set_training(model, False)
    leaf = call[found].detach().clone().requires_grad_(True)
    call = (*call[:found], leaf, *call[found + 1:])
    p = t // 2
    with quiet(model), torch.enable_grad():
        out = first_tensor(model(*call))
        if out is None or not out.requires_grad or out.numel() % (b * t):
            return None
        row = _position_row(out, b, t, p)
        if row is None:
            return None
        (grad,) = torch.autograd.grad(row.sum(), leaf, allow_unused=True)
    if grad is None:
        return None
    per_position = grad[0].detach().reshape(t, -1).abs().amax(1) if grad[0].numel() % t == 0 else None
    if per_position is None:
        return None
    floor = _LEAK_TOLERANCE * float(per_position[:p + 1].max())
    seen = [int(i) for i in torch.nonzero(per_position[p + 1:] > floor).flatten() + p + 1]
    return {"sequence": t, "position": p, "target_shift": 1, "targets_shifted": 1.0, "series": True,
            "own_grad": float(per_position[p]), "argument": found, "future_positions_seen": len(seen),
            "first_future_seen": seen[0] if seen else None, "max_future_grad": float(per_position[p + 1:].max())}


def _position_row(out: torch.Tensor, b: int, t: int, p: int) -> torch.Tensor | None:
    """Sample 0's output at position `p`: from ``[B, T, ...]`` or its flattening ``[B * T, ...]``, or from
    ``[B, C, T]`` (the logits as ``CrossEntropyLoss`` takes them for a sequence: classes second). Read as
    ``[B, T, C]``, that layout mixed classes with positions, and a healthy causal model read as one that sees
    the future. None for a layout with no time axis of length `t` where one is expected."""
    if out.dim() >= 3 and out.shape[0] == b:
        if out.shape[1] == t and out.shape[-1] == t and out.dim() == 3:
            return None  # [B, T, T] or [B, V, T] with V == T: which axis is time cannot be told
        if out.shape[1] == t:
            return out[0, p]
        if out.shape[-1] == t:
            return out[0, ..., p]
        return None
    return out.reshape(b, t, -1)[0, p]


def _causal_along_axis_0(out: torch.Tensor, probe: torch.Tensor) -> bool:
    """Does the first output along axis 0 depend on its own position only, and the last one on
    earlier positions too? Token ids laid out time first (a language model's ``[T, B]`` batches
    into an RNN or a causal decoder) read so, and so does an attention or a reshape that mixes
    samples, which makes every output depend on the others, not."""
    n = probe.shape[0]
    first, last = (torch.autograd.grad(out.select(0, i).sum(), probe, allow_unused=True, retain_graph=True)[0]
                   for i in (0, n - 1))
    if first is None or last is None:
        return False
    first_rows, last_rows = (g.detach().flatten(1).abs().amax(1) for g in (first, last))
    return not bool((first_rows[1:] > 0).any()) and bool((last_rows[:-1] > 0).any())


def _graph_assignment(call: list[Any], nodes: int, rows: int) -> torch.Tensor | None:
    """A batch of graphs (PyTorch Geometric's layout): an integer vector giving each of the `nodes` input
    rows its graph, sorted, from 0 to `rows` - 1 (one output row per graph), at least 2 graphs."""
    for a in call:
        if isinstance(a, torch.Tensor) and _is_index(a) and a.dim() == 1 and a.shape[0] == nodes and rows >= 2:
            if int(a.min()) == 0 and int(a.max()) == rows - 1 and bool((a[1:] >= a[:-1]).all()):
                return a
    return None


def _graph_mixing(out: torch.Tensor, probe: torch.Tensor, graphs: torch.Tensor) -> dict[str, Any] | None:
    """`batch_mixing` for a batch of graphs: do the outputs of up to 8 graphs (the first, the last, and
    some between) depend on the nodes of other graphs? A collate that offsets each graph's edges
    wrongly wires graphs together."""
    g_last = out.shape[0] - 1
    own, mixed, largest = 0.0, set(), 0.0
    assign = graphs.to(probe.device)
    probed = sorted({round(i * g_last / 7) for i in range(8)})  # the first, the last, and six between
    for g in probed:
        (grad,) = torch.autograd.grad(out[g].sum(), probe, allow_unused=True, retain_graph=g != probed[-1])
        if grad is None:
            return None
        per_node = grad.detach().flatten(1).abs().amax(1)
        mine = assign == g
        own = max(own, float(per_node[mine].max()) if bool(mine.any()) else 0.0)
        touched = (per_node > 0) & ~mine
        mixed.update(int(v) for v in assign[touched].unique().tolist())
        if bool(touched.any()):
            largest = max(largest, float(per_node[touched].max()))
    return {"batch": int(out.shape[0]), "unit": "graph", "nodes": int(graphs.shape[0]), "probed_samples": probed,
            "own_grad": own, "mixed_samples": len(mixed), "max_other_grad": largest,
            "fraction_mixed": len(mixed) / max(g_last, 1)}


def _mixing(out: torch.Tensor, probe: torch.Tensor, n: int, rows: list[list[int]] | None = None) -> dict[str, Any] | None:
    """The per-sample reading of `batch_mixing` (see there), for the model output `out` and the leaf
    `probe` holding the batch's `n` samples; `rows`: where each input sample sits along the probe's
    axis 0 when the model reordered the samples before embedding them (`EmbeddedTokens.rows_of`), so
    that a model which sorts and restores the order keeps its samples apart, and one that sorts
    without restoring gives each output another sample's gradient."""
    in_axes = [a for a in range(probe.dim()) if probe.shape[a] == n]
    out_axes = [b for b in range(out.dim()) if out.shape[b] == n]
    first: dict[str, Any] | None = None
    for b in out_axes:  # axis 0 first: the usual reading, and the only one when no other axis has the batch's size
        (grad,) = torch.autograd.grad(out.select(b, 0).sum() + out.select(b, -1).sum(), probe, allow_unused=True,
                                      retain_graph=True)  # (the mixing site's gradient reads it next)
        if grad is None:
            if b == 0:
                return None
            continue
        for a in in_axes:
            per_sample = grad.detach().movedim(a, 0).flatten(1).abs().amax(1)
            twins = torch.zeros(n, dtype=torch.bool)
            if rows is not None and a == 0:  # in the input's sample order; identical samples read as one
                per_sample = torch.stack([per_sample[r].max() for r in rows])
                twins = torch.tensor([r == rows[0] or r == rows[-1] for r in rows])
            others = per_sample[1:-1][~twins[1:-1].to(per_sample.device)]
            apart = not bool((others > 0).any())
            if first is None:
                first = {
                    "batch": int(n),
                    "probed_samples": [0, int(n) - 1],
                    "own_grad": float(per_sample[0]),
                    "mixed_samples": int((others > 0).sum()),
                    "max_other_grad": float(others.max()) if others.numel() else 0.0,
                    "fraction_mixed": float((others > 0).float().mean()) if others.numel() else 0.0,
                }
                if apart:
                    return first  # samples kept apart along axis 0: the common, healthy case
            elif apart and bool(per_sample[0] > 0) and bool(per_sample[-1] > 0):  # (not a reading that sees nothing)
                return {"skipped": f"the batch size {n} is also the size of axis {a} of the input {list(probe.shape)}"
                                   f" or axis {b} of the output {list(out.shape)}, and samples read along those "
                                   "axes stay apart: which axis is the batch cannot be told"}
    return first

