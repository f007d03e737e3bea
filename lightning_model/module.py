"""The LightningModule: loss, metrics, optimizer, schedule and logging around the plain network."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torchmetrics

from fmnist import NUM_CLASSES
from fmnist.config import Config, as_config, config_to_dict
from fmnist.schedules import lr_at_epoch, lr_at_step
from fmnist.splits import epoch_seed, num_batches
from torch_blocks.network import build_network
from torch_blocks.optim import make_optimizer
from torch_blocks.plain_loop import loss_fn


class FashionClassifier(L.LightningModule):
    def __init__(self, config: str | dict[str, Any]) -> None:
        """config: a packaged config's name (`baseline`) or a YAML file's path, as LightningCLI's
        `--model.config` gives it, or the config as a plain dict. The resolved config is what
        `save_hyperparameters` stores, so `load_from_checkpoint` rebuilds the same network from
        the checkpoint alone, whatever file or name it came from."""
        super().__init__()
        self.config: Config = as_config(config)
        self.save_hyperparameters({"config": config_to_dict(self.config)})
        self.network = build_network(self.config)
        self._loss = loss_fn(self.config)
        self.channels_last = self.config.train.channels_last
        if self.channels_last:  # NHWC, as TensorFlow lays it out; the same math
            self.network = self.network.to(memory_format=torch.channels_last)
        # torchmetrics objects, losses included: over several processes they add up counts and
        # sums across all of them, so the epoch figures are exact (not a mean of per-process means).
        self.train_accuracy = torchmetrics.classification.MulticlassAccuracy(NUM_CLASSES, average="micro")
        self.val_accuracy = torchmetrics.classification.MulticlassAccuracy(NUM_CLASSES, average="micro")
        self.test_accuracy = torchmetrics.classification.MulticlassAccuracy(NUM_CLASSES, average="micro")
        self.train_loss = torchmetrics.MeanMetric()
        self.val_loss = torchmetrics.MeanMetric()
        self.test_loss = torchmetrics.MeanMetric()

    @classmethod
    def from_config(cls, config: Config) -> "FashionClassifier":
        return cls(config_to_dict(config))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.network(x)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy from logits, label-smoothed by `train.label_smoothing` (targets
        (1 - e) * one_hot + e / 10), as the Keras engines' loss; training and validation
        (`torch_blocks.plain_loop.loss_fn`)."""
        return self._loss(logits, y)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        # update(), not forward(): the metric's per-batch value would cost a second computation
        # every step, and only the epoch figure is logged.
        self.train_accuracy.update(logits, y)
        self.train_loss.update(loss.detach(), weight=len(y))
        if batch_idx == 0:
            # Lightning keeps the logged torchmetrics object and computes it from its own state at
            # the epoch's end: logging it once an epoch is enough. Every further call would only
            # repeat Lightning's per-call bookkeeping (moving the metric to the device, comparing
            # the call's settings), the largest part of its per-step overhead (docs/speed.md).
            self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
            self.log("train/accuracy", self.train_accuracy, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_loss, self.val_accuracy)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """`Trainer.test`: the loss and accuracy of the data module's test loader, as validation's."""
        self._evaluate(batch, "test", self.test_loss, self.test_accuracy)

    def _evaluate(
        self,
        batch: tuple[torch.Tensor, torch.Tensor],
        stage: str,
        loss: torchmetrics.MeanMetric,
        accuracy: torchmetrics.classification.MulticlassAccuracy,
    ) -> None:
        x, y = batch
        logits = self(x)
        accuracy(logits, y)
        loss(self.loss(logits, y), weight=len(y))  # smoothed too, as Keras' val_loss
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=True)
        self.log(f"{stage}/accuracy", accuracy, on_epoch=True, prog_bar=True)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Logits of a batch of images, with its labels or without: (x, y), (x,) or x."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).float()  # bf16-mixed logits come out bfloat16, which numpy cannot hold

    def on_train_epoch_start(self) -> None:
        """Dropout draws from torch's global generator, which Lightning and the data loaders also
        draw from: reseeding it from (seed, epoch) makes each epoch's masks independent of what
        ran before, so a run resumed from a checkpoint trains exactly as an uninterrupted one."""
        torch.manual_seed(epoch_seed(self.config.seed, self.current_epoch))

    def configure_optimizers(self) -> dict[str, Any]:
        """The optimizer, and the schedule of fmnist.schedules (the rates Keras' ScheduledLearningRate
        sets): a LambdaLR stepped every epoch, or every step with `schedule.per_step`.

        Outside a Trainer (parity.run's lockstep) only the optimizer, at the base rate: a
        LambdaLR would set its first rate on creation, and the Keras side there trains at the
        compiled optimizer's base rate with no schedule callback.
        """
        opt = self.config.train.optimizer
        optimizer = make_optimizer(self.parameters(), opt)  # Keras' Adam or AdamW, or SGD
        if self._trainer is None:
            return {"optimizer": optimizer}
        train = self.config.train
        if not train.schedule.per_step:
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: lr_at_epoch(train, epoch) / opt.lr)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}
        global_steps, local_steps = self._steps_per_epoch()

        def factor(step: int) -> float:
            # The scheduler counts this process's steps; the schedule runs on the global batch
            # index (a DDP share skips a last batch smaller than the number of processes).
            epoch, batch = divmod(step, local_steps)
            return lr_at_step(train, epoch * global_steps + batch, global_steps) / opt.lr

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def _steps_per_epoch(self) -> tuple[int, int]:
        """(global, this process's) optimizer steps per epoch: the batches of the shared order."""
        trainer = self.trainer
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and getattr(datamodule, "splits", None) is not None:
            global_steps = num_batches(len(datamodule.splits.train), self.config.train.batch_size)
            return global_steps, len(datamodule.train_dataloader())
        local = int(trainer.estimated_stepping_batches) // max(int(trainer.max_epochs or 1), 1)
        return local, local
