"""The contract between the core and a backend: what `train` gets and hands back.

Kept apart from `fmnist.training` so a backend imports only this small module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from fmnist import rundir
from fmnist.tensorboard_log import TensorBoardLog

if TYPE_CHECKING:
    from fmnist.config import Config
    from fmnist.splits import DataSplits


@dataclass
class TrainOutcome:
    """What a backend hands back after training (its model is already saved in the run dir)."""

    test_logits: np.ndarray
    num_params: int
    summary: str
    train_seconds: float
    versions: dict[str, str] = field(default_factory=dict)


class Backend(Protocol):
    def train(self, config: Config, splits: DataSplits, run_dir: Path, report: "EpochReporter") -> TrainOutcome: ...

    def predict(self, run_dir: Path, images: np.ndarray, batch_size: int) -> np.ndarray: ...


class EpochReporter:
    """Called by both backends' epoch-end callbacks with one row of metrics.csv."""

    def __init__(self, run_dir: Path, tensorboard: TensorBoardLog) -> None:
        self.csv = rundir.MetricsCSV(run_dir / rundir.METRICS_FILE)
        self.tensorboard = tensorboard
        self.rows: list[dict[str, float]] = []

    def __call__(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        self.csv.append(row)
        self.tensorboard.log_epoch(row)
