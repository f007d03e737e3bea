"""One training over two devices: Lightning DDP (two processes, gloo on CPU) and Keras
MirroredStrategy (two logical CPU devices). The global batch is split across the devices, and the
validation and test sets are counted exactly once: the numbers the run reports are those the
saved model gives when it is measured again on one device. Slow (process start-up, two
trainings per engine); CI runs them after the default suite."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest


pytestmark = pytest.mark.slow

# Odd sizes on purpose: the last batches split unevenly over two devices (301 test images, and
# a validation split that is not a multiple of 2 x the eval batch size).
ARGS = ["--limit-train", "1500", "--limit-test", "301", "--epochs", "2", "--batch-size", "64", "--devices", "2"]


def _last_row(run_dir: Path) -> dict[str, str]:
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"], rows  # one row per epoch: one writer
    return rows[-1]


def _remeasure(engine: str, run_dir: Path, data_dir: Path) -> tuple[float, float, int]:
    """Validation accuracy and loss of the saved model, on one device, in this process."""
    from fmnist.config import load_config
    from fmnist.datasets import load_fashion_mnist
    from fmnist.metrics import cross_entropy
    from fmnist.splits import make_splits
    from fmnist.training import load_training

    config = load_config(run_dir / "config.yaml")
    splits = make_splits(load_fashion_mnist(data_dir), config)
    logits = load_training(engine).predict(run_dir, splits.val.images, config.train.eval_batch_size)
    labels = splits.val.labels
    return float(np.mean(logits.argmax(1) == labels)), cross_entropy(logits, labels), len(labels)


@pytest.mark.parametrize("engine,strategy", [("lightning", "ddp"), ("keras", "mirrored")])
def test_two_devices_count_every_image_once(engine, strategy, real_data_dir, tmp_path, fmnist):
    run_dir = tmp_path / engine
    result = fmnist(
        "train",
        "--engine",
        engine,
        *ARGS,
        "--strategy",
        strategy,
        "--run-dir",
        str(run_dir),
        "--data-dir",
        str(real_data_dir),
    )
    assert result.stdout.count("test accuracy") == 1  # one process reports
    assert "2 devices" in result.stdout, result.stdout[-2000:]
    started = {"lightning": "Starting with 2 processes", "keras": "MirroredStrategy over /cpu:0, /cpu:1"}
    assert started[engine] in result.stdout + result.stderr
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert metrics["devices"] == 2
    confusion = np.array(metrics["confusion_matrix"])
    assert confusion.sum() == metrics["test_images"] == 301  # every test image once, no padding

    # The validation numbers logged over two devices are those of the saved model on one device.
    row = _last_row(run_dir)
    accuracy, loss, n_val = _remeasure(engine, run_dir, real_data_dir)
    assert abs(float(row["val_accuracy"]) - accuracy) < 0.5 / n_val, (row, accuracy)
    assert float(row["val_loss"]) == pytest.approx(loss, rel=1e-4)

    # And `fmnist evaluate` (one device) reproduces the test metrics.
    fmnist("evaluate", str(run_dir), "--data-dir", str(real_data_dir))
    evaluated = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluated["test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-12)
