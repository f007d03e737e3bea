"""The steps `fmnist parity` compares (`fmnist.capabilities.Parity`), on the shared torch network:
what every torch engine answers alike (where it computes, its layers, its draws, its inference),
and the lockstep run each engine feeds with its own loss, optimizer and autocast."""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fmnist.config import Config
from fmnist.cpu_features import cpu_model
from fmnist.errors import FmnistError
from torch_blocks.environment import CUBLAS_WORKSPACE_CONFIG
from torch_blocks.network import build_network, load_shared_weights

#: What `parity_device("cuda")` sets, as `placement` reports it.
GPU_SETTINGS = (
    "TF32 off: torch.backends.cuda.matmul.allow_tf32 = False, torch.backends.cudnn.allow_tf32 = False,"
    " torch.set_float32_matmul_precision('highest')",
    "deterministic algorithms: torch.use_deterministic_algorithms(True), CUBLAS_WORKSPACE_CONFIG=:4096:8,"
    " cudnn.benchmark off",
)


def parity_device(device: str) -> torch.device:
    """Where parity computes. "cpu": the CPU, nothing changed. "cuda": the GPU, float32 at full
    precision and deterministic algorithms (an op without one raises); refused where torch sees no
    GPU, so the CPU is never measured under the GPU's name."""
    if device == "cpu":
        return torch.device("cpu")
    if device != "cuda":
        raise FmnistError(f"device {device!r}: parity computes on cpu or cuda")
    if not torch.cuda.is_available():
        raise FmnistError(
            f"--device cuda: torch {torch.__version__} sees no GPU (CUDA build: {torch.version.cuda or 'none'})"
        )
    for key, value in CUBLAS_WORKSPACE_CONFIG.items():  # the engine job's environment has it; a caller's may not
        os.environ.setdefault(key, value)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)
    return torch.device("cuda")


def placement(device: str) -> dict[str, Any]:
    where = parity_device(device)
    if where.type == "cpu":
        return {"device": cpu_model(), "settings": []}
    return {"device": torch.cuda.get_device_name(where), "settings": list(GPU_SETTINGS)}


def layer_table(config: Config, device: str = "cpu") -> list[dict[str, Any]]:
    where = parity_device(device)
    network = build_network(config).eval().to(where)
    x, rows = torch.zeros(1, 1, 28, 28, device=where), []
    for name, module in network.named_children():
        with torch.no_grad():
            x = module(x)
        shape = list(x.shape[1:]) if x.dim() == 2 else [x.shape[2], x.shape[3], x.shape[1]]
        rows.append(
            {"name": name, "shape": [int(d) for d in shape], "params": sum(p.numel() for p in module.parameters())}
        )
    return rows


def initial_weights(config: Config, device: str = "cpu") -> dict[str, np.ndarray]:
    """The network's draws at `config.seed`: Keras' initialisers on torch's CPU generator, the
    same numbers whichever device computes with them."""
    parity_device(device)
    torch.manual_seed(config.seed)
    return {k: v.numpy().copy() for k, v in build_network(config).state_dict().items()}


def logits(
    config: Config, weights: dict[str, np.ndarray], images: np.ndarray, dtype: str, device: str = "cpu"
) -> np.ndarray:
    where = parity_device(device)
    network = load_shared_weights(build_network(config).eval(), weights, dtype).to(where)
    with torch.no_grad():
        out = network(torch.from_numpy(images.astype(dtype)[:, None]).to(where))
    return out.cpu().numpy().astype(np.float64)


def lockstep_run(
    network: torch.nn.Module,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    images: list[np.ndarray],
    labels: list[np.ndarray],
    dtype: str,
    forward: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, Any]:
    """One optimizer step per batch on `network` (its shared weights loaded, in training mode, on
    the device it computes on), each forward pass in `forward()`: the losses, the first batch's
    gradients (taken before its step, batch-norm statistics put back) and the running statistics
    after the last step."""
    torch.set_float32_matmul_precision("highest")
    where = next(network.parameters()).device
    out: dict[str, Any] = {"loss": []}
    for step, (x, y) in enumerate(zip(images, labels)):
        xt = torch.from_numpy(x.astype(dtype)[:, None]).to(where)
        yt = torch.from_numpy(y.astype(np.int64)).to(where)
        if step == 0:  # the first batch's gradients, the batch-norm statistics put back afterwards
            buffers = copy.deepcopy(dict(network.named_buffers()))
            network.zero_grad()
            with forward():
                loss(network(xt), yt).backward()
            out["grads"] = {name: p.grad.cpu().numpy().copy() for name, p in network.named_parameters()}
            for name, value in buffers.items():
                network.get_buffer(name).copy_(value)
        optimizer.zero_grad()
        with forward():
            value = loss(network(xt), yt)
        value.backward()
        optimizer.step()
        out["loss"].append(value.item())
    out["running"] = {
        k: v.cpu().numpy().copy()
        for k, v in network.state_dict().items()
        if k.endswith(("running_mean", "running_var"))
    }
    return out
