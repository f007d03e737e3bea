"""The project's Lightning training against a plain torch loop doing exactly the same work, step by
step, as Lightning's own parity tests (`tests/parity_pytorch` in its repository) compare a
LightningModule with plain PyTorch: the Trainer, callbacks and logging add no math of their own.

The plain loop is written out in full here, from the core's rules and the network alone: the same
initial weights, the shared batch order and augmentation, dropout reseeded from (seed, epoch),
label-smoothed cross-entropy, Keras-exact AdamW with decoupled weight decay, and the one-cycle
learning rate of every step. It is also what the benchmark's plain loop has to match.
"""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from fmnist.config import load_config, with_overrides
from fmnist.datasets import load_fashion_mnist
from fmnist.schedules import lr_at_step
from fmnist.splits import epoch_seed, make_splits, num_batches
from lightning_model.backend import configure_torch, make_trainer
from lightning_model.data import FashionMNISTDataModule, batch_loader
from lightning_model.module import FashionClassifier
from lightning_model.optim import KerasAdam

REPO = Path(__file__).resolve().parents[1]


class StepLosses(L.Callback):
    """The loss of every training step, as the module returned it."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def plain_torch_losses(network: torch.nn.Module, config, splits) -> list[float]:
    t, opt = config.train, config.train.optimizer
    loader = batch_loader(splits.train, t.batch_size, config.seed, shuffle=True, augment=config.data.augment)
    optimizer = KerasAdam(
        network.parameters(),
        lr=opt.lr,
        beta_1=opt.beta_1,
        beta_2=opt.beta_2,
        epsilon=opt.epsilon,
        weight_decay=opt.weight_decay,
    )
    steps_per_epoch = num_batches(len(splits.train), t.batch_size)
    losses, step = [], 0
    network.train()
    for epoch in range(t.epochs):
        loader.sampler.set_epoch(epoch)
        torch.manual_seed(epoch_seed(config.seed, epoch))  # the dropout masks of this epoch
        for x, y in loader:
            for group in optimizer.param_groups:
                group["lr"] = lr_at_step(t, step, steps_per_epoch)
            loss = F.cross_entropy(network(x), y, label_smoothing=t.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
    return losses


def test_lightning_training_takes_the_same_steps_as_a_plain_torch_loop(real_data_dir, tmp_path):
    """improved.yaml in float32 (batch norm, shifts and flips, dropout, AdamW, one-cycle per step,
    label smoothing) on 600 images for 2 epochs: the same loss at every step, to 5 decimals."""
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
    network = copy.deepcopy(module.network)  # the same initial weights for the plain loop
    recorder = StepLosses()
    trainer = make_trainer(config, tmp_path, [recorder])
    trainer.fit(module, datamodule=FashionMNISTDataModule(config, splits=splits))

    plain = plain_torch_losses(network, config, splits)
    assert len(recorder.losses) == len(plain) == t.epochs * num_batches(len(splits.train), t.batch_size)
    np.testing.assert_allclose(recorder.losses, plain, rtol=0, atol=1e-5)
    plain_weights = network.state_dict()  # the final weights too, batch-norm statistics included
    for name, value in module.network.state_dict().items():
        np.testing.assert_allclose(value.numpy(), plain_weights[name].numpy(), rtol=0, atol=1e-5, err_msg=name)
