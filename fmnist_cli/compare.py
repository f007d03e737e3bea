"""`fmnist compare`: two engines or more over seeds (or finished runs), and the side-by-side report."""

from __future__ import annotations

import argparse
from pathlib import Path

from fmnist import engines as registry
from fmnist.engines import DEFAULT_PAIR
from fmnist_cli.options import (
    add_config,
    add_data_dir,
    add_executor,
    add_limits,
    add_precision,
    config_overrides,
    executor_choice,
    non_negative_int,
    positive_int,
)


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    compare = sub.add_parser(
        "compare",
        parents=parents,
        help="train two engines or more over seeds and write a side-by-side report",
        description="Train Keras and Lightning (or the engines --engines names) for each seed,"
        " each in its own process, or reuse finished runs given with --runs, and write report.md,"
        " report.html, figures and summary.json with an equivalence verdict for every pair. The"
        " trainings run one after another, --jobs N at once on this machine, or as Ray tasks"
        " (--executor ray).",
    )
    add_config(compare)
    compare.add_argument(
        "--engines",
        "--backends",  # the old flag, still accepted
        dest="engines",
        default=",".join(DEFAULT_PAIR),
        help=f"the engines to train, comma-separated, two or more of {', '.join(registry.names())}"
        f" (default: {','.join(DEFAULT_PAIR)})",
    )
    compare.add_argument(
        "--seeds", type=non_negative_int, nargs="+", help="seeds (default: the config's compare.seeds)"
    )
    compare.add_argument("--epochs", type=positive_int, help="override train.epochs")
    add_precision(compare)
    compare.add_argument("--out", type=Path, help="report folder (default: reports/<config name>)")
    compare.add_argument("--runs", type=Path, nargs="+", help="finished run directories to compare instead of training")
    add_limits(compare)
    compare.add_argument(
        "--rerun-stale",
        action="store_true",
        help="retrain, in place, runs in --out made with other settings than asked for (config"
        " after overrides, seed, precision, data); without it such runs stop the compare",
    )
    add_data_dir(compare)
    add_executor(compare)
    compare.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from compare.report import build_report, check_report_dir
    from compare.runner import train_all
    from executors import open_executor
    from fmnist.config import load_config, with_overrides
    from fmnist.datasets import load_fashion_mnist
    from fmnist.engines import parse_engines
    from fmnist.errors import FmnistError

    config = load_config(args.config)
    engines = parse_engines(args.engines)
    if args.runs and args.engines != ",".join(DEFAULT_PAIR):
        raise FmnistError("--engines names the engines to train; with --runs the runs say which they are")
    out = args.out or Path("reports") / config.name
    check_report_dir(out)  # before any training: --out must be new, empty or a compare report
    choice = executor_choice(args)  # a contradiction among the flags, before the data loads
    data = load_fashion_mnist(args.data_dir)
    if args.runs:
        runs = args.runs
    else:
        requested = with_overrides(config, config_overrides(args))
        # An unreachable Ray cluster is one line here, with nothing written.
        executor = open_executor(choice, Path(data.data_dir).resolve(), data.sha256)
        try:
            runs = train_all(
                args.seeds or list(config.compare.seeds),
                out,
                config=requested,
                data_sha256=data.sha256,
                executor=executor,
                rerun_stale=args.rerun_stale,
                engines=engines,
            )
        finally:
            executor.close()
    summary = build_report(runs, out, test_images=data.test_images, test_labels=data.test_labels)
    for pair in summary["pairs"]:
        prefix = f"{' vs '.join(pair['engines'])}: " if len(summary["pairs"]) > 1 else ""
        print(prefix + pair["equivalence"]["verdict"])
    print(f"report: {out / 'report.md'} and {out / 'report.html'}")
    return 0
