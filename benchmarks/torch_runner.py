"""The torch side of a benchmark measurement, in a worker process (`benchmarks.worker`):

- `lightning`:   a real `L.Trainer.fit` / `.predict` of `FashionClassifier.from_config(config)`.
- `plain torch`: a hand-written loop (forward, cross-entropy, backward, the same KerasAdam) on
                 `build_network(config)`, over the very same batches: Lightning's reference.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import numpy as np

from benchmarks.measuring import batch_order, rss_mib, timing_from_stamps, training_images
from benchmarks.variants import Variant
from fmnist.config import Config
from fmnist.splits import Split


def _torch_setup(spec: dict[str, Any], config: Config):
    import torch

    from lightning_model.backend import configure_torch

    configure_torch(config)  # seeds, TF32 setting, as `fmnist train` does
    if spec.get("torch_threads"):
        torch.set_num_threads(int(spec["torch_threads"]))
    if spec["device"] == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: torch sees no CUDA device")
    device = torch.device(spec["device"])
    sync: Callable[[], None] = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    return torch, device, sync


class DeviceBatches:
    """Batches (x float32 N x 1 x 28 x 28, y int64) gathered from a uint8 tensor that lives on
    the device: on a GPU the whole training set is copied there once, as uint8, and no host
    loader is in the loop. On CPU this is the project's own `BatchDataset` work (index,
    unsqueeze, float), and yields the very same tensors (tests/test_gpu_path.py)."""

    def __init__(self, torch, split: Split, order: list[np.ndarray], device, channels_last: bool) -> None:
        self.torch = torch
        self.images = torch.from_numpy(split.images).to(device)
        self.labels = torch.from_numpy(split.labels.astype(np.int64)).to(device)
        self.order = [torch.from_numpy(o).to(device) for o in order]
        self.channels_last = channels_last

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int):
        idx = self.order[i]
        x = self.images[idx].unsqueeze(1).float()
        if self.channels_last:
            x = x.contiguous(memory_format=self.torch.channels_last)
        return x, self.labels[idx]


def _torch_loader(torch, batches: DeviceBatches):
    from torch.utils.data import DataLoader

    # batch_size=None: each item is a whole batch already (as in lightning_model.data).
    return DataLoader(batches, batch_size=None, shuffle=False, num_workers=0)


def measure_torch(spec: dict[str, Any], config: Config, variant: Variant) -> dict[str, Any]:
    """Training and inference timings of `spec`'s runner ("lightning" or "plain torch")."""
    torch, device, sync = _torch_setup(spec, config)
    split, data_note = training_images(spec, config)
    bs, warmup, steps = spec["batch_size"], spec["warmup"], spec["steps"]
    order = batch_order(len(split), bs, warmup + steps, config.seed)
    batches = DeviceBatches(torch, split, order, device, channels_last=config.train.channels_last)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = rss_mib()

    if spec["runner"] == "lightning":
        train, infer, extra = _lightning_run(torch, spec, config, variant, batches, sync)
    else:
        train, infer, extra = _plain_run(torch, spec, config, variant, batches, device, sync)
    out = {"train": train, "inference": infer, "data": data_note, "rss_before_mib": rss_before, **extra}
    if device.type == "cuda":
        out["data"] = f"{data_note}, resident on {batches.images.device}"
        out["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
        out["peak_memory_kind"] = "torch.cuda.max_memory_allocated"
    out["threads"] = {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads()}
    out["flags"] = {
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    return out


def _compiled(torch, network, variant: Variant):
    return torch.compile(network) if variant.torch_compile else network


def _plain_run(torch, spec, config, variant: Variant, batches, device, sync):
    import torch.nn.functional as F

    from lightning_model.network import build_network
    from lightning_model.optim import KerasAdam

    if config.train.deterministic and device.type == "cuda":
        # cuBLAS refuses deterministic mode without a fixed workspace; Lightning's Trainer sets the same.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(config.train.deterministic)  # as Lightning's Trainer(deterministic=...)
    network = build_network(config).to(device)
    if config.train.channels_last:  # as FashionClassifier does
        network = network.to(memory_format=torch.channels_last)
    network = _compiled(torch, network, variant)
    opt = config.train.optimizer
    optimizer = KerasAdam(network.parameters(), lr=opt.lr, beta_1=opt.beta_1, beta_2=opt.beta_2, epsilon=opt.epsilon)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.train.precision == "bf16-mixed")
    loader = _torch_loader(torch, batches)
    warmup = spec["warmup"]

    network.train()
    stamps: list[float] = []
    sync()
    start = time.perf_counter()
    for x, y in loader:
        with autocast:
            loss = F.cross_entropy(network(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        stamps.append(time.perf_counter())
    train = timing_from_stamps(start, stamps, warmup, spec["batch_size"])
    final_loss = float(loss.detach())
    if not np.isfinite(final_loss):
        raise RuntimeError(f"the training loss became {final_loss}")

    network.eval()
    stamps = []
    sync()
    start = time.perf_counter()
    with torch.inference_mode(), autocast:
        for x, _ in loader:
            network(x)
            sync()
            stamps.append(time.perf_counter())
    infer = timing_from_stamps(start, stamps, warmup, spec["batch_size"])
    return train, infer, {"final_loss": final_loss}


def _lightning_run(torch, spec, config, variant: Variant, batches, sync):
    import warnings

    import lightning as L

    import lightning_model.backend  # noqa: F401  (its warning filters and log settings)
    from lightning_model.module import FashionClassifier

    warnings.filterwarnings("ignore", message=r".*(does not have many workers|GPU available but not used).*")

    class StepClock(L.Callback):
        def __init__(self) -> None:
            self.train: list[float] = []
            self.predict: list[float] = []

        def on_train_batch_end(self, *args, **kwargs) -> None:
            sync()
            self.train.append(time.perf_counter())

        def on_predict_batch_end(self, *args, **kwargs) -> None:
            sync()
            self.predict.append(time.perf_counter())

    warmup = spec["warmup"]
    module = FashionClassifier.from_config(config)
    module.network = _compiled(torch, module.network, variant)
    clock = StepClock()
    trainer = L.Trainer(
        accelerator="gpu" if spec["device"] == "cuda" else "cpu",
        devices=1,
        precision="bf16-mixed" if config.train.precision == "bf16-mixed" else "32-true",
        max_epochs=1,
        max_steps=len(batches),
        deterministic=config.train.deterministic,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        callbacks=[clock],
    )
    loader = _torch_loader(torch, batches)
    sync()
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    train = timing_from_stamps(start, clock.train, warmup, spec["batch_size"])
    sync()
    start = time.perf_counter()
    trainer.predict(module, dataloaders=loader, return_predictions=False)
    infer = timing_from_stamps(start, clock.predict, warmup, spec["batch_size"])
    loss = trainer.callback_metrics.get("train/loss")
    return train, infer, {"final_loss": None if loss is None else float(loss)}
