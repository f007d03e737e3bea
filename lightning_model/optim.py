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


def _keras_step_size(lr: float, beta_1: float, beta_2: float, step: int, dtype: type = np.float32) -> float:
    """lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) in the variable's precision, as Keras computes it.

    Keras turns the betas into float32 tensors before casting them to the variable's type, so
    even a float64 model uses 0.999 rounded to float32 (1.3e-5 off in 1 - beta_2) here.
    """
    one, t = dtype(1), dtype(step)
    b1, b2 = dtype(np.float32(beta_1)), dtype(np.float32(beta_2))
    return float(dtype(lr) * np.sqrt(one - b2**t) / (one - b1**t))


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
                alpha = _keras_step_size(group["lr"], b1, b2, t, np.float64 if p.dtype == torch.float64 else np.float32)
                m, v, g = state["m"], state["v"], p.grad
                m.add_((g - m) * (1 - b1))
                v.add_((g * g - v) * (1 - b2))
                p.sub_((m * alpha) / (v.sqrt() + eps))
        return loss
