"""The core's per-epoch reporter: CPU time of a run, summed over resumed attempts; its TensorBoard
writer, which loads no TensorFlow where none is loaded (a Lightning run)."""

from __future__ import annotations

import json

from fmnist import rundir
from fmnist.epoch_reporter import EpochReporter
from fmnist.tensorboard_log import TensorBoardLog

ROW = {
    "epoch": 1,
    "train_loss": 1.0,
    "train_accuracy": 0.5,
    "val_loss": 1.1,
    "val_accuracy": 0.4,
    "lr": 0.1,
    "seconds": 2.0,
}


def _reporter(run_dir):
    return EpochReporter(run_dir, TensorBoardLog(run_dir / rundir.TENSORBOARD_DIR))


def test_cpu_time_is_written_each_epoch_and_summed_on_resume(tmp_path):
    first = _reporter(tmp_path)
    first(ROW)
    written = json.loads((tmp_path / rundir.CPU_TIME_FILE).read_text())["cpu_seconds"]
    assert 0 < written <= first.cpu_seconds  # this process's CPU time so far
    (tmp_path / rundir.CPU_TIME_FILE).write_text(json.dumps({"cpu_seconds": 1000.0}))  # an earlier attempt
    second = _reporter(tmp_path)
    second.resume_from(1)
    assert second.cpu_seconds >= 1000.0 + written


def test_the_tensorboard_writer_loads_no_tensorflow_and_its_events_read_back(tmp_path):
    """TensorBoard's writer imports all of TensorFlow when it is installed, unless told to use its
    own file layer: a Lightning run would load a second framework for nothing."""
    import subprocess
    import sys

    code = f"""
import sys
from pathlib import Path
from fmnist.tensorboard_log import TensorBoardLog
log = TensorBoardLog(Path({str(tmp_path)!r}))
log.log_epoch({ROW!r})
log.close()
print("tensorflow" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "train"))
    events.Reload()
    assert [e.value for e in events.Scalars("epoch_loss")] == [ROW["train_loss"]]
