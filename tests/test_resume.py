"""A run killed with SIGKILL in the middle of an epoch resumes from its last finished epoch and
ends exactly where an uninterrupted run with the same seed ends; Ctrl-C stops cleanly."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


ARGS = ["--limit-train", "8000", "--limit-test", "300", "--epochs", "3", "--batch-size", "32"]
#: The file each engine writes last when it checkpoints an epoch.
CHECKPOINT = {
    "keras": "training_metadata.json",
    "keras-jax": "training_metadata.json",
    "lightning": "last.ckpt",
    "pytorch": "last.pt",
}


def _command(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "fmnist"
    return [*([str(script)] if script.exists() else [sys.executable, "-m", "fmnist_cli"]), *args]


def _rows(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "metrics.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def _start_and_stop(engine: str, run_dir: Path, data_dir: Path, sig: int, *more: str) -> subprocess.Popen:
    """Start a training and send `sig` once the first epoch is done and the second under way."""
    proc = subprocess.Popen(
        _command("train", "--engine", engine, *ARGS, *more, "--run-dir", str(run_dir), "--data-dir", str(data_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as at a terminal, however the suite was started: a job a shell puts in the
        # background inherits SIGINT ignored, and Python then installs no KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 300
    checkpoint = run_dir / "checkpoints" / CHECKPOINT[engine]
    while len(_rows(run_dir)) < 1 or not checkpoint.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 2, which takes over a second (225 steps)
    assert len(_rows(run_dir)) == 1 and proc.poll() is None, "the run must be stopped mid-epoch"
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return proc


def _numbers(run_dir: Path) -> tuple[list[dict[str, str]], dict]:
    rows = [{k: v for k, v in r.items() if k != "seconds"} for r in _rows(run_dir)]
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    return rows, {k: metrics[k] for k in ("test_accuracy", "test_loss", "confusion_matrix")}


@pytest.mark.slow  # trainings in child processes, interrupted and resumed: minutes
@pytest.mark.parametrize("engine", ["keras", "lightning", "pytorch"])
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(engine, real_data_dir, tmp_path, fmnist):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    one = ("--threads", "1")  # begun on one thread, resumed without saying it: one thread again
    fmnist("train", "--engine", engine, *ARGS, *one, "--run-dir", str(straight), "--data-dir", str(real_data_dir))
    proc = _start_and_stop(engine, killed, real_data_dir, signal.SIGKILL, *one)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "test_metrics.json").exists() and (killed / "checkpoints").is_dir()
    first_attempt = json.loads((killed / "checkpoints" / "cpu_seconds.json").read_text())["cpu_seconds"]
    result = fmnist("train", "--resume", str(killed), "--data-dir", str(real_data_dir))
    assert "resuming" in result.stdout
    assert [r["epoch"] for r in _rows(killed)] == ["1", "2", "3"]  # every epoch once
    assert _numbers(killed) == _numbers(straight)  # identical on CPU
    assert not (killed / "checkpoints").exists()  # cleaned up once the run finished
    finished = json.loads((killed / "test_metrics.json").read_text())
    assert finished["resumed"] is True
    assert finished["cpu_seconds"] > first_attempt > 0  # the attempts' CPU time, summed
    assert json.loads((killed / "run.json").read_text())["placement"]["threads_asked"] == 1
    pools = finished.get("framework_threads") or {}
    assert all(pools[k] == 1 for k in ("torch_intra_op", "tf_intra_op") if k in pools), pools


@pytest.mark.slow  # trainings in child processes, interrupted and resumed: minutes
# Keras on JAX too: there a KeyboardInterrupt raised while Keras reads a step's logs was lost.
@pytest.mark.parametrize("engine", ["keras", "keras-jax", "lightning", "pytorch"])
def test_ctrl_c_keeps_the_checkpoint_and_says_how_to_resume(engine, real_data_dir, tmp_path, fmnist):
    run_dir = tmp_path / "run"
    proc = _start_and_stop(engine, run_dir, real_data_dir, signal.SIGINT)
    stderr = proc.stderr.read()
    assert proc.returncode == 130, stderr[-2000:]
    assert f"fmnist train --resume {run_dir}" in stderr
    assert (run_dir / "checkpoints").is_dir() and len(_rows(run_dir)) == 1
    fmnist("train", "--resume", str(run_dir), "--data-dir", str(real_data_dir))
    assert [r["epoch"] for r in _rows(run_dir)] == ["1", "2", "3"]


def test_resume_refuses_a_finished_run(keras_run, tmp_path, fmnist):
    run_dir = tmp_path / "done"
    shutil.copytree(keras_run, run_dir)  # a finished run (conftest's, trained once per session)
    result = fmnist("train", "--resume", str(run_dir), check=False)
    assert result.returncode == 2 and "finished run" in result.stderr


@pytest.mark.parametrize("engine", ["keras", "lightning", "pytorch"])
def test_nan_loss_stops_with_epoch_and_step(engine, real_data_dir, tmp_path, fmnist):
    result = fmnist(
        "train",
        "--engine",
        engine,
        "--limit-train",
        "600",
        "--limit-test",
        "100",
        "--epochs",
        "3",
        "--lr",
        "1e6",
        "--run-dir",
        str(tmp_path / "nan"),
        "--data-dir",
        str(real_data_dir),
        check=False,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("fmnist: error: training diverged: the loss became nan at epoch 1, step ")
    assert "Traceback" not in result.stderr


def test_ctrl_c_during_the_checkpoint_write_takes_effect_once_it_is_whole(baseline_config, tmp_path, monkeypatch):
    """Ctrl-C landing while Keras writes the epoch's checkpoint (weights, then the epoch number):
    both files are written before the KeyboardInterrupt (a half-written weights file made the
    resume fail with 'objects could not be loaded').

    The signal goes to the main thread itself (raise_signal), not to the process: a process-wide
    SIGINT may be taken by any of TensorFlow's threads, and the main thread then learns of it only
    once that thread has run, on a slow or busy CPU after the write and the test had ended."""
    import threading

    import keras

    from keras_model.training import compile_model
    from keras_model.callbacks import WholeBackup
    from keras_model.model import build_model

    model = compile_model(build_model(baseline_config), baseline_config)
    backup = WholeBackup(str(tmp_path), delete_checkpoint=False)
    backup.set_model(model)
    write = keras.Model.save_weights

    def interrupted_write(self, *args, **kwargs):
        signal.raise_signal(signal.SIGINT)  # Ctrl-C arrives as the weights start to be written
        write(self, *args, **kwargs)

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("Python handles signals in the main thread only; this test runs in another")

    monkeypatch.setattr(keras.Model, "save_weights", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        backup.on_epoch_end(0)
    assert (tmp_path / "latest.weights.h5").is_file()
    assert json.loads((tmp_path / "training_metadata.json").read_text())["epoch"] == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler put back


def test_ctrl_c_during_lightnings_checkpoint_write_takes_effect_once_it_is_whole(tmp_path, real_data_dir, monkeypatch):
    """Ctrl-C landing while Lightning writes the epoch's checkpoint: the KeyboardInterrupt comes
    once last.ckpt is whole and in place (the same guarantee as Keras' WholeBackup above)."""
    import threading

    import lightning as L

    from fmnist.config import load_config, with_overrides
    from fmnist.datasets import load_fashion_mnist
    from fmnist.splits import make_splits
    from lightning_model.callbacks import AtomicLastCheckpoint
    from lightning_model.data import FashionMNISTDataModule
    from lightning_model.module import FashionClassifier
    from lightning_model.training import make_trainer

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("Python handles signals in the main thread only; this test runs in another")
    config = with_overrides(
        load_config("baseline"), {"train.epochs": 1, "data.limit_train": 256, "data.limit_test": 64}
    )
    splits = make_splits(load_fashion_mnist(real_data_dir), config)
    checkpoint = AtomicLastCheckpoint(str(tmp_path / "checkpoints"))
    trainer = make_trainer(config, tmp_path, [checkpoint])
    write = L.Trainer.save_checkpoint

    def interrupted_write(self, *args, **kwargs):
        signal.raise_signal(signal.SIGINT)  # Ctrl-C arrives as the checkpoint starts to be written
        return write(self, *args, **kwargs)

    monkeypatch.setattr(L.Trainer, "save_checkpoint", interrupted_write)
    with pytest.raises((KeyboardInterrupt, SystemExit)):  # Lightning turns it into its own exit
        trainer.fit(FashionClassifier.from_config(config), datamodule=FashionMNISTDataModule(config, splits=splits))
    saved = tmp_path / "checkpoints" / "last.ckpt"
    assert saved.is_file() and not saved.with_name("last.ckpt.tmp").exists()
    import torch

    assert torch.load(saved, weights_only=True, map_location="cpu")["epoch"] == 0
