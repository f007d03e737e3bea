"""Keras' Adam update in torch, so both backends take the same step from the same gradient.

torch.optim.Adam divides by (sqrt(v_hat) + eps) after bias correction; Keras divides by
(sqrt(v) + eps) before it and folds the correction into the step size:
    alpha_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m = m + (g - m) * (1 - beta_1);  v = v + (g^2 - v) * (1 - beta_2)
    w = w - (m * alpha_t) / (sqrt(v) + eps)
The two differ by 1e-4 from the first step and no constant epsilon maps one onto the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch


def _keras_step_size(lr: float, beta_1: float, beta_2: float, step: int) -> float:
    """lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) in float32 arithmetic, as Keras computes it."""
    one, t = np.float32(1), np.float32(step)
    return float(np.float32(lr) * np.sqrt(one - np.float32(beta_2) ** t) / (one - np.float32(beta_1) ** t))


class KerasAdam(torch.optim.Optimizer):
    def __init__(self, params: Iterable, lr: float = 1e-3, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7) -> None:
        super().__init__(params, dict(lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2, eps = group["beta_1"], group["beta_2"], group["epsilon"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                alpha = _keras_step_size(group["lr"], b1, b2, t)
                m, v, g = state["m"], state["v"], p.grad
                m.add_((g - m) * (1 - b1))
                v.add_((g * g - v) * (1 - b2))
                p.sub_((m * alpha) / (v.sqrt() + eps))
        return loss
