"""What `compare` found: typed results, their text and JSON, the findings, and the saved repro."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInputError
from ..rules.base import Finding, Recommendation
from .findings import finding
from .tolerance import ErrorStats

__all__ = ["ComparisonResult", "Divergence", "ValueCheck", "parity_findings", "require_compared", "save_repro"]

_VERDICTS = {
    "translation": "exporter/translation: onnx.reference (the ONNX spec) computes the same as onnxruntime, so the "
                   "ONNX graph itself computes something other than PyTorch (an exporter bug, weights that differ, "
                   "or a graph edited after export)",
    "runtime_kernel": "runtime kernel: onnx.reference agrees with PyTorch but onnxruntime does not, so onnxruntime's "
                      "kernel for this node is at fault",
    "undetermined": "undetermined: onnx.reference could not give a third opinion that settles it",
    "graph_difference": "the two models compute this node group differently (other weights, attributes or operators)",
    "provider_kernel": "tested provider's kernel: onnx.reference (the ONNX spec) agrees with the reference provider",
    "reference_provider_kernel": "reference provider's kernel: onnx.reference (the ONNX spec) agrees with the tested "
                                 "provider, so the reference is the one that is off",
}


@dataclass
class ValueCheck:
    """One ONNX value that has a PyTorch reference, and how it compares."""

    value: str
    node: str
    op_type: str
    reference: str
    stats: ErrorStats
    status: str = "ok"  # ok | introduces | inherits | diverges (not re-run)
    local: ErrorStats | None = None
    segment: list[str] = field(default_factory=list)


@dataclass
class Divergence:
    """The first node that introduces error, with the evidence and the verdict."""

    node: str
    op_type: str
    value: str
    reference: str
    stats: ErrorStats
    local: ErrorStats
    verdict: str
    onnx_reference: ErrorStats | None
    segment: list[str]
    initializer_diffs: list[dict[str, Any]]
    inheritors: list[str]
    other_introducers: list[str]
    batch: int | None = None
    sub_model: Any = field(default=None, repr=False)
    sub_feeds: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    expected: np.ndarray | None = field(default=None, repr=False)
    actual: np.ndarray | None = field(default=None, repr=False)
    group: dict[str, Any] | None = None
    no_counterpart: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the repro payload (the sub-model and arrays)."""
        skip = {"sub_model", "sub_feeds", "expected", "actual"}
        d = {k: v for k, v in vars(self).items() if k not in skip}
        for k in ("stats", "local", "onnx_reference"):
            d[k] = d[k].to_dict() if d[k] is not None else None
        return d


@dataclass
class ComparisonResult:
    """PyTorch vs onnxruntime on the same inputs; `passed` when every output agrees everywhere."""

    source: str
    atol: float
    rtol: float
    level: str
    op_level: bool
    outputs: list[dict[str, Any]]
    checks: list[ValueCheck]
    first_divergent: Divergence | None
    first_nonfinite: dict[str, Any] | None
    levels: dict[str, dict[str, Any]]
    batches: list[dict[str, Any]]
    repro: str | None = None
    findings: list[Finding] = field(default_factory=list)
    tolerances: dict[str, dict[str, Any]] = field(default_factory=dict)
    tolerance_note: str = ""
    nonfinite_by_design: dict[str, Any] | None = None
    grouping: dict[str, Any] = field(default_factory=dict)
    reference_label: str = "PyTorch"
    target_label: str = "onnxruntime"

    @property
    def torch(self) -> bool:
        """Whether the reference is the PyTorch model (else another ONNX run or golden outputs)."""
        return self.reference_label == "PyTorch"

    @property
    def passed(self) -> bool:
        return all(b["passed"] for b in self.batches) and all(lv["passed"] for lv in self.levels.values())

    @property
    def inheritors(self) -> list[str]:
        return self.first_divergent.inheritors if self.first_divergent else []

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in vars(self).items() if k not in ("first_divergent", "findings", "checks", "outputs")}
        d["outputs"] = [{"name": o["name"], "stats": o["stats"].to_dict()} for o in self.outputs]
        d["checks"] = [asdict(c) for c in self.checks]
        d["first_divergent"] = self.first_divergent.to_dict() if self.first_divergent else None
        d["findings"] = [f.to_dict() for f in self.findings]
        d["passed"] = self.passed
        return d

    def to_text(self) -> str:
        note = self.tolerance_note or f"abs > {self.atol:g} AND rel > {self.rtol:g}"
        others = [f"{k} {v['atol']:g}/{v['rtol']:g}" for k, v in self.tolerances.items() if f"for {k})" not in note]
        lines = [f"{self.source}: {self.target_label} vs {self.reference_label} ({'PASS' if self.passed else 'FAIL'}); "
                 "element fails when "
                 f"{note}" + (f" (also {', '.join(others)})" if others else "")
                 + (f"; intermediates at optimisation level '{self.level}'" if self.torch or self.checks
                    else f"; run at optimisation level '{self.level}'")]
        for b in self.batches:
            state = "skipped" if b.get("skipped") else "ok" if b["passed"] else "MISMATCH"
            lines.append(f"  {_batch_label(b)}: {state} {b.get('detail', '')}".rstrip())
        for o in self.outputs:
            lines.append(f"  output {o['name']}: {o['stats'].brief()}")
        counts = {s: sum(c.status == s for c in self.checks) for s in ("ok", "introduces", "inherits", "diverges")}
        how = ("ops and modules" if self.op_level else "modules and outputs") if self.torch else "by name and shape"
        if self.torch or self.checks:
            lines.append(f"  {len(self.checks)} intermediate values matched to {self.reference_label} ({how}): "
                         + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
        gr = self.grouping
        if gr.get("fusions") or gr.get("decompositions"):
            parts = [f"{len(gr['fusions'])} fused ({', '.join(gr['fusions'][:6])})"] if gr.get("fusions") else []
            parts += [f"{len(gr['decompositions'])} became several nodes"] if gr.get("decompositions") else []
            lines.append(f"  PyTorch module groups: {', '.join(parts)}; compared at group boundaries")
        if gr.get("no_counterpart_count"):
            lines.append(f"  {gr['no_counterpart_count']} node(s) have no PyTorch module or op counterpart (checked "
                         f"only through the next matched value): {', '.join(gr['no_counterpart'][:8])}")
        d = self.first_divergent
        if d is not None:
            lines.append(f"first divergent node: {d.node} ({d.op_type}) -> {d.value} [{d.reference}]")
            if d.group:
                lines.append(f"  PyTorch group: {d.group['name']} ({d.group['kind']})"
                             + (f": {d.group['note']}" if d.group.get("note") else ""))
            if d.no_counterpart:
                lines.append(f"  no PyTorch counterpart in the group re-run: {', '.join(d.no_counterpart[:8])}")
            lines.append(f"  full run: {d.stats.brief()}")
            lines.append(f"  alone on the reference's values of its inputs: {d.local.brief()}")
            lines.append(f"  verdict: {_VERDICTS[d.verdict]}")
            if len(d.segment) > 1:
                lines.append(f"  node group re-run: {', '.join(d.segment[:12])}")
            for diff in d.initializer_diffs:
                lines.append(f"  initializer {diff['name']} differs from {diff.get('expected_from', diff['name'])}"
                             f" (max abs {diff['max_abs']:.3g})")
            if d.inheritors:
                lines.append(f"  inherit the error ({len(d.inheritors)}): {', '.join(d.inheritors[:12])}")
            if d.other_introducers:
                lines.append(f"  also introduce an error of their own ({len(d.other_introducers)}): "
                             f"{', '.join(d.other_introducers[:12])}")
        if self.first_nonfinite:
            n = self.first_nonfinite
            lines.append(f"NaN in the inputs given: {', '.join(n['from_inputs'])} (first carried by {n['node']})"
                         if n.get("from_inputs") else f"first NaN/Inf: {n['node']} ({n['op_type']}) -> {n['value']}")
        if self.nonfinite_by_design:
            b = self.nonfinite_by_design
            lines.append(f"  +-inf by design (masking, not a finding): {b['values']} value(s) from "
                         f"{', '.join(b['sources'][:4]) or 'values PyTorch also has'}")
        if self.levels:
            lines.append("  optimisation levels: " + ", ".join(
                f"{k} {'ok' if v['passed'] else 'MISMATCH'}" for k, v in self.levels.items()))
        if self.repro:
            lines.append(f"repro saved in {self.repro}")
        return "\n".join(lines)


def parity_findings(r: ComparisonResult, others: list[Finding] | None = None) -> list[Finding]:
    """The findings of a comparison; `others` are the caller's own (a batch that fails to run): a FAIL
    that neither explains still gets one."""
    out = []
    d = r.first_divergent
    if d is not None:
        desc = (f"{d.node} ({d.op_type}) is the first node whose output {d.value!r} disagrees with "
                f"{r.reference_label} ({d.reference}): {d.stats.brief()}. Re-run alone on the reference's values of "
                "its inputs it still "
                f"disagrees ({d.local.brief()}), so it introduces the error; {len(d.inheritors)} node(s) downstream "
                f"only inherit it. Verdict: {_VERDICTS[d.verdict]}.")
        if d.group:
            desc += f" It computes PyTorch's {d.group['kind']} group {d.group['name']}"
            desc += f" ({d.group['note']})." if d.group.get("note") else "."
        if len(d.segment) > 1:
            desc += f" The smallest checkable group was {len(d.segment)} nodes: {', '.join(d.segment[:8])}."
        if d.no_counterpart:
            desc += (f" {', '.join(d.no_counterpart[:5])} ha{'s' if len(d.no_counterpart) == 1 else 've'} no PyTorch "
                     "counterpart (exporter-made, or functional code outside any module): checked through the group.")
        if d.initializer_diffs:
            desc += " " + "; ".join(f"initializer {x['name']!r} (read by {x['node']}) differs from "
                                    f"{x.get('expected_from', x['name'])} by up to {x['max_abs']:.3g}"
                                    for x in d.initializer_diffs[:3]) + "."
        recs = [Recommendation("fix", "Save the node with its inputs and expected output (`--repro DIR`: the "
                               "smallest subgraph that still diverges) and check the op's translation (exporter) or "
                               "kernel (onnxruntime) on it.")]
        if d.initializer_diffs:
            recs.insert(0, Recommendation("fix", "The weights in the ONNX file differ from the reference's: re-export "
                                          "from the checkpoint you compare against."))
        elif d.verdict == "provider_kernel":
            recs.insert(0, Recommendation("fix", "Report the tested provider's kernel with the repro; meanwhile run "
                                          "this op on the reference provider or change its dtype/opset."))
        elif d.verdict == "runtime_kernel":
            recs.insert(0, Recommendation("fix", "Report the kernel to onnxruntime with the repro; meanwhile try "
                                          "another execution provider or opset."))
        out.append(finding("ONX101" if r.torch else "ONX105", severity="high",
                           confidence=0.9 if len(d.segment) == 1 else 0.75,
                           title=f"First divergent node: {d.node} ({d.op_type}); {len(d.inheritors)} downstream "
                           f"node(s) inherit the error", description=desc, location=d.node,
                           evidence={"value": d.value, "reference": d.reference, "full_run": d.stats.to_dict(),
                                     "group": d.group, "no_counterpart": d.no_counterpart[:20],
                                     "tolerance": r.tolerance_note,
                                     "alone": d.local.to_dict(), "verdict": d.verdict, "batch": d.batch,
                                     "onnx_reference": d.onnx_reference.to_dict() if d.onnx_reference else None,
                                     "segment": d.segment, "initializer_diffs": d.initializer_diffs,
                                     "inheritors": d.inheritors[:100], "other_introducers": d.other_introducers[:20]},
                           recommendations=recs))
    bad = [o for o in r.outputs if not o["stats"].passed]
    if d is None and bad:  # no node introduces it (or none could be checked): the outputs themselves
        out.append(_output_finding(r, bad))
    if r.first_nonfinite is not None:
        out.append(_nonfinite_finding(r.first_nonfinite))
    lv = r.levels
    if lv.get("disable", {}).get("passed"):
        bad = [k for k, v in lv.items() if not v["passed"]]
        if bad:
            out.append(finding("ONX103", severity="medium", confidence=0.85,
                               title=f"onnxruntime graph optimisation '{bad[0]}' changes the results",
                               description=f"Outputs agree with PyTorch with optimisations off but not at level(s) "
                               f"{', '.join(bad)} (max abs {lv[bad[0]]['max_abs']:.3g}).",
                               evidence={"levels": lv},
                               recommendations=[Recommendation("fix", "Pin the optimisation level below it.",
                                                               "so = onnxruntime.SessionOptions()\n"
                                                               "so.graph_optimization_level = "
                                                               "onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC")]))
    if not r.passed and not out and not others:
        out.append(_unexplained_failure(r))
    return out


def _batch_label(b: dict[str, Any]) -> str:
    """'batch 2', or 'inputs' for a run whose inputs have no batch axis (a fixed or scalar first dimension)."""
    return f"batch {b['batch']}" if b.get("batch") is not None else "inputs"


def require_compared(outputs: list[dict[str, Any]], feeds: dict[str, np.ndarray]) -> None:
    """Refuse to call a comparison of nothing a PASS: every output empty (an empty batch)."""
    if outputs and all(o["stats"].elements == 0 and not o["stats"].shape_mismatch for o in outputs):
        shapes = {k: list(v.shape) for k, v in feeds.items()}
        raise BadInputError(f"nothing was compared: every output has 0 elements on the inputs {shapes} (an empty "
                            "batch?): give inputs with at least one sample")


def _unexplained_failure(r: ComparisonResult) -> Finding:
    """The finding of a FAIL that none of the others explains (every FAIL must carry one)."""
    failed = [f"optimisation level {k}" for k, v in r.levels.items() if not v["passed"]]
    failed += [_batch_label(b) for b in r.batches if not b["passed"]]
    return finding("ONX101" if r.torch else "ONX105", severity="high", confidence=0.7,
                   title=f"{r.target_label} disagrees with {r.reference_label} ({', '.join(failed[:4])})",
                   description=f"The outputs disagree with {r.reference_label} in the run(s) at "
                   f"{', '.join(failed)} ({r.tolerance_note}), though no node could be named.",
                   evidence={"levels": r.levels, "batches": r.batches})


def _nonfinite_finding(n: dict[str, Any]) -> Finding:
    """ONX102: the first node that makes NaN/Inf, or the inputs given, when they already hold the NaN."""
    if n.get("from_inputs"):
        held = ", ".join(f"{k!r} ({c} of {n['input_sizes'][k]} values)" for k, c in n["from_inputs"].items())
        return finding("ONX102", severity="low", confidence=0.95, title=f"The inputs already contain NaN: {held}",
                       description=f"The inputs given hold NaN ({held}); {n['node']} ({n['op_type']}) and the nodes "
                       "after it only pass it on, and no node makes NaN of its own. The model is not at fault: the "
                       "data is.", location=next(iter(n["from_inputs"])), evidence=n,
                       recommendations=[Recommendation("fix", "Check the data the inputs came from (missing values, "
                                                       "a failed preprocessing step), or compare on inputs without "
                                                       "NaN.")])
    both = "PyTorch produces NaN/Inf there too, so it is the model's own arithmetic" if n["torch_nonfinite"] else \
        "PyTorch does not (or it could not be matched), so treat it as a parity problem"
    bad, given = n["nonfinite_inputs"], [x for x in n["nonfinite_inputs"] if x in n.get("fed", [])]
    names = ", ".join(map(repr, bad[:3]))
    if not bad:
        inputs = "its inputs are finite"
    elif len(given) == len(bad):
        inputs = f"its inputs {names} hold +-inf (no NaN), given in the inputs"
    else:
        inputs = f"its inputs {names} hold only infinities, by design" + (
            f" or given in the inputs ({', '.join(map(repr, given[:3]))})" if given else "")
    what = "NaN" if n.get("nan") else "Inf"
    return finding("ONX102", severity="medium" if n["torch_nonfinite"] else "high", confidence=0.9,
                   title=f"{n['node']} ({n['op_type']}) is the first node to produce {what}",
                   description=f"Its output {n['value']!r} has {n['count']} non-finite value(s) while {inputs}; "
                   f"{both}. Infinities by design (a -inf mask constant and the values it flows into) are not counted.",
                   location=n["node"], evidence=n,
                   recommendations=[Recommendation("fix", "Guard the operation (clamp its input, add an epsilon) in "
                                                   "the model and re-export.")])


def _output_finding(r: ComparisonResult, bad: list[dict[str, Any]]) -> Finding:
    """An output that disagrees with no node named: a shape that differs, or no value to localise with."""
    o = bad[0]
    s = o["stats"]
    evidence = {"outputs": {x["name"]: x["stats"].to_dict() for x in bad}}
    lead = f"{len(bad)} of {len(r.outputs)} output(s) disagree; {o['name']!r}: "
    if s.shape_mismatch and s.shapes:
        got, want = s.shapes
        return finding("ONX101" if r.torch else "ONX105", severity="high", confidence=0.95,
                       title=f"Output {o['name']!r} has shape {got} in {r.target_label} but {want} in "
                       f"{r.reference_label}",
                       description=lead + f"{r.target_label} gives shape {got}, {r.reference_label} {want}, on the "
                       "same inputs. The two do not compute the same function: is this the model (and checkpoint) the "
                       "file was exported from?", location=o["name"], evidence=evidence,
                       recommendations=[Recommendation("fix", "Re-export the ONNX file from the model you compare "
                                                       "against, or compare with the model it was exported from.")])
    if not r.torch:  # golden outputs: nothing inside the model to localise with
        why = "Saved outputs hold no intermediate values, so the node cannot be named from them."
        how = ("Localise it against a run that has every intermediate: the model the golden file came from "
               "(`compare NEW.onnx OLD.onnx`) or the PyTorch model (`--torch`).")
    else:
        why = ("No intermediate value that disagrees could be matched to PyTorch and re-run alone, so the node cannot "
               "be named.")
        how = ("Export with the torch.export-based exporter (`torch.onnx.export(..., dynamo=True)`), which records "
               "each op, so that intermediate values can be matched.")
    return finding("ONX101" if r.torch else "ONX105", severity="high", confidence=0.85,
                   title=f"Output {o['name']!r} differs from {r.reference_label}",
                   description=lead + f"{s.brief()} ({r.tolerance_note}). {why}", location=o["name"],
                   evidence=evidence, recommendations=[Recommendation("fix", how)])


def save_repro(d: Divergence, directory: str | Path, reference: str = "PyTorch") -> str:
    """Write the divergent node group as a standalone model with its inputs and expected output; `reference`
    names what the expected values came from (PyTorch, another ONNX model, another provider)."""
    import onnx

    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, or a file where a parent folder should be
        raise BadInputError(f"--repro {str(directory)!r}: cannot create the folder ({exc.strerror or exc}): give a "
                            "folder name (it is created)") from exc
    onnx.save_model(d.sub_model, str(path / "model.onnx"))
    np.savez(path / "inputs.npz", **d.sub_feeds)
    np.savez(path / "expected.npz", **{d.value: d.expected})
    np.savez(path / "onnxruntime.npz", **{d.value: d.actual})
    (path / "summary.json").write_text(json.dumps({
        "node": d.node, "op_type": d.op_type, "value": d.value, "reference": d.reference, "verdict": d.verdict,
        "segment": d.segment, "alone": d.local.to_dict()}, indent=2) + "\n", encoding="utf-8")
    (path / "README.md").write_text(
        f"# modeldebug repro: {d.node} ({d.op_type})\n\n"
        f"`model.onnx` holds the node group {d.segment}; `inputs.npz` the values of its inputs in {reference}; "
        f"`expected.npz` the value of `{d.value}` in {reference}; `onnxruntime.npz` what onnxruntime computed.\n\n"
        "```python\nimport numpy as np, onnxruntime as ort\n"
        "so = ort.SessionOptions(); so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL\n"
        "s = ort.InferenceSession('model.onnx', so, providers=['CPUExecutionProvider'])\n"
        "feeds = dict(np.load('inputs.npz'))\n"
        "got = s.run(None, {i.name: feeds[i.name] for i in s.get_inputs()})[0]\n"
        f"want = np.load('expected.npz')[{d.value!r}]\n"
        "print('max abs diff', np.abs(got - want).max())\n```\n", encoding="utf-8")
    return str(path)
