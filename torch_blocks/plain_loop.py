"""The project's training step as a plain PyTorch loop, no Trainer: the `pytorch` engine's loop,
and Lightning's reference.

One step does the work of `lightning_model.module.FashionClassifier.training_step` and
Lightning's automatic optimization, in their order: under bf16 autocast when the config says
`bf16-mixed`, the forward pass, the label-smoothed loss and the train accuracy and loss
accumulated for the epoch; then zero_grad, backward, the config's optimizer
(`torch_blocks.optim.make_optimizer`: Keras' Adam or AdamW with decoupled weight decay, or SGD),
the learning rate of `fmnist.schedules` through a LambdaLR stepped after every step
(`schedule.per_step`) or every epoch, and the core's non-finite-loss check of every step
(`fmnist.divergence`). Each epoch reseeds dropout from (seed, epoch), as the module does, so a
resumed training draws the masks an uninterrupted one draws.

tests/test_lightning_vs_plain_torch.py holds this loop to the same loss at every step, the same
weights and the same epoch metrics as the Lightning engine's training.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Protocol

import torch
import torch.nn.functional as F

from fmnist.config import Config, TrainConfig
from fmnist.divergence import DivergenceWatch
from fmnist.schedules import lr_at_epoch, lr_at_step
from fmnist.splits import epoch_seed
from torch_blocks.optim import make_optimizer
from torch_blocks.precision import config_autocast


class EpochMetric(Protocol):
    """What the loop accumulates a train metric with (these classes, or a torchmetrics object)."""

    def update(self, *args, **kwargs) -> None: ...
    def compute(self) -> torch.Tensor: ...
    def reset(self) -> None: ...


class MeanLoss:
    """The epoch's mean loss weighted by batch size, summed in float32 as torchmetrics'
    `MeanMetric` sums it (what the Lightning engine logs), on the loss's device: no step waits
    for the device to read it."""

    def __init__(self) -> None:
        self.reset()

    def update(self, value: torch.Tensor, weight: int) -> None:
        share = value.detach().float() * weight
        self.total = share if self.total is None else self.total + share
        self.weight += weight

    def compute(self) -> torch.Tensor:
        return (self.total if self.total is not None else torch.zeros(())) / max(self.weight, 1)

    def reset(self) -> None:
        self.total: torch.Tensor | None = None
        self.weight = 0


class Accuracy:
    """The epoch's share of right answers over every image (torchmetrics' micro accuracy),
    counted on the device."""

    def __init__(self) -> None:
        self.reset()

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        right = (logits.argmax(dim=1) == y).sum()
        self.correct = right if self.correct is None else self.correct + right
        self.count += len(y)

    def compute(self) -> torch.Tensor:
        correct = self.correct if self.correct is not None else torch.zeros(())
        return correct.float() / max(self.count, 1)

    def reset(self) -> None:
        self.correct: torch.Tensor | None = None
        self.count = 0


def loss_fn(config: Config) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Mean cross-entropy from logits, label-smoothed by `train.label_smoothing` (targets
    (1 - e) * one_hot + e / 10), as the Keras engines' loss; training and validation."""
    smoothing = config.train.label_smoothing
    return lambda logits, y: F.cross_entropy(logits, y, label_smoothing=smoothing)


def schedule_factor(train: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The LambdaLR factor of `fmnist.schedules` over the base rate: of the step (`schedule.per_step`,
    the scheduler stepped after every step) or of the epoch (stepped after every epoch)."""
    base = train.optimizer.lr
    if train.schedule.per_step:
        return lambda step: lr_at_step(train, step, steps_per_epoch) / base
    return lambda epoch: lr_at_epoch(train, epoch) / base


class PlainTraining:
    """The training of one network as a plain loop: `start_epoch`, `step` per batch, `end_epoch`;
    `state_dict`/`load_state_dict` for a checkpoint (optimizer and schedule)."""

    def __init__(
        self,
        network: torch.nn.Module,
        config: Config,
        steps_per_epoch: int,
        optimizer: torch.optim.Optimizer | None = None,
        accuracy: EpochMetric | None = None,
        mean_loss: EpochMetric | None = None,
    ) -> None:
        """network: on its device (channels_last if the config says). steps_per_epoch: the batches
        of one epoch (the schedule's unit). optimizer: over `network`'s parameters at the base rate
        (default: the config's); the schedule is set here, as Lightning sets the module's.
        accuracy, mean_loss: the train metrics, updated every step (default: this module's)."""
        t = config.train
        self.network, self.config = network, config
        self.optimizer = optimizer or make_optimizer(network.parameters(), t.optimizer)
        self.accuracy = accuracy if accuracy is not None else Accuracy()
        self.mean_loss = mean_loss if mean_loss is not None else MeanLoss()
        self.loss = loss_fn(config)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule_factor(t, steps_per_epoch))
        self.device_type = next(network.parameters()).device.type
        self.watch = DivergenceWatch()
        self.epoch = self.batch_index = 0
        self.lr = self.optimizer.param_groups[0]["lr"]
        self.should_stop = False

    def autocast(self) -> contextlib.AbstractContextManager:
        """The config's precision on the network's device: what every forward pass runs in."""
        return config_autocast(self.config, self.device_type)

    def start_epoch(self, epoch: int) -> None:
        """Dropout's masks of this epoch from (seed, epoch), as `FashionClassifier.on_train_epoch_start`."""
        self.epoch, self.batch_index = epoch, 0
        torch.manual_seed(epoch_seed(self.config.seed, epoch))
        self.network.train()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimizer step on the batch (x, y); returns its loss (not detached, as training_step)."""
        t = self.config.train
        self.lr = self.optimizer.param_groups[0]["lr"]  # the step's rate, as the project's callbacks read it
        if t.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            logits = self.network(x)
            loss = self.loss(logits, y)
            self.accuracy.update(logits, y)
            self.mean_loss.update(loss.detach(), weight=len(y))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if t.schedule.per_step:
            self.schedule.step()
        if self.watch.check(self.epoch, self.batch_index, loss.detach(), lambda: self.lr):
            self.should_stop = True
        self.batch_index += 1
        return loss

    def end_epoch(self) -> dict[str, float]:
        """The epoch's train loss and accuracy (over all its batches, as the module logs them);
        the per-epoch schedule moves on."""
        metrics = {"loss": float(self.mean_loss.compute()), "accuracy": float(self.accuracy.compute())}
        self.mean_loss.reset()
        self.accuracy.reset()
        if not self.config.train.schedule.per_step:
            self.schedule.step()
        return metrics

    def state_dict(self) -> dict[str, dict]:
        """The optimizer's and the schedule's state (tensors and numbers: a weights-only checkpoint)."""
        return {"optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict()}

    def load_state_dict(self, state: dict[str, dict]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.lr = self.optimizer.param_groups[0]["lr"]
