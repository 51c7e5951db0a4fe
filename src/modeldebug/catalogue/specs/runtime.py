"""Catalogue entries: runtime."""

from __future__ import annotations

from ..spec import Spec

SPECS = (
    Spec(
        code='RUN001', kind='shape_mismatch', category='runtime', family='training', name='shape-mismatch',
        summary='The run crashed on tensors whose shapes do not fit together.',
        doc="""
## What it detects
A crash whose message reports incompatible shapes (matmul, broadcasting, view/reshape, loss
target sizes), with the module that was running.

## Why is this bad?
The run stops; often the cause is one layer's size that does not match what the previous
layer produces (a Flatten in front of a Linear with the wrong in_features).

## Example
```python
self.fc = nn.Linear(256, 10)   # but the flattened conv output has 400 features
```

## Recommended fix
Print the shapes going into the module, or let `nn.LazyLinear` infer its input size.

## Known problems
Classification reads the error message, whose wording changes between PyTorch versions.
""",
    ),
    Spec(
        code='RUN002', kind='dtype_mismatch', category='runtime', family='training', name='dtype-mismatch',
        summary='The run crashed on tensors of incompatible dtypes.',
        doc="""
## What it detects
A crash whose message reports a dtype conflict (float64 inputs into float32 weights, integer
class targets where floats are expected, or the reverse).

## Why is this bad?
The run stops. NumPy arrays are float64 by default and become float64 tensors.

## Example
```python
x = torch.from_numpy(np.random.rand(8, 4))   # float64, model is float32
```

## Recommended fix
Convert inputs to the model's dtype (`x.float()`), class targets to `long`, BCE targets to float.

## Known problems
Classification reads the error message.
""",
    ),
    Spec(
        code='RUN003', kind='device_mismatch', category='runtime', family='training', name='device-mismatch',
        summary='The run crashed on tensors that live on different devices.',
        doc="""
## What it detects
A crash whose message reports tensors on different devices (CPU and CUDA, or two GPUs).

## Why is this bad?
The run stops; typically the batch or a tensor created inside `forward` was not moved.

## Example
```python
model.cuda(); out = model(x)       # x is still on the CPU
```

## Recommended fix
Move the batch with the model; create tensors in `forward` on the input's device.

## Known problems
Classification reads the error message.
""",
    ),
    Spec(
        code='RUN004', kind='out_of_memory', category='runtime', family='training', name='out-of-memory',
        summary='The run crashed because memory ran out.',
        doc="""
## What it detects
`torch.OutOfMemoryError` or an allocator failure message.

## Why is this bad?
The run stops; the peak is usually activations of a too-large batch, or tensors kept alive
across steps (`losses.append(loss)` keeps every graph).

## Example
```python
history.append(loss)        # keeps the whole autograd graph of every step alive
```

## Recommended fix
Store `loss.item()`, lower the batch size, use AMP or activation checkpointing.

## Known problems
Classification reads the error message.
""",
    ),
    Spec(
        code='RUN005', kind='inplace_modification', category='runtime', family='training', name='inplace-modification',
        summary='Backward failed because a tensor it needed was modified in place.',
        doc="""
## What it detects
The autograd error "one of the variables needed for gradient computation has been modified by
an inplace operation".

## Why is this bad?
The run stops in `backward()`; the in-place op (`x += ...`, `relu_(inplace=True)` on a saved
tensor, `x[idx] = ...`) destroyed a value the gradient needs.

## Example
```python
h = torch.sigmoid(x); h += 1     # sigmoid's backward needs its output
```

## Recommended fix
Replace the in-place op with its out-of-place form; `torch.autograd.set_detect_anomaly(True)`
points at the forward line.

## Known problems
Classification reads the error message.
""",
    ),
    Spec(
        code='RUN006', kind='runtime_error', category='runtime', family='training', name='runtime-failure',
        summary='The run crashed with an error of no more specific kind; the message and module are reported.',
        doc="""
## What it detects
Any exception that ended the run and is not one of the specific runtime kinds. A crash in the
script's own code before any training step, with no PyTorch code in the traceback (a bad config
value, a missing file), is reported with low severity: it is a bug of the script, not a training
problem.

## Why is this bad?
The run did not finish.

## Example
```python
raise ValueError("bad config")
```

## Recommended fix
Read the message and the location; the module that was running is named when known.

## Known problems
None: this is the catch-all.
""",
    ),
)
