"""The steps `fmnist parity` compares (`fmnist.capabilities.Parity`) for the `pytorch` engine: the
shared torch network's (`torch_blocks.parity`), and the lockstep run with the plain loop's loss
and the config's optimizer under plain torch's bf16 autocast."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import numpy as np

from fmnist.config import Config
from fmnist.precision import uses_bf16
from torch_blocks.network import build_network, load_shared_weights
from torch_blocks.optim import make_optimizer
from torch_blocks.parity import initial_weights, layer_table, lockstep_run, logits, parity_device, placement
from torch_blocks.plain_loop import loss_fn
from torch_blocks.precision import autocast

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
    """The plain loop's loss and optimizer on the network, one step per batch at the base rate;
    under a bf16-mixed config each forward runs in bf16 autocast. casts: "exact" casts the
    optimizer's constants to the variables' dtype as Keras on JAX or torch does, "float32" through
    float32 as on TensorFlow (`torch_blocks.optim`; it shows in float64 only)."""
    where = parity_device(device)
    network = load_shared_weights(build_network(config).train(), weights, dtype).to(where)
    optimizer = make_optimizer(network.parameters(), config.train.optimizer, exact_casts=casts == "exact")
    forward = functools.partial(autocast, where.type) if uses_bf16(config.train.precision) else contextlib.nullcontext
    return lockstep_run(network, loss_fn(config), optimizer, images, labels, dtype, forward)
