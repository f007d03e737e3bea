"""Keras callbacks that feed the shared run directory (metrics.csv, TensorBoard)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from fmnist.config import TrainConfig
from fmnist.errors import RunDirError, reason as error_reason
from fmnist.rundir import EpochTimer, atomic_path
from fmnist.schedules import lr_at_step


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
        self.report(
            {
                "epoch": epoch + 1,
                "train_loss": float(logs["loss"]),
                "train_accuracy": float(logs["accuracy"]),
                "val_loss": float(logs["val_loss"]),
                "val_accuracy": float(logs["val_accuracy"]),
                "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                "seconds": self.timer.elapsed(),
            }
        )


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


class ScheduledLearningRate(keras.callbacks.Callback):
    """Sets the optimizer's learning rate to `fmnist.schedules.lr_at_step` before every step
    (`schedule.per_step`) or every epoch, the function Lightning's LambdaLR calls: a drop-in for
    `LearningRateScheduler(lambda epoch, lr: lr_at_epoch(t, epoch))`, which it equals per epoch.

    The step comes from fit's absolute epoch and the batch within it, not from a counter: a run
    resumed by BackupAndRestore continues the schedule where an uninterrupted one would be.
    """

    def __init__(self, train: TrainConfig, steps_per_epoch: int) -> None:
        super().__init__()
        self.train, self.steps_per_epoch = train, steps_per_epoch
        self.epoch, self.current = 0, None

    def _set(self, step: int) -> None:
        lr = lr_at_step(self.train, step, self.steps_per_epoch)
        if lr != self.current:  # one variable write per change, not per step
            self.model.optimizer.learning_rate = lr
            self.current = lr

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch, self.current = epoch, None  # always written: a restore may have changed it
        self._set(epoch * self.steps_per_epoch)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self.train.schedule.per_step:
            self._set(self.epoch * self.steps_per_epoch + batch)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:  # as LearningRateScheduler does, for History
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class EarlyStoppingOnValAccuracy(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping on val_accuracy (mode max, strictly greater is better, best weights
    restored at the end of training, also when no stop happened), plus what `--resume` needs:
    its state (best value, epochs waited, best epoch and weights) is saved after every epoch in
    `state_dir` and read back when a run resumes, so a resumed run stops and restores exactly as
    an uninterrupted one. Must come before BackupAndRestore in the callback list: when that saves
    epoch k, this one's state after epoch k is already on disk. The Lightning backend's
    `EarlyStoppingOnValAccuracy` follows the same rules.
    """

    KEEP = 2  # states kept: BackupAndRestore may fall back to its previous checkpoint

    def __init__(self, patience: int, state_dir: Path | None = None) -> None:
        super().__init__(monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True)
        self.state_dir = None if state_dir is None else Path(state_dir)
        self._resumed: dict | None = None

    def state_path(self, epochs_done: int) -> Path:
        assert self.state_dir is not None
        return self.state_dir / f"early_stopping-{epochs_done}.npz"

    def resume(self, epochs_done: int) -> bool:
        """Take the state saved after `epochs_done` epochs; True when that run had already stopped
        (the caller then restores `best_weights` and trains no further)."""
        path = self.state_path(epochs_done)
        if not path.is_file():
            raise RunDirError(f"cannot resume: {path} (the early-stopping state after epoch {epochs_done}) is missing")
        try:
            with np.load(path, allow_pickle=False) as f:  # arrays only: a state file runs no code
                count = int(f["num_weights"])
                self._resumed = {
                    "wait": int(f["wait"]),
                    "stopped_epoch": int(f["stopped_epoch"]),
                    "best_epoch": int(f["best_epoch"]),
                    "best": float(f["best"]) if bool(f["has_best"]) else None,
                    "best_weights": [f[f"w{i}"] for i in range(count)] if count >= 0 else None,
                }
        except (ValueError, KeyError, OSError) as exc:  # an object array (a pickle), or a damaged file
            raise RunDirError(
                f"cannot resume: {path} does not hold plain arrays of an early-stopping state ({error_reason(exc)})"
            ) from None
        for key, value in self._resumed.items():  # also before fit: resume() may end the run here
            setattr(self, key, value)
        return self.stopped_epoch > 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)  # resets the state
        if self._resumed is not None:
            for key, value in self._resumed.items():
                setattr(self, key, value)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        if self.state_dir is None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        weights = self.best_weights
        arrays = {f"w{i}": w for i, w in enumerate(weights or [])}
        with atomic_path(self.state_path(epoch + 1)) as tmp:
            with tmp.open("wb") as f:  # a file object: np.savez would append .npz to a path
                np.savez(
                    f,
                    wait=self.wait,
                    stopped_epoch=self.stopped_epoch,
                    best_epoch=self.best_epoch,
                    has_best=self.best is not None,
                    best=float(self.best) if self.best is not None else 0.0,
                    num_weights=-1 if weights is None else len(weights),
                    **arrays,
                )
        stale = self.state_path(epoch + 1 - self.KEEP)
        if stale.exists():
            stale.unlink()


def early_stopping(train: TrainConfig, state_dir: Path | None = None) -> EarlyStoppingOnValAccuracy | None:
    """`train.early_stopping`: stop after that many epochs without a new best validation accuracy
    (strictly greater), then restore the best epoch's weights, also when no stop happened
    (Keras 3 restores at train end). `state_dir`: where its state is kept for --resume. None when off."""
    if train.early_stopping == 0:
        return None
    return EarlyStoppingOnValAccuracy(train.early_stopping, state_dir)
