"""What the Lightning engine computes under its bf16-mixed policy (`fmnist.capabilities.Bf16Probe`):
the torch engines' probes (`torch_blocks.bf16_probe`) run on the LightningModule, its loss and
optimizer, under Lightning's own autocast."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fmnist.config import Config
from lightning_model.module import FashionClassifier
from lightning_model.precision import autocast
from torch_blocks import bf16_probe
from torch_blocks.parity import parity_device


def bf16_trace(config: Config, batch: int, device: str = "cpu") -> dict[str, Any]:
    """One training step of the LightningModule on `batch` random images (forward and loss under
    Lightning's autocast, backward, optimizer step), every aten op with its layer and dtypes."""
    where = parity_device(device)
    torch.manual_seed(config.seed)
    module = FashionClassifier.from_config(config).train().to(where)
    optimizer = module.configure_optimizers()["optimizer"]
    return bf16_probe.trace_step(module.network, module.loss, optimizer, autocast, batch, forward=module)


def bf16_layer_outputs(
    config: Config,
    weights: dict[str, np.ndarray],
    pixels: np.ndarray,
    partner_outputs: list[np.ndarray] | None = None,
    partner_dtypes: list[str] | None = None,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Each layer's output under Lightning's autocast (`torch_blocks.bf16_probe.layer_outputs`)."""
    return bf16_probe.layer_outputs(config, weights, pixels, autocast, partner_outputs, partner_dtypes, device)


def bf16_kernels(
    config: Config, arrays: dict[str, np.ndarray], dropout_rates: list[float], device: str = "cpu"
) -> dict[str, np.ndarray]:
    """The kernels of a bf16 step under Lightning's autocast (`torch_blocks.bf16_probe.kernels`)."""
    return bf16_probe.kernels(config, arrays, dropout_rates, autocast, device)
