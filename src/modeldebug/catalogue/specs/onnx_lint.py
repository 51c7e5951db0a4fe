"""Catalogue entries: ONNX structure and export hazards (`modeldebug onnx check`)."""

from __future__ import annotations

from ..spec import Spec

SPECS = (
    Spec(
        code='ONX001', kind='onnx_invalid_model', category='onnx', family='onnx', name='invalid-model',
        summary='onnx.checker rejects the model (full check).',
        doc="""
## What it detects
Any error `onnx.checker.check_model(model, full_check=True)` raises, with a plain explanation of
the common ones: a node input that no earlier node produces, a graph that is not topologically
sorted, an operator unknown at the declared opset, a value defined twice.

## Why is this bad?
Runtimes and converters assume a valid graph; an invalid one fails to load or behaves differently
from one runtime to the next.

## Example
A graph edited by hand where a node reads `x_norm` but the node producing it was deleted.

## Recommended fix
Re-export from the framework instead of editing the graph, or repair it with `onnx.helper` and
re-run the checker.

## Known problems
The checker stops at the first error; fix it and run again to see the next one.
""",
    ),
    Spec(
        code='ONX002', kind='onnx_shape_inference_error', category='onnx', family='onnx', name='shape-inference-error',
        summary='Strict shape and type inference finds an inconsistency.',
        doc="""
## What it detects
Errors from `onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
data_prop=True)`: input types an operator does not accept, ranks or dimensions that cannot match,
declared output shapes that contradict the computed ones.

## Why is this bad?
A type or shape contradiction usually becomes a load failure or a wrong broadcast at run time.

## Example
A declared output shape `[N, 10]` for a Gemm whose weight gives `[N, 5]`.

## Recommended fix
Check the named node's inputs; re-export with the right example input shapes.

## Known problems
Inference stops at the first error.
""",
    ),
    Spec(
        code='ONX003', kind='onnx_dead_node', category='onnx', family='onnx', name='dead-node',
        summary='Nodes whose outputs reach no graph output.',
        doc="""
## What it detects
Nodes from which no path leads to any graph output; onnx.checker does not flag them.

## Why is this bad?
They cost load time and memory, and often mean the graph is not the one intended (a branch left
behind by an edit, an output that was meant to be exported).

## Example
A debugging `Relu` added to the graph whose output nobody reads.

## Recommended fix
Remove them (`onnxscript.optimizer` or `onnx.utils.extract_model`), or add the missing output.

## Known problems
Nodes with side effects do not exist in standard ONNX, so removal is safe.
""",
    ),
    Spec(
        code='ONX004', kind='onnx_unused_initializer', category='onnx', family='onnx', name='unused-initializer',
        summary='Initializers no node reads.',
        doc="""
## What it detects
Initializers not consumed by any node (or subgraph) and not a graph output.

## Why is this bad?
They inflate the file and the memory; when a weight is unused the graph may not compute what the
model does (a layer dropped during export or editing).

## Example
`fc3.weight` kept in the file after the layer was removed from the graph.

## Recommended fix
Remove them; if the weight should be used, find why its layer is missing.

## Known problems
An initializer kept on purpose for a later graph edit is also reported.
""",
    ),
    Spec(
        code='ONX005', kind='onnx_unused_input', category='onnx', family='onnx', name='unused-graph-input',
        summary='Graph inputs no node reads.',
        doc="""
## What it detects
Graph inputs (that are not initializers) not consumed by any node.

## Why is this bad?
Callers must still feed them; usually an input the exported forward pass ignored.

## Example
`forward(self, x, mask)` where `mask` is never used.

## Recommended fix
Drop the argument before exporting, or use it.

## Known problems
None known.
""",
    ),
    Spec(
        code='ONX006', kind='onnx_initializer_as_input', category='onnx', family='onnx', name='initializer-as-input',
        summary='Initializers also listed as graph inputs.',
        doc="""
## What it detects
Names that are both an initializer and a graph input (`keep_initializers_as_inputs=True`).

## Why is this bad?
Runtimes must treat those weights as overridable inputs, which blocks constant folding and
fusions; callers can override weights by accident.

## Example
`torch.onnx.export(..., keep_initializers_as_inputs=True)`.

## Recommended fix
Export without that flag, or remove the names from `graph.input`.

## Known problems
IR version < 4 models require it; it is not reported for them.
""",
    ),
    Spec(
        code='ONX007', kind='onnx_node_names', category='onnx', family='onnx', name='bad-node-names',
        summary='Nodes with empty or duplicate names.',
        doc="""
## What it detects
Nodes whose `name` is empty, or shared by several nodes.

## Why is this bad?
Profiles, error messages and parity reports name nodes; empty or duplicate names make them
ambiguous.

## Example
A graph assembled with `onnx.helper.make_node` without `name=`.

## Recommended fix
Give every node a unique name (e.g. `f"{op_type}_{index}"`).

## Known problems
None known.
""",
    ),
    Spec(
        code='ONX008', kind='onnx_large_constant', category='onnx', family='onnx', name='large-inline-constant',
        summary='Large tensors stored inline in Constant nodes.',
        doc="""
## What it detects
`Constant` nodes holding more than `large_constant_bytes` (default 1 MiB).

## Why is this bad?
Constant nodes cannot be moved to external data and are copied by graph transforms; large
weights belong in initializers.

## Example
A legacy export with constant folding that turned a weight into a Constant node.

## Recommended fix
Move the tensor to an initializer (onnxscript's optimizer does this).

## Known problems
The threshold is a configuration value.
""",
    ),
    Spec(
        code='ONX009', kind='onnx_too_large', category='onnx', family='onnx', name='model-over2-g-b',
        summary='A model over 2 GB without external data.',
        doc="""
## What it detects
Tensor data stored inside the protobuf totalling more than the 2 GB protobuf limit.

## Why is this bad?
Protobuf cannot serialise or parse messages over 2 GB: the file cannot be saved or loaded.

## Example
`onnx.save(model, path)` for a 3 GB model.

## Recommended fix
`onnx.save_model(model, path, save_as_external_data=True, location="model.onnx.data")`.

## Known problems
The limit is a configuration value (`max_inline_bytes`).
""",
    ),
    Spec(
        code='ONX010', kind='onnx_baked_dynamic_axis', category='onnx', family='onnx', name='baked-dynamic-axis',
        summary='A dynamic input axis baked into a constant Reshape/Expand/Tile/ConstantOfShape target.',
        doc="""
## What it detects
A model input with a symbolic dimension (e.g. `batch`) while a Reshape, Expand, Tile or
ConstantOfShape downstream of it takes a constant target shape that fixes that size. When
onnxruntime can run the model, it is confirmed by running with the symbolic dimensions at two
sizes, then with each symbol changed alone, which names the axis (`'seq' (input 'x' axis 1)`);
onnxruntime's message is kept whole. The fix names the op's remedy and the export call of the
exporter the file came from (`dynamic_shapes` or `dynamic_axes`).

## Why is this bad?
The model only works at the size it was exported with; any other batch size fails or is
silently reshaped into the wrong layout.

## Example
`x.view(4, -1)` in forward, or exporting without `dynamic_shapes` and then editing the input
dimension to `batch` by hand.

## Recommended fix
Use `x.flatten(1)` / `x.view(x.size(0), -1)` and export with
`dynamic_shapes={"x": {0: torch.export.Dim("batch")}}`.

## Known problems
A fixed shape that is genuinely independent of the dynamic axis is reported only when its node
is downstream of the dynamic input. The runs use made-up inputs: a failure at a node whose sizes
or indices come from the VALUES of the inputs (a Split whose `split` input is data) is not
reported.
""",
    ),
    Spec(
        code='ONX011', kind='onnx_training_dropout', category='onnx', family='onnx', name='training-dropout',
        summary='Dropout left in training mode in an inference graph.',
        doc="""
## What it detects
`Dropout` nodes whose `training_mode` input is a constant True or a graph input.

## Why is this bad?
Every inference call zeroes a random part of the activations: outputs change from run to run.

## Example
`torch.onnx.export(model, ...)` while the model is still in `model.train()` mode.

## Recommended fix
`model.eval()` before exporting.

## Known problems
Dropout nodes without a training-mode input are identities at inference and are not reported.
""",
    ),
    Spec(
        code='ONX012', kind='onnx_training_batchnorm', category='onnx', family='onnx', name='training-batch-norm',
        summary='BatchNormalization in training mode in an inference graph.',
        doc="""
## What it detects
`BatchNormalization` with `training_mode=1`, or (before opset 14) with the extra running-mean
outputs that only training mode produces.

## Why is this bad?
Each batch is normalised with its own statistics: results depend on what else is in the batch,
and a batch of one is normalised to zero.

## Example
Exporting a CNN without calling `model.eval()`.

## Recommended fix
`model.eval()` before exporting.

## Known problems
None known.
""",
    ),
    Spec(
        code='ONX013', kind='onnx_random_op', category='onnx', family='onnx', name='random-op-in-graph',
        summary='Random-number operators in an inference graph.',
        doc="""
## What it detects
RandomNormal, RandomUniform, RandomNormalLike, RandomUniformLike, Bernoulli, Multinomial.

## Why is this bad?
Outputs differ between runs and runtimes; usually a training-time behaviour left in.

## Example
Noise injection or sampling left active when exporting.

## Recommended fix
Export in eval mode, or gate the randomness behind a flag that is off for export.

## Known problems
Generative models that sample on purpose are reported too.
""",
    ),
    Spec(
        code='ONX014', kind='onnx_float64', category='onnx', family='onnx', name='float64-compute',
        summary='Nodes computing in float64.',
        doc="""
## What it detects
Nodes producing float64 tensors (found by shape inference), other than casts out of float64.

## Why is this bad?
float64 is slow or unsupported on most accelerators and many onnxruntime kernels; it usually
comes from a numpy float64 constant or a `.double()` left in the model.

## Example
`x * torch.tensor(np.pi)` (a float64 tensor) or `model.double()` before export.

## Recommended fix
Keep the model and constants in float32 (`np.float32(...)`, `model.float()`).

## Known problems
Models that need float64 on purpose are reported too.
""",
    ),
)
