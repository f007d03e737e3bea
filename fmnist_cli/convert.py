"""`fmnist convert`: a run carried to another engine (`convert.conversion`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fmnist import engines as registry
from fmnist_cli.options import add_data_dir, add_threads


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    convert = sub.add_parser(
        "convert",
        parents=parents,
        help="carry a finished or interrupted run to another engine",
        description="Write RUN_DIR's run as a run directory of another engine: the same weights and"
        " batch-norm statistics, optimizer state (Adam's moments and step count), epoch, schedule and"
        " batch-order position. A finished run is tested again by the new engine; an interrupted one"
        " finishes there with `fmnist train --resume OUT`. The written run is read back and its"
        " logits checked against the original's (parity's float32 rule) before it is kept.",
    )
    convert.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    convert.add_argument(
        "--to", required=True, metavar="ENGINE", help=f"the engine to carry it to: {', '.join(registry.names())}"
    )
    convert.add_argument("--out", type=Path, help="a new or empty folder (default: RUN_DIR-ENGINE beside the run)")
    add_threads(convert, "for the engines reading and writing the run (default: the frameworks' own)")
    add_data_dir(convert)
    convert.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fmnist.placement import set_threads

    if args.threads:
        set_threads(args.threads)  # before the engines' processes start: their pools are sized then
    from convert.conversion import convert_run, summary_lines

    result = convert_run(args.run_dir, args.to, out=args.out, data_dir=args.data_dir)
    print("\n".join(summary_lines(result)))
    return 0
