"""Keras callbacks that feed the shared run directory (metrics.csv, TensorBoard)."""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np

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


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops at the first batch whose loss is NaN or infinite and remembers where, so the run can
    end with a message naming the epoch and step instead of 14 more epochs of NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.diverged: tuple[int, int, float, float] | None = None  # epoch, step (1-based), loss, lr

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss) and self.diverged is None:
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            self.diverged = (self.epoch + 1, batch + 1, loss, lr)
            self.model.stop_training = True


class RestoreDropoutState(keras.callbacks.Callback):
    """Puts the dropout layers' random streams where an uninterrupted run would have them.

    BackupAndRestore restores weights, optimizer and epoch, but not the SeedGenerator states of
    Dropout layers: a resumed run would redraw the first epoch's masks. Each generator is
    seeded from the global seed and advances its counter by one per training step, so after
    the restore it is set to (its seed, optimizer.iterations). Must run after BackupAndRestore.
    """

    def on_train_begin(self, logs: dict | None = None) -> None:
        steps = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if steps == 0:
            return
        for layer in self.model.layers:
            generator = getattr(layer, "seed_generator", None)
            if generator is not None:
                state = keras.ops.convert_to_numpy(generator.state)
                generator.state.assign(np.array([state[0], steps], dtype=state.dtype))
