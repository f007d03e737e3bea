"""Keras' Adam update in torch, so every engine takes the same step from the same gradient, and
`make_optimizer`, the config's optimizer as each torch engine builds it.

torch.optim.Adam divides by (sqrt(v_hat) + eps) after bias correction; Keras divides by
(sqrt(v) + eps) before it and folds the correction into the step size:
    alpha_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m = m + (g - m) * (1 - beta_1);  v = v + (g^2 - v) * (1 - beta_2)
    w = w - (m * alpha_t) / (sqrt(v) + eps)
The two differ by 1e-4 from the first step and no constant epsilon maps one onto the other.

With `weight_decay` > 0 it is Keras' AdamW: before the Adam update, every parameter is decayed
by the same step's learning rate, decoupled from the gradient (Keras' `_apply_weight_decay`):
    w = w - (w * weight_decay) * lr
in the parameter's precision, the decay rate rounded to float32 first as TensorFlow's cast of a
Python float does. Biases and batch-norm scales are decayed too, as Keras does by default.

That rounding (of the betas too, below) shows only in a float64 model, where Keras on JAX or
torch casts exactly: `exact_casts=True` follows them (parity against those engines in float64).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from fmnist.config import OptimizerConfig


def _cast(value: float, dtype: type, exact: bool) -> float:
    """A Python float cast to the variable's type as Keras does: through float32 on TensorFlow."""
    return float(dtype(value if exact else np.float32(value)))


def _keras_step_size(
    lr: float, beta_1: float, beta_2: float, step: int, dtype: type = np.float32, exact: bool = False
) -> float:
    """lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) in the variable's precision, as Keras computes it.

    Keras on TensorFlow turns the betas into float32 tensors before casting them to the
    variable's type, so even a float64 model uses 0.999 rounded to float32 (1.3e-5 off in
    1 - beta_2) here; `exact`: as Keras on JAX or torch, which cast them straight to float64.
    """
    one, t = dtype(1), dtype(step)
    b1, b2 = dtype(_cast(beta_1, dtype, exact)), dtype(_cast(beta_2, dtype, exact))
    return float(dtype(lr) * np.sqrt(one - b2**t) / (one - b1**t))


class KerasAdam(torch.optim.Optimizer):
    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        weight_decay: float = 0.0,
        exact_casts: bool = False,
    ) -> None:
        defaults = dict(lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, weight_decay=weight_decay)
        super().__init__(params, {**defaults, "exact_casts": exact_casts})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2, eps = group["beta_1"], group["beta_2"], group["epsilon"]
            wd = group.get("weight_decay", 0.0)  # absent in the state of a checkpoint from before it existed
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
                dtype = np.float64 if p.dtype == torch.float64 else np.float32
                exact = group.get("exact_casts", False)
                if wd:
                    # Both factors exactly representable in the parameter's type: torch multiplies
                    # in it, as TensorFlow does after its casts.
                    p.sub_(p * _cast(wd, dtype, exact) * float(dtype(group["lr"])))
                alpha = _keras_step_size(group["lr"], b1, b2, t, dtype, exact)
                m, v, g = state["m"], state["v"], p.grad
                m.add_((g - m) * (1 - b1))
                v.add_((g * g - v) * (1 - b2))
                p.sub_((m * alpha) / (v.sqrt() + eps))
        return loss


def make_optimizer(params: Iterable, opt: OptimizerConfig, exact_casts: bool = False) -> torch.optim.Optimizer:
    """The config's optimizer at its base rate: Keras' Adam (or AdamW, decoupled decay by the
    step's learning rate before the update), or SGD, whose v = mu*v - g and w -= lr*v keep Keras'
    trajectory (v = mu*v - lr*g) while the rate is constant. exact_casts: `KerasAdam`'s."""
    if opt.name in ("adam", "adamw"):
        decay = {"weight_decay": opt.weight_decay} if opt.name == "adamw" else {}
        return KerasAdam(
            params,
            lr=opt.lr,
            beta_1=opt.beta_1,
            beta_2=opt.beta_2,
            epsilon=opt.epsilon,
            exact_casts=exact_casts,
            **decay,
        )
    return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov)
