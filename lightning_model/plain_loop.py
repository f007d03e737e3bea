"""The project's Lightning training step written as a plain PyTorch loop, no Trainer: Lightning's
reference.

One step does the work of `FashionClassifier.training_step` and Lightning's automatic
optimization, in their order: under bf16 autocast when the config says `bf16-mixed`, the forward
pass, the label-smoothed loss and the train accuracy and loss accumulated in the module's own
torchmetrics objects, as its training_step accumulates them; then zero_grad, backward, the optimizer the module's
`configure_optimizers` builds (Keras' Adam or AdamW with decoupled weight decay, or SGD), the
learning rate of `fmnist.schedules` through a LambdaLR stepped after every step
(`schedule.per_step`) or every epoch, and the core's non-finite-loss check of every step (the
project's `StopOnNonFinite`). Each epoch reseeds dropout from (seed, epoch), as the module does.

Users: the benchmark's `plain torch` loop and the page-fault probe, through the engine's
`throughput` and `fixed_batch_steps` (`lightning_model.speed`; Lightning's overhead is Lightning's
images/s over this loop's), and tests/test_lightning_vs_plain_torch.py, which holds this loop to
the same loss at every step, the same weights and the same epoch metrics as the project's
Lightning training: the reference does the same work, not less.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
import torchmetrics

from fmnist.config import Config
from fmnist.divergence import DivergenceWatch
from fmnist.precision import uses_bf16
from fmnist.schedules import lr_at_epoch, lr_at_step
from fmnist.splits import epoch_seed
from lightning_model.module import FashionClassifier


class PlainTraining:
    """The training of one network as a plain loop: `start_epoch`, `step` per batch, `end_epoch`."""

    def __init__(
        self,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        accuracy: torchmetrics.Metric,
        mean_loss: torchmetrics.Metric,
        config: Config,
        steps_per_epoch: int,
    ) -> None:
        """optimizer: over `network`'s parameters, at the base rate; the schedule is set here, as
        Lightning sets the module's. accuracy, mean_loss: the train metrics, updated every step.
        steps_per_epoch: the batches of one epoch (the schedule's unit). `from_module` takes all
        of them from the module."""
        t = config.train
        self.network, self.optimizer, self.config = network, optimizer, config
        self.accuracy, self.mean_loss = accuracy, mean_loss
        base = t.optimizer.lr
        if t.schedule.per_step:
            factor = lambda step: lr_at_step(t, step, steps_per_epoch) / base  # noqa: E731
        else:
            factor = lambda epoch: lr_at_epoch(t, epoch) / base  # noqa: E731
        self.schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        self.device_type = next(network.parameters()).device.type
        self.bf16 = uses_bf16(t.precision)
        self.watch = DivergenceWatch()
        self.epoch = self.batch_index = 0
        self.lr = optimizer.param_groups[0]["lr"]
        self.should_stop = False

    @classmethod
    def from_module(cls, module: FashionClassifier, steps_per_epoch: int) -> "PlainTraining":
        """The loop on `module`'s network (on its device, NHWC with channels_last), with the
        optimizer its `configure_optimizers` builds outside a Trainer and its own train metrics."""
        optimizer = module.configure_optimizers()["optimizer"]
        return cls(module.network, optimizer, module.train_accuracy, module.train_loss, module.config, steps_per_epoch)

    def forward_context(self) -> contextlib.AbstractContextManager:
        """What Lightning's precision plugin wraps each training step's forward in: under
        bf16-mixed a new autocast without the weight-cast cache (its MixedPrecision plugin's);
        under float32 nothing (its 32-true plugin enters no autocast, not even a disabled one)."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=torch.bfloat16, cache_enabled=False)

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
        with self.forward_context():
            logits = self.network(x)
            loss = F.cross_entropy(logits, y, label_smoothing=t.label_smoothing)
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
