"""The prepared GPU run: `bash benchmarks/gpu_run.sh` on the GPU machine installs the bundle
(`benchmarks.gpu_bundle`) and runs this, `python -m benchmarks.gpu_run`.

It is `fmnist benchmark --device cuda` with a plan sized to the device tool's lease: the GPU
variants of the one variant table (`variants.gpu_names()`: Lightning and its plain torch loop in
float32, channels_last + bf16, and with torch.compile on top, the training set resident on the
GPU; Keras on JAX in float32 and mixed bfloat16), at batch 128 (the CPU tables' size) and 8192
(a GPU's), `REPEATS` fresh processes each. A time budget stops starting measurements when it is
spent, so the results are written whatever the compilation times turn out to be.

The results go to `benchmarks/results/<date>-gpu-<gpu>/` in the machine's copy of the tree and,
with `--copy-to` (gpu_run.sh passes the device tool's $OUT), to `<copy-to>/<that folder's name>/`
with the run's log beside it, from where they are copied into the checkout (docs/speed.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import REPO
from benchmarks.environment import gpu_name
from benchmarks.outputs import RESULT_FILES, results_dir, shown
from benchmarks.plan import BenchmarkError, parse_batch_sizes, parse_variants
from benchmarks.variants import gpu_names
from fmnist import engines
from fmnist.errors import FmnistError

RESULTS_ROOT = REPO / "benchmarks" / "results"
BATCH_SIZES = (128, 8192)
STEPS, WARMUP, REPEATS = 100, 10, 2
#: Seconds after which no measurement starts; with the per-measurement timeout, the install and
#: the report, the command stays inside 8 minutes of device time.
BUDGET_SECONDS = 300
#: Seconds one measurement process may take (a torch.compile one compiles training and inference).
TIMEOUT_SECONDS = 150
LOG_NAME = "gpu_run.log"


def gpu_slug(name: str | None) -> str:
    """'NVIDIA H200, 143771 MiB' (nvidia-smi's name and memory) -> 'nvidia-h200'; '' for none."""
    if not name:
        return ""
    return re.sub(r"[^a-z0-9]+", "-", name.split(",")[0].lower()).strip("-")


def results_folder(root: Path, device: str, now: dt.datetime, gpu: str | None) -> Path:
    """`<root>/<date>-gpu-<gpu>` (`-cpu` for a rehearsal on CPU), with -2, -3, ... when it already
    holds results: a run never replaces earlier ones (the rule of `benchmarks.outputs`)."""
    slug = gpu_slug(gpu) if device == "cuda" else ""
    base = root / f"{now:%Y-%m-%d}-{'gpu' if device == 'cuda' else 'cpu'}{'-' + slug if slug else ''}"
    for n in range(1, 1000):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            return results_dir(candidate, device, now)
        except BenchmarkError:
            continue
    raise BenchmarkError(f"no free results folder beside {base}")


def copy_results(folder: Path, dest: Path) -> list[Path]:
    """The result files of `folder` copied to `dest/<folder's name>/` (one level down: the device
    tool brings back files up to two folders under $OUT)."""
    target = dest / folder.name
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in RESULT_FILES:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, target / name)
            copied.append(target / name)
    return copied


class Log:
    """Progress lines to stderr (flushed: the device tool shows the output's tail) and, when a
    path is given, to a log file that comes back with the results."""

    def __init__(self, path: Path | None) -> None:
        self.path, self.began = path, time.perf_counter()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")

    def __call__(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(line + "\n")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_run", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: a rehearsal of the path")
    p.add_argument("--variants", default=",".join(gpu_names()), help="default: the table's GPU variants")
    p.add_argument("--batch-size", default=",".join(map(str, BATCH_SIZES)))
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--warmup", type=int, default=WARMUP)
    p.add_argument("--repeats", type=int, default=REPEATS)
    p.add_argument("--budget", type=float, default=BUDGET_SECONDS, help="seconds after which no measurement starts")
    p.add_argument("--timeout", type=float, default=TIMEOUT_SECONDS, help="seconds per measurement process")
    # Relative, as the CLI's: the results record it, and they carry no machine paths (run from the repo root).
    p.add_argument("--config", type=Path, default=Path("configs") / "baseline.yaml")
    p.add_argument("--data-dir", help="the four Fashion-MNIST files (default: FMNIST_DATA_DIR)")
    p.add_argument("--results-root", type=Path, default=RESULTS_ROOT)
    p.add_argument("--copy-to", type=Path, help="also copy the results (and the log) under this folder ($OUT)")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.orchestrate import run_benchmark

    now = dt.datetime.now(dt.timezone.utc)
    gpu = gpu_name() if args.device == "cuda" else None
    folder = results_folder(args.results_root, args.device, now, gpu)
    log = Log(args.copy_to / LOG_NAME if args.copy_to else None)
    log(f"[gpu_run] {gpu or args.device}; results -> {shown(folder)}; budget {args.budget:.0f} s")
    result = run_benchmark(
        engines_chosen=[e.name for e in engines.all_engines() if set(e.speed_variants) & set(gpu_names())],
        device=args.device,
        batch_sizes=parse_batch_sizes(args.batch_size),
        steps=args.steps,
        warmup=args.warmup,
        repeats=args.repeats,
        config=args.config,
        out=folder,
        variants=parse_variants(args.variants),
        data_dir=args.data_dir,
        data="real",
        timeout=args.timeout,
        budget_seconds=args.budget,
        log=log,
    )
    result["out"] = folder
    if args.copy_to:
        copied = copy_results(folder, args.copy_to)
        log(f"[gpu_run] copied {', '.join(p.name for p in copied)} to {folder.name}/ beside this log")
    log(f"[gpu_run] done in {time.perf_counter() - log.began:.0f} s")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.report import markdown_table

    args = parse_args(argv)
    try:
        result = run(args)
    except FmnistError as exc:
        print(f"gpu_run: error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(result["measurements"]))
    return 0 if any(m["status"] == "ok" for m in result["measurements"]) else 1


if __name__ == "__main__":
    sys.exit(main())
