"""Keras callbacks that feed the shared run directory (metrics.csv, TensorBoard)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from fmnist import rundir
from fmnist.config import TrainConfig
from fmnist.divergence import DivergenceWatch
from fmnist.early_stopping import EarlyStoppingRule
from fmnist.errors import RunDirError, reason as error_reason
from fmnist.interrupts import sigint_held
from fmnist.schedules import lr_at_step


def _learning_rate(model: keras.Model) -> np.ndarray:
    return keras.ops.convert_to_numpy(model.optimizer.learning_rate)


class WholeBackup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore whose checkpoint is written whole: Ctrl-C during the write (the
    weights file, then the epoch it belongs to) takes effect once both are on disk. Interrupted
    inside it, a resume found a half-written weights file and could not load it."""

    def _save_model(self) -> None:
        with sigint_held():
            super()._save_model()


class InterruptAtBatchEnd(keras.callbacks.Callback):
    """Ctrl-C ends fit by the next batch's end even where the backend loses the KeyboardInterrupt:
    on JAX one raised while Keras reads a step's logs (`np.array` of a JAX array) is swallowed
    and fit trains on, so `fmnist compare`, interrupted, waited on such a run until it was
    killed. The handler notes the signal and raises as Python's own does; the note raises again
    at the batch's end. Only where Ctrl-C is Python's own (main thread, the default handler)."""

    def __init__(self) -> None:
        super().__init__()
        self.received = self.installed = False

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.received = False
        main = threading.current_thread() is threading.main_thread()
        if not main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return

        def noted(signum: int, frame: object) -> None:
            self.received = True
            signal.default_int_handler(signum, frame)

        signal.signal(signal.SIGINT, noted)
        self.installed = True

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.received:
            raise KeyboardInterrupt

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.installed = False


class EpochReport(keras.callbacks.Callback):
    """Hands each finished epoch's metrics to the shared reporter, as `fmnist.rundir.metrics_row`."""

    def __init__(self, report: Callable[[dict[str, float]], None]) -> None:
        super().__init__()
        self.report = report
        self.timer = rundir.EpochTimer()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.timer.restart()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        self.report(
            rundir.metrics_row(
                epoch,
                train_loss=logs["loss"],
                train_accuracy=logs["accuracy"],
                val_loss=logs["val_loss"],
                val_accuracy=logs["val_accuracy"],
                lr=_learning_rate(self.model),
                seconds=self.timer.elapsed(),
            )
        )


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops at the first batch whose loss is NaN or infinite (`fmnist.divergence`); `watch`
    remembers where, for the backend's error."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.watch = DivergenceWatch()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss", 0.0)
        if self.watch.check(self.epoch, batch, loss, lambda: _learning_rate(self.model)):
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
            logs["learning_rate"] = float(_learning_rate(self.model))


class EarlyStoppingOnValAccuracy(keras.callbacks.Callback):
    """`fmnist.early_stopping.EarlyStoppingRule` on val_accuracy in a Keras fit: the best epoch's
    weights copied with `get_weights` and put back when training ends, also when no stop happened
    (as Keras' `EarlyStopping(..., restore_best_weights=True)`, which the rule follows). Plus what
    `--resume` needs: the rule's state and the best weights are saved after every epoch in
    `state_dir` and read back when a run resumes, so a resumed run stops and restores exactly as
    an uninterrupted one. Must come before BackupAndRestore in the callback list: when that saves
    epoch k, this one's state after epoch k is already on disk.
    """

    KEEP = 2  # states kept: BackupAndRestore may fall back to its previous checkpoint

    def __init__(self, patience: int, state_dir: Path | None = None) -> None:
        super().__init__()
        self.rule = EarlyStoppingRule(patience)
        self.best_weights: list[np.ndarray] | None = None
        self.state_dir = None if state_dir is None else Path(state_dir)
        self._resumed = False

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
                state = {
                    "wait": int(f["wait"]),
                    "stopped_epoch": int(f["stopped_epoch"]),
                    "best_epoch": int(f["best_epoch"]),
                    "best": float(f["best"]) if bool(f["has_best"]) else None,
                }
                weights = [f[f"w{i}"] for i in range(count)] if count >= 0 else None
        except (ValueError, KeyError, OSError) as exc:  # an object array (a pickle), or a damaged file
            raise RunDirError(
                f"cannot resume: {path} does not hold plain arrays of an early-stopping state ({error_reason(exc)})"
            ) from None
        self.rule.load_state_dict(state)  # also before fit: resume() may end the run here
        self.best_weights, self._resumed = weights, True
        return self.rule.stopped

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self._resumed:  # a fresh count per fit, as Keras' EarlyStopping
            self.rule.reset()
            self.best_weights = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        is_best, stop = self.rule.update(epoch, (logs or {}).get("val_accuracy"))
        if is_best:
            self.best_weights = self.model.get_weights()
        if stop:
            self.model.stop_training = True
        if self.state_dir is not None:
            self._save_state(epoch + 1)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def _save_state(self, epochs_done: int) -> None:
        path = self.state_path(epochs_done)
        path.parent.mkdir(parents=True, exist_ok=True)
        state, weights = self.rule.state_dict(), self.best_weights
        arrays = {f"w{i}": w for i, w in enumerate(weights or [])}
        with rundir.atomic_path(path) as tmp:
            with tmp.open("wb") as f:  # a file object: np.savez would append .npz to a path
                np.savez(
                    f,
                    wait=state["wait"],
                    stopped_epoch=state["stopped_epoch"],
                    best_epoch=state["best_epoch"],
                    has_best=state["best"] is not None,
                    best=state["best"] if state["best"] is not None else 0.0,
                    num_weights=-1 if weights is None else len(weights),
                    **arrays,
                )
        stale = self.state_path(epochs_done - self.KEEP)
        if stale.exists():
            stale.unlink()


def early_stopping(train: TrainConfig, state_dir: Path | None = None) -> EarlyStoppingOnValAccuracy | None:
    """`train.early_stopping`: stop after that many epochs without a new best validation accuracy
    (strictly greater), then restore the best epoch's weights, also when no stop happened.
    `state_dir`: where its state is kept for --resume. None when off."""
    if train.early_stopping == 0:
        return None
    return EarlyStoppingOnValAccuracy(train.early_stopping, state_dir)
