"""`replay`: load a bundle, rebuild the step, re-execute it, judge it, re-run it under anomaly mode, bisect."""

from __future__ import annotations

import hashlib
import inspect
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import BadInputError
from .bisect import BisectResult, bisect_modules, envelopes_from_record
from .load import build_model, build_optimizer, load_bundle
from .step import StepOutcome, all_finite, execute, same_bits

__all__ = ["ReplayResult", "replay"]


@dataclass
class ReplayResult:
    path: str
    bundle: dict[str, Any]
    built_with: str
    optimizer: str
    device: str
    status: str  # "bit-for-bit" | "symptom" | "not-reproduced"
    lines: list[str]
    first: StepOutcome
    anomaly: StepOutcome | None = None
    bisect: BisectResult | None = None
    earlier: BisectResult | None = None  # a module that left its envelope before the non-finite producer
    envelopes: int = 0  # modules with an envelope from the run's record
    warnings: list[str] = field(default_factory=list)
    nonfinite_state: list[str] = field(default_factory=list)  # weights or buffers already NaN/Inf before the step
    batch_finite: bool = True  # every floating value of the saved batch finite

    @property
    def reproduced(self) -> bool:
        return self.status != "not-reproduced"

    @property
    def exit_code(self) -> int:
        return 0 if self.reproduced else 1


def _bits(v: float) -> str:
    return "0x" + struct.pack(">d", v).hex()


def _device(bundle: dict[str, Any], warnings: list[str]) -> torch.device:
    want = str(bundle.get("device") or "cpu")
    if want.startswith("cuda") and torch.cuda.is_available():
        return torch.device(want)
    if want != "cpu":
        warnings.append(f"the run trained on {want}; replaying on the CPU: kernels may round differently, so the "
                        "symptom may reproduce without the bits")
    return torch.device("cpu")


def _identity_warnings(bundle: dict[str, Any], warnings: list[str]) -> None:
    script = bundle.get("script") or {}
    path, sha = script.get("path"), script.get("sha256")
    if path and sha and Path(path).is_file():
        now = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if now != sha:
            warnings.append(f"{path} changed since the bundle was saved (sha256 {sha[:12]} then, {now[:12]} now)")
    ran = (bundle.get("versions") or {}).get("torch")
    if ran and ran != torch.__version__:
        warnings.append(f"the run used torch {ran}; this is torch {torch.__version__}: bits may differ")


def _fit_warning(bundle: dict[str, Any], net: torch.nn.Module, warnings: list[str]) -> None:
    """Say so when the saved batch cannot be the arguments of the model's forward() (a crash aside)."""
    if bundle["trigger"]["kind"] == "crash":
        return  # a call that does not fit may be the crash itself
    batch = bundle["batch"]
    try:
        inspect.signature(net.forward).bind(*batch["args"], **batch["kwargs"])
    except TypeError as exc:
        warnings.append(f"the saved batch does not fit {type(net).__name__}.forward() ({exc}): the run called the "
                        "model with arguments the bundle did not keep")
    except ValueError:
        pass  # no signature to check (a builtin forward)


def judge(bundle: dict[str, Any], res: StepOutcome) -> tuple[str, list[str]]:
    """Did the replay show the run's trouble, and with the same bits?"""
    trig = bundle["trigger"]
    kind = trig["kind"]
    lines: list[str] = []
    if kind == "crash":
        want = trig.get("exception") or {}
        got = res.exception
        if got is not None and type(got).__name__ == want.get("type") and str(got)[:4000] == want.get("message"):
            return "bit-for-bit", [f"the same {want.get('type')} was raised, with the same message"]
        if got is not None and type(got).__name__ == want.get("type"):
            return "symptom", [f"a {want.get('type')} was raised again, with another message: {str(got)[:200]}"]
        return "not-reproduced", [f"the run raised {want.get('type')}; the replay "
                                  + (f"raised {type(got).__name__}" if got is not None else "raised nothing")]
    if res.exception is not None:
        lines.append(f"the replay raised {type(res.exception).__name__} in {res.phase}: {str(res.exception)[:200]}")
    if res.loss_note:
        lines.append(res.loss_note)
    exp = bundle["expected"].get("loss")
    exp_last = exp[-1:] if isinstance(exp, torch.Tensor) and exp.numel() else None
    got_last = res.loss[-1:] if res.loss is not None and res.loss.numel() else None
    loss_bits = same_bits(got_last, exp_last)
    if exp_last is not None and got_last is not None:
        e, g = float(exp_last[0]), float(got_last[0])
        lines.append(f"loss: run {e} ({_bits(e)}), replay {g} ({_bits(g)})"
                     + (": the same 64 bits" if loss_bits else ": different bits"))
    exp_grads: dict[str, torch.Tensor] = bundle.get("grads") or {}
    grads_bits = None
    if exp_grads and res.grads:
        differ = [n for n, g in exp_grads.items() if not same_bits(res.grads.get(n), g)]
        grads_bits = not differ
        lines.append(f"gradients: all {len(exp_grads)} identical bit for bit" if grads_bits
                     else f"gradients: {len(differ)} of {len(exp_grads)} differ ({', '.join(differ[:3])})")
    if res.clipped:
        lines.append(f"gradient clipping: replayed as the run called it (max_norm {bundle['clip']['max_norm']})")
    if res.stepped:
        lines.append("optimizer step: replayed; the weights after it are "
                     + ("finite" if res.params_finite_after else "NON-FINITE"))
    if res.loss is None and kind.startswith("nonfinite") and res.output_finite is False:
        lines.append("the model's output is non-finite again (the loss itself was not replayed)")
        return "symptom", lines
    if kind == "nonfinite_loss":
        symptom = got_last is not None and not math.isfinite(float(got_last[0]))
    elif kind == "nonfinite_gradient":
        symptom = any(not bool(torch.isfinite(g).all()) for g in res.grads.values())
    else:  # loss_spike: the loss itself is the symptom
        symptom = loss_bits
    if symptom and loss_bits and grads_bits is not False:
        return "bit-for-bit", lines
    return ("symptom" if symptom else "not-reproduced"), lines


def replay(path: str | Path, *, model: str | None = None, bisect: bool = True) -> ReplayResult:
    """Replay the bundle at `path` (see docs/replay.md)."""
    bundle = load_bundle(path)
    if not bundle.get("with_state"):
        notes = "; ".join(bundle.get("notes") or [])
        raise BadInputError(f"{str(path)!r} was saved without the model's state ({notes or 'over its size bound'}): "
                            "it cannot be replayed; run again with a larger --bundle-max-mb")
    if bundle.get("batch") is None:
        raise BadInputError(f"{str(path)!r} holds no batch (over the size bound): it cannot be replayed")
    warnings: list[str] = [f"when saved: {n}" for n in bundle.get("notes") or [] if isinstance(n, str)]
    _identity_warnings(bundle, warnings)
    device = _device(bundle, warnings)
    net, how = build_model(bundle, model)
    _fit_warning(bundle, net, warnings)
    opt, opt_what = build_optimizer(bundle, net)
    first = execute(bundle, net, opt, device)
    status, lines = judge(bundle, first)
    # Again from the same state, under anomaly mode, with every module's statistics.
    net2, _ = build_model(bundle, model)
    opt2, _ = build_optimizer(bundle, net2)
    anomaly = execute(bundle, net2, opt2, device, anomaly=True)
    found = earlier = None
    envelopes: dict[str, Any] = {}
    if bisect:
        name = bundle.get("record")
        record = Path(path).with_name(name if isinstance(name, str) and name and "/" not in name
                                      else Path(path).name.replace(".bundle.pt", ".db"))
        found_env = envelopes_from_record(record, int(bundle["trigger"]["step"]), str(bundle["trigger"]["kind"]))
        if found_env is None:
            warnings.append(f"the record {record.name} beside the bundle is of another run (it saved no bundle of "
                            "this step): its modules' ranges are not used")
        envelopes = found_env or {}
        if bundle["trigger"]["kind"] == "loss_spike":
            found = bisect_modules(bundle, net2, device, envelopes)
        else:  # the producer of the non-finite value (or the crash), then what left its envelope before it
            found = bisect_modules(bundle, net2, device, {})
            if envelopes and found.module is not None:
                earlier = bisect_modules(bundle, net2, device, envelopes, before=found.module)
                earlier = earlier if earlier.module is not None else None
    params = {n for n, _ in net.named_parameters()}
    bad_state = [f"{k} ({'weight' if k in params else 'buffer'})" for k, v in (bundle.get("model_state") or {}).items()
                 if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    return ReplayResult(str(path), bundle, how, opt_what, str(device), status, lines, first, anomaly, found,
                        earlier, len(envelopes) if bisect else 0, warnings, bad_state,
                        all_finite((bundle["batch"]["args"], bundle["batch"]["kwargs"])))
