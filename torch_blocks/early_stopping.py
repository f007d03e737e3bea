"""Early stopping's weights in torch: `fmnist.early_stopping.EarlyStoppingRule` decides, this keeps
the best epoch's weights (parameters and batch-norm statistics) and puts them back when training
ends, stopped or not, so the model file saved afterwards holds them. Lightning's callback
(`lightning_model.callbacks.EarlyStoppingOnValAccuracy`) and the plain loop's training both
hold one; its state, best weights included, goes into their checkpoints."""

from __future__ import annotations

from typing import Any, SupportsFloat

import torch

from fmnist.early_stopping import EarlyStoppingRule


class BestWeights:
    def __init__(self, patience: int) -> None:
        self.rule = EarlyStoppingRule(patience)
        self.best_weights: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, val_accuracy: SupportsFloat | None, network: torch.nn.Module) -> bool:
        """After epoch `epoch` (from 0): keep the weights of a new best; True: stop training."""
        is_best, stop = self.rule.update(epoch, val_accuracy)
        if is_best:
            self.best_weights = {k: v.detach().clone() for k, v in network.state_dict().items()}
        return stop

    def restore(self, network: torch.nn.Module) -> None:
        if self.best_weights is not None:
            network.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        return {**self.rule.state_dict(), "best_weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rule.load_state_dict(state)
        self.best_weights = state["best_weights"]
