"""The `pytorch` engine (`pytorch_model`, the shared torch network trained by a plain loop) as a user
runs it: trained and evaluated through the command on a few hundred real images, and an
interrupted training resumed from its checkpoint ending where an uninterrupted one ends."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fmnist.config import load_config, with_overrides
from fmnist.datasets import load_fashion_mnist
from fmnist.splits import make_splits

REPO = Path(__file__).resolve().parents[1]


def test_pytorch_trains_and_evaluates_through_the_command(real_data_dir, tmp_path, fmnist):
    """One epoch on 1,000 images: a run directory like every engine's, an accuracy well above
    chance, `fmnist evaluate` scoring model.pt as the training did."""
    run_dir = tmp_path / "run"
    fmnist(
        "train", "--engine", "pytorch", "--config", str(REPO / "configs" / "baseline.yaml"), "--epochs", "1",
        "--limit-train", "1000", "--limit-test", "500", "--run-dir", str(run_dir), "--data-dir", str(real_data_dir),
    )  # fmt: skip
    info = json.loads((run_dir / "run.json").read_text())
    assert (info["engine"], info["status"]) == ("pytorch", "finished")
    reported = json.loads((run_dir / "test_metrics.json").read_text())
    assert reported["test_accuracy"] > 0.5  # it learned: chance is 10%
    assert reported["versions"]["torch"] and "lightning" not in reported["versions"]
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1"] and 0.5 < float(rows[0]["val_accuracy"]) <= 1
    assert (run_dir / "model.pt").is_file() and not (run_dir / "checkpoints").exists()
    assert "trainable parameters" in (run_dir / "summary.txt").read_text()
    fmnist("evaluate", str(run_dir), "--data-dir", str(real_data_dir))
    evaluated = json.loads((run_dir / "evaluation.json").read_text())
    assert (evaluated["engine"], evaluated["trained_by"]) == ("pytorch", "pytorch")
    assert evaluated["test_accuracy"] == reported["test_accuracy"]
    assert evaluated["test_loss"] == pytest.approx(reported["test_loss"], rel=1e-6)


class Interrupt:
    """A reporter that collects the metrics rows and stops the training (as Ctrl-C does) when
    handed the row of epoch `at` (from 1): that epoch's checkpoint is not written."""

    def __init__(self, at: int | None = None) -> None:
        self.rows: list[dict[str, float]] = []
        self.at = at

    def __call__(self, row: dict[str, float]) -> None:
        if row["epoch"] == self.at:
            raise KeyboardInterrupt
        self.rows.append(row)


def test_an_interrupted_training_resumes_where_an_uninterrupted_one_goes(real_data_dir, tmp_path):
    """improved.yaml's moving parts (batch norm, augmentation, dropout, AdamW, one-cycle per step,
    channels_last) with early stopping, 3 epochs of 300 images, stopped during epoch 2: resumed
    from epoch 1's checkpoint (weights, optimizer, schedule, early stopping, batch order, dropout)
    it reports the same epochs and ends with the same weights as a run never stopped, bit for bit."""
    import torch

    from pytorch_model import checkpoint
    from pytorch_model.training import completed_epochs, train

    config = with_overrides(
        load_config(REPO / "configs" / "improved.yaml"),
        {
            "train.precision": "float32",
            "train.epochs": 3,
            "train.batch_size": 64,
            "train.early_stopping": 2,
            "data.limit_train": 300,
            "data.limit_test": 100,
        },
    )
    splits = make_splits(load_fashion_mnist(real_data_dir), config)
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    for folder in (straight, stopped):
        folder.mkdir()
    whole = Interrupt()
    expected = train(config, splits, straight, whole)
    first = Interrupt(at=2)
    with pytest.raises(KeyboardInterrupt):
        train(config, splits, stopped, first)
    assert completed_epochs(stopped) == 1 and not (stopped / "model.pt").exists()
    rest = Interrupt()
    resumed = train(config, splits, stopped, rest, resume=True)

    def seconds_apart(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert seconds_apart(first.rows + rest.rows) == seconds_apart(whole.rows)
    assert [r["epoch"] for r in whole.rows] == [1, 2, 3]
    np.testing.assert_array_equal(resumed.test_logits, expected.test_logits)
    _, kept = checkpoint.load_model(stopped)
    for name, value in checkpoint.load_model(straight)[1].items():
        assert torch.equal(value, kept[name]), name
