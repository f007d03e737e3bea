"""The `lightning` engine's training against the `pytorch` engine's plain loop doing exactly the
same work, step by step, as Lightning's own parity tests (`tests/parity_pytorch` in its repository)
compare a LightningModule with plain PyTorch: the Trainer, callbacks and logging add no math of
their own.

The plain loop is `torch_blocks.plain_loop.PlainTraining`, the pytorch engine's training and the
benchmark's `plain torch` runner, built as the pytorch engine builds it (its own seeds, network and
optimizer), so what this file proves holds for both: the same initial weights, the shared batch
order and augmentation, dropout reseeded from (seed, epoch), label-smoothed cross-entropy,
Keras-exact AdamW with decoupled weight decay, the one-cycle learning rate of every step, and the
train loss and accuracy accumulated as the module accumulates them.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from fmnist.config import load_config, with_overrides
from fmnist.datasets import load_fashion_mnist
from fmnist.splits import make_splits, num_batches
from lightning_model.training import configure_torch, make_trainer
from lightning_model.data import FashionMNISTDataModule
from lightning_model.module import FashionClassifier
from torch_blocks import settings
from torch_blocks.batches import batch_loader
from torch_blocks.network import training_network
from torch_blocks.plain_loop import PlainTraining

REPO = Path(__file__).resolve().parents[1]


class StepLosses(L.Callback):
    """The loss of every training step, as the module returned it."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def plain_torch_run(config, splits) -> tuple[dict, torch.nn.Module, list[float], dict[str, float]]:
    """The pytorch engine's loop from its own start (`torch_blocks.settings.configure_torch`, the
    network at the config's seed): its initial weights, its network, every step's loss and the
    last epoch's train metrics."""
    t = config.train
    settings.configure_torch(config, torch.device("cpu"))
    network = training_network(config)
    start = {k: v.clone() for k, v in network.state_dict().items()}
    loader = batch_loader(splits.train, t.batch_size, config.seed, shuffle=True, augment=config.data.augment)
    plain = PlainTraining(network, config, num_batches(len(splits.train), t.batch_size))
    losses, metrics = [], {}
    for epoch in range(t.epochs):
        loader.sampler.set_epoch(epoch)
        plain.start_epoch(epoch)
        for x, y in loader:
            losses.append(plain.step(x, y).item())
        metrics = plain.end_epoch()
    return start, network, losses, metrics


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
    start = {k: v.clone() for k, v in module.network.state_dict().items()}
    recorder = StepLosses()
    trainer = make_trainer(config, tmp_path, [recorder])
    trainer.fit(module, datamodule=FashionMNISTDataModule(config, splits=splits))

    plain_start, plain_network, plain, plain_metrics = plain_torch_run(config, splits)
    for name, value in start.items():  # each engine draws its own start: the same numbers
        assert torch.equal(value, plain_start[name]), name
    assert len(recorder.losses) == len(plain) == t.epochs * num_batches(len(splits.train), t.batch_size)
    np.testing.assert_allclose(recorder.losses, plain, rtol=0, atol=1e-5)
    plain_weights = plain_network.state_dict()  # the final weights too, batch-norm statistics included
    for name, value in module.network.state_dict().items():
        np.testing.assert_allclose(value.numpy(), plain_weights[name].numpy(), rtol=0, atol=1e-5, err_msg=name)
    logged = trainer.callback_metrics
    assert plain_metrics["loss"] == pytest.approx(float(logged["train/loss"]), abs=1e-5)
    assert plain_metrics["accuracy"] == pytest.approx(float(logged["train/accuracy"]), abs=1e-6)


def test_the_plain_loop_stops_at_a_non_finite_loss_as_the_project_s_callback_does():
    """The non-finite-loss check of every step is part of the work: the loop remembers where."""
    config = with_overrides(load_config(REPO / "configs" / "baseline.yaml"), {"train.optimizer.lr": 1e30})
    settings.configure_torch(config, torch.device("cpu"))
    plain = PlainTraining(training_network(config), config, steps_per_epoch=4)
    plain.start_epoch(0)
    x, y = torch.full((8, 1, 28, 28), 255.0), torch.arange(8) % 10
    for _ in range(4):
        plain.step(x, y)
        if plain.should_stop:
            break
    assert plain.should_stop and plain.watch.diverged is not None and plain.watch.diverged.epoch == 1
