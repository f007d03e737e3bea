"""One training as a job, started by `fmnist compare`'s executors in a fresh process: the entry
point of the layer that owns training (`fmnist.training`), so a tool never calls up into the
command. The request is a resolved config file (overrides and seed applied), so the job needs no
flags of the command's:

    python -m fmnist.train_job train ENGINE CONFIG RUN_DIR [--overwrite]
    python -m fmnist.train_job resume RUN_DIR

The data come from FMNIST_DATA_DIR, which the executor sets on the host that trains. Errors are
one line and an exit code, as the command reports them (`fmnist.errors.exit_code`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fmnist.errors import exit_code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fmnist.train_job")
    sub = parser.add_subparsers(dest="action", required=True)
    train = sub.add_parser("train")
    train.add_argument("engine")
    train.add_argument("config", type=Path)
    train.add_argument("run_dir", type=Path)
    train.add_argument("--overwrite", action="store_true")
    resume = sub.add_parser("resume")
    resume.add_argument("run_dir", type=Path)
    return parser


def _work(args: argparse.Namespace) -> int:
    from fmnist.config import load_config
    from fmnist.training import format_summary, resume_run, train_run

    if args.action == "resume":
        result = resume_run(args.run_dir)
    else:
        result = train_run(args.engine, load_config(args.config), args.run_dir, overwrite=args.overwrite)
    if result is not None:  # None: an extra process of a multi-process training
        print(format_summary(result), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return exit_code(lambda: _work(args))


if __name__ == "__main__":
    sys.exit(main())
