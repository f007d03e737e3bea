"""The `lightning` engine behind the contract of `fmnist.backend_api.EngineModule`: training and
prediction are `lightning_model.backend`'s, the benchmark's step loops `lightning_model.speed`'s;
here are the steps parity needs, on the plain network and the LightningModule's own loss and
optimizer."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from typing import Any

import lightning as L

import numpy as np
import torch
import torch._dynamo  # noqa: F401  (before TensorFlow, should a process load both: the other order segfaults)

from fmnist.config import Config
from fmnist.precision import uses_bf16
from fmnist.splits import DataSplits
from lightning_model.backend import completed_epochs, configure_torch, predict, train, training_device, versions
from lightning_model.data import FashionMNISTDataModule
from lightning_model.module import FashionClassifier
from lightning_model.bf16_probe import bf16_kernels, bf16_layer_outputs, bf16_trace
from lightning_model.export import export_onnx, export_versions, inference_runners, run_weights
from lightning_model.network import build_network, load_shared_weights
from lightning_model.precision import autocast
from lightning_model.speed import fixed_batch_steps, throughput

__all__ = [
    "bf16_kernels",
    "bf16_layer_outputs",
    "bf16_trace",
    "completed_epochs",
    "export_onnx",
    "export_versions",
    "fit_budget",
    "fixed_batch_steps",
    "inference_runners",
    "initial_weights",
    "layer_table",
    "lockstep",
    "logits",
    "predict",
    "run_weights",
    "throughput",
    "train",
    "training_device",
    "versions",
]


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
    exact_casts: bool = False,
) -> dict[str, Any]:
    """The LightningModule's loss and optimizer on its network, one step per batch; under a
    bf16-mixed config each forward runs in Lightning's own autocast. exact_casts: the optimizer's
    constants cast to float64 as Keras on JAX or torch does, not through float32 as on
    TensorFlow (`lightning_model.optim`; it shows in float64 only)."""
    torch.set_float32_matmul_precision("highest")
    module = FashionClassifier.from_config(config)
    network = load_shared_weights(module.network.train(), weights, dtype)
    optimizer = module.configure_optimizers()["optimizer"]
    for group in optimizer.param_groups:
        if "exact_casts" in group:
            group["exact_casts"] = exact_casts
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


def fit_budget(
    config: Config,
    splits: DataSplits,
    on_start: Callable[[], None],
    on_trained: Callable[[Callable[[], np.ndarray]], None],
) -> int:
    """The config's whole epoch budget as `train` runs it (the LightningModule, the data module's
    batch order), without validation, checkpoints or files: what a time-to-accuracy measurement
    times. on_start() just before fit; on_trained(predict) from the end-of-training hook, before
    Lightning's teardown. Returns the epochs trained."""
    configure_torch(config)
    module = FashionClassifier.from_config(config)
    datamodule = FashionMNISTDataModule(config, splits=splits)

    @torch.inference_mode()
    def test_logits(trainer: L.Trainer) -> np.ndarray:
        """In the trainer's precision (bf16 autocast under bf16-mixed), as `fmnist train`'s
        prediction of the test set and as the Keras side's predict under its mixed policy."""
        module.eval()  # on the training device still: the hook runs before Lightning's teardown
        x = torch.from_numpy(splits.test.images).unsqueeze(1).float().to(module.device)
        with trainer.precision_plugin.forward_context():
            logits = [module(b) for b in x.split(config.train.eval_batch_size)]
        return torch.cat(logits).float().cpu().numpy()

    class Trained(L.Callback):
        def on_train_end(self, trainer, pl_module):
            on_trained(lambda: test_logits(trainer))

    trainer = L.Trainer(
        max_epochs=config.train.epochs,
        accelerator="auto",
        devices=1,
        deterministic=config.train.deterministic,
        precision="bf16-mixed" if uses_bf16(config.train.precision) else "32-true",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        callbacks=[Trained()],
    )
    on_start()
    trainer.fit(module, datamodule=datamodule)
    return trainer.current_epoch
