"""Two instruments for what each framework computes in which dtype under its bf16 mixed policy,
seen on live tensors, no documentation: torch's ops are logged as they dispatch (a
TorchDispatchMode around one training step of the project's LightningModule, inside Lightning's
own bf16-mixed autocast context), Keras' ops as TensorFlow traces them (the graph of
`model.train_step` in a tf.function, as `model.fit` runs it). compare.bf16_table picks its rows
from both logs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fmnist.config import Config, with_overrides

Op = dict[str, Any]  # {"phase", "layer", "op", "inputs": [dtype, ...], "outputs": [dtype, ...]}


def _frameworks():
    from compare.parity_frameworks import _frameworks as load

    return load()


def bf16_config(config: Config) -> Config:
    return with_overrides(config, {"train.precision": "bf16-mixed"})


# ---------------------------------------------------------------- torch: ops as they dispatch


def torch_trace(config: Config, batch: int = 4) -> list[Op]:
    """One training step of the LightningModule (forward and loss under Lightning's autocast,
    backward, optimizer step), every aten op with its tensors' dtypes."""
    from lightning_model.precision import autocast

    torch, _ = _frameworks()
    from torch.utils._python_dispatch import TorchDispatchMode

    from lightning_model.module import FashionClassifier

    config = bf16_config(config)
    torch.manual_seed(config.seed)
    module = FashionClassifier.from_config(config).train()
    optimizer = module.configure_optimizers()["optimizer"]
    ops: list[Op] = []
    where = {"phase": "forward", "layer": ""}

    def dtypes(value: Any) -> list[str]:
        if isinstance(value, torch.Tensor):
            return [str(value.dtype).removeprefix("torch.")]
        if isinstance(value, (list, tuple)):
            return [d for v in value for d in dtypes(v)]
        return []

    class Log(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            ops.append(
                {**where, "op": str(func.overloadpacket.__name__), "inputs": dtypes(list(args)), "outputs": dtypes(out)}
            )
            return out

    def enter(name: str) -> Callable:
        return lambda *_: where.update(layer=name)

    hooks = [m.register_forward_pre_hook(enter(name)) for name, m in module.network.named_children()]
    hooks.append(module.network.register_forward_hook(enter("loss")))  # what follows the network
    x = torch.rand(batch, 1, 28, 28) * 255
    y = torch.arange(batch) % 10
    try:
        with Log():
            with autocast():
                loss = module.loss(module(x), y)
            where.update(phase="backward", layer="")
            loss.backward()
            where.update(phase="optimizer")
            optimizer.step()
    finally:
        for hook in hooks:
            hook.remove()
    return ops


# ---------------------------------------------------------------- Keras: ops as TensorFlow traces them


def keras_trace(config: Config, batch: int = 4) -> list[Op]:
    """The ops of `model.train_step` traced in a tf.function (the graph `model.fit` runs), with
    the layer each belongs to and its tensors' dtypes."""
    _, keras = _frameworks()
    import tensorflow as tf

    from keras_model.backend import compile_model, seed_everything
    from keras_model.model import build_model

    config = bf16_config(config)
    seed_everything(config)  # the kernels training picks (deterministic ones change the loss's ops)
    model = compile_model(build_model(config), config)
    model.optimizer.build(model.trainable_variables)
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, 28, 28, 1)).astype(np.float32))
    y = tf.constant(np.arange(batch, dtype=np.int32) % 10)
    graph = tf.function(model.train_step).get_concrete_function((x, y)).graph
    names = {layer.name for layer in model.layers}
    optimizer_scope = model.optimizer.name
    ops = []
    for op in graph.get_operations():
        parts = op.name.split("/")
        layer = next((p.rsplit("_", 1)[0] for p in parts if p.rsplit("_", 1)[0] in names), "")
        phase = (
            "backward"
            if parts[0] == "gradient_tape"
            else "optimizer"
            if parts[0].startswith(optimizer_scope)
            else "forward"
        )
        ops.append(
            {
                "phase": phase,
                "layer": layer,
                "op": op.type,
                "inputs": [t.dtype.name for t in op.inputs],
                "outputs": [t.dtype.name for t in op.outputs],
            }
        )
    return ops
