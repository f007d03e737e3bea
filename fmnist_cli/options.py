"""What several subcommands share: argument types and the options declared once."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fmnist.config import PRECISIONS

#: A packaged config's name: found from any folder, a checkout or not (`fmnist configs` lists them).
DEFAULT_CONFIG = Path("baseline")
PRECISION_HELP = (
    "override train.precision: float32; bf16-mixed (fast on GPUs and on CPUs with bfloat16"
    " instructions, emulated and slow on others); or auto, bf16-mixed where it is native and"
    " float32 elsewhere"
)
#: Command-line flag -> config field, for the flags that override a config value (train, compare).
CONFIG_OVERRIDES = {
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "lr": "train.optimizer.lr",
    "precision": "train.precision",
    "seed": "seed",
    "limit_train": "data.limit_train",
    "limit_test": "data.limit_test",
    "devices": "train.devices",
    "strategy": "train.strategy",
    "num_nodes": "train.num_nodes",
}


def int_at_least(minimum: int):
    """An argparse type for whole numbers >= minimum, with a message naming the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        metavar="NAME|PATH",
        help=f"a packaged config's name (`fmnist configs` lists them) or a YAML path (default: {DEFAULT_CONFIG})",
    )


def add_data_dir(parser: argparse.ArgumentParser, test_split_only: bool = False) -> None:
    """test_split_only: the command reads the two test files and never downloads."""
    parser.add_argument(
        "--data-dir",
        help="folder with the Fashion-MNIST test files t10k-*-ubyte.gz (default: $FMNIST_DATA_DIR, then the"
        " user cache; never downloads: `fmnist data` does)"
        if test_split_only
        else "folder with the four Fashion-MNIST IDX files (default: $FMNIST_DATA_DIR,"
        " then the user cache, downloading there if missing)",
    )


def add_precision(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=PRECISIONS, help=PRECISION_HELP)


def add_limits(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit-train", type=positive_int, help="use only the first N training images (smoke runs)")
    parser.add_argument("--limit-test", type=positive_int, help="test on only the first N test images")


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields the given flags override (None where a flag was not given or not declared)."""
    return {field: getattr(args, flag, None) for flag, field in CONFIG_OVERRIDES.items()}


def flag(name: str) -> str:
    """`limit_train` -> `--limit-train`."""
    return "--" + name.replace("_", "-")


def add_threads(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--threads",
        type=positive_int,
        help=f"threads {what} (torch, TensorFlow, OpenMP); the thread count changes the last bits"
        " of a training, so runs compared bit for bit need the same",
    )


def add_executor(parser: argparse.ArgumentParser) -> None:
    """--executor, --jobs, --threads, --ray-address: how the independent runs of a command run."""
    parser.add_argument(
        "--executor",
        choices=("serial", "jobs", "ray"),
        help="serial: one run after another (default); jobs: --jobs runs at once on this machine, each"
        " on its own cores; ray: each run a Ray task (a local instance, or --ray-address)",
    )
    parser.add_argument(
        "--jobs", type=positive_int, help="runs at once on this machine (default 2 with --executor jobs)"
    )
    add_threads(parser, "per run (default: every core serially, the cores shared out with --jobs, 1 on Ray)")
    parser.add_argument(
        "--ray-address",
        metavar="HOST:PORT",
        help="an existing Ray cluster (what `ray start --head` printed); without it, a local Ray instance",
    )


def executor_choice(args: argparse.Namespace):
    from executors import ExecutorChoice

    return ExecutorChoice.from_args(args.executor, args.jobs, args.threads, args.ray_address)
