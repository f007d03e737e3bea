"""Lightning callbacks that feed the shared run directory (metrics.csv, TensorBoard)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar

from fmnist import rundir
from fmnist.interrupts import sigint_held
from fmnist.divergence import DivergenceWatch
from torch_blocks.early_stopping import BestWeights


class EpochReport(L.Callback):
    """Hands each finished epoch's metrics to the shared reporter, as `fmnist.rundir.metrics_row`.

    `on_train_epoch_end` runs after the epoch's validation. Its `lr` is the rate of the epoch's
    last optimizer step, as the Keras backend reports it: read before each step, since by the
    epoch's end Lightning has already stepped the scheduler (per epoch: to the next epoch's rate).
    """

    def __init__(self, report: Callable[[dict[str, float]], None] | None) -> None:
        """report None: an extra DDP process, which writes nothing."""
        self.report = report
        self.timer = rundir.EpochTimer()
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
            rundir.metrics_row(
                trainer.current_epoch,
                train_loss=m["train/loss"],
                train_accuracy=m["train/accuracy"],
                val_loss=m["val/loss"],
                val_accuracy=m["val/accuracy"],
                lr=self.lr if self.lr is not None else trainer.optimizers[0].param_groups[0]["lr"],
                seconds=self.timer.elapsed(),
            )
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
        """Ctrl-C during the write takes effect once the epoch's checkpoint is whole and in place
        (`fmnist.interrupts.sigint_held`, as Keras' `WholeBackup`): the run resumes from this epoch."""
        tmp = f"{filepath}.tmp"
        with sigint_held():
            super()._save_checkpoint(trainer, tmp)
            if trainer.is_global_zero:
                os.replace(tmp, filepath)
        self._last_checkpoint_saved = filepath


class StopOnNonFinite(L.Callback):
    """Stops at the first batch whose loss is NaN or infinite (`fmnist.divergence`); `watch`
    remembers where, for the backend's error."""

    def __init__(self) -> None:
        self.watch = DivergenceWatch()
        self.lr = 0.0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # The step's rate: a per-step schedule moves on before the batch ends.
        self.lr = trainer.optimizers[0].param_groups[0]["lr"]

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if self.watch.check(trainer.current_epoch, batch_idx, loss, lambda: self.lr):
            trainer.should_stop = True


class EarlyStoppingOnValAccuracy(L.Callback):
    """`fmnist.early_stopping.EarlyStoppingRule` on `val/accuracy` in a Lightning fit, the rule the
    Keras engines' `EarlyStoppingOnValAccuracy` follows too, with the torch engines' keeper of the
    best weights (`torch_blocks.early_stopping.BestWeights`): put back when training ends, stopped
    or not, so the model file saved afterwards holds them.

    Its state, best weights included, goes into Lightning's checkpoint: a resumed run continues
    the count, and one interrupted after the stop trains no further.
    """

    def __init__(self, patience: int) -> None:
        self.best = BestWeights(patience)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.best.rule.stopped:  # resumed from the checkpoint of the epoch that stopped it
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/accuracy")  # None: no validation this epoch
        if self.best.update(trainer.current_epoch, value, pl_module.network):
            trainer.should_stop = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.best.restore(pl_module.network)

    def state_dict(self) -> dict[str, Any]:
        return self.best.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best.load_state_dict(state_dict)


class ProgressBar(RichProgressBar):
    """Lightning's live bar on a terminal, counting epochs from 1 as Keras and the per-epoch log
    lines do ("Epoch 15/15" for the last of 15, where Lightning writes "Epoch 14/14")."""

    def _get_train_description(self, current_epoch: int) -> str:
        description = super()._get_train_description(current_epoch + 1)
        return description.replace(f"/{self.trainer.max_epochs - 1}", f"/{self.trainer.max_epochs}", 1)
