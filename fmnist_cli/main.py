"""`fmnist`: the parser built from each subcommand's module, and one-line errors.

Errors a user can fix (config, data, paths) print one line and exit 2; `--debug` shows the
traceback instead. A bug prints one line too, asking for `--debug` and a report.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fmnist_cli import benchmark, compare, configs, convert, export, parity, predict, serve, train
from fmnist.errors import exit_code

#: In the order `fmnist --help` lists them.
COMMANDS = (train, convert, parity, compare, benchmark, predict, export, serve, configs)
DEBUG_HELP = "show full tracebacks instead of one-line errors"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmnist",
        description="Train one CNN on Fashion-MNIST in Keras or PyTorch Lightning, and compare the two.",
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    common = argparse.ArgumentParser(add_help=False)  # --debug also after the subcommand
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub, [common])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return exit_code(lambda: args.func(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
