"""One TensorBoard writer for every engine, so their event files carry the same tags.

Layout under a run's `tensorboard/`: `train/` and `validation/` hold the per-epoch scalars
`epoch_loss`, `epoch_accuracy` (and `epoch_learning_rate` in train/), the names Keras' own
TensorBoard callback uses; `test/` holds the end-of-run images. `tensorboard --logdir runs`
then overlays every run, Keras and Lightning, on the same charts. It uses the `tensorboard`
package's event writer only, no framework.
"""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

SCALAR_TAGS = ("epoch_loss", "epoch_accuracy")
LR_TAG = "epoch_learning_rate"


def use_tensorboards_own_files() -> None:
    """The event writer reaches files through `tensorboard.compat.tf`, which imports the whole of
    TensorFlow whenever it is installed: seconds per run, and in a Lightning process a second
    framework loaded for nothing. Where TensorFlow is not loaded already, TensorBoard's own file
    layer (its `tensorflow_stub`, chosen when `tensorboard.compat.notf` is importable) writes the
    same event files; in a Keras process TensorFlow's is used, as before."""
    if "tensorflow" not in sys.modules:
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))


class TensorBoardLog:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self._writers: dict[str, EventFileWriter] = {}

    def _writer(self, run: str) -> EventFileWriter:
        if run not in self._writers:
            (self.log_dir / run).mkdir(parents=True, exist_ok=True)
            use_tensorboards_own_files()
            self._writers[run] = EventFileWriter(str(self.log_dir / run))
        return self._writers[run]

    def _add(self, run: str, step: int, summary: Summary) -> None:
        writer = self._writer(run)
        writer.add_event(Event(wall_time=time.time(), step=step, summary=summary))
        writer.flush()

    def scalars(self, run: str, step: int, values: dict[str, float]) -> None:
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()])
        self._add(run, step, summary)

    def log_epoch(self, row: dict[str, float]) -> None:
        """Write one metrics.csv row (epochs are 1-based there, 0-based steps here, as Keras does)."""
        step = int(row["epoch"]) - 1
        self.scalars(
            "train", step, {"epoch_loss": row["train_loss"], "epoch_accuracy": row["train_accuracy"], LR_TAG: row["lr"]}
        )
        self.scalars("validation", step, {"epoch_loss": row["val_loss"], "epoch_accuracy": row["val_accuracy"]})

    def purge_from(self, step: int) -> None:
        """A resumed run redoes epochs from `step` on: TensorBoard drops the earlier attempt's
        events at and after a SessionLog START, so the charts show each epoch once."""
        for run in ("train", "validation"):
            self._writer(run).add_event(
                Event(wall_time=time.time(), step=step, session_log=SessionLog(status=SessionLog.START))
            )
            self._writer(run).flush()

    def image(self, run: str, tag: str, png: bytes, width: int, height: int, step: int = 0) -> None:
        img = Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png)
        self._add(run, step, Summary(value=[Summary.Value(tag=tag, image=img)]))

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
