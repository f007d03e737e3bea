"""The non-finite-loss stop, once for every engine.

A NaN or infinite loss never comes back: every later step is NaN too. Every engine's callbacks
hand each step's loss to a `DivergenceWatch`, stop the training the first time it says so, and
the engine ends the run with `TrainingDiverged`, naming where it happened, instead of training
the remaining epochs on NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import SupportsFloat

from fmnist.errors import FmnistError


@dataclass(frozen=True)
class Divergence:
    """Where the loss first became non-finite: epoch and step counted from 1, as the log does."""

    epoch: int
    step: int
    loss: float
    lr: float


class TrainingDiverged(FmnistError):
    """The loss became NaN or infinite: stop at once, say where, suggest the usual fix."""

    def __init__(self, epoch: int, step: int, loss: float, lr: float) -> None:
        super().__init__(
            f"training diverged: the loss became {loss} at epoch {epoch}, step {step}"
            f" (learning rate {lr:g}); lower the learning rate (--lr) and train again"
        )


class DivergenceWatch:
    """Remembers the first non-finite loss of a training."""

    def __init__(self) -> None:
        self.diverged: Divergence | None = None

    def check(self, epoch_index: int, batch_index: int, loss: SupportsFloat, lr: Callable[[], SupportsFloat]) -> bool:
        """True once, at the first non-finite loss: the caller then stops the training.

        `epoch_index` and `batch_index` count from 0, as the frameworks do. `lr` gives the step's
        learning rate; it is read only when the loss diverged (in Keras a read is a device copy).
        """
        value = float(loss)
        if math.isfinite(value) or self.diverged is not None:
            return False
        self.diverged = Divergence(epoch_index + 1, batch_index + 1, value, float(lr()))
        return True

    def raise_if_diverged(self) -> None:
        """After training: a diverged run ends here, with the one-line error."""
        if self.diverged is not None:
            d = self.diverged
            raise TrainingDiverged(d.epoch, d.step, d.loss, d.lr)
