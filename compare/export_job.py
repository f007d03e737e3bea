"""A run's export to ONNX as a job (`fmnist serve` starts it for a run directory it is given, so
the server itself loads no framework): the entry point of the layer that owns the export
(`compare.export_check`), so the server never calls up into the command.

    python -m compare.export_job RUN_DIR [--data-dir DIR]

Exit 0 with the check's summary line; a failed check or an error is one stderr line (exit 1, 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fmnist.errors import FmnistError, exit_code


def _work(run_dir: Path, data_dir: str | None) -> int:
    from compare.export_check import export_run, summary_line

    result = export_run(run_dir, data_dir=data_dir)
    if not result["passed"]:
        raise FmnistError(f"export check failed, {summary_line(result)}; details in {result['report']}")
    print(summary_line(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compare.export_job")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    return exit_code(lambda: _work(args.run_dir, args.data_dir))


if __name__ == "__main__":
    sys.exit(main())
