"""`modeldebug doctor`: run the agent on a model from `module:factory` and a batch from `module:function`.

    modeldebug doctor --model mynet.py:build --batch mynet.py:one_batch --loss CrossEntropyLoss \\
        --issue "loss is stuck" [--optimizer adam --lr 1e-3] [--json P] [--html P] [--fail-on high]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Mapping
from typing import Any

from ..errors import BadInputError
from ..loader import calling, load_object

__all__ = ["add"]


def add(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("doctor", help="debug a model actively: tools, sanity probes and verified fixes",
                       description="Runs the debugging agent on a model and a batch: error diagnosis, layer and "
                                   "gradient analysis, profiling, memory, sanity probes (loss at init, overfit one "
                                   "batch, input-independent baseline, batch mixing, determinism, LR range test) and "
                                   "fixes verified on a copy. The model itself is never changed.")
    p.add_argument("--model", required=True, metavar="MODULE:FACTORY",
                   help="a function (or class) returning the nn.Module, e.g. mynet.py:build or pkg.models:Net")
    p.add_argument("--batch", required=True, metavar="MODULE:FUNCTION",
                   help="a function returning (inputs, targets), a dict of the model's inputs, or a DataLoader")
    p.add_argument("--loss", metavar="NAME|MODULE:OBJ",
                   help="a torch.nn loss (CrossEntropyLoss, MSELoss, ...) or module:object; omit when the model returns its loss")
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="adam")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    p.add_argument("--issue", default="", help='the problem in words, e.g. "not converging", "loss is NaN", "slow"')
    p.add_argument("--steps", type=int, default=60, help="steps for the probe runs (default 60)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads for the analysis (default 1: small probe models run fastest on one)")
    p.add_argument("--viz", metavar="DIR", help="write the gradient-flow, activation and memory plots here")
    p.add_argument("--json", metavar="P", help="write the full response as JSON to P ('-' for stdout)")
    p.add_argument("--html", metavar="P", help="write the HTML report (with the probe run's plots) to P")
    p.add_argument("--fail-on", choices=["low", "medium", "high"], help="exit 1 if an issue is this severe")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the diagnosis")
    p.set_defaults(handler=run)


def _loss(spec: str | None) -> Any:
    if spec is None:
        return None
    if ":" in spec:
        obj = load_object(spec, "--loss")
        return obj() if isinstance(obj, type) else obj
    import torch.nn as nn
    import torch.nn.functional as F

    if isinstance(getattr(nn, spec, None), type):
        return getattr(nn, spec)()
    if callable(getattr(F, spec, None)):
        return getattr(F, spec)
    raise BadInputError(f"--loss {spec!r} is not a torch.nn loss (e.g. CrossEntropyLoss, MSELoss) or module:object")


def _call(factory: Any, what: str, spec: str) -> Any:
    try:
        with calling(spec, what, "calling it"):  # sys.exit() in the factory: one line, exit 2
            return factory()
    except BadInputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise BadInputError(f"{what} {spec!r} raised {type(exc).__name__}: {exc}") from None


def _batch_or_data(data: Any, spec: str) -> tuple[Any, Any]:
    """(batch, None) for one batch, a tuple/list (inputs, targets) or a mapping of the model's inputs;
    (None, data) for a DataLoader or another iterable of batches; one line naming what it was otherwise."""
    import torch
    from torch import nn

    from ..agent.request import _describe

    if isinstance(data, (tuple, list)):
        if len(data) not in (1, 2):
            raise BadInputError(f"--batch {spec!r} returned a {type(data).__name__} of {len(data)} items: return "
                                "(inputs, targets), with several inputs as ((x1, x2), targets)")
        return tuple(data), None
    if isinstance(data, Mapping):
        return dict(data), None
    if isinstance(data, torch.Tensor):
        raise BadInputError(f"--batch {spec!r} returned one {_describe(data)}, not a batch: return (inputs, targets), "
                            "e.g. `return x, y`, a dict of the model's inputs, or a DataLoader")
    if isinstance(data, (str, bytes, nn.Module)) or not hasattr(data, "__iter__"):
        raise BadInputError(f"--batch {spec!r} returned {type(data).__name__}: it must return (inputs, targets), a "
                            "dict of the model's inputs, or a DataLoader")
    return None, data


def run(args: argparse.Namespace) -> int:
    # `--json -` promises parseable JSON on stdout: the user's code prints to stderr while it runs
    with contextlib.redirect_stdout(sys.stderr) if args.json == "-" else contextlib.nullcontext():
        response = _diagnose(args)
    report = response.report()
    if not args.quiet:
        _print(response, report)
    if args.json == "-":
        sys.stdout.write(response.to_json() + "\n")
    elif args.json:
        response.to_json(args.json)
        _written("JSON report", args.json)
    if args.html:
        report.to_html(args.html)
        _written("HTML report", args.html)
    if response.visualizations:
        _written(f"plots ({', '.join(sorted(response.visualizations))})", args.viz or "modeldebug-agent")
    elif args.viz:
        print(f"modeldebug: no plots written to {args.viz}: "
              f"{response.run.get('visualizations_note', 'the tools that measure them did not run')}", file=sys.stderr)
    return 1 if args.fail_on and report.fails(args.fail_on) else 0


def _diagnose(args: argparse.Namespace) -> Any:
    """The user's model and batch, built; the agent's response on them."""
    import torch
    from torch import nn

    from ..agent import AnalysisOptions, DebuggingRequest, ModelDebuggingAgent

    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise BadInputError(f"--lr {args.lr} must be a positive, finite learning rate, e.g. 1e-3")
    if args.steps < 5:
        raise BadInputError(f"--steps {args.steps} is too few for the probes: use at least 5")
    if args.threads < 1:
        raise BadInputError(f"--threads {args.threads} must be at least 1")
    model = _call(load_object(args.model, "--model"), "--model", args.model)
    if not isinstance(model, nn.Module):
        raise BadInputError(f"--model {args.model!r} returned {type(model).__name__}, not a torch.nn.Module")
    batch, data = _batch_or_data(_call(load_object(args.batch, "--batch"), "--batch", args.batch), args.batch)
    optim = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[args.optimizer]
    request = DebuggingRequest(
        model=model, batch=batch, data=data,
        loss_fn=_loss(args.loss), optimizer_factory=lambda params: optim(params, lr=args.lr), issue=args.issue,
        options=AnalysisOptions(probe_steps=args.steps, threads=args.threads),
        visualizations=["gradient_flow", "activation_histograms", "memory_timeline"] if args.viz else [],
        output_dir=args.viz)
    return ModelDebuggingAgent().debug_model(request)


def _written(what: str, path: str) -> None:
    """Name a file (or folder) the command wrote, on stderr, as every command does."""
    print(f"modeldebug: {what} written to {path}", file=sys.stderr)


def _print(response: Any, report: Any) -> None:
    from ..report.terminal import stderr_console

    console = stderr_console()
    report.print(console)
    marks = {"pass": "[green]pass[/]", "fail": "[red]fail[/]", "warn": "[yellow]warn[/]", "skipped": "[dim]skipped[/]",
             "inconclusive": "[yellow]inconclusive[/]"}
    if response.probes:
        console.print("[bold]Sanity probes[/]")
        for p in response.probes.values():
            console.print(f"  {marks.get(p.verdict, p.verdict)}  {p.name}: {p.summary}", highlight=False)
    tools = [t for name, t in response.tool_results.items() if name != "error_diagnoser" or t.failed]
    if tools:
        console.print("[bold]Tools[/]")
        for t in tools:
            console.print(f"  {t.tool}: {t.summary}", highlight=False)
        profile = response.tool_results.get("performance_profiler")
        for s in getattr(profile, "suggestions", []):
            console.print(f"  [dim]hypothesis:[/] {s.description}", highlight=False)
    if response.fixes:
        console.print("[bold]Fixes tried on a copy[/]")
        for v in response.fixes:
            console.print(f"  {'[green]helped[/]' if v.helped else '[red]did not help[/]'}  {v.to_text()}", highlight=False)
    m = response.metrics
    slowest = ", ".join(f"{name} {s:.1f} s" for name, s in m.slowest(3))
    console.print(f"[dim]analysis took {m.analysis_time_s:.1f} s on {m.threads} thread{'s' if m.threads != 1 else ''}"
                  f"{f' (slowest: {slowest})' if slowest else ''}; your model was "
                  f"{'not changed' if response.model_unchanged else 'restored after: ' + ', '.join(response.changed)}[/]",
                  highlight=False)
