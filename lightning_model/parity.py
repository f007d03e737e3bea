"""The steps `fmnist parity` compares (`fmnist.capabilities.Parity`) for the `lightning` engine:
on the plain network, with the LightningModule's own loss and optimizer."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import numpy as np
import torch

from fmnist.config import Config
from fmnist.precision import uses_bf16
from lightning_model.module import FashionClassifier
from lightning_model.network import build_network, load_shared_weights
from lightning_model.precision import autocast


def layer_table(config: Config) -> list[dict[str, Any]]:
    network = build_network(config).eval()
    x, rows = torch.zeros(1, 1, 28, 28), []
    for name, module in network.named_children():
        with torch.no_grad():
            x = module(x)
        shape = list(x.shape[1:]) if x.dim() == 2 else [x.shape[2], x.shape[3], x.shape[1]]
        rows.append(
            {"name": name, "shape": [int(d) for d in shape], "params": sum(p.numel() for p in module.parameters())}
        )
    return rows


def initial_weights(config: Config) -> dict[str, np.ndarray]:
    torch.manual_seed(config.seed)
    return {k: v.numpy().copy() for k, v in build_network(config).state_dict().items()}


def logits(config: Config, weights: dict[str, np.ndarray], images: np.ndarray, dtype: str) -> np.ndarray:
    network = load_shared_weights(build_network(config).eval(), weights, dtype)
    with torch.no_grad():
        return network(torch.from_numpy(images.astype(dtype)[:, None])).numpy().astype(np.float64)


def lockstep(
    config: Config,
    weights: dict[str, np.ndarray],
    images: list[np.ndarray],
    labels: list[np.ndarray],
    dtype: str,
    casts: str = "float32",
) -> dict[str, Any]:
    """The LightningModule's loss and optimizer on its network, one step per batch; under a
    bf16-mixed config each forward runs in Lightning's own autocast. casts: "exact" casts the
    optimizer's constants to the variables' dtype as Keras on JAX or torch does, "float32" through
    float32 as on TensorFlow (`lightning_model.optim`; it shows in float64 only)."""
    torch.set_float32_matmul_precision("highest")
    module = FashionClassifier.from_config(config)
    network = load_shared_weights(module.network.train(), weights, dtype)
    optimizer = module.configure_optimizers()["optimizer"]
    for group in optimizer.param_groups:
        if "exact_casts" in group:
            group["exact_casts"] = casts == "exact"
    forward = autocast if uses_bf16(config.train.precision) else contextlib.nullcontext
    out: dict[str, Any] = {"loss": []}
    for step, (x, y) in enumerate(zip(images, labels)):
        xt, yt = torch.from_numpy(x.astype(dtype)[:, None]), torch.from_numpy(y.astype(np.int64))
        if step == 0:  # the first batch's gradients, the batch-norm statistics put back afterwards
            buffers = copy.deepcopy(dict(network.named_buffers()))
            network.zero_grad()
            with forward():
                module.loss(network(xt), yt).backward()
            out["grads"] = {name: p.grad.numpy().copy() for name, p in network.named_parameters()}
            for name, value in buffers.items():
                network.get_buffer(name).copy_(value)
        optimizer.zero_grad()
        with forward():
            loss = module.loss(network(xt), yt)
        loss.backward()
        optimizer.step()
        out["loss"].append(loss.item())
    out["running"] = {
        k: v.numpy().copy() for k, v in network.state_dict().items() if k.endswith(("running_mean", "running_var"))
    }
    return out
