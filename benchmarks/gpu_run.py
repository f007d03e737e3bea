"""The prepared GPU run: `bash benchmarks/gpu_run.sh` on the GPU machine installs the bundle
(`benchmarks.gpu_bundle`) and runs this, `python -m benchmarks.gpu_run`, from the checkout's root.

Three parts, in this order, sized to the device tool's lease (docs/speed.md, "Running it on a
GPU"), each writing its results as it ends so that a call cut short returns what it did:

(a) parity on the GPU: `fmnist parity --device cuda --repeat`, Keras on JAX against Lightning
    (the engines the GPU image has), float32/float64 and bf16-mixed, with the run-to-run spread;
(b) the benchmark's batch-8192 GPU variants (`variants.gpu_names()`), `REPEATS` fresh processes
    each, each measurement's repeats together so that its budget leaves whole measurements;
(c) `configs/strong.yaml` trained on the GPU by `fmnist compare --jobs` ({keras-jax, lightning} x
    seeds 0-2, the first seed of each engine first), stopped cleanly when the run's time is up.

A total budget, and one per part for (a) and (b), stop starting work when spent; (c) gets what is
left. Results go to `benchmarks/results/<date>-gpu-<gpu>/` in the machine's copy of the tree and,
with `--copy-to` (gpu_run.sh passes the device tool's $OUT), to `<copy-to>/<that folder's name>/`
with the run's log beside it: at most `FILES_BACK` files in all, as the device tool brings back.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import REPO
from benchmarks.environment import gpu_name
from benchmarks.gpu_parts import PARITY_FILES, PART_FILES, PARTS, Budget, GpuRun, run_part, scratch_folder
from benchmarks.outputs import shown
from benchmarks.variants import gpu_names
from fmnist.datasets import DATA_DIR_ENV
from fmnist.errors import FmnistError

RESULTS_ROOT = REPO / "benchmarks" / "results"
LOG_NAME = "gpu_run.log"
#: What the device tool brings back from $OUT: the log and every part's files must fit.
FILES_BACK = 8
#: Seconds after which no part or step starts and the trainings are stopped; with the wheels'
#: install before and the trainings' stop after, the call takes about 6 minutes of the lease.
BUDGET_SECONDS = 320
#: (a): no parity run starts after this many seconds of the part; each may take `PARITY_TIMEOUT`.
PARITY_BUDGET, PARITY_TIMEOUT = 100, 180
#: (b): no measurement starts after this many seconds of the part; each may take `TIMEOUT_SECONDS`.
BENCHMARK_BUDGET, TIMEOUT_SECONDS = 130, 150
BATCH_SIZES = (8192,)
STEPS, WARMUP, REPEATS = 100, 10, 2
#: (c) starts only with this many seconds left: less would end before a first epoch.
STRONG_MIN_SECONDS = 60
PARITY_ENGINES = STRONG_ENGINES = BENCHMARK_ENGINES = "keras-jax,lightning"


def gpu_slug(name: str | None) -> str:
    """'NVIDIA H200, 143771 MiB' (nvidia-smi's name and memory) -> 'nvidia-h200'; '' for none."""
    if not name:
        return ""
    return re.sub(r"[^a-z0-9]+", "-", name.split(",")[0].lower()).strip("-")


def results_folder(root: Path, device: str, now: dt.datetime, gpu: str | None) -> Path:
    """`<root>/<date>-gpu-<gpu>` (`-cpu` for a rehearsal on CPU), with -2, -3, ... when it already
    holds anything: a run never replaces earlier results."""
    slug = gpu_slug(gpu) if device == "cuda" else ""
    base = root / f"{now:%Y-%m-%d}-{'gpu' if device == 'cuda' else 'cpu'}{'-' + slug if slug else ''}"
    for n in range(1, 1000):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        if not candidate.exists() or (candidate.is_dir() and not any(candidate.iterdir())):
            return candidate
    raise FmnistError(f"no free results folder beside {base}")


class Log:
    """Progress lines to stderr (flushed: the device tool shows the output's tail) and, when a
    path is given, to a log file that comes back with the results. The log is published beside
    them: the machine's paths it names (`hide`) are shown as `benchmarks.outputs.shown` shows them."""

    def __init__(self, path: Path | None, hide: Sequence[Path] = ()) -> None:
        self.path = path
        self.hide = sorted(
            {text: shown(p) for p in hide for text in (str(p), str(Path(p).resolve()))}.items(),
            key=lambda kv: -len(kv[0]),
        )
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")

    def __call__(self, line: str) -> None:
        for text, name in self.hide:
            line = line.replace(text, name)
        print(line, file=sys.stderr, flush=True)
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(line + "\n")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_run", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: a rehearsal of the path")
    p.add_argument("--parts", default=",".join(PARTS), help=f"which parts, in their order (default: {','.join(PARTS)})")
    p.add_argument("--budget", type=float, default=BUDGET_SECONDS, help="seconds after which nothing starts")
    # Relative, as the CLI's: the results record them, and they carry no machine paths (run from the repo root).
    p.add_argument("--data-dir", help="the four Fashion-MNIST files (default: FMNIST_DATA_DIR)")
    p.add_argument("--results-root", type=Path, default=RESULTS_ROOT)
    p.add_argument("--copy-to", type=Path, help="also copy the results (and the log) under this folder ($OUT)")
    a = p.add_argument_group("(a) parity")
    a.add_argument("--parity-config", type=Path, default=Path("configs") / "baseline.yaml")
    a.add_argument("--parity-engines", default=PARITY_ENGINES)
    a.add_argument("--parity-precisions", default="float32,bf16-mixed", type=lambda t: [x for x in t.split(",") if x])
    a.add_argument("--parity-images", type=int, default=1000, help="test images for weight transfer")
    a.add_argument("--parity-bf16-images", type=int, help="images of the bf16 checks (default: the batch size)")
    a.add_argument("--parity-steps", type=int, default=10, help="lockstep steps")
    a.add_argument(
        "--parity-budget", type=float, default=PARITY_BUDGET, help="seconds after which no parity run starts"
    )
    a.add_argument("--parity-timeout", type=float, default=PARITY_TIMEOUT, help="seconds one parity run may take")
    b = p.add_argument_group("(b) the benchmark")
    b.add_argument("--benchmark-engines", default=BENCHMARK_ENGINES)
    b.add_argument("--variants", default=",".join(gpu_names()), help="default: the table's GPU variants")
    b.add_argument("--batch-size", default=",".join(map(str, BATCH_SIZES)))
    b.add_argument("--steps", type=int, default=STEPS)
    b.add_argument("--warmup", type=int, default=WARMUP)
    b.add_argument("--repeats", type=int, default=REPEATS)
    b.add_argument(
        "--benchmark-budget", type=float, default=BENCHMARK_BUDGET, help="seconds after which no measurement starts"
    )
    b.add_argument("--timeout", type=float, default=TIMEOUT_SECONDS, help="seconds per measurement process")
    b.add_argument("--config", type=Path, default=Path("configs") / "baseline.yaml")
    c = p.add_argument_group("(c) the trainings")
    c.add_argument("--strong-config", type=Path, default=Path("configs") / "strong.yaml")
    c.add_argument("--strong-engines", default=STRONG_ENGINES)
    c.add_argument("--strong-seeds", type=int, nargs="+", default=[0, 1, 2])
    c.add_argument("--strong-jobs", type=int, default=2, help="trainings at once on the one GPU")
    c.add_argument("--strong-epochs", type=int, help="override train.epochs (a rehearsal)")
    c.add_argument("--strong-limit-train", type=int, help="override data.limit_train (a rehearsal)")
    c.add_argument("--strong-limit-test", type=int, help="override data.limit_test (a rehearsal)")
    c.add_argument("--strong-out", type=Path, default=Path("reports") / "gpu-strong", help="the compare's folder")
    args = p.parse_args(argv)
    unknown = [part for part in args.parts.split(",") if part not in PARTS]
    if unknown:
        p.error(f"--parts: unknown {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    args.parts = [part for part in PARTS if part in args.parts.split(",")]
    wrong = [x for x in args.parity_precisions if x not in PARITY_FILES]
    if wrong:
        p.error(f"--parity-precisions: unknown {', '.join(wrong)}; choose from {', '.join(PARITY_FILES)}")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every part asked for, in order, each published as it ends; {part: outcome}, and the folder."""
    now = dt.datetime.now(dt.timezone.utc)
    gpu = gpu_name() if args.device == "cuda" else None
    if args.device == "cuda" and not gpu:
        raise FmnistError("--device cuda: nvidia-smi finds no GPU here (--device cpu rehearses the run)")
    assert sum(map(len, PART_FILES.values())) + 1 <= FILES_BACK  # the log and every part's files come back
    budget = Budget(args.budget)
    folder = results_folder(args.results_root, args.device, now, gpu)
    folder.mkdir(parents=True)
    data_dir = args.data_dir or os.environ.get(DATA_DIR_ENV)
    hidden = [folder, args.strong_out, REPO, *([Path(data_dir)] if data_dir else [])]
    log = Log(args.copy_to / LOG_NAME if args.copy_to else None, hide=hidden)
    log(
        f"[gpu_run] {gpu or args.device}; parts {', '.join(args.parts)}; results -> {shown(folder)}; budget"
        f" {args.budget:.0f} s (parity {args.parity_budget:.0f} s, benchmark {args.benchmark_budget:.0f} s,"
        " the trainings what is left)"
    )
    outcomes: dict[str, str] = {}
    with scratch_folder() as scratch:
        gpu_run = GpuRun(args, folder, log, budget, Path(scratch), args.copy_to)
        for part in args.parts:
            left = budget.left()
            if left <= (STRONG_MIN_SECONDS if part == "strong" else 0):
                outcomes[part] = f"skipped: not started, {max(left, 0):.0f} s of the run's {args.budget:.0f} s left"
            else:
                outcomes[part] = run_part(gpu_run, part)
                copied = gpu_run.publish(part)
                if copied:
                    log(f"[gpu_run] copied {', '.join(copied)} to {folder.name}/ beside this log")
            log(f"[gpu_run] {part}: {outcomes[part]} [{budget.elapsed():.0f} s]")
    log(f"[gpu_run] done in {budget.elapsed():.0f} s")
    return {"out": folder, "outcomes": outcomes}


def main(argv: Sequence[str] | None = None) -> int:
    """0 when every part asked for ran and passed what it checks (a part the budget left out does
    not count against it); 1 otherwise; 2 for a run that cannot start."""
    args = parse_args(argv)
    try:
        result = run(args)
    except FmnistError as exc:
        print(f"gpu_run: error: {exc}", file=sys.stderr)
        return 2
    for part, outcome in result["outcomes"].items():
        print(f"{part}: {outcome}")
    bad = ("failed", "FAILED", "timed out", "exit ")
    return 1 if any(word in outcome for outcome in result["outcomes"].values() for word in bad) else 0


if __name__ == "__main__":
    sys.exit(main())
