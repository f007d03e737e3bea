"""What a torch engine computes under its bf16-mixed autocast, seen on live tensors, for the bf16
parity checks (`fmnist parity --precision bf16-mixed`, compare.bf16_*): the dtype of every aten op
of a training step, each layer's output, and the kernels a bf16 step runs fed known numbers. Each
torch engine's bf16 capability (`fmnist.capabilities.Bf16Probe`) calls these with its own network,
loss, optimizer and autocast; numpy in and out, the tools judge the numbers in another process."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fmnist.architecture import layer_plan
from fmnist.config import Config
from fmnist.precision import uses_bf16
from fmnist.op_log import op_record
from fmnist.weight_layout import activation
from torch_blocks.network import Float32Dropout, ReLUAfterPool, build_network, load_shared_weights
from torch_blocks.parity import parity_device

#: A bf16 autocast context on a device type ("cpu", "cuda"), as the engine opens it around a step.
Autocast = Callable[[str], contextlib.AbstractContextManager]

#: Said of a ReLU slot whose ReLU the max-pool applies (`ReLUAfterPool`): nothing of its own to compare.
DEFERRED_RELU = "applied after the max-pool in torch (exact): compared there"


class OpLog(TorchDispatchMode):
    """Every aten op as it dispatches, with its tensors' dtypes and `where` it runs (phase, layer)."""

    def __init__(self, where: dict[str, str]) -> None:
        super().__init__()
        self.where, self.ops = where, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops.append(op_record(self.where, func, args, out))
        return out


def trace_step(
    network: torch.nn.Module,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    autocast: Autocast,
    batch: int,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """One training step on `batch` random images (forward and loss under `autocast`, backward,
    optimizer step) on the device the network is on, every aten op with its layer and dtypes.
    forward: how the engine calls its network (default: the network itself)."""
    device = next(network.parameters()).device
    where = {"phase": "forward", "layer": ""}

    def enter(name: str) -> Callable:
        return lambda *_: where.update(layer=name)

    hooks = [m.register_forward_pre_hook(enter(name)) for name, m in network.named_children()]
    hooks.append(network.register_forward_hook(enter("loss")))  # what follows the network
    x = (torch.rand(batch, 1, 28, 28) * 255).to(device)  # drawn on the CPU: the same images everywhere
    y = (torch.arange(batch) % 10).to(device)
    try:
        with OpLog(where) as log:
            with autocast(device.type):
                value = loss((forward or network)(x), y)
            where.update(phase="backward", layer="")
            value.backward()
            where.update(phase="optimizer")
            optimizer.step()
    finally:
        for hook in hooks:
            hook.remove()
    return {"vocabulary": "torch", "ops": log.ops}


def _tensor(array: np.ndarray, dtype: str, channels_last: bool, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(np.array(array, order="C")).to(device, getattr(torch, dtype))
    if tensor.dim() == 4 and channels_last:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def layer_outputs(
    config: Config,
    weights: dict[str, np.ndarray],
    pixels: np.ndarray,
    autocast: Autocast,
    partner_outputs: list[np.ndarray] | None = None,
    partner_dtypes: list[str] | None = None,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Each layer's output, training mode, no gradient, under the config's precision (bf16-mixed:
    the engine's `autocast`; float32: none). Chained from `pixels`, or, given the partner's outputs,
    each layer fed the partner's output of the layer before (in its dtype), so that a layer's
    difference is that layer's alone."""
    where = parity_device(device)
    torch.set_float32_matmul_precision("highest")
    channels_last = config.train.channels_last
    network = load_shared_weights(build_network(config).train(), weights, "float32").to(where)
    if channels_last:  # as the engines lay it out for training
        network = network.to(memory_format=torch.channels_last)
    bf16 = uses_bf16(config.train.precision)
    context = (lambda: autocast(where.type)) if bf16 else (lambda: torch.autocast(where.type, enabled=False))
    plan, rows = layer_plan(config), []
    x = _tensor(pixels[:, None].astype(np.float32), "float32", channels_last, where)
    for i, (spec, (name, module)) in enumerate(zip(plan, network.named_children())):
        deferred = isinstance(module, ReLUAfterPool)
        if partner_outputs is not None:
            if deferred:
                rows.append({"name": name, "output": None, "dtype": "", "note": DEFERRED_RELU})
                continue
            if i:
                fed = activation(partner_outputs[i - 1], plan[i - 1], "nchw")
                x = _tensor(fed, partner_dtypes[i - 1], channels_last, where)
        with torch.no_grad(), context():
            x = module(x)
        rows.append(
            {
                "name": name,
                "output": activation(x.float().cpu().numpy(), spec, "shared"),
                "dtype": str(x.dtype).removeprefix("torch."),
                "note": DEFERRED_RELU if deferred else None,
            }
        )
    return rows


def kernels(
    config: Config, arrays: dict[str, np.ndarray], dropout_rates: list[float], autocast: Autocast, device: str = "cpu"
) -> dict[str, np.ndarray]:
    """The kernels a bf16 training step runs, fed bfloat16-valued numbers, as the engine runs them
    (nn.Linear and nn.Conv2d under its `autocast`; the config's own input normalisation and
    float32 dropout): outputs and gradients in the shared layout (NHWC, HWIO), float32."""
    where = parity_device(device)
    size = arrays["conv_kernel"].shape[0]
    lin = torch.nn.Linear(*arrays["dense_kernel"].shape)
    cv = torch.nn.Conv2d(*arrays["conv_kernel"].shape[2:], size, padding=size // 2)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(arrays["dense_kernel"].T.copy()))
        lin.bias.copy_(torch.from_numpy(arrays["dense_bias"]))
        cv.weight.copy_(torch.from_numpy(arrays["conv_kernel"].transpose(3, 2, 0, 1).copy()))
        cv.bias.copy_(torch.from_numpy(arrays["conv_bias"]))
    lin, cv = lin.to(where), cv.to(where)

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(where)

    xin = tensor(arrays["conv_input"].transpose(0, 3, 1, 2))
    with autocast(where.type):
        td, tc = lin(tensor(arrays["dense_input"])), cv(xin)
    td.backward(tensor(arrays["dense_grad"]).bfloat16())
    tc.backward(tensor(arrays["conv_grad"].transpose(0, 3, 1, 2)).bfloat16())

    def numpy(t: torch.Tensor) -> np.ndarray:
        return t.detach().float().cpu().numpy()

    out = {
        "dense": numpy(td),
        "conv": numpy(tc.permute(0, 2, 3, 1)),
        "conv_kernel_grad": numpy(cv.weight.grad.permute(2, 3, 1, 0)),
        "dense_bias_grad": numpy(lin.bias.grad),
        "conv_bias_grad": numpy(cv.bias.grad),
    }
    network = build_network(config).to(where)
    with autocast(where.type):
        out["normalize"] = numpy(network.normalize(tensor(arrays["pixels"][:, None])).bfloat16().float()[:, 0])
    for rate in dropout_rates:
        torch.manual_seed(1)
        x = tensor(arrays["dropout_input"]).bfloat16()
        out[f"dropout_{rate:g}"] = numpy(Float32Dropout(rate).train()(x))
    return {k: np.ascontiguousarray(v) for k, v in out.items()}
