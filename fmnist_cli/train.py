"""`fmnist train`, `fmnist evaluate` and `fmnist data`: one run of one engine, and its data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fmnist_cli.options import (
    CONFIG_OVERRIDES,
    add_config,
    add_data_dir,
    add_limits,
    add_precision,
    add_threads,
    config_overrides,
    flag,
    non_negative_int,
    positive_float,
    positive_int,
)
from fmnist import engines as registry
from fmnist.errors import FmnistError


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    train = sub.add_parser(
        "train",
        parents=parents,
        help="train one engine on a config and write a run directory",
        description="Train one engine and write config, metrics, plots, model and TensorBoard logs to a run directory.",
    )
    train.add_argument(
        "--engine",
        "--backend",  # the old flag, still accepted
        dest="engine",
        choices=registry.names(),
        help="which engine trains: "
        + "; ".join(f"{e.name} ({e.label})" for e in registry.all_engines())
        + " (required unless --resume)",
    )
    add_config(train)
    train.add_argument("--epochs", type=positive_int, help="override train.epochs")
    train.add_argument("--batch-size", type=positive_int, help="override train.batch_size")
    train.add_argument("--lr", type=positive_float, help="override train.optimizer.lr")
    add_precision(train)
    train.add_argument("--seed", type=non_negative_int, help="override the seed (weights, dropout, batch order)")
    train.add_argument("--run-dir", type=Path, help="where to write (default: runs/<config>-<engine>-seed<N>-<time>)")
    add_threads(train, "for this run (default: the frameworks' own, one per core)")
    add_data_dir(train)
    add_limits(train)
    train.add_argument(
        "--devices",
        type=positive_int,
        help="train on N devices (override train.devices):"
        " Lightning DDP processes or Keras MirroredStrategy replicas; CPU cores stand in without GPUs",
    )
    train.add_argument(
        "--strategy",
        choices=("auto", "ddp", "mirrored"),
        help="override train.strategy: ddp (Lightning) or mirrored (Keras); auto picks by engine",
    )
    train.add_argument("--num-nodes", type=positive_int, help="override train.num_nodes (Lightning, multi-node DDP)")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run that --run-dir holds (only that"
        " run's own files go; a folder holding no run is refused all the same)",
    )
    train.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue an interrupted run from its last finished epoch (its own config and engine)",
    )
    train.set_defaults(func=run_train)

    evaluate = sub.add_parser(
        "evaluate",
        parents=parents,
        help="re-load a run's saved model and measure it on the test set",
        description="Re-load the model saved in RUN_DIR, evaluate it on the same test"
        " images it was tested on, print the metrics and write evaluation.json.",
    )
    evaluate.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    evaluate.add_argument(
        "--engine",
        "--backend",  # the old flag, still accepted
        dest="engine",
        choices=registry.names(),
        help="load the model in this engine instead of the one that trained it: any Keras engine"
        " loads any Keras run's model.keras (say a keras-jax run in keras, on TensorFlow)",
    )
    evaluate.add_argument(
        "--tta",
        choices=["flip"],
        help="also report test-time augmentation: the mean of the image's and its mirror's"
        " softmax (reported apart from plain accuracy)",
    )
    add_data_dir(evaluate)
    evaluate.set_defaults(func=run_evaluate)

    data = sub.add_parser(
        "data",
        parents=parents,
        help="verify (or download) the data and say where it is",
        description="Find the Fashion-MNIST files, download them if missing, verify their"
        " checksums, and print where they are.",
    )
    add_data_dir(data)
    data.set_defaults(func=run_data)


def _resumed_threads(run_dir: Path) -> int | None:
    """The threads the run asked for when it began (None: none, or no readable run.json, which
    resume_run then reports)."""
    from fmnist import rundir
    from fmnist.placement import resumed_threads

    try:
        return resumed_threads(rundir.read_json(Path(run_dir) / rundir.RUN_INFO_FILE))
    except (OSError, ValueError, FmnistError):
        return None


def run_train(args: argparse.Namespace) -> int:
    from fmnist import distributed
    from fmnist.config import load_config, with_overrides
    from fmnist.placement import set_threads

    threads = args.threads or (_resumed_threads(args.resume) if args.resume else None)
    if threads:
        set_threads(threads)  # before any framework loads: their pools are sized at start-up
    from fmnist.rundir import default_run_dir
    from fmnist.training import format_summary, resume_run, train_run

    overrides = config_overrides(args)
    if args.resume:
        given = [flag(name) for name in CONFIG_OVERRIDES if getattr(args, name) is not None]
        if given or args.engine or args.run_dir:
            raise FmnistError(
                f"--resume continues a run with its own settings; drop {', '.join(given) or '--engine/--run-dir'}"
            )
        run_dir = args.resume
    else:
        if not args.engine:
            raise FmnistError(f"--engine is required ({', '.join(registry.names())}), unless --resume RUN_DIR")
        config = with_overrides(load_config(args.config), overrides)
        run_dir = (
            args.run_dir
            or (None if distributed.is_primary() else distributed.shared_run_dir())
            or default_run_dir(config.name, args.engine, config.seed)
        )
    try:
        if args.resume:
            result = resume_run(run_dir, data_dir=args.data_dir)
        else:
            result = train_run(args.engine, config, run_dir, data_dir=args.data_dir, overwrite=args.overwrite)
    except KeyboardInterrupt:
        if distributed.is_primary():  # the first process says what is kept and how to resume
            from fmnist.rundir import interrupted_message

            print(f"\nfmnist: {interrupted_message(run_dir)}", file=sys.stderr)
        return 130 if distributed.is_primary() else 0
    if result is None:  # an extra process of a multi-process training: the first one reports
        return 0
    print(format_summary(result))
    print(f"run directory: {run_dir}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from fmnist.training import evaluate_run, format_summary

    result = evaluate_run(args.run_dir, data_dir=args.data_dir, tta=args.tta == "flip", engine=args.engine)
    print(format_summary(result))
    if "flip_tta" in result:
        tta = result["flip_tta"]
        print(
            f"with flip test-time augmentation: test accuracy {tta['test_accuracy']:.2%}"
            f" ({tta['test_accuracy'] - result['test_accuracy']:+.2%}), test loss {tta['test_loss']:.4f}"
        )
    print(f"written: {args.run_dir / 'evaluation.json'}")
    return 0


def run_data(args: argparse.Namespace) -> int:
    from fmnist.datasets import describe, load_fashion_mnist

    print(describe(load_fashion_mnist(args.data_dir)))
    return 0
