"""The core's per-epoch reporter: CPU time of a run, summed over resumed attempts."""

from __future__ import annotations

import json

from fmnist import rundir
from fmnist.backend_api import EpochReporter
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
