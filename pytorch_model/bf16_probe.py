"""What the `pytorch` engine computes under bf16-mixed (`fmnist.capabilities.Bf16Probe`): the torch
engines' probes (`torch_blocks.bf16_probe`) on the network the plain loop trains, its loss and
optimizer, under plain torch's bf16 autocast (the one Lightning's plugin opens, too)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fmnist.config import Config
from torch_blocks import bf16_probe
from torch_blocks.network import training_network
from torch_blocks.parity import parity_device
from torch_blocks.optim import make_optimizer
from torch_blocks.plain_loop import loss_fn
from torch_blocks.precision import autocast


def bf16_trace(config: Config, batch: int, device: str = "cpu") -> dict[str, Any]:
    """One step of the plain loop's work on `batch` random images (forward and loss under bf16
    autocast, backward, optimizer step), every aten op with its layer and dtypes."""
    where = parity_device(device)
    torch.manual_seed(config.seed)
    network = training_network(config, where).train()
    optimizer = make_optimizer(network.parameters(), config.train.optimizer)
    channels_last = config.train.channels_last

    def forward(x: torch.Tensor) -> torch.Tensor:  # as `PlainTraining.step` feeds the network
        return network(x.contiguous(memory_format=torch.channels_last) if channels_last else x)

    return bf16_probe.trace_step(network, loss_fn(config), optimizer, autocast, batch, forward=forward)


def bf16_layer_outputs(
    config: Config,
    weights: dict[str, np.ndarray],
    pixels: np.ndarray,
    partner_outputs: list[np.ndarray] | None = None,
    partner_dtypes: list[str] | None = None,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Each layer's output under bf16 autocast (`torch_blocks.bf16_probe.layer_outputs`)."""
    return bf16_probe.layer_outputs(config, weights, pixels, autocast, partner_outputs, partner_dtypes, device)


def bf16_kernels(
    config: Config, arrays: dict[str, np.ndarray], dropout_rates: list[float], device: str = "cpu"
) -> dict[str, np.ndarray]:
    """The kernels of a bf16 step under bf16 autocast (`torch_blocks.bf16_probe.kernels`)."""
    return bf16_probe.kernels(config, arrays, dropout_rates, autocast, device)
