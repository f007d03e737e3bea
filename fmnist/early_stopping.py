"""Early stopping on validation accuracy, the rule once for every engine.

Keras' `EarlyStopping(monitor="val_accuracy", mode="max", patience=patience,
restore_best_weights=True)` (min_delta 0, no baseline, start_from_epoch 0), rule for rule:

- after each epoch's validation, an accuracy strictly greater than the best so far is a new best
  (the first epoch's always is): the caller copies its weights, and the count of epochs waited
  goes back to 0;
- otherwise the count goes up, and reaching `patience` stops the training after this epoch (never
  after the first epoch, as Keras: `epoch > 0`);
- when training ends, stopped or not, the caller puts the best epoch's weights back.

The weights stay with each engine's callback (they are framework tensors); the count, the best
value and the epochs live here, with a plain state for `--resume`, so a resumed run decides as an
uninterrupted one.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import numpy as np


class EarlyStoppingRule:
    """The count and the best value; `update` after each epoch says what to do."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.reset()

    def reset(self) -> None:
        """A fresh training (Keras resets at the start of every fit)."""
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best: float | None = None

    @property
    def stopped(self) -> bool:
        """The training has been stopped (a resumed run then trains no further)."""
        return self.stopped_epoch > 0

    def is_improvement(self, value: float) -> bool:
        """Strictly greater than the best, compared in float32 as Keras' `ops.greater` does."""
        return self.best is None or bool(np.float32(value) > np.float32(self.best))

    def update(self, epoch: int, value: SupportsFloat | None) -> tuple[bool, bool]:
        """After epoch `epoch` (from 0) with validation accuracy `value` (None: no validation
        this epoch, which changes nothing): (is it a new best, should the training stop)."""
        if value is None:
            return False, False
        current = float(value)
        self.wait += 1
        if self.is_improvement(current):
            self.best, self.best_epoch, self.wait = current, epoch, 0
            return True, False
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            return False, True
        return False, False

    def state_dict(self) -> dict[str, Any]:
        """Plain numbers (and None): what a checkpoint or state file keeps."""
        return {
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best_epoch": self.best_epoch,
            "best": self.best,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wait, self.stopped_epoch = int(state["wait"]), int(state["stopped_epoch"])
        self.best_epoch = int(state["best_epoch"])
        self.best = None if state["best"] is None else float(state["best"])
