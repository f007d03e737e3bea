"""Lightning callbacks that feed the shared run directory (metrics.csv, TensorBoard)."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L

from fmnist.rundir import EpochTimer


class EpochReport(L.Callback):
    """Hands each finished epoch's metrics to the shared reporter, in the metrics.csv columns.

    `on_train_epoch_end` runs after the epoch's validation and before the scheduler steps, so
    the learning rate read here is the one the epoch trained with.
    """

    def __init__(self, report: Callable[[dict[str, float]], None]) -> None:
        self.report = report
        self.timer = EpochTimer()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.timer.restart()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        m = trainer.callback_metrics
        self.report({
            "epoch": trainer.current_epoch + 1,
            "train_loss": float(m["train/loss"]),
            "train_accuracy": float(m["train/accuracy"]),
            "val_loss": float(m["val/loss"]),
            "val_accuracy": float(m["val/accuracy"]),
            "lr": float(trainer.optimizers[0].param_groups[0]["lr"]),
            "seconds": self.timer.elapsed(),
        })
