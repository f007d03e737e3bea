"""Keras callbacks that feed the shared run directory (metrics.csv, TensorBoard)."""

from __future__ import annotations

from collections.abc import Callable

import keras

from fmnist.rundir import EpochTimer


class EpochReport(keras.callbacks.Callback):
    """Hands each finished epoch's metrics to the shared reporter, in the metrics.csv columns."""

    def __init__(self, report: Callable[[dict[str, float]], None]) -> None:
        super().__init__()
        self.report = report
        self.timer = EpochTimer()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.timer.restart()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        self.report({
            "epoch": epoch + 1,
            "train_loss": float(logs["loss"]),
            "train_accuracy": float(logs["accuracy"]),
            "val_loss": float(logs["val_loss"]),
            "val_accuracy": float(logs["val_accuracy"]),
            "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
            "seconds": self.timer.elapsed(),
        })
