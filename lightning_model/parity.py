"""The steps `fmnist parity` compares (`fmnist.capabilities.Parity`) for the `lightning` engine:
the shared torch network's (`torch_blocks.parity`), and the lockstep run with the
LightningModule's own loss and optimizer under Lightning's own autocast."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import numpy as np

from fmnist.config import Config
from fmnist.precision import uses_bf16
from lightning_model.module import FashionClassifier
from lightning_model.precision import autocast
from torch_blocks.network import load_shared_weights
from torch_blocks.parity import initial_weights, layer_table, lockstep_run, logits, parity_device, placement

__all__ = ["initial_weights", "layer_table", "lockstep", "logits", "placement"]


def lockstep(
    config: Config,
    weights: dict[str, np.ndarray],
    images: list[np.ndarray],
    labels: list[np.ndarray],
    dtype: str,
    casts: str = "float32",
    device: str = "cpu",
) -> dict[str, Any]:
    """The LightningModule's loss and optimizer on its network, one step per batch; under a
    bf16-mixed config each forward runs in Lightning's own autocast. casts: "exact" casts the
    optimizer's constants to the variables' dtype as Keras on JAX or torch does, "float32" through
    float32 as on TensorFlow (`torch_blocks.optim`; it shows in float64 only)."""
    where = parity_device(device)
    module = FashionClassifier.from_config(config)
    network = load_shared_weights(module.network.train(), weights, dtype).to(where)
    optimizer = module.configure_optimizers()["optimizer"]  # over the parameters where they compute
    for group in optimizer.param_groups:
        if "exact_casts" in group:
            group["exact_casts"] = casts == "exact"
    forward = functools.partial(autocast, where.type) if uses_bf16(config.train.precision) else contextlib.nullcontext
    return lockstep_run(network, module.loss, optimizer, images, labels, dtype, forward)
