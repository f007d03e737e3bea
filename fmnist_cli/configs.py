"""`fmnist configs`: the configs that ship with the package, one line each, for `--config NAME`."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    configs = sub.add_parser(
        "configs",
        parents=parents,
        help="list the packaged configs that --config NAME reads",
        description="One line per config that ships with the package: its name, which `--config NAME`"
        " takes from any folder, and what it is (the file's first comment line). --config also takes"
        " a YAML file's path: copy one (--paths shows where they are) to change it.",
    )
    configs.add_argument("--paths", action="store_true", help="also print each config's file")
    configs.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fmnist.packaged_configs import describe, packaged_configs

    found = packaged_configs()
    width = max(map(len, found), default=0)
    for name, path in found.items():
        print(f"{name:<{width}}  {describe(path)}" + (f"  ({path})" if args.paths else ""))
    return 0
