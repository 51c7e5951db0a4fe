"""Data rules: the model's input (scale, channel order), batch mixing, train/validation leakage.

They read the input batch statistics, the one-time batch-mixing probe and the train/validation
fingerprint overlap (docs/record.md). `crash_kind` names the crashes that are data-and-loss
problems (labels out of range, channels-last images, loss target sizes); `runtime.classify`
consults it first. What the loss is fed is in labels.py (targets, class balance) and lossfn.py
(probabilities where logits belong, shapes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import measures as M
from ..record import Entity
from .base import Finding, Recommendation, Rule
from .context import Context, fmt
from .graphs import adjacency_findings
from .runtime import crash_findings

__all__ = ["RECURRENT", "BatchMixing", "ChannelOrder", "DataLeakage", "InputNotNormalized", "crash_kind", "model_layers"]


_NORM_LAYERS = {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LayerNorm", "GroupNorm",
                "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LazyBatchNorm1d", "LazyBatchNorm2d"}


# -- crashes that are data problems ------------------------------------------------------------
_TARGET_OOB = re.compile(r"Target (-?\d+) is out of bounds|t >= 0 && t < n_classes", re.I)
_TARGET_01 = re.compile(r"all elements of target should be between 0 and 1", re.I)
_CHANNELS = re.compile(r"expected input\[([\d, ]+)\] to have (\d+) channels, but got (\d+) channels", re.I)
_LOSS_SIZE = re.compile(r"(Using a target size|Target size) \(torch\.Size\(\[([\d, ]*)\]\)\) .*input size "
                        r"\(torch\.Size\(\[([\d, ]*)\]\)\)|0D or 1D target tensor expected, multi-target not supported", re.I)


def crash_kind(exc_type: str, message: str) -> str | None:
    """The data-and-loss kind a crash message names, or None (then it is a generic runtime error).

    `Target 5 is out of bounds` is a label problem; a conv input `[N, H, W, 3]` where 3 channels were
    expected is channels-last data; a loss whose target size differs from its input is a loss shape bug.
    """
    if _TARGET_OOB.search(message) or _TARGET_01.search(message):
        return "label_issue"
    m = _CHANNELS.search(message)
    if m:
        shape = [int(v) for v in m.group(1).split(",")]
        if len(shape) == 4 and shape[-1] == int(m.group(2)) and shape[1] != shape[-1]:
            return "channel_order"
    if _LOSS_SIZE.search(message):
        return "loss_shape_mismatch"
    return None


def _median(ctx: Context, name: str, stat: str, kind: str = "input") -> float:
    v = ctx.record.series(name, stat, kind=kind).finite().values
    return float(np.median(v)) if len(v) else math.nan


def model_layers(ctx: Context, model: str) -> list[Entity]:
    """Leaf modules of one model, in registration order (a guess at forward order)."""
    return [e for e in ctx.leaf_modules_in_order() if e.model == model]


def side_input(ctx: Context, e: Entity) -> str | None:
    """Why the measured input of model `e` is not its data, or None when it may be.

    The capture measures the first floating-point tensor among the forward's arguments. When the
    model's first layer is an Embedding, the data are integer ids and that float tensor is something
    passed beside them (a hidden state, a mask); a tensor shaped like a recurrent layer's state
    [layers x directions, batch, hidden] is the state itself (an `init_hidden()` of zeros).
    """
    layers = [m for m in model_layers(ctx, e.name) if m.info.get("params")]
    if layers and layers[0].type == "Embedding":
        return f"the model's first layer, {layers[0].name}, is an Embedding: its data are integer ids"
    shape = e.info.get("shape") or []
    if len(shape) != 3:
        return None
    for p in ctx.params.values():
        pshape = p.info.get("shape") or []
        rnn = ctx.modules.get(str(p.info.get("module")))
        if (p.name.rsplit(".", 1)[-1].startswith("weight_hh_l") and len(pshape) == 2 and rnn is not None
                and rnn.model == e.name and shape[-1] == pshape[1] and shape[0] <= 8):
            return f"its shape {shape} is {rnn.name}'s state (layers x directions, batch, hidden {pshape[1]})"
    return None


# -- input scale -----------------------------------------------------------------------------------
_SAME_SAMPLES_FIX = Recommendation(
    "fix", "Check that the loader returns different samples.",
    "x, y = next(iter(loader))\nprint(x.flatten(1).std(0).max())   # 0 means every sample is the same")


class InputNotNormalized(Rule):
    """Detects DAT001; its documentation and options are in the catalogue (`modeldebug explain DAT001`)."""

    code = "DAT001"
    requires = (*M.INPUT_STATS, M.MODEL_INPUT, M.MODULE_STD, M.GRAPH_ADJACENCY, M.VAL_INPUT)

    def check(self, ctx: Context) -> Iterator[Finding]:
        yield from adjacency_findings(self, ctx)  # a graph's adjacency beside the node features
        yield from self._validation_unlike_training(ctx)
        scale = ctx.option("input_scale")
        for e in ctx.record.entities("input"):
            if side_input(ctx, e) is not None:
                continue  # a recurrent state or a tensor beside token ids: not the data
            mean_s = ctx.record.series(e.name, "mean", kind="input")
            std_s = ctx.record.series(e.name, "std", kind="input")
            ok = np.isfinite(mean_s.values) & np.isfinite(std_s.values)
            if not ok.any():
                continue
            rms = float(np.median(np.sqrt(mean_s.values[ok] ** 2 + std_s.values[ok] ** 2)))
            const = ctx.record.series(e.name, "const_frac", kind="input").finite().values
            layers = model_layers(ctx, e.name)
            first = next((m for m in layers if m.info.get("params") or m.type in _NORM_LAYERS), None)
            step = int(mean_s.steps[ok][0])
            if len(const) >= 2 and np.all(const >= 1.0):
                yield self._identical(e, const, step)
                continue
            if first is not None and first.type in _NORM_LAYERS:
                continue  # the model standardises its own input
            peak = max(abs(_median(ctx, e.name, "min")), abs(_median(ctx, e.name, "max")))
            if rms >= scale or (0 < rms <= 1 / scale**2 and peak <= 1 / scale):  # sparse inputs have small RMS, not small peaks
                yield self._scale(ctx, e, rms, scale, first, step)

    def _scale(self, ctx: Context, e: Entity, rms: float, scale: float, first: Entity | None, step: int) -> Finding:
        mean, std = _median(ctx, e.name, "mean"), _median(ctx, e.name, "std")
        lo, hi = _median(ctx, e.name, "min"), _median(ctx, e.name, "max")
        big = rms >= scale
        pixels = big and lo >= 0 and 100 <= hi <= 255
        evidence: dict[str, Any] = {"input_rms": rms, "mean": mean, "std": std, "min": lo, "max": hi,
                                    "shape": e.info.get("shape"), "unit_scale_factor": rms if big else 1 / rms}
        where = ""
        if first is not None:
            out_std = _median(ctx, first.name, "std", kind="module")
            if np.isfinite(out_std):
                evidence |= {"first_layer": first.name, "first_layer_output_std": out_std}
                where = f" The first layer, {ctx.label(first.name)}, outputs values with std {fmt(out_std)}."
        chans = [_median(ctx, e.name, f"ch{i}_mean") for i in range(4)]
        chstd = [_median(ctx, e.name, f"ch{i}_std") for i in range(4)]
        n = sum(1 for c in chans if np.isfinite(c))
        div = 255.0 if pixels else 1.0
        if n:
            m = ", ".join(fmt(c / div) for c in chans[:n])
            s = ", ".join(fmt(max(c / div, 1e-8)) for c in chstd[:n])
            fix = (f"mean = torch.tensor([{m}]).view(1, {n}, 1, 1)   # per-channel, from your training data\n"
                   f"std = torch.tensor([{s}]).view(1, {n}, 1, 1)\n"
                   f"x = ({'x / 255.0' if pixels else 'x'} - mean) / std")
        else:
            fix = ("mean, std = X_train.mean(0), X_train.std(0).clamp_min(1e-8)   # per feature, training set only\n"
                   "x = (x - mean) / std   # apply the same mean/std to validation and test data")
        if big:
            what = "raw pixel values 0..255" if pixels else f"values on a scale of {fmt(rms)}"
            title = f"Input is not normalised: {what} (mean {fmt(mean)}, std {fmt(std)}, max {fmt(hi)})"
            why = (f"The input to {e.name} has RMS {fmt(rms)}, {fmt(rms)}x the unit scale that default "
                   f"initialisations assume (range {fmt(lo)}..{fmt(hi)}).{where} Pre-activations that large "
                   "saturate or kill activations and make gradients explode.")
            severity = "high" if rms >= scale**2 else "medium"
        else:
            title = f"Input is tiny: RMS {fmt(rms)} (max {fmt(hi)}), was it scaled twice?"
            why = (f"The input to {e.name} has RMS {fmt(rms)}, {fmt(1 / rms)}x below unit scale.{where} "
                   "The first layer gets almost no signal and almost no gradient.")
            severity = "low"
        return self.finding(
            severity=severity, confidence=0.85 if big else 0.6, title=title, description=why, location=first.name if first else None,
            step=step, evidence=evidence,
            recommendations=[Recommendation("fix", "Standardise the input to mean 0, std 1 (per channel or per feature).", fix),
                             Recommendation("best_practice", "Or let the model standardise its own input with a normalisation layer first.",
                                            "model = nn.Sequential(nn.BatchNorm1d(num_features), model)   # BatchNorm2d(channels) for images")])

    def _validation_unlike_training(self, ctx: Context) -> Iterator[Finding]:
        """The evaluation input on another scale than the training input: the validation (or test) data was
        not prepared like the training data (standardised with the training statistics on one side only)."""
        by_model: dict[str, list[dict[str, Any]]] = {}
        for ev in ctx.record.events(M.VAL_INPUT.name):
            by_model.setdefault(str(ev.data.get("model")), []).append(ev.data)
        limit = ctx.option("val_input_scale")
        inputs = {e.name: e for e in ctx.record.entities("input")}
        for model, evs in by_model.items():
            e = inputs.get(model)
            if e is None or side_input(ctx, e) is not None:
                continue  # no training input to compare with, or a recurrent state / a tensor beside token ids
            t_mean, t_std = _median(ctx, model, "mean"), _median(ctx, model, "std")
            v_mean = float(np.median([float(d.get("mean", np.nan)) for d in evs]))
            v_std = float(np.median([float(d.get("std", np.nan)) for d in evs]))
            if not all(np.isfinite([t_mean, t_std, v_mean, v_std])) or t_std <= 0 or v_std <= 0:
                continue
            ratio = v_std / t_std
            shift = abs(v_mean - t_mean) / t_std
            spread = max(ratio, 1 / ratio)
            if spread < limit and shift < limit:
                continue
            far = spread >= limit**2 or shift >= limit**2
            lo = float(np.median([float(d.get("min", np.nan)) for d in evs]))
            hi = float(np.median([float(d.get("max", np.nan)) for d in evs]))
            yield self.finding(
                severity="high" if far else "medium", confidence=0.8,
                title=(f"Validation input is on another scale than the training input: mean {fmt(v_mean)}, std "
                       f"{fmt(v_std)} against mean {fmt(t_mean)}, std {fmt(t_std)}"),
                description=(f"The model {model} was trained on inputs with mean {fmt(t_mean)} and std {fmt(t_std)} "
                             f"(median over the sampled training steps) and evaluated on inputs with mean {fmt(v_mean)} "
                             f"and std {fmt(v_std)}, range {fmt(lo)}..{fmt(hi)} (its first {len(evs)} evaluation "
                             f"passes): {fmt(spread)}x the spread, a shift of {fmt(shift)} training standard deviations. "
                             "The evaluation data was not prepared like the training data (a normalisation, "
                             "scaling or transform applied to one split only), so the model is scored on inputs "
                             "it never saw and the validation numbers say nothing about it."),
                location=None, step=None,
                evidence={"model": model, "train_mean": t_mean, "train_std": t_std, "val_mean": v_mean, "val_std": v_std,
                          "val_min": lo, "val_max": hi, "std_ratio": ratio, "mean_shift_in_train_std": shift,
                          "val_passes": len(evs), "threshold": limit}
                # far apart, a validation loss at or worse than chance, or never improving, follows from it
                | ({"explains": ["label_issue", "validation_not_improving", "overfitting"]} if far else {}),
                recommendations=[Recommendation(
                    "fix", "Prepare every split with the same code and the training split's statistics.",
                    "mean, std = X_train.mean(0), X_train.std(0).clamp_min(1e-8)   # training split only\n"
                    "X_train = (X_train - mean) / std\n"
                    "X_val = (X_val - mean) / std      # the same mean and std\n"
                    "X_test = (X_test - mean) / std")],
            )

    def _identical(self, e: Entity, const: np.ndarray, step: int) -> Finding:
        others = int(e.info.get("other_tensors") or 0)
        if others:  # constant node features beside a graph's edges: the information is in the other inputs
            return self.finding(
                severity="low", confidence=0.3,
                title=f"Every sample of {e.name}'s first input is identical: the information must come from its "
                      f"{others} other input{'s' if others > 1 else ''}",
                description=(f"On all {len(const)} sampled steps, every feature of the first floating-point input to "
                             f"{e.name} had the same value on every sample, and the model was also given {others} other "
                             "tensor(s). That is how graphs without node features are fed (a constant feature per "
                             "node, the structure in the edges), and then the layer reading the constant learns "
                             "little (small gradients there are expected). If the first input should vary, the data "
                             "pipeline returns one sample repeated."),
                step=step, evidence={"const_frac": const.tolist()[:8], "shape": e.info.get("shape"),
                                     "other_tensors": others, "by_design": True},
                recommendations=[_SAME_SAMPLES_FIX])
        return self.finding(
            severity="medium", confidence=0.8, title=f"Every sample in the batch is identical: the input to {e.name} carries no information",
            description=(f"On all {len(const)} sampled steps, every feature of the input to {e.name} had the same value on every "
                         "sample of the batch. The model can only learn the average target. The data pipeline returns one "
                         "sample repeated (an index that never changes, an expand/broadcast of one row, images that are all black)."),
            step=step, evidence={"const_frac": const.tolist()[:8], "shape": e.info.get("shape")},
            recommendations=[_SAME_SAMPLES_FIX])


# -- channel order ---------------------------------------------------------------------------------
class ChannelOrder(Rule):
    """Detects DAT002; its documentation and options are in the catalogue (`modeldebug explain DAT002`)."""

    code = "DAT002"
    requires = (*M.INPUT_CHANNELS, M.MODEL_INPUT, M.EXCEPTION, M.CONV_INPUT_LAYOUT)

    def check(self, ctx: Context) -> Iterator[Finding]:
        yield from crash_findings(self, ctx, self._crash)
        yield from self._interleaved(ctx)
        for e in ctx.record.entities("input"):
            shape = e.info.get("shape") or []
            if len(shape) != 4:
                continue
            conv = next((p for p in ctx.params.values() if p.model == e.name and len(p.info.get("shape", [])) == 4), None)
            in_ch = conv.info["shape"][1] if conv is not None else None
            if shape[-1] in (1, 3, 4) and shape[1] > 4 and in_ch == shape[1]:
                yield self._silent_channels_last(e, shape, conv)
            elif shape[1] == 3:
                f = self._bgr(ctx, e)
                if f is not None:
                    yield f

    def _interleaved(self, ctx: Context) -> Iterator[Finding]:
        """A first convolution whose input cycles through its channels along its last axis: channels-last data
        given the channels-first shape by `.view`/`.reshape` (capture/layout.py). Read as the mean squared
        difference between values k apart (k = 1 .. 2C + 1), such an axis is closest at k = C and 2C, each a dip
        below its neighbours k +- 1; a real time axis or image row grows with k (or, for noise, is flat)."""
        dip = ctx.option("interleave_dip")
        for module, probes in ctx.events_by(M.CONV_INPUT_LAYOUT.name).items():
            depths = [_period_dip(d.get("profile") or [], int(d.get("in_channels", 0))) for d in probes]
            if not depths or any(x is None or x < dip for x in depths):
                continue
            d = probes[0]
            c, shape = int(d["in_channels"]), d.get("shape") or []
            profile = [round(v / d["profile"][0], 3) for v in d["profile"]]
            conv = "Conv1d" if len(shape) == 3 else "Conv2d"
            before = "(N, L, C)" if len(shape) == 3 else "(N, H, W, C)"
            fix = ("x = x.permute(0, 2, 1)            # (N, L, C) -> (N, C, L), not x.view(N, C, L)" if len(shape) == 3
                   else "x = x.permute(0, 3, 1, 2)         # (N, H, W, C) -> (N, C, H, W), not x.view/reshape")
            # (medium: a real signal whose period is exactly in_channels, 7 daily features with a weekly cycle,
            # reads the same)
            yield self.finding(
                severity="medium", confidence=0.65,
                title=(f"The input of {module} looks like channels-last data reshaped, not permuted: along its last axis "
                       f"it repeats every {c} values, its in_channels"),
                description=(f"{module} ({conv}, in_channels={c}) gets {tuple(shape)}. Along its last axis, values {c} and "
                             f"{2 * c} apart are closer than values one step nearer or farther (mean squared difference at "
                             f"lags 1 to {2 * c + 1}, relative to lag 1: {', '.join(fmt(v) for v in profile)}; on each of "
                             f"{len(probes)} sampled steps). A real time axis or image row differs more the farther apart "
                             f"two values are; this one cycles through {c} interleaved series, the signature of {before} "
                             "data given the shape (N, C, ...) by `.view` or `.reshape`, which keeps the memory order and "
                             f"scrambles time, space and channels. (Or a signal whose period is exactly {c} steps: then "
                             "nothing is wrong.)"),
                location=module, step=None,
                evidence={"module": module, "in_channels": c, "input_shape": shape, "lag_profile": profile,
                          "dip_depths": depths},
                recommendations=[Recommendation("fix", "Move the channel axis with permute (or transpose), which moves "
                                                "the data; view and reshape only relabel it.", fix)])

    def _crash(self, d: dict[str, Any]) -> tuple[str, str, list[Recommendation]]:
        m = _CHANNELS.search(d.get("message", ""))
        shape = m.group(1).replace(" ", "") if m else "N,H,W,C"
        c = m.group(2) if m else "C"
        return (f"Images are channels-last [{shape}]: the convolution expects {c} channels in axis 1",
                f"The last axis holds the {c} colour channels, so the data is (N, H, W, C); PyTorch convolutions take (N, C, H, W).",
                [_PERMUTE])

    def _silent_channels_last(self, e: Entity, shape: list[int], conv: Entity) -> Finding:
        return self.finding(
            severity="high", confidence=0.8,
            title=f"Images look channels-last {tuple(shape)}: {conv.info.get('module') or conv.name} treats {shape[1]} image rows as channels",
            description=(f"The input to {e.name} has shape {tuple(shape)}: its last axis has {shape[-1]} entries, like colour "
                         f"channels, and the first convolution was built with in_channels={shape[1]}, the size of axis 1. "
                         "The model trains on a scrambled image: rows as channels, columns and colours as the image plane."),
            location=conv.info.get("module") or None, step=0,
            evidence={"input_shape": shape, "first_conv": conv.info.get("module"), "conv_weight_shape": conv.info.get("shape")},
            recommendations=[_PERMUTE])

    def _bgr(self, ctx: Context, e: Entity) -> Finding | None:
        means = [ctx.record.series(e.name, f"ch{i}_mean", kind="input").values for i in range(3)]
        stds = [ctx.record.series(e.name, f"ch{i}_std", kind="input").values for i in range(3)]
        m, s = np.array(means), np.array(stds)
        ok = np.isfinite(m).all(0) & np.isfinite(s).all(0) & (s > 0).all(0)
        if ok.sum() < 3:
            return None
        m, s = m[:, ok], s[:, ok]
        gap = (m[2] - m[0]) / s.mean(0)
        if not (np.all(gap >= ctx.option("bgr_gap")) and np.all(m[0] < m[1]) and np.all(m[1] < m[2])):
            return None
        mean = m.mean(1)
        return self.finding(
            severity="low", confidence=0.4,
            title=f"Channel means look reversed (BGR?): {fmt(mean[0])}, {fmt(mean[1])}, {fmt(mean[2])} for channels 0, 1, 2",
            description=(f"On every sampled step channel 2 is {fmt(float(np.median(gap)))} standard deviations above channel 0. "
                         "BGR images (cv2.imread) normalised with RGB constants look like this. If the model was pretrained on "
                         "RGB images, its first filters see red where they expect blue; if it was trained from scratch, or the "
                         "data is really blue-dominated, this is harmless."),
            step=int(ctx.record.series(e.name, "ch0_mean", kind="input").steps[0]),
            evidence={"channel_means": mean.tolist(), "channel_stds": s.mean(1).tolist(), "gap_in_stds": float(np.median(gap))},
            recommendations=[Recommendation("fix", "Convert BGR to RGB when loading (OpenCV loads BGR).",
                                            "img = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)\n# or, on a tensor: x = x.flip(1)")])


def _period_dip(profile: list[float], c: int) -> float | None:
    """How far the lag profile dips at lags `c` and `2c` below their neighbours (the smaller of the two depths,
    as a share of the neighbours' lower value); None unless those two lags hold the profile's two lowest values."""
    if c < 2 or len(profile) < 2 * c + 1:
        return None
    p = profile[:2 * c + 1]
    if sorted(sorted(range(len(p)), key=p.__getitem__)[:2]) != [c - 1, 2 * c - 1]:  # (index = lag - 1)
        return None
    depths = []
    for k in (c, 2 * c):
        around = min(p[k - 2], p[k])
        if not around > 0:
            return None
        depths.append(1.0 - p[k - 1] / around)
    return min(depths)


_PERMUTE = Recommendation("fix", "Move the channel axis to position 1 with permute (view/reshape would scramble the pixels).",
                          "x = x.permute(0, 3, 1, 2).contiguous()   # (N, H, W, C) -> (N, C, H, W)")


# -- batch mixing ------------------------------------------------------------------------------------
_ATTENTION = {"MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer", "Transformer"}
RECURRENT = frozenset({"RNN", "LSTM", "GRU"})  # the module types that run across an axis


def masked_whole_input(ctx: Context) -> dict[str, Any] | None:
    """The model sees one whole set and the loss reads a subset of its rows, or None.

    Transductive training (node classification on one graph): every pass feeds all N nodes (the
    batch axis is the nodes, which message passing mixes by design) and the loss picks the training
    or validation nodes by a mask. Seen as: one model input of N rows, and every loss call, training
    and validation, on fewer rows than N.
    """
    inputs = ctx.record.entities("input")
    if len(inputs) != 1:
        return None
    shape = inputs[0].info.get("shape") or []
    losses = [e for e in ctx.record.entities("loss") if e.info.get("input_shape")]
    if len(shape) < 2 or not losses:
        return None
    rows = [int(e.info["input_shape"][0]) for e in losses]
    if any(r >= int(shape[0]) for r in rows):
        return None
    return {"model_rows": int(shape[0]), "loss_rows": max(rows), "model": inputs[0].name}


def mixing_where(site: dict[str, Any] | None) -> tuple[str, str | None]:
    """A sentence saying where the batch-mixing probe saw the samples mix, and the finding's location."""
    if not site or not site.get("module"):
        return "", None
    name, kind = site["module"], site.get("module_type")
    if site.get("inside") and not site.get("after"):
        return (f" The mixing happens inside {name} ({kind}): the probed samples' rows of its output depend on other "
                "samples' rows of its input.", name)
    if site.get("inside"):
        return (f" The samples mix inside {name} ({kind}), between {site['after']}'s output and "
                f"{site['before']}.", name)
    after, before = site.get("after"), site.get("before")
    span = (f"between {after} and {before}" if after and before else f"before {before}" if before else
            f"after {after}" if after else "")
    return (f" The samples mix in {kind}.forward, in the code {span} (a view/reshape or an operation across "
            "axis 0 there).", f"{name}: {span}")


class BatchMixing(Rule):
    """Detects MIX001; its documentation and options are in the catalogue (`modeldebug explain MIX001`)."""

    code = "MIX001"
    requires = (M.BATCH_MIXING_PROBE, M.MODEL_INPUT, M.LOSS_CALLS, M.GRAPH_ADJACENCY)

    def check(self, ctx: Context) -> Iterator[Finding]:
        limit = ctx.option("mixing_fraction")
        for ev in ctx.record.events("batch_mixing_probe"):
            d = ev.data
            if d.get("unit") == "graph":  # any graph reading another's nodes is wired wrong
                if int(d.get("mixed_samples", 0)) > 0 and d.get("max_other_grad", 0) > 0:
                    yield self._graphs(d, ev.step)
                continue
            moved = d.get("position_dependent")
            if moved and not d.get("mixed_samples"):
                yield self._position(d, moved, ev.step)
                continue
            frac = d.get("fraction_mixed")
            if frac is None or not frac > limit or not d.get("max_other_grad", 0) > 0:
                continue
            batch = int(d.get("batch", 0))
            types = {m.type for m in ctx.modules.values()}
            hint = ""
            if types & _ATTENTION:
                hint = (f" The model has {', '.join(sorted(types & _ATTENTION))}: with batch_first=False (the default) it "
                        "attends across axis 0, which here is the batch.")
            elif types & RECURRENT:
                hint = (f" The model has {', '.join(sorted(types & RECURRENT))}: with batch_first=False (the default) "
                        "it runs across axis 0, which here is the batch.")
            own = float(d.get("own_grad", 0.0))
            reordered = bool(d.get("reordered_before_embedding")) and own == 0
            if reordered:  # each output is another sample's: the order is not restored, nothing is mixed
                hint = (" The model reorders the samples before its embedding (sorted, as for pack_padded_sequence) "
                        "and its outputs stay in that order, so each output is compared with another sample's target.")
            whole = masked_whole_input(ctx)
            if whole is not None and ctx.record.events(M.GRAPH_ADJACENCY.name):
                continue  # the nodes of a graph passed with its adjacency: they mix through it by design
            if whole is not None:
                hint += (f" The model reads all {whole['model_rows']} rows at once and the loss only {whole['loss_rows']} of "
                         "them (a mask): rows that are nodes of one graph mix with their neighbours by design, which is "
                         "not a bug.")
            restore = [Recommendation("fix", "Put the outputs back in the batch's order after the sorted pass.",
                                      "lengths_sorted, order = lengths.sort(descending=True)\n"
                                      "packed = pack_padded_sequence(self.emb(x[order]), lengths_sorted, batch_first=True)\n"
                                      "_, (h_n, _) = self.lstm(packed)\n"
                                      "return self.head(h_n[-1][order.argsort()])   # undo the sort\n"
                                      "# or: pack_padded_sequence(..., enforce_sorted=False) sorts and restores for you")] \
                if reordered else []
            where, location = mixing_where(d.get("site"))
            hint = where + hint
            yield self.finding(
                severity="low" if whole is not None else "high" if frac >= 0.5 or reordered else "medium",
                confidence=0.3 if whole is not None else 0.85,
                title=("Outputs left in a sorted order: sample 0's output is computed from other samples only"
                       if reordered else
                       f"Samples mix across the batch: sample 0's output depends on {d.get('mixed_samples')} of the other {batch - 1} samples"),
                description=(f"In eval mode, the gradient of sample 0's output reached {frac:.0%} of the other samples of a "
                             f"batch of {batch} (largest {fmt(float(d.get('max_other_grad', 0)))}, own sample "
                             f"{fmt(own)}){'; it does not depend on its own input at all' if own == 0 else ''}. "
                             f"A model that keeps samples apart gives exactly zero there.{hint} Typical causes: a "
                             "view/reshape that moves the batch axis, batch_first confusion, normalising with batch statistics."),
                location=location, step=ev.step, evidence=dict(d) | ({"masked_whole_input": whole} if whole else {}),
                recommendations=[
                    *restore,
                    Recommendation("fix", "Flatten without touching the batch axis.",
                                   "x = x.flatten(1)                  # or x.view(x.size(0), -1); never x.view(-1, batch)"),
                    Recommendation("fix", "Tell attention and recurrent layers that the batch comes first.",
                                   "nn.TransformerEncoderLayer(d_model, nhead, batch_first=True)\nnn.GRU(n_in, n_hidden, batch_first=True)"),
                ])


    def _position(self, d: dict, moved: dict, step: int | None) -> Finding:
        """Samples kept apart whose outputs change when the batch is reordered (the probe's position reading)."""
        batch, rows = int(d.get("batch", 0)), int(moved.get("rows_changed", 0))
        return self.finding(
            severity="high", confidence=0.8,
            title=f"A sample's output depends on its position in the batch: {rows} of {batch} outputs change when the "
                  "batch is reversed",
            description=(f"In eval mode, on a copy, no output read another sample's input (the gradient reading), yet "
                         f"running the same {batch} samples in reverse order changed {rows} of their outputs, by up to "
                         f"{moved.get('max_relative_change', 0):.1%} of the output's largest value. Something in the model "
                         "is indexed by the row of the batch instead of by the sample's own content or position: "
                         "typically a positional encoding built for time-first input ([seq, batch, d], as in the PyTorch "
                         "tutorial's `pe[:x.size(0)]`) added to a batch-first input, so every token of row b gets position "
                         "b's encoding and no token gets its own; or `torch.arange(x.size(0))` used as positions. The "
                         "model then learns nothing from the order of a sequence and scores a sample differently with "
                         "another batch."),
            location=None, step=step, evidence=dict(d),
            recommendations=[Recommendation(
                "fix", "Index the positional encoding by the sequence axis (axis 1 for batch-first input).",
                "# pe: [max_len, d_model]\n"
                "def forward(self, x):                 # x: [batch, seq, d_model]\n"
                "    return x + self.pe[: x.size(1)].unsqueeze(0)   # not self.pe[: x.size(0)]")])

    def _graphs(self, d: dict, step: int | None) -> Finding:
        """A batch of graphs whose graphs read each other's nodes (the probe's graph reading)."""
        g, k = int(d.get("batch", 0)), int(d.get("mixed_samples", 0))
        return self.finding(
            severity="high", confidence=0.85,
            title=f"Graphs mix across the batch: the outputs of {len(d.get('probed_samples') or [])} graphs probed depend on "
                  f"nodes of {k} other graphs",
            description=(f"The model was given {d.get('nodes')} nodes of {g} graphs (an integer vector assigns each node its "
                         "graph) and returns one row per graph. In eval mode, on a copy, the gradient of the outputs of "
                         f"graphs {d.get('probed_samples')} reached the nodes of {k} other graphs of the {g} (largest "
                         f"{fmt(float(d.get('max_other_grad', 0.0)))}). Graphs in a batch must not exchange messages: "
                         "their edges are wired across graphs. The usual cause is a hand-written collate that offsets "
                         "each graph's edge_index by the previous graph's node count instead of the running total."),
            location=None, step=step, evidence=dict(d),
            recommendations=[Recommendation(
                "fix", "Offset each graph's edges by the number of nodes of all the graphs before it.",
                "offset, edges = 0, []\nfor x, edge_index in graphs:\n    edges.append(edge_index + offset)\n"
                "    offset += x.shape[0]          # the running total, not the previous graph's size\n"
                "edge_index = torch.cat(edges, dim=1)")])


# -- leakage --------------------------------------------------------------------------------------------
class DatasetModified(Rule):
    """Detects DAT006; its documentation and options are in the catalogue (`modeldebug explain DAT006`)."""

    code = "DAT006"
    requires = (M.DATASET_CHANGED, M.MODEL_INPUT)

    def check(self, ctx: Context) -> Iterator[Finding]:
        by_array: dict[tuple[str, str], list[Any]] = {}
        for e in ctx.record.events(M.DATASET_CHANGED.name):
            by_array.setdefault((e.data["dataset"], e.data["array"]), []).append(e)
        # per-sample sizes of the model inputs: a cached (32, 32) sample fed as (1, 32, 32) is the input
        inputs = [math.prod(shape[1:]) for e in ctx.record.entities("input") if len(shape := e.info.get("shape") or ()) > 1]
        for (dataset, array), events in by_array.items():
            if len(events) < ctx.option("dataset_changed_epochs"):
                continue
            yield self._finding(dataset, array, events, inputs)

    def _finding(self, dataset: str, array: str, events: list[Any], inputs: list[int]) -> Finding:
        first, last = events[0].data, events[-1].data
        shape = tuple(first["shape"])
        is_input = math.prod(shape[1:]) in inputs
        epochs = [int(e.data["epoch"]) for e in events]
        every = epochs == list(range(epochs[0], epochs[0] + len(epochs))) and epochs[0] == 2
        shares = [f"{fmt(e.data['data_changed_frac'] * 100)}%" for e in events]
        per_epoch = ", ".join(shares if len(shares) <= 5 else [*shares[:3], "...", shares[-1]])
        zeros = (f" Zeros among the sampled cells went from {fmt(first['zero_frac_before'] * 100)}% to "
                 f"{fmt(last['zero_frac'] * 100)}%." if last["zero_frac"] > first["zero_frac_before"] + 0.01 else "")
        spread = (f" Their spread went from {fmt(first['std_before'])} to {fmt(last['std'])}."
                  if abs(last["std"] - first["std_before"]) > 0.05 * max(first["std_before"], 1e-12) else "")
        what = "the model's input" if is_input else f"an array of shape {list(shape)}"
        return self.finding(
            severity="high" if is_input and every else "medium", confidence=0.85 if is_input else 0.6,
            location=f"{dataset}.{array}",
            title=f"The training data changes every epoch: {dataset}.{array} ({what}) was modified in place "
                  f"in {len(events)} epochs",
            description=(f"The data set {dataset} keeps {what} in memory ({array}, {first['length']} samples). Its "
                         f"values changed between the starts of epochs {epochs[0]} and {epochs[-1] + 1}: "
                         f"{per_epoch} of {first['cells']} sampled cells that held data changed, epoch by epoch."
                         + zeros + spread + " A `__getitem__` that augments or normalises the sample it indexes in "
                         "place (a view of the cache) writes the change into the data set, and each epoch compounds "
                         "it."),
            step=int(events[0].step) if events[0].step is not None else None,
            evidence={"dataset": dataset, "array": array, "shape": list(shape), "model_input": is_input,
                      "epochs": epochs, "data_changed_frac": [e.data["data_changed_frac"] for e in events],
                      "zero_frac": [first["zero_frac_before"], *(e.data["zero_frac"] for e in events)],
                      "std": [first["std_before"], *(e.data["std"] for e in events)]},
            recommendations=[Recommendation(
                "fix", "Augment a copy of the sample, not the cached tensor itself.",
                "def __getitem__(self, i):\n"
                "    x = self.features[i].clone()     # NumPy: .copy(); a view would write into the cache\n"
                "    x[:, f0:f0 + w] = 0              # in-place augmentation is safe on the copy\n"
                "    return x, self.labels[i]")])


class DataLeakage(Rule):
    """Detects DAT004; its documentation and options are in the catalogue (`modeldebug explain DAT004`)."""

    code = "DAT004"
    requires = (M.DATA_OVERLAP, M.MODEL_INPUT, M.LOSS_CALLS, M.FUTURE_LEAK_PROBE, M.GRAPH_ADJACENCY)

    def check(self, ctx: Context) -> Iterator[Finding]:
        yield from self._sees_the_future(ctx)
        yield from self._overlap(ctx)

    def _shifted(self, ctx: Context, d: dict[str, Any], limit: float) -> Finding | None:
        """Validation windows that are training windows moved by one step. A chronological split shares at
        most a window's length of them (at its boundary); a series cut into overlapping windows and
        shuffled before the split shares a share of every validation window."""
        moved, length = int(d.get("shifted_overlap", 0)), int(d.get("window_length", 0))
        frac = float(d.get("shifted_fraction_of_val", 0.0))
        if frac < limit or moved <= max(length, 5) or masked_whole_input(ctx) is not None:
            return None
        return self.finding(
            severity="high" if frac >= 0.5 else "medium", confidence=0.75,
            title=(f"Validation windows overlap training windows: at least {frac:.0%} of validation samples are a "
                   f"training sample moved by one step ({moved} of {d.get('val_samples')})"),
            description=(f"Read as windows of a series along their axis 1 ({length} steps), {moved} validation samples "
                         "equal a training sample shifted by one step (all but one step in common), among the "
                         f"{d.get('train_samples')} training samples fingerprinted (a part of them, so the true share "
                         "is higher). A chronological split shares at most one window's length of such pairs, at its "
                         "boundary; this many means the overlapping windows were shuffled before the split (or lag "
                         "features of consecutive rows were split at random). The validation score then measures "
                         "interpolation between seen windows, not forecasting: it picks overfitted checkpoints and "
                         "promises more than the future will give."),
            step=None, evidence=dict(d),
            recommendations=[Recommendation(
                "fix", "Split the series in time first, leave a gap of one window between the parts, then cut each "
                "part into windows.",
                "cut = int(0.8 * len(series))\n"
                "train_x, train_y = windows(series[:cut])\n"
                "val_x, val_y = windows(series[cut + LOOKBACK:])     # after a gap: no window spans both parts")])

    def _sees_the_future(self, ctx: Context) -> Iterator[Finding]:
        """A next-token model whose output at a position depends on the positions after it."""
        for ev in ctx.record.events("future_leak_probe"):
            d = ev.data
            if d.get("target_shift") == 0 and d.get("reads_own_target"):
                yield self._reads_own_target(ev)
                continue
            n, p, t = int(d.get("future_positions_seen") or 0), d.get("position"), d.get("sequence")
            if n == 0 or p is None or t is None:
                continue
            types = {m.type for m in ctx.modules.values()}
            if d.get("series"):
                yield self._series_sees_the_future(d, types, ev.step)
                continue
            attention = sorted(types & _ATTENTION)
            yield self.finding(
                severity="high", confidence=0.9,
                title=f"The model sees the tokens it must predict: its output at position {p} depends on {n} later positions",
                description=(f"The loss's target is the input shifted by one ({d.get('targets_shifted', 0):.0%} of the "
                             f"positions): a next-token objective. On a private copy, the output at position {p} of a "
                             f"{t}-token sequence changed with the tokens at positions {d.get('first_future_seen')} and "
                             f"after, one of which is its own target. The model learns to copy the next token instead "
                             "of predicting it: the training and validation losses fall towards zero, and generation, "
                             "where the future is not there to read, fails."
                             + (f" The model has {', '.join(attention)}: without a causal mask it attends to every "
                                "position." if attention else "")),
                # the agent's causality probe (PRB003) measures the same leak, with the layer: it comes first
                location=None, step=ev.step, evidence=dict(d) | {"rests_on": ["causality_leak"]},
                recommendations=[Recommendation(
                    "fix", "Mask attention to later positions (a causal mask).",
                    "mask = nn.Transformer.generate_square_subsequent_mask(T)   # -inf above the diagonal\n"
                    "h = encoder(x, mask=mask, is_causal=True)\n"
                    "# or: F.scaled_dot_product_attention(q, k, v, is_causal=True)")],
            )

    def _series_sees_the_future(self, d: dict[str, Any], types: set[str], step: int | None) -> Finding:
        """A next-step forecaster (the target is the input series shifted by one) whose output at a position
        depends on later positions: 'same' padding in its convolutions, a bidirectional layer, no mask."""
        n, p, t = int(d["future_positions_seen"]), d.get("position"), d.get("sequence")
        convs = sorted(types & {"Conv1d", "Conv2d", "ConvTranspose1d"})
        return self.finding(
            severity="high", confidence=0.9,
            title=(f"The forecaster sees the values it must predict: its output at position {p} depends on {n} "
                   "later positions of the input series"),
            description=(f"The loss's target is the input series shifted by one step, value for value: at every "
                         f"position the model is asked for the next value. On a private copy, the output at position "
                         f"{p} of a {t}-step window changed with the input at position {d.get('first_future_seen')} and "
                         "after, and position "
                         f"{p + 1 if p is not None else 'p + 1'} holds its own target. The model learns to copy it: "
                         "the teacher-forced training and validation losses fall far below what forecasting allows, "
                         "and a real forecast, where the next value is not there to read, fails."
                         + (f" The model has {', '.join(convs)}: padded on both sides ('same' padding), a convolution "
                            "reads the positions after the one it computes." if convs else "")),
            location=None, step=step, evidence=dict(d) | {"rests_on": ["causality_leak"]},
            recommendations=[Recommendation(
                "fix", "Make every layer causal: pad convolutions on the left only (or shift the target).",
                "pad = (kernel_size - 1) * dilation\n"
                "conv = nn.Conv1d(c_in, c_out, kernel_size, dilation=dilation)      # padding=0\n"
                "h = conv(F.pad(x, (pad, 0)))          # left padding only: position t sees t and before")],
        )

    def _reads_own_target(self, ev: Any) -> Finding:
        """A causal model whose input at each position is the token its loss asks for there."""
        d = ev.data
        arg, p = int(d.get("argument", 0)), d.get("position")
        return self.finding(
            severity="high", confidence=0.85,
            title=f"The model is fed the tokens it must predict: its input {arg + 1} is the loss's target, position by position",
            description=(f"The target of the training loss equals the model's input {arg + 1} at "
                         f"{d.get('targets_shifted', 0):.0%} of the positions, not shifted. On a private copy, the output at "
                         f"position {p} depends on the input at position {p} and on none after it: a causal decoder "
                         "that reads the answer at its own position. It learns to copy: the teacher-forced loss falls to "
                         "near zero while free-running generation, which has no answer to read, fails. A decoder's input "
                         "is the target shifted right by one (a start token, then the target without its last token)."),
            location=None, step=ev.step, evidence=dict(d),
            recommendations=[Recommendation(
                "fix", "Feed the decoder the target shifted right; compare its output with the target.",
                "dec_in = tgt[:, :-1]     # BOS + target[:-1]\nlabels = tgt[:, 1:]\n"
                "logits = model(src, dec_in)\nloss = F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1))")])

    def _overlap(self, ctx: Context) -> Iterator[Finding]:
        limit = ctx.option("leakage_fraction")
        for ev in ctx.record.events("data_overlap"):
            d = ev.data
            frac, n = float(d.get("fraction_of_val", 0.0)), int(d.get("overlap", 0))
            if frac < limit or n < 5:
                shifted = self._shifted(ctx, d, limit)
                if shifted is not None:
                    yield shifted
                continue
            whole = masked_whole_input(ctx)
            if whole is not None and ctx.record.events(M.GRAPH_ADJACENCY.name):
                continue  # a transductive split of a graph's nodes: validation must pass the training nodes
            why = "" if whole is None else (
                f" Here every pass fed the model the same {whole['model_rows']} rows and each loss read at most "
                f"{whole['loss_rows']} of them: a split by loss masks over one whole input (transductive training on a "
                "graph), where the validation pass must see the training rows; its labels are not trained on.")
            yield self.finding(
                severity="low" if whole is not None else "medium" if frac >= 0.5 else "low",
                confidence=0.3 if whole is not None else 0.6,
                title=f"At least {frac:.0%} of validation samples also appear in training ({n} of {d.get('val_samples')})",
                description=(f"{n} of the {d.get('val_samples')} distinct samples passed through the model without gradients "
                             f"(validation) are identical to samples it trained on, among the {d.get('train_samples')} training "
                             "samples fingerprinted (a part of the training set, so the true share is likely higher). The "
                             "validation score measures memory, not generalisation. If those passes evaluated the training "
                             "set itself (training accuracy), this is expected." + why),
                step=ev.step, evidence=dict(d) | ({"masked_whole_input": whole} if whole else {}),
                recommendations=[Recommendation("fix", "Split the data once, by index, with no overlap, and build the validation loader from the held-out part.",
                                                "idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))\n"
                                                "n_val = len(dataset) // 5\n"
                                                "val_set = torch.utils.data.Subset(dataset, idx[:n_val])\n"
                                                "train_set = torch.utils.data.Subset(dataset, idx[n_val:])")])
