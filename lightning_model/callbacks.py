"""Lightning callbacks that feed the shared run directory (metrics.csv, TensorBoard)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from fmnist.rundir import EpochTimer


class EpochReport(L.Callback):
    """Hands each finished epoch's metrics to the shared reporter, in the metrics.csv columns.

    `on_train_epoch_end` runs after the epoch's validation and before the scheduler steps, so
    the learning rate read here is the one the epoch trained with.
    """

    def __init__(self, report: Callable[[dict[str, float]], None] | None) -> None:
        """report None: an extra DDP process, which writes nothing."""
        self.report = report
        self.timer = EpochTimer()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.timer.restart()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.report is None or not trainer.is_global_zero:
            return
        m = trainer.callback_metrics  # synced over all processes (torchmetrics objects)
        self.report({
            "epoch": trainer.current_epoch + 1,
            "train_loss": float(m["train/loss"]),
            "train_accuracy": float(m["train/accuracy"]),
            "val_loss": float(m["val/loss"]),
            "val_accuracy": float(m["val/accuracy"]),
            "lr": float(trainer.optimizers[0].param_groups[0]["lr"]),
            "seconds": self.timer.elapsed(),
        })


class AtomicLastCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint writing `last.ckpt` after every training epoch, atomically:
    a kill during the write leaves the previous epoch's checkpoint intact for --resume."""

    def __init__(self, dirpath: str) -> None:
        super().__init__(dirpath=dirpath, filename="last", save_top_k=1, every_n_epochs=1,
                         save_on_train_epoch_end=True, enable_version_counter=False)

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        tmp = f"{filepath}.tmp"
        super()._save_checkpoint(trainer, tmp)
        if trainer.is_global_zero:
            os.replace(tmp, filepath)
        self._last_checkpoint_saved = filepath


class StopOnNonFinite(L.Callback):
    """Stops at the first batch whose loss is NaN or infinite and remembers where."""

    def __init__(self) -> None:
        self.diverged: tuple[int, int, float, float] | None = None  # epoch, step (1-based), loss, lr

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs)
        if not math.isfinite(loss) and self.diverged is None:
            lr = float(trainer.optimizers[0].param_groups[0]["lr"])
            self.diverged = (trainer.current_epoch + 1, batch_idx + 1, loss, lr)
            trainer.should_stop = True
