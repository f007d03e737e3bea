"""`fmnist predict`: a trained model (run directory or .onnx) on the user's own pictures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fmnist_cli.options import positive_int


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    predict = sub.add_parser(
        "predict",
        parents=parents,
        help="classify your own pictures with a trained model",
        description="Read pictures (PNG, JPEG, WebP, BMP, GIF, TIFF; files or folders),"
        " convert each as Fashion-MNIST was made (trim, longest edge to 28, sharpen, centre,"
        " negate; a 28x28 picture on a dark background passes unchanged) and print each"
        " one's class. A bad picture is reported in one line; the others are still"
        " predicted, and the exit status is 1.",
    )
    predict.add_argument(
        "model", type=Path, metavar="RUN_DIR_OR_ONNX", help="a finished run directory or an exported .onnx"
    )
    predict.add_argument("inputs", type=Path, nargs="+", metavar="IMAGE_OR_FOLDER")
    predict.add_argument("--top-k", type=positive_int, default=3, help="classes listed per picture (default: 3)")
    predict.add_argument("--json", action="store_true", help="one JSON object per picture instead of the table")
    predict.add_argument(
        "--show-input", type=Path, metavar="DIR", help="write the 28x28 image the network saw, per picture"
    )
    predict.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fmnist.predicting import json_lines, predict_files, table

    result = predict_files(args.model, args.inputs, top_k=args.top_k, show_input=args.show_input)
    if args.json:
        print("\n".join(json_lines(result)))
    elif result.predictions:
        from rich.console import Console

        Console(width=None if sys.stdout.isatty() else 200).print(table(result))  # piped: no folded names
    for path, why in result.failures:
        print(f"fmnist: error: {path}: {why}", file=sys.stderr)
    if args.show_input and result.predictions and not args.json:
        print(f"the 28x28 inputs the network saw: {args.show_input}")
    return 1 if result.failures else 0
