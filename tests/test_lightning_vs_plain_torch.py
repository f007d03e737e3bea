"""The project's Lightning training against a plain torch loop doing exactly the same work, step by
step, as Lightning's own parity tests (`tests/parity_pytorch` in its repository) compare a
LightningModule with plain PyTorch: the Trainer, callbacks and logging add no math of their own.

The plain loop is the benchmark's (`lightning_model.plain_loop.PlainTraining`), so what this file
proves holds for Lightning's reference in `fmnist benchmark`: the same initial weights, the shared
batch order and augmentation, dropout reseeded from (seed, epoch), label-smoothed cross-entropy,
Keras-exact AdamW with decoupled weight decay, the one-cycle learning rate of every step, and the
train loss and accuracy accumulated as the module accumulates them.
"""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from fmnist.config import load_config, with_overrides
from fmnist.datasets import load_fashion_mnist
from fmnist.splits import make_splits, num_batches
from lightning_model.training import configure_torch, make_trainer
from lightning_model.data import FashionMNISTDataModule, batch_loader
from lightning_model.module import FashionClassifier
from lightning_model.plain_loop import PlainTraining

REPO = Path(__file__).resolve().parents[1]


class StepLosses(L.Callback):
    """The loss of every training step, as the module returned it."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def plain_torch_losses(module: FashionClassifier, config, splits) -> tuple[list[float], dict[str, float]]:
    """Every step's loss and the last epoch's train metrics of the plain loop on `module`'s network,
    optimizer and train metrics."""
    t = config.train
    loader = batch_loader(splits.train, t.batch_size, config.seed, shuffle=True, augment=config.data.augment)
    steps_per_epoch = num_batches(len(splits.train), t.batch_size)
    plain = PlainTraining.from_module(module, steps_per_epoch)
    losses, metrics = [], {}
    for epoch in range(t.epochs):
        loader.sampler.set_epoch(epoch)
        plain.start_epoch(epoch)
        for x, y in loader:
            losses.append(plain.step(x, y).item())
        metrics = plain.end_epoch()
    return losses, metrics


def test_lightning_training_takes_the_same_steps_as_a_plain_torch_loop(real_data_dir, tmp_path):
    """improved.yaml in float32 (batch norm, shifts and flips, dropout, AdamW, one-cycle per step,
    label smoothing) on 600 images for 2 epochs: the same loss at every step, to 5 decimals, the
    same final weights and the same train loss and accuracy of the last epoch."""
    config = with_overrides(
        load_config(REPO / "configs" / "improved.yaml"),
        {
            "train.precision": "float32",
            "train.channels_last": False,
            "train.epochs": 2,
            "train.batch_size": 64,
            "data.limit_train": 600,
            "data.limit_test": 100,
        },
    )
    t = config.train
    assert t.optimizer.name == "adamw" and t.optimizer.weight_decay > 0 and t.label_smoothing > 0
    assert t.schedule.per_step and config.data.augment.enabled
    splits = make_splits(load_fashion_mnist(real_data_dir), config)

    configure_torch(config)
    module = FashionClassifier.from_config(config)
    plain_module = copy.deepcopy(module)  # the same initial weights for the plain loop
    recorder = StepLosses()
    trainer = make_trainer(config, tmp_path, [recorder])
    trainer.fit(module, datamodule=FashionMNISTDataModule(config, splits=splits))

    plain, plain_metrics = plain_torch_losses(plain_module, config, splits)
    assert len(recorder.losses) == len(plain) == t.epochs * num_batches(len(splits.train), t.batch_size)
    np.testing.assert_allclose(recorder.losses, plain, rtol=0, atol=1e-5)
    plain_weights = plain_module.network.state_dict()  # the final weights too, batch-norm statistics included
    for name, value in module.network.state_dict().items():
        np.testing.assert_allclose(value.numpy(), plain_weights[name].numpy(), rtol=0, atol=1e-5, err_msg=name)
    logged = trainer.callback_metrics
    assert plain_metrics["loss"] == pytest.approx(float(logged["train/loss"]), abs=1e-5)
    assert plain_metrics["accuracy"] == pytest.approx(float(logged["train/accuracy"]), abs=1e-6)


def test_the_plain_loop_stops_at_a_non_finite_loss_as_the_project_s_callback_does():
    """The non-finite-loss check of every step is part of the work: the loop remembers where."""
    config = with_overrides(load_config(REPO / "configs" / "baseline.yaml"), {"train.optimizer.lr": 1e30})
    configure_torch(config)
    module = FashionClassifier.from_config(config)
    plain = PlainTraining.from_module(module, steps_per_epoch=4)
    plain.start_epoch(0)
    x, y = torch.full((8, 1, 28, 28), 255.0), torch.arange(8) % 10
    for _ in range(4):
        plain.step(x, y)
        if plain.should_stop:
            break
    assert plain.should_stop and plain.watch.diverged is not None and plain.watch.diverged.epoch == 1
