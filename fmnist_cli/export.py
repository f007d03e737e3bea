"""`fmnist export`: a run's model to ONNX, checked against the trained model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fmnist_cli.options import add_data_dir


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    export = sub.add_parser(
        "export",
        parents=parents,
        help="export a run's model to ONNX, checked against the trained model",
        description="Export with the framework's own exporter (float32, input 'pixels'"
        " [N, 28, 28, 1] raw 0-255, output 'logits' [N, 10]), then run the file in onnxruntime on"
        " all 10,000 test images against the framework's float32 model: logits within the"
        " parity rule and identical classes, or exit 1. Writes export.json.",
    )
    export.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="only onnx so far")
    export.add_argument("--out", type=Path, help="the .onnx file (default: RUN_DIR/model.onnx)")
    export.add_argument("--check", type=Path, metavar="ONNX", help="only check an existing export against the run")
    add_data_dir(export, test_split_only=True)
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from export.check import export_run, summary_line

    result = export_run(args.run_dir, out=args.out, data_dir=args.data_dir, check_only=args.check)
    if not result["passed"]:
        print(
            f"fmnist: error: export check failed, {summary_line(result)}; details in {result['report']}",
            file=sys.stderr,
        )
        return 1
    print(summary_line(result))
    print(f"written: {result['onnx']} and {result['report']}" if not args.check else f"written: {result['report']}")
    return 0
