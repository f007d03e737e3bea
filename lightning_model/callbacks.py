"""Lightning callbacks that feed the shared run directory (metrics.csv, TensorBoard)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar

from fmnist.rundir import EpochTimer


class EpochReport(L.Callback):
    """Hands each finished epoch's metrics to the shared reporter, in the metrics.csv columns.

    `on_train_epoch_end` runs after the epoch's validation. Its `lr` is the rate of the epoch's
    last optimizer step, as the Keras backend reports it: read before each step, since by the
    epoch's end Lightning has already stepped the scheduler (per epoch: to the next epoch's rate).
    """

    def __init__(self, report: Callable[[dict[str, float]], None] | None) -> None:
        """report None: an extra DDP process, which writes nothing."""
        self.report = report
        self.timer = EpochTimer()
        self.lr: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.timer.restart()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.lr = trainer.optimizers[0].param_groups[0]["lr"]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.report is None or not trainer.is_global_zero:
            return
        m = trainer.callback_metrics  # synced over all processes (torchmetrics objects)
        self.report(
            {
                "epoch": trainer.current_epoch + 1,
                "train_loss": float(m["train/loss"]),
                "train_accuracy": float(m["train/accuracy"]),
                "val_loss": float(m["val/loss"]),
                "val_accuracy": float(m["val/accuracy"]),
                "lr": float(self.lr if self.lr is not None else trainer.optimizers[0].param_groups[0]["lr"]),
                "seconds": self.timer.elapsed(),
            }
        )


class AtomicLastCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint writing `last.ckpt` after every training epoch, atomically:
    a kill during the write leaves the previous epoch's checkpoint intact for --resume."""

    def __init__(self, dirpath: str) -> None:
        super().__init__(
            dirpath=dirpath,
            filename="last",
            save_top_k=1,
            every_n_epochs=1,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        )

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
        self.lr = 0.0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.lr = trainer.optimizers[0].param_groups[0][
            "lr"
        ]  # the step's rate; a per-step schedule moves on before batch end

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs)
        if not math.isfinite(loss) and self.diverged is None:
            self.diverged = (trainer.current_epoch + 1, batch_idx + 1, loss, float(self.lr))
            trainer.should_stop = True


class EarlyStoppingOnValAccuracy(L.Callback):
    """Keras' `EarlyStopping(monitor="val_accuracy", mode="max", patience, restore_best_weights=True)`,
    rule for rule (keras_model.callbacks.EarlyStoppingOnValAccuracy uses Keras' own):

    - after each epoch's validation, an accuracy strictly greater than the best so far is a new
      best (the first epoch always is): its weights (parameters and batch-norm statistics) are
      copied and the count of epochs waited goes back to 0;
    - otherwise the count goes up, and reaching `patience` stops the training after this epoch;
    - when training ends, stopped or not, the best epoch's weights are put back, so the model
      file saved afterwards holds them.

    Its state, best weights included, goes into Lightning's checkpoint: a resumed run continues
    the count, and one interrupted after the stop trains no further.
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best: float | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None

    @staticmethod
    def _weights(pl_module: L.LightningModule) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in pl_module.network.state_dict().items()}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.stopped_epoch > 0:  # resumed from the checkpoint of the epoch that stopped it
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/accuracy")
        if value is None:  # no validation this epoch (Keras warns and skips the epoch too)
            return
        current, epoch = float(value), trainer.current_epoch
        self.wait += 1
        if self.best is None or current > self.best:
            self.best, self.best_epoch = current, epoch
            self.best_weights = self._weights(pl_module)
            self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            trainer.should_stop = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.best_weights is not None:
            pl_module.network.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best_epoch": self.best_epoch,
            "best": self.best,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.wait, self.stopped_epoch = state_dict["wait"], state_dict["stopped_epoch"]
        self.best_epoch, self.best = state_dict["best_epoch"], state_dict["best"]
        self.best_weights = state_dict["best_weights"]


class ProgressBar(RichProgressBar):
    """Lightning's live bar on a terminal, counting epochs from 1 as Keras and the per-epoch log
    lines do ("Epoch 15/15" for the last of 15, where Lightning writes "Epoch 14/14")."""

    def _get_train_description(self, current_epoch: int) -> str:
        description = super()._get_train_description(current_epoch + 1)
        return description.replace(f"/{self.trainer.max_epochs - 1}", f"/{self.trainer.max_epochs}", 1)
