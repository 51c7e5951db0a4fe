"""`modeldebug onnx check|inspect|profile|compare`: ONNX lint, dump, onnxruntime profile, parity.

Findings go to stderr (rich) and the command's own summary to stdout; with `--json -` stdout holds
only the JSON (the contract's report plus one section for the command's result).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from ..errors import BadInputError

__all__ = ["add", "load_torch_model"]

_MAX_THREADS = 1024
_MAX_DIM = 2**63 - 1  # ONNX dimensions are int64
_MAX_WARMUP, _MAX_ITERATIONS = 10_000, 1_000_000  # onnxruntime's trace keeps an event per node and run


def add(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `modeldebug onnx ...`."""
    p = sub.add_parser("onnx", help="ONNX lint, inspect, onnxruntime profile, PyTorch-vs-onnxruntime parity",
                       description="Lint, describe, profile and compare ONNX models.")
    cmds = p.add_subparsers(dest="onnx_command", metavar="ACTION", parser_class=type(p))
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])

    def common(q: argparse.ArgumentParser, *, fail_on: bool = True) -> None:
        q.add_argument("model", metavar="MODEL.onnx", help="the ONNX model file")
        q.add_argument("--json", metavar="P", help="write the JSON report to P ('-' for stdout)")
        q.add_argument("-q", "--quiet", action="store_true", help="do not print findings to stderr")
        if fail_on:
            q.add_argument("--fail-on", choices=["low", "medium", "high"], help="exit 1 if a finding is this severe")

    c = cmds.add_parser("check", help="structure lint and export hazards")
    common(c)
    c.set_defaults(handler=_check)
    i = cmds.add_parser("inspect", help="opsets, inputs/outputs, nodes, weights, MACs/FLOPs")
    common(i, fail_on=False)
    i.add_argument("--shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="fix an input's shape for MACs/FLOPs (symbolic dims count as 1 otherwise)")
    i.set_defaults(handler=_inspect)
    pr = cmds.add_parser("profile", help="onnxruntime profile per node and op type")
    common(pr)
    pr.add_argument("--inputs", metavar="FILE.npz|MODULE:CALLABLE",
                    help="input arrays by input name, or a data loader (see compare) (default: seeded random)")
    pr.add_argument("--warmup", type=int, default=2, metavar="N", help="runs dropped first (default 2)")
    pr.add_argument("--iterations", type=int, default=10, metavar="N", help="measured runs (default 10)")
    pr.add_argument("--provider", action="append", metavar="NAME", help="execution provider, in order of preference")
    pr.add_argument("--threads", type=int, default=0, metavar="N",
                    help=f"intra-op threads, 0 to {_MAX_THREADS} (0: onnxruntime's default)")
    pr.add_argument("--shape", action="append", default=[], metavar="NAME=D0,D1,...",
                    help="shape of a made-up input (sets its symbolic dims; without it they are 2 for the "
                         "batch and 4 elsewhere)")
    pr.set_defaults(handler=_profile)
    cp = cmds.add_parser("compare", help="against PyTorch, another ONNX model, another provider or golden outputs, "
                         "down to the first divergent node",
                         description="Compare MODEL.onnx with one reference: the PyTorch model (--torch), another ONNX "
                         "model (REFERENCE.onnx), the same model on another execution provider (--provider P "
                         "--reference-provider Q), or outputs saved before (--golden FILE.npz).")
    common(cp)
    cp.add_argument("reference", nargs="?", metavar="REFERENCE.onnx", help="another ONNX model to compare with")
    cp.add_argument("--torch", metavar="MODULE:FACTORY",
                    help="the PyTorch model: a module or file.py and a factory (or nn.Module) in it, e.g. nets.py:build")
    cp.add_argument("--golden", metavar="FILE.npz", help="compare with the inputs and outputs saved by --save-golden")
    cp.add_argument("--save-golden", metavar="FILE.npz", help="save the inputs and the reference's outputs")
    cp.add_argument("--provider", metavar="NAME", help="execution provider of MODEL (default CPUExecutionProvider)")
    cp.add_argument("--reference-provider", metavar="NAME",
                    help="execution provider of the reference run (default CPUExecutionProvider)")
    cp.add_argument("--inputs", metavar="FILE.npz|MODULE:CALLABLE",
                    help="input arrays by input name, or a data loader: a callable returning arrays, a dict or an "
                         "iterable of them (the first item is used) (default: seeded random)")
    cp.add_argument("--shape", action="append", default=[], metavar="NAME=D0,D1,...",
                    help="shape of a made-up input (sets its symbolic dims; without it they are 2, then 3, for the "
                         "batch and 4 elsewhere)")
    cp.add_argument("--repro", metavar="DIR", help="save the reduced model: the smallest node group that still "
                    "diverges, with its inputs and both outputs")
    cp.add_argument("--atol", type=float, default=None, help="absolute tolerance for every dtype (default: by the "
                    "dtype a value is computed in: 1e-4 float32, 1e-3 float16, 1e-2 bfloat16, 1e-8 float64)")
    cp.add_argument("--rtol", type=float, default=None, help="relative tolerance (default by dtype: 1e-3 float32, "
                    "1e-2 float16, 5e-2 bfloat16, 1e-7 float64); an element fails only if both are exceeded")
    cp.set_defaults(handler=_compare)


def load_torch_model(spec: str) -> Any:
    """The nn.Module named by `module:factory` or `path/file.py:factory` (a factory is called with no arguments)."""
    import torch

    from ..loader import calling, load_object

    obj: Any = load_object(spec, "--torch")
    attr = spec.rpartition(":")[2]
    if not isinstance(obj, torch.nn.Module):
        if not callable(obj):
            raise BadInputError(f"--torch {spec!r}: {attr!r} is neither an nn.Module nor a callable returning one")
        try:
            with calling(spec, "--torch", f"calling {attr}()"):
                obj = obj()
        except BadInputError:
            raise
        except Exception as exc:
            raise BadInputError(f"--torch {spec!r}: calling {attr}() failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(obj, (tuple, list)) and obj and isinstance(obj[0], torch.nn.Module):
        obj = obj[0]  # factories like modeldebug.testing's return (model, data)
    if not isinstance(obj, torch.nn.Module):
        raise BadInputError(f"--torch {spec!r}: {attr}() returned {type(obj).__name__}, not a torch.nn.Module")
    return obj


def _emit(args: argparse.Namespace, findings: list[Any], run: dict[str, Any], section: str, result: Any,
          text: str | None = None) -> int:
    """Summary to stdout (stderr when stdout carries JSON), findings to stderr, JSON where asked."""
    from ..report import Report
    from ..report.model import json_safe

    report = Report(findings, {"script": f"onnx {args.onnx_command} {args.model}", **run})
    text = result.to_text() if text is None else text
    if text:
        print(text, file=sys.stderr if args.json == "-" else sys.stdout)
    if not args.quiet and section != "inspection":
        report.print()
    if args.json:
        data = report.to_dict()
        data[section] = json_safe(result.to_dict())
        payload = json.dumps(data, indent=2, allow_nan=False)
        if args.json == "-":
            sys.stdout.write(payload + "\n")
        else:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(payload + "\n", encoding="utf-8")
            _written("JSON report", args.json)
    fail_on = getattr(args, "fail_on", None)
    return 1 if fail_on and report.fails(fail_on) else 0


def _written(what: str, path: str) -> None:
    """Name a file (or folder) the command wrote, on stderr, as every command does."""
    print(f"modeldebug: {what} written to {path}", file=sys.stderr)


def _check(args: argparse.Namespace) -> int:
    from ..onnx.debugger import ONNXDebugger

    analysis = ONNXDebugger().analyze_model(args.model)
    text = analysis.to_text(findings=args.quiet)  # the findings themselves go to stderr unless --quiet
    return _emit(args, analysis.findings, {"modeldebug_onnx": "check"}, "analysis", analysis, text)


def _shapes(items: list[str]) -> dict[str, list[int]]:
    out = {}
    for item in items:
        name, sep, dims = item.partition("=")
        if name in out:  # the last one silently won: say which two disagree
            raise BadInputError(f"--shape {item!r}: {name!r} was given a shape already ({name}="
                                f"{','.join(map(str, out[name]))}); give each input's shape once")
        try:
            out[name] = [int(d) for d in dims.split(",") if d.strip()]
        except ValueError:
            out[name] = []
        if not sep or not name or not out[name]:
            raise BadInputError(f"--shape {item!r}: expected NAME=D0,D1,... with integer dims")
        bad = next((d for d in out[name] if not 1 <= d <= _MAX_DIM), None)
        if bad is not None:
            raise BadInputError(f"--shape {item!r}: dimension {bad} is out of range; dimensions are whole numbers "
                                f"from 1 to {_MAX_DIM} (ONNX's int64)")
    return out


def _writable_folder(flag: str, value: str) -> None:
    """A folder the command will create (or fill): refuse a path that is, or lies under, an existing file."""
    path = Path(value)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                where = "is a file" if p == path else f"lies under {str(p)!r}, which is a file"
                raise BadInputError(f"{flag} {value!r} {where}, not a folder: give a folder name (it is created)")
            return


def _int_range(flag: str, value: int, low: int, high: int, what: str) -> None:
    if not low <= value <= high:
        raise BadInputError(f"{flag} {value}: {what} must be from {low} to {high}")


def _inspect(args: argparse.Namespace) -> int:
    from ..onnx.inspection import inspect

    result = inspect(args.model, input_shapes=_shapes(args.shape) or None)
    return _emit(args, [], {"modeldebug_onnx": "inspect"}, "inspection", result)


def _profile(args: argparse.Namespace) -> int:
    from ..onnx.config import ONNXConfig
    from ..onnx.profiling import profile

    _int_range("--warmup", args.warmup, 0, _MAX_WARMUP, "the runs dropped first")
    _int_range("--iterations", args.iterations, 1, _MAX_ITERATIONS, "the measured runs")
    _int_range("--threads", args.threads, 0, _MAX_THREADS, "the intra-op thread count (0: onnxruntime's default)")
    shapes = _shapes(args.shape) or None
    if shapes and args.inputs:
        raise BadInputError("--shape sets the shape of made-up inputs; it cannot be used with --inputs")
    config = ONNXConfig(warmup=args.warmup, iterations=args.iterations, providers=args.provider, threads=args.threads)
    from ..onnx.feeds import input_specs, load_inputs
    from ..onnx.load import load_model

    loaded = load_model(args.model)  # as compare: a data loader's (x, y) gives the model's inputs, x
    result = profile(loaded, load_inputs(args.inputs, input_specs(loaded.proto)), config, shapes=shapes)
    return _emit(args, result.findings, {"modeldebug_onnx": "profile"}, "profile", result)


def _compare(args: argparse.Namespace) -> int:
    from ..onnx.config import ONNXConfig
    from ..onnx.load import load_model
    from ..onnx.parity import compare

    for flag, value in (("--atol", args.atol), ("--rtol", args.rtol)):
        if value is not None and not 0 <= value < math.inf:
            raise BadInputError(f"{flag} {value} must be a tolerance >= 0 and finite (an element fails only when "
                                "both are exceeded)")
    kinds = [k for k, given in (("--torch", args.torch), ("REFERENCE.onnx", args.reference), ("--golden", args.golden))
             if given]
    if len(kinds) > 1:
        raise BadInputError(f"compare takes one reference, got {' and '.join(kinds)}")
    if args.golden and args.save_golden:
        raise BadInputError("--save-golden writes what --golden reads: give one of them")
    shapes = _shapes(args.shape) or None
    if shapes and (args.inputs or args.golden):
        raise BadInputError(f"--shape sets the shape of made-up inputs; it cannot be used with "
                            f"{'--inputs' if args.inputs else '--golden'}")
    if args.repro:
        _writable_folder("--repro", args.repro)  # before the comparison's work, not after it
    config = ONNXConfig(atol=args.atol, rtol=args.rtol)
    loaded = load_model(args.model)  # a bad model file fails before the user's module is imported
    from ..onnx.feeds import input_specs, load_inputs

    inputs = load_inputs(args.inputs, input_specs(loaded.proto))
    if args.torch:
        if args.provider or args.reference_provider:
            raise BadInputError("--provider/--reference-provider compare two onnxruntime runs; with --torch the "
                                "reference is PyTorch")
        model = load_torch_model(args.torch)
        from ..loader import calling

        with calling(args.torch, "--torch", "running the model"):
            result = compare(model, loaded, inputs, config, repro_dir=args.repro, save_golden=args.save_golden,
                             shapes=shapes)
    else:
        from ..onnx.pair import compare_onnx

        result = compare_onnx(loaded, args.reference, inputs, config, provider=args.provider,
                              reference_provider=args.reference_provider, golden=args.golden,
                              save_golden=args.save_golden, repro_dir=args.repro, shapes=shapes)
    if args.save_golden:
        _written("golden inputs and outputs", args.save_golden)
    if result.repro:
        _written("repro (model.onnx, inputs.npz, expected.npz, onnxruntime.npz, summary.json, README.md)", result.repro)
    return _emit(args, result.findings, {"modeldebug_onnx": "compare", "passed": result.passed}, "comparison", result)
