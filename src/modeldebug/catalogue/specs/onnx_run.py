"""Catalogue entries: ONNX parity and execution (`modeldebug onnx compare|profile`)."""

from __future__ import annotations

from ..spec import Spec

SPECS = (
    Spec(
        code='ONX015', kind='onnx_opset_unsupported', category='onnx', family='onnx', name='opset-unsupported',
        summary='An opset or IR version newer than the installed onnxruntime supports.',
        doc="""
## What it detects
onnxruntime refusing the model because its IR version or an opset is newer than it knows.

## Why is this bad?
The model cannot run on this onnxruntime at all.

## Example
A model built with `onnx.helper.make_model` (stamped with the newest IR version) run on an
older onnxruntime.

## Recommended fix
Export with a lower `opset_version`, set `model.ir_version` to one onnxruntime supports, or
upgrade onnxruntime.

## Known problems
None known.
""",
    ),
    Spec(
        code='ONX016', kind='onnx_no_kernel', category='onnx', family='onnx', name='no-kernel',
        summary='An operator with no onnxruntime kernel for its type.',
        doc="""
## What it detects
onnxruntime's NOT_IMPLEMENTED "Could not find an implementation for OP(version)" when creating
a session, with the node named.

## Why is this bad?
The model cannot run on that execution provider; typically float64 Conv/Erf or an integer type
an operator does not support.

## Example
A CNN exported after `model.double()`: onnxruntime has no float64 Conv on CPU.

## Recommended fix
Export in float32, or cast around the operator.

## Known problems
Only the first missing kernel is reported: onnxruntime stops there.
""",
    ),
    Spec(
        code='ONX017', kind='onnx_session_error', category='onnx', family='onnx', name='session-error',
        summary='onnxruntime cannot create a session for another reason.',
        doc="""
## What it detects
Any other error while creating an onnxruntime session, with its message.

## Why is this bad?
The model cannot run on this onnxruntime.

## Example
A custom-domain operator with no registered implementation.

## Recommended fix
Read the message; register the custom-op library, or re-export with standard operators.

## Known problems
None known.
""",
    ),
    Spec(
        code='ONX101', kind='onnx_parity', category='onnx', family='onnx', name='parity-mismatch',
        summary='The first ONNX node whose output disagrees with PyTorch, and who introduced the error.',
        doc="""
## What it detects
PyTorch and onnxruntime (optimisations off, every intermediate exposed in one run) are run on the
same inputs. ONNX values are matched to PyTorch ops (by the exporter's names) and module outputs;
modules the exporter fused (an eval-mode BatchNorm folded into the Conv before it, by either
exporter) are grouped and compared at the group's boundary, with the fused node's weights checked
against the folded PyTorch parameters; a module that became many nodes is compared where its
scope ends. Each mismatching value's producing nodes are re-run alone on the PyTorch values of
their inputs.
A node that still disagrees INTRODUCES the error; one that then agrees only INHERITS it. The
first introducer is reported, with a verdict: exporter/translation (onnx.reference agrees with
onnxruntime, so the graph itself computes something else) or runtime kernel (onnx.reference
agrees with PyTorch).

## Why is this bad?
The deployed model does not compute what the trained one does.

## Example
A weight edited in the ONNX file after export, an exporter bug for one operator, a custom
operator translated with the wrong attribute.

## Recommended fix
Look at the named node and its PyTorch op; `--repro DIR` saves the node with its inputs and the
expected output as a standalone model.

## Known problems
An element fails only if BOTH its absolute and relative errors exceed tolerance. The default
tolerance follows the lowest floating-point precision among the value, its reference and every
float it depends on (float32 1e-4/1e-3, float16 1e-3/1e-2, bfloat16 1e-2/5e-2, float64
1e-8/1e-7); `--atol`/`--rtol` override it for every dtype, and the report says which was used.
Nodes with no PyTorch counterpart (exporter-made, or functional code outside any module, under
the TorchScript exporter) are listed; the reported node is then the last node of the smallest
group whose output could be checked.
""",
    ),
    Spec(
        code='ONX102', kind='onnx_nonfinite', category='onnx', family='onnx', name='non-finite-node',
        summary='The first ONNX node that produces NaN or Inf from finite inputs.',
        doc="""
## What it detects
In the all-intermediates onnxruntime run, the first node (in graph order) that introduces NaN or
Inf that is not by design; says whether PyTorch produced non-finite values there too (then the
severity is medium: the export is faithful, the model's arithmetic is not). By design, and not a
finding: infinities (never NaN) in constants or initializers (a `-inf` attention mask), the
values they flow into (`scores + mask`, `masked_fill`), and infinities PyTorch has at the same
elements.

## Why is this bad?
Every node downstream inherits the NaN.

## Example
`torch.log(x)` or `sqrt` of a negative input, a division by a zero variance.

## Recommended fix
Guard the operation (clamp, epsilon); if only onnxruntime produces it, treat it as a parity bug.

## Known problems
Only values onnxruntime returns are checked (top-level nodes, not inside If/Loop bodies). A row
masked entirely gives NaN after softmax: that is reported, since it is a real hazard.
""",
    ),
    Spec(
        code='ONX103', kind='onnx_optimization_divergence', category='onnx', family='onnx', name='optimization-divergence',
        summary='An onnxruntime graph optimisation level changes the results.',
        doc="""
## What it detects
Final outputs agree with PyTorch with optimisations off but not at a higher
`GraphOptimizationLevel` (basic, extended, layout, all); the first such level is named.

## Why is this bad?
The model is exported correctly but a fusion or rewrite in onnxruntime changes its numbers.

## Example
A fused kernel with a different accumulation order on reduced precision inputs.

## Recommended fix
Pin `SessionOptions.graph_optimization_level` below the named level, or disable the offending
optimiser with `SessionOptions.add_session_config_entry` / `disabled_optimizers`.

## Known problems
Differences below tolerance are not reported.
""",
    ),
    Spec(
        code='ONX104', kind='onnx_batch_divergence', category='onnx', family='onnx', name='batch-size-divergence',
        summary='The model agrees at one batch size but not another, or fails to run at it.',
        doc="""
## What it detects
For models with a dynamic batch axis, parity is checked at two batch sizes; a run that fails or
disagrees only at the second one is reported.

## Why is this bad?
Production traffic uses other batch sizes than the export example.

## Example
A Reshape with the export batch size baked in.

## Recommended fix
See ONX010; export with `dynamic_shapes` and avoid Python ints taken from tensor shapes.

## Known problems
Only two batch sizes are tried.
""",
    ),
    Spec(
        code='ONX105', kind='onnx_reference_mismatch', category='onnx', family='onnx', name='reference-mismatch',
        summary='A model disagrees with another ONNX model, another execution provider, or saved golden outputs.',
        doc="""
## What it detects
`modeldebug onnx compare MODEL.onnx REFERENCE.onnx`, `--provider P` against `--reference-provider
Q`, or `--golden FILE.npz`: both runs expose every intermediate, values are matched by name and
shape, and each mismatching value's node group is re-run alone (on the tested model and
provider) on the reference's values of its inputs. The first group that still disagrees
introduces the error; its node is reported with the initializers that differ between the two
models, or with onnx.reference's verdict on which provider is right. Against golden outputs only
the outputs can be compared, and the first output that differs is named.

## Why is this bad?
An optimised, quantised or re-exported model, or another execution provider, no longer computes
what the reference does; a golden mismatch means the model changed since the outputs were saved.

## Example
A graph rewritten by an optimiser that folds constants wrongly; a CUDA kernel that differs from
the CPU one on fp16; a weight edited after export.

## Recommended fix
`--repro DIR` saves the reduced model: the node group (the smallest subgraph bounded by values
the reference also has) that still diverges, with its inputs and both outputs.

## Known problems
Values are matched by name: a model whose values were all renamed is compared at its outputs
only. Tolerances follow the dtype, as for ONX101.
""",
    ),
    Spec(
        code='ONX201', kind='onnx_ep_fallback', category='onnx', family='onnx', name='execution-provider-fallback',
        summary='Nodes that ran on the CPU although another execution provider was asked for.',
        doc="""
## What it detects
Profile events whose provider is CPUExecutionProvider while the session was created with another
provider first.

## Why is this bad?
Each fallback adds device-to-host copies and runs on the slower device.

## Example
An operator or dtype the CUDA provider has no kernel for.

## Recommended fix
Replace the operators with supported ones, or accept the copies knowingly.

## Known problems
Shape-only nodes placed on the CPU on purpose by onnxruntime are reported too.
""",
    ),
    Spec(
        code='ONX202', kind='onnx_provider_unavailable', category='onnx', family='onnx', name='provider-unavailable',
        summary='An execution provider was asked for that this onnxruntime does not have.',
        doc="""
## What it detects
A requested provider not in `onnxruntime.get_available_providers()`.

## Why is this bad?
The session silently runs on the CPU.

## Example
Asking for CUDAExecutionProvider with the CPU-only `onnxruntime` wheel.

## Recommended fix
Install the matching build (`onnxruntime-gpu`), or drop the provider.

## Known problems
None known.
""",
    ),
)
