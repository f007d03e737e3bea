"""The torch side of a benchmark measurement, in a worker process (`benchmarks.worker`):

- `lightning`:   `fmnist train`'s Trainer (`lightning_model.backend.make_trainer`) with the
                 callbacks it trains with, `.fit` and `.predict` of `FashionClassifier.from_config(config)`.
- `plain torch`: `benchmarks.plain_torch_loop.PlainTraining`, the module's training step as a plain
                 loop (the same loss, optimizer, schedule, metrics and checks), on the network and
                 optimizer the module builds, over the very same batches: Lightning's reference.

docs/speed.md ("What the two torch runners do") defines both.
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

    malloc = configure_torch(config)  # seeds, TF32 setting, allocator, as `fmnist train` does
    if spec.get("torch_threads"):
        torch.set_num_threads(int(spec["torch_threads"]))
    if spec["device"] == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: torch sees no CUDA device")
    device = torch.device(spec["device"])
    sync: Callable[[], None] = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    return torch, device, sync, malloc


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


def _torch_loader(torch, batches: DeviceBatches, seed: int):
    from torch.utils.data import DataLoader

    # batch_size=None: each item is a whole batch already. A generator of its own, as in
    # lightning_model.data: a new iterator then draws nothing from torch's global generator, so
    # dropout's masks do not depend on when each side creates it.
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(batches, batch_size=None, shuffle=False, num_workers=0, generator=generator)


def measure_torch(spec: dict[str, Any], config: Config, variant: Variant) -> dict[str, Any]:
    """Training and inference timings of `spec`'s runner ("lightning" or "plain torch")."""
    torch, device, sync, malloc = _torch_setup(spec, config)
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
    out["malloc"] = malloc
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
    from benchmarks.plain_torch_loop import PlainTraining
    from lightning_model.module import FashionClassifier

    if config.train.deterministic and device.type == "cuda":
        # cuBLAS refuses deterministic mode without a fixed workspace; Lightning's Trainer sets the same.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(config.train.deterministic)  # as Lightning's Trainer(deterministic=...)
    module = FashionClassifier.from_config(config).to(device)
    module.network = _compiled(torch, module.network, variant)
    plain = PlainTraining.from_module(module, steps_per_epoch=len(batches))
    network = plain.network
    loader = _torch_loader(torch, batches, config.seed)
    warmup = spec["warmup"]

    stamps: list[float] = []
    sync()
    start = time.perf_counter()
    plain.start_epoch(0)
    for x, y in loader:
        loss = plain.step(x, y)
        sync()
        stamps.append(time.perf_counter())
    train = timing_from_stamps(start, stamps, warmup, spec["batch_size"])
    epoch_metrics = plain.end_epoch()  # after the timed steps, as Lightning's epoch end
    final_loss = float(loss.detach())
    if not np.isfinite(final_loss):
        raise RuntimeError(f"the training loss became {final_loss}")

    network.eval()
    stamps = []
    sync()
    start = time.perf_counter()
    with torch.inference_mode(), plain.autocast:
        for x, _ in loader:
            network(x)
            sync()
            stamps.append(time.perf_counter())
    infer = timing_from_stamps(start, stamps, warmup, spec["batch_size"])
    return train, infer, {"final_loss": final_loss, "train_epoch_metrics": epoch_metrics}


def _lightning_run(torch, spec, config, variant: Variant, batches, sync):
    """The Trainer `fmnist train` builds (`make_trainer`), with the callbacks `lightning_model.backend.train`
    gives it, in its order, and the module's logging and torchmetrics; the progress bar as off a
    terminal (the worker's stdout is a pipe). Only the epoch count differs: one epoch of exactly the
    batches measured. The epoch's end (validation on one batch, the metrics row, early stopping,
    the checkpoint) comes after the last timed step."""
    import tempfile
    import warnings
    from pathlib import Path

    import lightning as L

    from lightning_model.backend import make_trainer, training_callbacks
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
    rows: list[dict[str, float]] = []  # the metrics row EpochReport hands to the core's reporter
    x0, y0 = batches[0]
    with tempfile.TemporaryDirectory(prefix="fmnist-bench-run-") as tmp:
        run_dir = Path(tmp)
        nan_guard, callbacks = training_callbacks(config, run_dir, rows.append)
        trainer = make_trainer(config, run_dir, [*callbacks, clock])
        trainer.fit_loop.max_epochs = 1  # the loader holds exactly the warm-up and timed batches
        if trainer.strategy.root_device.type != spec["device"]:
            raise RuntimeError(f"--device {spec['device']}: Lightning chose {trainer.strategy.root_device}")
        loader = _torch_loader(torch, batches, config.seed)
        sync()
        start = time.perf_counter()
        one_batch = _torch_loader(torch, [(x0, y0)], config.seed)  # validation, after the timed steps
        trainer.fit(module, train_dataloaders=loader, val_dataloaders=one_batch)
        train = timing_from_stamps(start, clock.train, warmup, spec["batch_size"])
        nan_guard.watch.raise_if_diverged()
        sync()
        start = time.perf_counter()
        trainer.predict(module, dataloaders=loader, return_predictions=False)
        infer = timing_from_stamps(start, clock.predict, warmup, spec["batch_size"])
    loss = trainer.callback_metrics.get("train/loss")
    epoch = {"loss": rows[-1]["train_loss"], "accuracy": rows[-1]["train_accuracy"]} if rows else None
    return train, infer, {"final_loss": None if loss is None else float(loss), "train_epoch_metrics": epoch}
