"""The LightningModule: loss, metrics, optimizer, schedule and logging around the plain network."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics

from fmnist import NUM_CLASSES
from fmnist.config import Config, config_from_dict, config_to_dict
from fmnist.schedules import lr_at_epoch
from fmnist.splits import epoch_seed
from lightning_model.network import build_network
from lightning_model.optim import KerasAdam


class FashionClassifier(L.LightningModule):
    def __init__(self, config: dict[str, Any]) -> None:
        """Takes the config as a plain dict so `save_hyperparameters` stores it in the checkpoint
        and `load_from_checkpoint` rebuilds the same network with no other file."""
        super().__init__()
        self.save_hyperparameters()
        self.config: Config = config_from_dict(config)
        self.network = build_network(self.config)
        # torchmetrics objects, losses included: over several processes they add up counts and
        # sums across all of them, so the epoch figures are exact (not a mean of per-process means).
        self.train_accuracy = torchmetrics.classification.MulticlassAccuracy(NUM_CLASSES, average="micro")
        self.val_accuracy = torchmetrics.classification.MulticlassAccuracy(NUM_CLASSES, average="micro")
        self.train_loss = torchmetrics.MeanMetric()
        self.val_loss = torchmetrics.MeanMetric()

    @classmethod
    def from_config(cls, config: Config) -> "FashionClassifier":
        return cls(config_to_dict(config))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.train_accuracy(logits, y)
        self.train_loss(loss.detach(), weight=len(y))
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/accuracy", self.train_accuracy, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_accuracy(logits, y)
        self.val_loss(F.cross_entropy(logits, y), weight=len(y))
        self.log("val/loss", self.val_loss, on_epoch=True, prog_bar=True)
        self.log("val/accuracy", self.val_accuracy, on_epoch=True, prog_bar=True)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x)

    def on_train_epoch_start(self) -> None:
        """Dropout draws from torch's global generator, which Lightning and the data loaders also
        draw from: reseeding it from (seed, epoch) makes each epoch's masks independent of what
        ran before, so a run resumed from a checkpoint trains exactly as an uninterrupted one."""
        torch.manual_seed(epoch_seed(self.config.seed, self.current_epoch))

    def configure_optimizers(self) -> dict[str, Any]:
        opt = self.config.train.optimizer
        if opt.name == "adam":
            optimizer = KerasAdam(self.parameters(), lr=opt.lr, beta_1=opt.beta_1, beta_2=opt.beta_2,
                                  epsilon=opt.epsilon)
        else:
            # Same trajectory as Keras SGD (v = mu*v - lr*g) while the learning rate is constant.
            optimizer = torch.optim.SGD(self.parameters(), lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov)
        train = self.config.train
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: lr_at_epoch(train, epoch) / opt.lr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}
