"""`modeldebug export RUN.db --to parquet|csv|tensorboard|mlflow|wandb [--out DIR] [--tracking-uri URI]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import BadInputError

__all__ = ["TARGETS", "add"]

TARGETS = ("parquet", "csv", "tensorboard", "mlflow", "wandb")


def add(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "export", help="export a stored run to Parquet, CSV, TensorBoard, MLflow or W&B",
        description="Export a run's findings and key series (only what is weird, plus loss, gradient "
        "norm, learning rate and validation loss) to the tools you already use.")
    p.add_argument("record", metavar="RUN.db", help="a run record (from `modeldebug run` or watch())")
    p.add_argument("--to", required=True, choices=TARGETS, help="where to export")
    p.add_argument("--out", metavar="DIR",
                   help="output directory: the tables (parquet, csv), the event files (tensorboard), the "
                   "default SQLite store (mlflow) or the W&B run folder (wandb); default RUN-TARGET in the "
                   "current directory")
    p.add_argument("--tracking-uri", metavar="URI",
                   help="MLflow tracking URI (default: sqlite:///DIR/mlflow.db with --out, else MLflow's own)")
    p.add_argument("--experiment", metavar="NAME", default="modeldebug",
                   help="MLflow experiment / W&B project (default modeldebug)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Export the record; print where it went (stdout) and return 0."""
    from .. import export
    from ..record import Record

    if args.tracking_uri and args.to != "mlflow":
        raise BadInputError(f"--tracking-uri is for --to mlflow, not --to {args.to}")
    record = Record.open(args.record)  # a bad path fails before any exporter's library loads
    out = Path(args.out) if args.out else Path(f"{Path(args.record).stem}-{args.to}")
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {str(out)!r} is a file; give a directory")
    if args.to == "csv":
        paths = export.to_csv(record, out)
        print("\n".join(str(p) for p in paths.values()))
    elif args.to == "parquet":
        paths = export.to_parquet(record, out)
        print("\n".join(str(p) for p in paths.values()))
    elif args.to == "tensorboard":
        print(f"{export.to_tensorboard(record, out)}  (tensorboard --logdir {out})")
    elif args.to == "mlflow":
        uri = args.tracking_uri
        if uri is None and args.out:
            out.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{(out / 'mlflow.db').resolve()}"
        run_id = export.to_mlflow(record, tracking_uri=uri, experiment=args.experiment)
        print(f"MLflow run {run_id} in experiment {args.experiment!r}" + (f" at {uri}" if uri else ""))
    else:
        run_dir = export.to_wandb(record, dir=out, project=args.experiment)
        print(f"{run_dir}  (offline; upload with: wandb sync {run_dir})")
    return 0
