"""Learning-rate schedules as plain functions of the step, shared by every engine.

`lr_at_step` is the single source of truth: Keras sets it from a callback, Lightning from
`LambdaLR`, so both runs use the same learning rate at every step. No framework import here.

A schedule advances in units: epochs (`schedule.per_step` false, the baseline's per-epoch
cosine) or steps. Warm-up rises linearly, unit u of W getting lr * (u + 1) / (W + 1): no step
trains at rate 0, and the first unit after the warm-up is the first at lr. The decay then runs
over the units that are left, so cosine still ends at min_lr whatever the warm-up.
"""

from __future__ import annotations

import math

from fmnist.config import TrainConfig


def _cosine(start: float, end: float, progress: float) -> float:
    """From `start` at progress 0 to `end` at progress 1, half a cosine period."""
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * progress))


def _lr_at_unit(train: TrainConfig, unit: int, units_per_epoch: int) -> float:
    base = train.optimizer.lr
    schedule = train.schedule
    total = train.epochs * units_per_epoch
    if schedule.name == "onecycle":
        # torch.optim.lr_scheduler.OneCycleLR (anneal_strategy 'cos', two phases), step for step.
        up = schedule.peak_fraction * total - 1.0
        start = base * schedule.start_factor
        if unit <= up:
            return _cosine(start, base, unit / up) if up > 0 else base
        return _cosine(base, schedule.min_lr, min((unit - up) / max(total - 1.0 - up, 1e-12), 1.0))
    warmup = min(int(schedule.warmup_epochs * units_per_epoch + 0.5), total)  # half up, not to even
    if unit < warmup:
        return base * (unit + 1) / (warmup + 1)
    if schedule.name == "constant":
        return base
    if schedule.name == "cosine":
        return _cosine(base, schedule.min_lr, (unit - warmup) / max(total - warmup, 1))
    raise ValueError(f"unknown schedule {schedule.name!r}")  # the config schema forbids this


def lr_at_step(train: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Learning rate for 0-based global optimizer `step` (counting from the first epoch, across
    resumes), with `steps_per_epoch` the batches one epoch has. Per epoch (`per_step` false), every
    step of epoch e gets `lr_at_epoch(train, e)`."""
    if train.schedule.per_step:
        return _lr_at_unit(train, step, steps_per_epoch)
    return _lr_at_unit(train, step // steps_per_epoch, 1)


def lr_at_epoch(train: TrainConfig, epoch: int) -> float:
    """Learning rate for 0-based `epoch` under the per-epoch rule (warm-up counted in whole
    epochs); with `schedule.per_step` the engines call `lr_at_step` every step instead."""
    return _lr_at_unit(train, epoch, 1)
