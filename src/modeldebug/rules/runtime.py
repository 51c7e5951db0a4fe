"""Runtime errors: the exception a crashed run raised, explained in plain words with a fix.

One rule per kind; they share `classify`, which reads the exception type and message. The tracer
records the innermost module whose forward was running and the training phase.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from .. import measures as M
from .base import Finding, Recommendation, Rule
from .context import Context

__all__ = ["classify", "crash_findings", "DeviceMismatch", "DtypeMismatch", "InplaceModification", "OutOfMemory",
           "RuntimeFailure", "ShapeMismatch"]

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("out_of_memory", re.compile(r"out of memory|OutOfMemory|CUBLAS_STATUS_ALLOC_FAILED|DefaultCPUAllocator: can't allocate", re.I)),
    ("inplace_modification", re.compile(r"modified by an inplace operation", re.I)),
    ("device_mismatch", re.compile(r"(same device|Expected all tensors to be on the same|device type|cuda:\d.*cpu|cpu.*cuda:\d|"
                                   r"on the expected device|meta tensor|device meta)", re.I)),
    ("dtype_mismatch", re.compile(r"(expected scalar type|must have the same dtype|dtype|Expected object of scalar type|"
                                  r"not implemented for '(Long|Int|Half|BFloat16|Bool|Byte)'|found dtype)", re.I)),
    ("shape_mismatch", re.compile(r"(shapes cannot be multiplied|size of tensor a|must match the size|"
                                  r"Expected input batch_size|shape '\[.*\]' is invalid|size mismatch|"
                                  r"expected input\[.*\] to have|mat1 and mat2|Target size|does not match|"
                                  r"Expected target size|expected \d+D|dimension out of range|Dimension out of range)", re.I)),
]


def classify(exc_type: str, message: str) -> str:
    """The contract's runtime-error kind for an exception type and message.

    Crashes that a data-and-loss rule explains better (labels out of range, channels-last images,
    loss target shapes) get that rule's kind, so they are reported once, by the rule that knows why.
    """
    from .data import crash_kind

    if exc_type in ("OutOfMemoryError",):
        return "out_of_memory"
    kind = crash_kind(exc_type, message)
    if kind:
        return kind
    for kind, pattern in _PATTERNS:
        if pattern.search(message):
            return kind
    return "runtime_error"


def crash_findings(rule: Rule, ctx: Context,
                   explain: Callable[[dict[str, Any]], tuple[str, str, list[Recommendation]]]) -> Iterator[Finding]:
    """One finding per crash that `classify` gives the rule's kind; `explain(data)` -> title, why, fixes.

    Shared by the runtime rules and by the data-and-loss rules that own some crashes (label_issue,
    channel_order, loss_shape_mismatch), so every crash finding has the same shape.
    """
    for ev in ctx.record.events("exception"):
        d = ev.data
        if d.get("type") in ("KeyboardInterrupt", "SystemExit"):
            continue
        message = d.get("message", "")
        kind = classify(d.get("type", ""), message)
        if kind == "runtime_error" and script_bug(d, ctx.record.n_steps):
            if rule.kind == "runtime_error":
                yield _script_bug_finding(rule, d)
            continue
        if kind != rule.kind:
            continue
        title, why, recs = explain(d)
        where = f" in {d['module']}" if d.get("module") else ""
        line = f" ({d['file']}:{d['line']})" if d.get("file") else ""
        yield rule.finding(
            severity="high", confidence=0.6 if rule.kind == "runtime_error" else 0.9,
            title=title + where,
            description=f"{d.get('type')}: {_first_line(message)}{line}. {why}",
            location=d.get("module") or (f"{d.get('file')}:{d.get('line')}" if d.get("file") else None),
            step=ev.step,
            evidence={"exception": d.get("type"), "message": message[:1000], "phase": d.get("phase"),
                      "module": d.get("module"), "file": d.get("file"), "line": d.get("line"), "code": d.get("code")},
            recommendations=recs,
        )


def script_bug(d: dict[str, Any], steps: int) -> bool:
    """A crash that is the script's own bug, not a training problem: no training step had run, no
    module's forward was running, and no PyTorch code was in the traceback (a bad config value, a
    missing file, a typo before the model was ever used). Older records, which do not say whether
    PyTorch was in the traceback, are never judged so."""
    return steps == 0 and not d.get("module") and d.get("torch_frame") is False


def _script_bug_finding(rule: Rule, d: dict[str, Any]) -> Finding:
    where = f"{d['file']}:{d['line']}" if d.get("file") else None
    line = f" ({where}: {d['code']})" if where and d.get("code") else (f" ({where})" if where else "")
    return rule.finding(
        severity="low", confidence=0.9,
        title=f"The script stopped with {d.get('type')} before any training step",
        description=(f"{d.get('type')}: {_first_line(d.get('message', ''))}{line}. The error came from the script's "
                     "own code, not from PyTorch, and no training step had run: this is a bug in the script, "
                     "not a training problem, so there is no training to diagnose."),
        location=where,
        step=None,
        evidence={"exception": d.get("type"), "message": d.get("message", "")[:1000], "phase": d.get("phase"),
                  "file": d.get("file"), "line": d.get("line"), "code": d.get("code"), "training_steps": 0,
                  "torch_in_traceback": False},
        recommendations=[Recommendation("fix", "Fix the error at the line shown, then run again.")],
    )


class _RuntimeRule(Rule):
    category = "runtime"
    requires = (M.EXCEPTION,)

    def check(self, ctx: Context) -> Iterator[Finding]:
        yield from crash_findings(self, ctx, self.explain)

    def explain(self, d: dict[str, Any]) -> tuple[str, str, list[Recommendation]]:
        raise NotImplementedError


def _first_line(msg: str) -> str:
    return msg.strip().splitlines()[0] if msg.strip() else ""


class ShapeMismatch(_RuntimeRule):
    """Detects RUN001; its documentation and options are in the catalogue (`modeldebug explain RUN001`)."""

    code = "RUN001"

    def explain(self, d: dict[str, Any]) -> tuple[str, str, list[Recommendation]]:
        msg = d.get("message", "")
        m = re.search(r"\((\d+)x(\d+) and (\d+)x(\d+)\)", msg)
        if m:
            got, want = m.group(2), m.group(3)
            expl = (f"The input has {got} features per sample but the layer expects {want}. The layer's in_features "
                    "does not match what reaches it: the previous layer's output, or the data itself when this is "
                    "the model's first layer.")
            fix = f"nn.Linear({got}, out_features)   # in_features must be {got}\n# or let PyTorch infer it:\nnn.LazyLinear(out_features)"
        else:
            expl = "Two tensors whose shapes do not fit were combined."
            fix = "print({k: tuple(v.shape) for k, v in {'x': x, 'y': y}.items()})   # find the dimension that differs"
        return "Shape mismatch", expl, [Recommendation("fix", "Make the sizes agree where the crash happened.", fix)]


class DtypeMismatch(_RuntimeRule):
    """Detects RUN002; its documentation and options are in the catalogue (`modeldebug explain RUN002`)."""

    code = "RUN002"

    def explain(self, d: dict[str, Any]) -> tuple[str, str, list[Recommendation]]:
        return ("Dtype mismatch",
                "Two tensors of different dtypes met; NumPy data arrives as float64 and class labels must be int64.",
                [Recommendation("fix", "Convert the batch to the dtypes the model and loss expect.",
                                "x = x.to(torch.float32)      # match the model's weights\n"
                                "y = y.long()                 # CrossEntropyLoss class indices\n"
                                "# y = y.float()              # BCEWithLogitsLoss targets")])


class DeviceMismatch(_RuntimeRule):
    """Detects RUN003; its documentation and options are in the catalogue (`modeldebug explain RUN003`)."""

    code = "RUN003"

    def explain(self, d: dict[str, Any]) -> tuple[str, str, list[Recommendation]]:
        if re.search(r"\bmeta\b", d.get("message", "")):
            return ("Weights on the meta device",
                    "A tensor on the meta device has a shape but no values: the model was built on `device='meta'` "
                    "(or with empty-weights initialisation) and its weights were never made real before use.",
                    [Recommendation("fix", "Give the weights storage and values before the first forward pass.",
                                    "model.to_empty(device='cpu')                   # storage, uninitialised\n"
                                    "model.load_state_dict(state, assign=True)     # then the real values\n"
                                    "# or, without a checkpoint: build the model on a real device")])
        return ("Device mismatch",
                "Tensors on different devices were combined; the batch or a tensor made inside forward() was not moved.",
                [Recommendation("fix", "Move the batch to the model's device; create new tensors on the input's device.",
                                "device = next(model.parameters()).device\nx, y = x.to(device), y.to(device)\n"
                                "mask = torch.ones(n, device=x.device)   # inside forward()")])


class OutOfMemory(_RuntimeRule):
    """Detects RUN004; its documentation and options are in the catalogue (`modeldebug explain RUN004`)."""

    code = "RUN004"

    def explain(self, d: dict[str, Any]) -> tuple[str, str, list[Recommendation]]:
        return ("Out of memory",
                "The allocator could not satisfy a request: the batch's activations are too large, or tensors from past steps are kept alive.",
                [Recommendation("fix", "Keep numbers, not graphs, across steps; then lower the batch size or use mixed precision.",
                                "history.append(loss.item())   # not loss\n"
                                "with torch.autocast(device_type='cuda', dtype=torch.bfloat16):\n    loss = loss_fn(model(x), y)")])


class InplaceModification(_RuntimeRule):
    """Detects RUN005; its documentation and options are in the catalogue (`modeldebug explain RUN005`)."""

    code = "RUN005"

    def explain(self, d: dict[str, Any]) -> tuple[str, str, list[Recommendation]]:
        op = re.search(r"output \d+ of (\w+)", d.get("message", ""))
        op_txt = f" (the output of {op.group(1)})" if op else ""
        return ("In-place modification broke backward",
                f"A tensor saved for the backward pass{op_txt} was changed in place before backward() ran.",
                [Recommendation("fix", "Use the out-of-place form of the operation.",
                                "h = h + 1                 # not h += 1\nnn.ReLU(inplace=False)\n"
                                "x = x.clone(); x[idx] = v  # clone before indexed assignment\n"
                                "torch.autograd.set_detect_anomaly(True)   # to find the line (slow; debugging only)")])


class RuntimeFailure(_RuntimeRule):
    """Detects RUN006; its documentation and options are in the catalogue (`modeldebug explain RUN006`)."""

    code = "RUN006"

    def explain(self, d: dict[str, Any]) -> tuple[str, str, list[Recommendation]]:
        message = d.get("message", "")
        for pattern, title, why, fix, code in _KNOWN:
            if pattern.search(message):
                return title, why, [Recommendation("fix", fix, code)]
        return (f"The run crashed with {d.get('type')}", "See the message and location.",
                [Recommendation("fix", "Fix the error at the location shown.", d.get("code") or None)])


#: Common crashes with no kind of their own: (message pattern, title, why, fix, code).
_KNOWN: list[tuple[re.Pattern[str], str, str, str, str | None]] = [
    (re.compile(r"Expected more than 1 value per channel when training"),
     "BatchNorm got a batch of one sample in training mode",
     "BatchNorm needs at least two samples to compute batch statistics; a last, smaller batch of size 1 "
     "or a single-sample forward in train mode triggers this.",
     "Drop the incomplete last batch, or call model.eval() for single-sample inference",
     "DataLoader(dataset, batch_size=..., drop_last=True)"),
    (re.compile(r"does not require grad and does not have a grad_fn"),
     "backward() on a loss that is not connected to the model",
     "The loss was computed from tensors with no autograd history: under torch.no_grad(), from .detach()/"
     ".item()/.numpy() values, or with every parameter frozen.",
     "Compute the loss from the model's output tensor, outside torch.no_grad()",
     "loss = loss_fn(model(x), y)  # no .detach()/.item() before backward"),
    (re.compile(r"backward through the graph a second time"),
     "backward() ran twice through the same graph",
     "A tensor from an earlier step (a hidden state, a running loss sum) still carries that step's graph, "
     "whose buffers were freed by the first backward.",
     "Detach state carried across steps (or accumulate loss.item(), not loss)",
     "hidden = hidden.detach()  # at the start of each step"),
    (re.compile(r"grad can be implicitly created only for scalar outputs"),
     "backward() on a loss that is not a scalar",
     "The loss still has one value per sample (reduction='none' or a missing .mean()).",
     "Reduce the loss to a scalar before backward", "loss = loss_fn(out, y).mean()"),
]
