"""The `pytorch` engine's step loops for the benchmark (`fmnist.capabilities.Speed`): its own
training loop, `torch_blocks.plain_loop.PlainTraining` on the config's network, timed as its one
loop, `pytorch` (`torch_blocks.speed`)."""

from __future__ import annotations

from typing import Any

from fmnist.capabilities import SpeedRun, StepClock
from fmnist.config import Config
from torch_blocks import speed
from torch_blocks.speed import fixed_batch_steps

__all__ = ["fixed_batch_steps", "throughput"]


def throughput(config: Config, run: SpeedRun, clock: StepClock) -> dict[str, Any]:
    """The plain loop over `run.order`'s batches, then inference, timed by `clock`."""
    return speed.throughput(config, run, clock, {"pytorch": speed.plain_run})
