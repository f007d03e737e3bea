"""Run directories never lose results: no silent overwrite, no half-written file, and a place that
cannot hold a run is refused before training starts."""

from __future__ import annotations

import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from fmnist import rundir
from fmnist.errors import RunDirError


def test_a_directory_holding_a_run_is_refused_unless_overwrite(tmp_path):
    rundir.write_run_info(tmp_path, {"engine": "keras", "status": "training"})
    (tmp_path / "metrics.csv").write_text("epoch\n")
    with pytest.raises(RunDirError, match="already holds a run.*--overwrite"):
        rundir.prepare_run_dir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    rundir.prepare_run_dir(tmp_path, overwrite=True)
    assert list(tmp_path.iterdir()) == []  # the old run's files and checkpoints are gone


def test_a_run_directory_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="cannot write to run directory .*Not a directory"):
        rundir.prepare_run_dir(tmp_path / "file" / "run")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any permission bits")
def test_a_read_only_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(RunDirError, match="cannot write to run directory .*Permission denied"):
        rundir.prepare_run_dir(locked / "run")


def test_a_full_disk_is_refused_before_training(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(2**30, 2**30 - 2**20, 2**20))
    with pytest.raises(RunDirError, match=r"only 1 MiB free where .* a run needs about 100 MiB"):
        rundir.prepare_run_dir(tmp_path / "run")


def test_an_interrupted_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "test_metrics.json"
    rundir.write_json(target, {"test_accuracy": 0.9})
    with pytest.raises(RuntimeError):
        with rundir.atomic_path(target) as tmp:
            tmp.write_text('{"test_acc')  # half written when the crash comes
            raise RuntimeError("killed")
    assert rundir.read_json(target) == {"test_accuracy": 0.9}
    assert [p.name for p in tmp_path.iterdir()] == ["test_metrics.json"]


def test_truncating_metrics_keeps_the_finished_epochs(tmp_path):
    metrics = rundir.MetricsCSV(tmp_path / "metrics.csv")
    for epoch in (1, 2, 3):
        metrics.append({c: (epoch if c == "epoch" else 0.5) for c in rundir.METRICS_COLUMNS})
    kept = metrics.truncate(2)
    assert [r["epoch"] for r in kept] == [1, 2]
    assert [r["epoch"] for r in rundir.read_metrics(Path(tmp_path / "metrics.csv"))] == [1, 2]


def test_an_interrupted_run_is_described_as_it_is(tmp_path):
    """Ctrl-C's message says what is true at that moment: nothing written, no epoch kept, or the
    epochs its checkpoint holds, and the command that follows from it."""
    from fmnist import rundir

    run = tmp_path / "run"
    assert "nothing was written" in rundir.interrupted_message(run)
    run.mkdir()
    rundir.write_run_info(run, {"engine": "keras", "status": "training"})
    said = rundir.interrupted_message(run)
    assert "before its first epoch finished" in said and f"fmnist train --resume {run}" in said
    csv = rundir.MetricsCSV(run / rundir.METRICS_FILE)
    for epoch in (1, 2):
        row = {"epoch": epoch, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5}
        csv.append({**row, "lr": 1e-3, "seconds": 1.0})
    (run / rundir.CHECKPOINT_DIR).mkdir()
    (run / rundir.CHECKPOINT_DIR / "last.ckpt").write_bytes(b"x")
    said = rundir.interrupted_message(run)
    assert "last finished epoch (2) is saved" in said and f"Resume with: fmnist train --resume {run}" in said
