"""The `pytorch` engine's live progress on a terminal: one bar per epoch over its batches, left
standing with the epoch's metrics, counting epochs from 1 as the other engines' bars do. Off a
terminal the core prints one line per epoch instead (`fmnist.console`), and this draws nothing."""

from __future__ import annotations

from types import TracebackType

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from fmnist import console


class EpochBars:
    def __init__(self, epochs: int, steps_per_epoch: int) -> None:
        self.epochs, self.steps = epochs, steps_per_epoch
        self.progress = (
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[metrics]}"),
            )
            if console.live()
            else None
        )
        self.task: TaskID | None = None

    def __enter__(self) -> EpochBars:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, kind: type | None, value: BaseException | None, traceback: TracebackType | None) -> None:
        if self.progress is not None:
            self.progress.stop()

    def start_epoch(self, epoch: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task(f"Epoch {epoch + 1}/{self.epochs}", total=self.steps, metrics="")

    def step(self) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task)

    def end_epoch(self, row: dict[str, float]) -> None:
        """The epoch's metrics beside its bar (a metrics.csv row)."""
        if self.progress is not None and self.task is not None:
            metrics = (
                f"loss {row['train_loss']:.4f} accuracy {row['train_accuracy']:.4f}"
                f" val_loss {row['val_loss']:.4f} val_accuracy {row['val_accuracy']:.4f}"
            )
            self.progress.update(self.task, metrics=metrics)
