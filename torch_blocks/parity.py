"""The steps `fmnist parity` compares (`fmnist.capabilities.Parity`), on the shared torch network:
what every torch engine answers alike (its layers, its draws, its inference), and the lockstep
run each engine feeds with its own loss, optimizer and autocast."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fmnist.config import Config
from torch_blocks.network import build_network, load_shared_weights


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
    """The network's draws at `config.seed`: Keras' initialisers on torch's generator."""
    torch.manual_seed(config.seed)
    return {k: v.numpy().copy() for k, v in build_network(config).state_dict().items()}


def logits(config: Config, weights: dict[str, np.ndarray], images: np.ndarray, dtype: str) -> np.ndarray:
    network = load_shared_weights(build_network(config).eval(), weights, dtype)
    with torch.no_grad():
        return network(torch.from_numpy(images.astype(dtype)[:, None])).numpy().astype(np.float64)


def lockstep_run(
    network: torch.nn.Module,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    images: list[np.ndarray],
    labels: list[np.ndarray],
    dtype: str,
    forward: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, Any]:
    """One optimizer step per batch on `network` (its shared weights loaded, in training mode),
    each forward pass in `forward()`: the losses, the first batch's gradients (taken before its
    step, batch-norm statistics put back) and the running statistics after the last step."""
    torch.set_float32_matmul_precision("highest")
    out: dict[str, Any] = {"loss": []}
    for step, (x, y) in enumerate(zip(images, labels)):
        xt, yt = torch.from_numpy(x.astype(dtype)[:, None]), torch.from_numpy(y.astype(np.int64))
        if step == 0:  # the first batch's gradients, the batch-norm statistics put back afterwards
            buffers = copy.deepcopy(dict(network.named_buffers()))
            network.zero_grad()
            with forward():
                loss(network(xt), yt).backward()
            out["grads"] = {name: p.grad.numpy().copy() for name, p in network.named_parameters()}
            for name, value in buffers.items():
                network.get_buffer(name).copy_(value)
        optimizer.zero_grad()
        with forward():
            value = loss(network(xt), yt)
        value.backward()
        optimizer.step()
        out["loss"].append(value.item())
    out["running"] = {
        k: v.numpy().copy() for k, v in network.state_dict().items() if k.endswith(("running_mean", "running_var"))
    }
    return out
