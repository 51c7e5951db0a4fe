"""Model inputs: what the graph expects, seeded random feeds, and user arrays checked against it."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BadInputError
from .graph import Shape, shape_of

if TYPE_CHECKING:
    import onnx

__all__ = ["FeedTooLargeError", "InputMismatchError", "InputSpec", "check_shapes", "describe_specs", "given_symbols",
           "input_specs", "load_inputs", "made_up_note", "made_up_run_failure", "made_up_shapes", "made_up_sizes",
           "match_feeds", "random_feeds", "read_npz"]

log = logging.getLogger("modeldebug.onnx")


class InputMismatchError(BadInputError):
    """Arrays given as inputs do not match what the model declares."""


@dataclass
class InputSpec:
    """One graph input: name, numpy dtype and declared shape (symbolic dims as strings)."""

    name: str
    dtype: np.dtype
    shape: Shape

    def __str__(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"

    @property
    def dynamic_batch(self) -> bool:
        return bool(self.shape) and not isinstance(self.shape[0], int)


def input_specs(proto: onnx.ModelProto) -> list[InputSpec]:
    """The inputs a caller must feed (graph inputs that are not initializers)."""
    from onnx.helper import tensor_dtype_to_np_dtype

    inits = {t.name for t in proto.graph.initializer}
    specs = []
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        got = shape_of(vi.type)
        if got is None:
            raise BadInputError(f"model input {vi.name!r} is not a tensor; only tensor inputs are supported")
        elem, shape = got
        specs.append(InputSpec(vi.name, np.dtype(tensor_dtype_to_np_dtype(elem)), shape))
    return specs


def describe_specs(specs: list[InputSpec]) -> str:
    return "; ".join(str(s) for s in specs) or "(none)"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def check_shapes(specs: list[InputSpec], shapes: dict[str, list[int]]) -> None:
    """`--shape NAME=D0,D1,...` against the model's inputs: a known input, its rank, positive sizes, and the
    fixed dimensions as declared (only symbolic ones can be set). Used by inspect, profile and compare."""
    unknown = sorted(set(shapes) - {s.name for s in specs})
    if unknown:
        raise BadInputError(f"--shape given for {', '.join(map(repr, unknown))}, but the model's inputs are "
                            f"{describe_specs(specs)}")
    for spec in specs:
        given = shapes.get(spec.name)
        if given is None:
            continue
        flag = f"--shape {spec.name}={','.join(map(str, given))}"
        if any(d <= 0 for d in given):
            raise BadInputError(f"{flag}: dimensions must be positive, for the input {spec}")
        if not spec.shape:
            continue  # rank unknown: any shape may fit
        if len(given) != len(spec.shape):
            raise BadInputError(f"{flag} has {len(given)} dimensions but the input {spec} has {len(spec.shape)}")
        fixed = [(i, d) for i, d in enumerate(spec.shape) if isinstance(d, int) and d > 0 and given[i] != d]
        if fixed:
            i, d = fixed[0]
            raise BadInputError(f"{flag} does not fit the input {spec}: axis {i} is fixed at {d} in the model, not "
                                f"{given[i]} (fixed dimensions must stay as declared; --shape sets the symbolic ones)")


def made_up_shapes(specs: list[InputSpec], *, batch: int | None = None, dim_default: int = 4,
                   shapes: dict[str, list[int]] | None = None) -> dict[str, list[int]]:
    """The concrete shape of each made-up input (see `random_feeds`); `shapes` fixes whole inputs."""
    shapes = shapes or {}
    check_shapes(specs, shapes)
    symbols = given_symbols(specs, shapes)  # a symbol set by one input's --shape has that size in every input
    out = {}
    for spec in specs:
        given = shapes.get(spec.name)
        if given is not None:
            out[spec.name] = list(given)
            continue
        shape = []
        for axis, d in enumerate(spec.shape):
            if isinstance(d, int) and d > 0:
                shape.append(d)
                continue
            size = batch if (axis == 0 and batch is not None) else dim_default
            shape.append(symbols.setdefault(d, size) if isinstance(d, str) else size)
        out[spec.name] = shape
    return out


def given_symbols(specs: list[InputSpec], shapes: dict[str, list[int]]) -> dict[str, int]:
    """The size each symbolic dimension has in the whole input shapes `shapes` gives ({'b': 3, 's': 7}), so that
    inputs sharing a symbol get the same size (the first input to set it wins)."""
    symbols: dict[str, int] = {}
    for spec in specs:
        given = shapes.get(spec.name)
        if given is not None and len(given) == len(spec.shape):
            for d, n in zip(spec.shape, given):
                if isinstance(d, str) and d:
                    symbols.setdefault(d, int(n))
    return symbols


def made_up_sizes(specs: list[InputSpec], feeds: dict[str, np.ndarray]) -> dict[str, int]:
    """The size each dynamic dimension got in `feeds`: {'batch': 2, 'seq': 4} ('x[1]' for an unnamed one)."""
    out: dict[str, int] = {}
    for spec in specs:
        if spec.name in feeds:
            for axis, (d, n) in enumerate(zip(spec.shape, feeds[spec.name].shape)):
                if not (isinstance(d, int) and d > 0):
                    out.setdefault(d if isinstance(d, str) else f"{spec.name}[{axis}]", int(n))
    return out


def _shape_flags(specs: list[InputSpec], given: dict[str, list[int]]) -> str:
    """`--shape x=D0,D1,8` for each input with a dynamic dimension whose shape was not given."""
    return " ".join(f"--shape {s.name}=" + ",".join(str(d) if isinstance(d, int) and d > 0 else f"D{a}"
                                                     for a, d in enumerate(s.shape))
                    for s in specs if s.name not in given and not all(isinstance(d, int) and d > 0 for d in s.shape))


def made_up_note(specs: list[InputSpec], feeds: dict[str, np.ndarray],
                 given: dict[str, list[int]] | None = None) -> str:
    """For an error on made-up inputs: the sizes made up and how to give real ones ('' when none were)."""
    sizes = made_up_sizes([s for s in specs if s.name not in (given or {})], feeds)
    if not sizes:
        return ""
    made = ", ".join(f"{k}={n}" for k, n in sizes.items())
    return (f" (on made-up inputs: the sizes of the dynamic dimensions were made up ({made}); give real sizes with "
            f"{_shape_flags(specs, given or {})}, or real inputs with --inputs)")


def made_up_run_failure(source: str, specs: list[InputSpec], tried: list[dict[str, np.ndarray]], node: str | None,
                        said: str, given: dict[str, list[int]] | None = None) -> BadInputError:
    """onnxruntime failed on every set of made-up inputs: which sizes were made up, the likely cause (a shape
    baked in at export, ONX010) and how to give real sizes (`--shape`, with `given` the ones already given)."""
    at = f" at node {node}" if node else ""
    made = [made_up_sizes([s for s in specs if s.name not in (given or {})], f) for f in tried]
    if not any(made):
        shapes = "; ".join(str({k: list(v.shape) for k, v in f.items()}) for f in tried)
        return BadInputError(f"onnxruntime failed to run {source}{at} on made-up inputs {shapes} (seeded random "
                             f"values): give real inputs with --inputs. onnxruntime said: {said}")
    sizes = "; then ".join(", ".join(f"{k}={n}" for k, n in m.items()) for m in made)
    return BadInputError(f"onnxruntime failed to run {source}{at} on made-up inputs: the sizes of its dynamic "
                         f"dimensions were made up ({sizes}) and the graph seems to fix some of them (a shape baked in "
                         f"at export, ONX010: `modeldebug onnx check {source}` names the axis); give real sizes with "
                         f"{_shape_flags(specs, given or {})}, or real inputs with --inputs. onnxruntime said: {said}")


class FeedTooLargeError(InputMismatchError):
    """Made-up inputs would need more memory than `max_bytes` allows (refused before allocating)."""


def _check_size(specs: list[InputSpec], shapes: dict[str, list[int]], max_bytes: int, advice: str,
                shape_flag: str | None) -> None:
    total = 0
    for spec in specs:
        n = math.prod(shapes[spec.name]) * spec.dtype.itemsize
        total += n
        if total <= max_bytes:
            continue
        dims = ",".join(map(str, shapes[spec.name]))
        symbolic = any(not (isinstance(d, int) and d > 0) for d in spec.shape)
        if not symbolic:
            how = "its shape is fixed in the model: re-export it with smaller or symbolic dimensions, "
        elif shape_flag:
            how = f"set its symbolic dimensions smaller with {shape_flag} {spec.name}=D0,D1,... "
        else:
            how = ""
        raise FeedTooLargeError(
            f"input {spec.name!r} ({spec}) made up as [{dims}] would need {_size(n)} of memory"
            + (f" ({_size(total)} with the inputs before it)" if total != n else "")
            + f", above the {_size(max_bytes)} limit: {how}or {advice}",
            details={"input": spec.name, "shape": shapes[spec.name], "bytes": n, "max_bytes": max_bytes})


def random_feeds(specs: list[InputSpec], *, batch: int | None = None, seed: int = 0, dim_default: int = 4,
                 shapes: dict[str, list[int]] | None = None, max_bytes: int | None = None,
                 advice: str = "give real inputs with --inputs FILE.npz",
                 shape_flag: str | None = None) -> dict[str, np.ndarray]:
    """Seeded inputs: normal floats, small non-negative ints, random bools.

    A symbolic first dimension gets `batch` (default `dim_default`); other symbolic dims get
    `dim_default`, the same size for the same symbol across inputs; `shapes` gives whole input
    shapes (fixed dimensions must match). When the inputs together would need more than
    `max_bytes`, `FeedTooLargeError` names the input and its shape before anything is allocated, and
    says what to do: `advice`, and `shape_flag` (the option that sets `shapes`) for symbolic inputs.
    """
    concrete = made_up_shapes(specs, batch=batch, dim_default=dim_default, shapes=shapes)
    if max_bytes is not None:
        _check_size(specs, concrete, max_bytes, advice, shape_flag)
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        shape = concrete[spec.name]
        if spec.dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        elif spec.dtype.kind in "iu":
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(spec.dtype)
        elif spec.dtype.kind == "b":
            feeds[spec.name] = rng.random(shape) > 0.5
        else:
            raise BadInputError(f"cannot make random values for input {spec}: give real inputs with --inputs")
    return feeds


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Arrays from an .npz (or one .npy) file; a clear error when it cannot be read."""
    p = Path(path)
    if not p.is_file():
        raise InputMismatchError(f"{p}: no such inputs file")
    try:
        data = np.load(p, allow_pickle=False)
        if isinstance(data, np.ndarray):
            return {"arr_0": data}
        with data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError) as exc:
        raise InputMismatchError(f"{p}: not a readable .npz/.npy file ({exc})") from exc


def _as_array(value: Any, name: str) -> tuple[np.ndarray, str]:
    """(the array, the dtype it came in). A torch float type numpy lacks (bfloat16, float8) becomes float32,
    which holds each of its values exactly."""
    if hasattr(value, "detach"):  # a torch tensor
        t = value.detach().cpu()
        came = str(t.dtype).removeprefix("torch.")
        try:
            return t.numpy(), came
        except TypeError:
            if not t.is_floating_point():
                raise InputMismatchError(f"input {name!r} is a torch {came} tensor, a type numpy (and onnxruntime's "
                                         "Python API) cannot hold: convert it to the model's input type") from None
            return t.float().numpy(), came
    arr = np.asarray(value)
    return arr, str(arr.dtype)


def _cast(spec: InputSpec, arr: np.ndarray, came: str) -> np.ndarray:
    """`arr` as the model's input type; says so when that changes values, or the type was one numpy lacks."""
    with np.errstate(over="ignore", invalid="ignore"):
        cast = arr.astype(spec.dtype)
        back = cast.astype(arr.dtype)
    if arr.dtype.kind == "f" and cast.dtype.kind == "f":
        # float64 data for a float32 model: rounding is what the exported model computes in anyway;
        # what to say is a value that overflowed to inf or underflowed to 0
        with np.errstate(invalid="ignore"):
            same = ~((np.isfinite(arr) & ~np.isfinite(cast)) | ((arr != 0) & (cast == 0)))
    else:
        same = back == arr
        if arr.dtype.kind == "f":
            same |= np.isnan(back) & np.isnan(arr)
    changed = int((~same).sum())
    if changed or came != str(arr.dtype):
        how = (f"{changed} of {arr.size} values {'overflowed or underflowed' if cast.dtype.kind == 'f' else 'changed'}"
               if changed else f"exact: every {came} value is a {spec.dtype}")
        log.warning("modeldebug: input %r: %s values cast to %s, the model's input type (%s)", spec.name, came,
                    spec.dtype, how)
    return cast


def match_feeds(specs: list[InputSpec], given: Any) -> dict[str, np.ndarray]:
    """Check user inputs against the model's inputs and return them as a name -> array dict.

    `given`: a dict by input name (an .npz's ``arr_0, arr_1, ...`` are taken in order), a sequence
    in input order, or one array/tensor for a one-input model. Floats of another width are cast;
    anything else that does not fit raises ``InputMismatchError`` naming the input.
    """
    expected = describe_specs(specs)
    if isinstance(given, dict):
        keys = list(given)
        if keys and all(k == f"arr_{i}" for i, k in enumerate(keys)) and not any(s.name in given for s in specs):
            given = [given[k] for k in keys]
        else:
            missing = [s.name for s in specs if s.name not in given]
            extra = [k for k in keys if k not in {s.name for s in specs}]
            if missing or extra:
                raise InputMismatchError(f"inputs do not match the model: missing {missing}, unexpected {extra}; "
                                         f"the model expects {expected}")
            given = [given[s.name] for s in specs]
    elif not isinstance(given, (list, tuple)):
        given = [given]
    if len(given) != len(specs):
        raise InputMismatchError(f"{len(given)} input array(s) given but the model expects {len(specs)}: {expected}")
    feeds = {}
    for spec, value in zip(specs, given):
        arr, came = _as_array(value, spec.name)
        if arr.dtype != spec.dtype or came != str(arr.dtype):
            if arr.dtype.kind == spec.dtype.kind == "f" or (arr.dtype.kind in "iu" and spec.dtype.kind in "iu"):
                arr = _cast(spec, arr, came)
            elif spec.dtype.kind == "O" and arr.dtype.kind in "US":
                arr = arr.astype(object)  # a string input: .npz holds str arrays, onnxruntime takes them as objects
            else:
                raise InputMismatchError(f"input {spec.name!r} has dtype {came} but the model expects "
                                         f"{spec.dtype} ({spec})")
        if spec.shape and (arr.ndim != len(spec.shape) or any(
                isinstance(d, int) and d > 0 and d != n for d, n in zip(spec.shape, arr.shape))):
            raise InputMismatchError(f"input {spec.name!r} has shape {list(arr.shape)} but the model expects {spec}")
        feeds[spec.name] = arr
    return feeds


def _not_text(obj: Any, spec: str, attr: str, verb: str = "returned") -> None:
    """A loader that returns a str (a file name?) would otherwise be read as the name of an inputs file."""
    if isinstance(obj, (str, bytes)):
        raise BadInputError(f"--inputs {spec!r}: {attr} {verb} a {type(obj).__name__} ({obj[:40]!r}), not arrays "
                            "or tensors (one, a sequence or a dict by input name, or an iterable of them); to read a "
                            "file, give its path to --inputs")


def load_inputs(spec: str | None, specs: list[InputSpec] | None = None) -> Any:
    """Inputs named on the command line: an .npz/.npy file, or `MODULE:CALLABLE` (a data loader).

    The callable is called with no arguments; it may return the inputs (an array or tensor, a
    sequence in input order, a dict by input name) or an iterable of them (a generator, a
    DataLoader), of which the first item is used. An item with more entries than the model has
    inputs (a DataLoader's `(x, y)`) gives its first ones.
    """
    if spec is None:
        return None
    if spec.endswith((".npz", ".npy")) or Path(spec).is_file() or ":" not in spec:
        return read_npz(spec)
    from ..loader import calling, load_object

    obj: Any = load_object(spec, "--inputs")
    attr = spec.rpartition(":")[2]
    try:
        with calling(spec, "--inputs", f"calling {attr}()"):
            if callable(obj) and not hasattr(obj, "shape"):
                obj = obj()
            _not_text(obj, spec, attr)
            if not isinstance(obj, (dict, list, tuple, np.ndarray)) and not hasattr(obj, "shape"):
                if not hasattr(obj, "__iter__"):
                    raise BadInputError(f"--inputs {spec!r}: {attr} gave {type(obj).__name__}, not arrays, tensors, "
                                        "a dict or sequence of them, or an iterable of those")
                obj = next(iter(obj), None)
                if obj is None:
                    raise BadInputError(f"--inputs {spec!r}: the data loader yielded nothing")
                _not_text(obj, spec, attr, "yielded")
    except BadInputError:
        raise
    except Exception as exc:  # the user's loader failed: one line naming it
        raise BadInputError(f"--inputs {spec!r}: {type(exc).__name__}: {exc}") from exc
    if specs is not None and isinstance(obj, (list, tuple)) and len(obj) > len(specs):
        obj = list(obj)[: len(specs)]  # (x, y) from a DataLoader: the model takes x
    return obj
