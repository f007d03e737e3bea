"""The core's record of a training's epochs, called by every engine's epoch-end hook: one row of
metrics.csv, the TensorBoard scalars, the console line, and the CPU time spent so far."""

from __future__ import annotations

import time
from pathlib import Path

from fmnist import rundir
from fmnist.console import epoch_line
from fmnist.tensorboard_log import TensorBoardLog


class EpochReporter:
    """Called by every engine's epoch-end hook with one row of metrics.csv
    (`fmnist.rundir.metrics_row`)."""

    def __init__(self, run_dir: Path, tensorboard: TensorBoardLog, epochs: int = 0, echo: bool = False) -> None:
        """echo: print each epoch's line (fmnist.console.epoch_line, of `epochs`) to stdout."""
        self.csv = rundir.MetricsCSV(run_dir / rundir.METRICS_FILE)
        self.tensorboard = tensorboard
        self.epochs, self.echo = epochs, echo
        self.rows: list[dict[str, float]] = []
        self.cpu_file = Path(run_dir) / rundir.CPU_TIME_FILE
        self.cpu_before = 0.0  # CPU seconds of the earlier attempts of a resumed run

    def resume_from(self, epochs: int) -> None:
        """Continue after `epochs` finished epochs: later rows and events belong to the lost attempt
        (its CPU time was spent all the same, and is counted)."""
        self.rows = self.csv.truncate(epochs)
        self.tensorboard.purge_from(epochs)
        if self.cpu_file.exists():
            self.cpu_before = float(rundir.read_json(self.cpu_file)["cpu_seconds"])

    @property
    def cpu_seconds(self) -> float:
        """User + system CPU time of this run: this process since it started (imports and data
        loading included, all its threads), plus the earlier attempts'."""
        return self.cpu_before + time.process_time()

    def __call__(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        self.csv.append(row)
        self.tensorboard.log_epoch(row)
        if self.echo:
            print(epoch_line(row, self.epochs), flush=True)
        self.cpu_file.parent.mkdir(exist_ok=True)
        rundir.write_json(self.cpu_file, {"cpu_seconds": self.cpu_seconds})
