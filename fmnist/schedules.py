"""Learning-rate schedules as plain functions of the epoch, shared by both backends.

Keras applies it with `LearningRateScheduler`, Lightning with `LambdaLR`; the number itself
comes from here, so both runs use the same learning rate in every epoch.
"""

from __future__ import annotations

import math

from fmnist.config import TrainConfig


def lr_at_epoch(train: TrainConfig, epoch: int) -> float:
    """Learning rate for 0-based `epoch`."""
    base = train.optimizer.lr
    schedule = train.schedule
    if schedule.name == "constant":
        return base
    if schedule.name == "cosine":
        progress = epoch / max(train.epochs, 1)
        return schedule.min_lr + 0.5 * (base - schedule.min_lr) * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule.name!r}")  # the config schema forbids this
