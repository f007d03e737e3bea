"""`fmnist compare`: train both backends for each seed, each in its own process, then report.

One process per training keeps the frameworks apart (no TensorFlow/torch import-order trap,
no shared thread pools) and makes the comparison resumable: a run whose `test_metrics.json`
exists is finished and is reused, so an interrupted compare picks up where it stopped.
Backends alternate within each seed, so drift of the machine hits both alike.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from fmnist import rundir
from fmnist.errors import FmnistError

BACKENDS = ("keras", "lightning")


def run_dir_for(out_dir: Path, backend: str, seed: int) -> Path:
    return out_dir / "runs" / f"{backend}-seed{seed}"


def train_all(config_path: Path, seeds: Sequence[int], out_dir: Path, extra_args: Sequence[str] = ()) -> list[Path]:
    """Train (or reuse) one run per backend and seed; returns the run directories."""
    runs = []
    for i, seed in enumerate(seeds):
        order = BACKENDS if i % 2 == 0 else BACKENDS[::-1]
        for backend in order:
            run_dir = run_dir_for(out_dir, backend, seed)
            runs.append(run_dir)
            if (run_dir / rundir.TEST_METRICS_FILE).exists():
                print(f"[compare] {backend} seed {seed}: finished earlier, reusing {run_dir}", flush=True)
                continue
            print(f"[compare] {backend} seed {seed}: training into {run_dir}", flush=True)
            cmd = [sys.executable, "-m", "fmnist.cli", "train", "--backend", backend, "--config", str(config_path),
                   "--seed", str(seed), "--run-dir", str(run_dir), "--overwrite", *extra_args]
            code = subprocess.call(cmd)
            if code != 0:
                raise FmnistError(f"training {backend} seed {seed} failed (exit {code}); its log is above."
                                  f" Re-run the same command to resume: finished runs are reused")
    return runs
