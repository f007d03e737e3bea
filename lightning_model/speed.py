"""The `lightning` engine's step loops for the benchmark (`throughput`, `fixed_batch_steps` of
`fmnist.capabilities.Speed`), in the benchmark's worker process:

- `lightning`:   `fmnist train`'s Trainer (`lightning_model.training.make_trainer`) with the
                 callbacks it trains with, `.fit` and `.predict` of `FashionClassifier.from_config(config)`.
- `plain torch`: `lightning_model.plain_loop.PlainTraining`, the module's training step as a plain
                 loop (the same loss, optimizer, schedule, metrics and checks), on the network and
                 optimizer the module builds, over the very same batches: Lightning's reference.

docs/speed.md ("What the two torch runners do") defines both. The clock, the batch order and
what the times mean are the benchmark's; here are the loops and the device synchronisation.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from fmnist.capabilities import SpeedRun, StepClock
from fmnist.config import Config
from fmnist.splits import Split
from lightning_model.training import configure_torch, make_trainer, training_callbacks
from lightning_model.module import FashionClassifier
from lightning_model.plain_loop import PlainTraining

Timings = dict[str, Any]


class DeviceBatches:
    """Batches (x float32 N x 1 x 28 x 28, y int64) gathered from a uint8 tensor that lives on
    the device: on a GPU the whole training set is copied there once, as uint8, and no host
    loader is in the loop. On CPU this is the project's own `BatchDataset` work (index,
    unsqueeze, float), and yields the very same tensors (tests/test_gpu_path.py)."""

    def __init__(self, split: Split, order: list[np.ndarray], device: torch.device, channels_last: bool) -> None:
        self.images = torch.from_numpy(split.images).to(device)
        self.labels = torch.from_numpy(split.labels.astype(np.int64)).to(device)
        self.order = [torch.from_numpy(o).to(device) for o in order]
        self.channels_last = channels_last

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.order[i]
        x = self.images[idx].unsqueeze(1).float()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels[idx]


def _loader(batches: Sequence[tuple[torch.Tensor, torch.Tensor]], seed: int) -> DataLoader:
    # batch_size=None: each item is a whole batch already. A generator of its own, as in
    # lightning_model.data: a new iterator then draws nothing from torch's global generator, so
    # dropout's masks do not depend on when each side creates it.
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(batches, batch_size=None, shuffle=False, num_workers=0, generator=generator)


def throughput(config: Config, run: SpeedRun, clock: StepClock) -> dict[str, Any]:
    """`run.loop` ("lightning" or "plain torch") timed by `clock`: see the module's docstring."""
    malloc = configure_torch(config)  # seeds, TF32 setting, allocator, as `fmnist train` does
    if run.threads:
        torch.set_num_threads(int(run.threads))
    if run.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: torch sees no CUDA device")
    device = torch.device(run.device)
    sync: Callable[[], None] = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    batches = DeviceBatches(run.split, run.order, device, channels_last=config.train.channels_last)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    clock.ready()

    if run.loop == "lightning":
        out = _lightning_run(config, run, batches, sync, clock)
    else:
        out = _plain_run(config, run, batches, device, sync, clock)
    if device.type == "cuda":
        out["resident_on"] = str(batches.images.device)
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


def _compiled(network: torch.nn.Module, run: SpeedRun) -> torch.nn.Module:
    return torch.compile(network) if run.torch_compile else network


def _plain_run(
    config: Config,
    run: SpeedRun,
    batches: DeviceBatches,
    device: torch.device,
    sync: Callable[[], None],
    clock: StepClock,
) -> dict[str, Any]:
    if config.train.deterministic and device.type == "cuda":
        # cuBLAS refuses deterministic mode without a fixed workspace; Lightning's Trainer sets the same.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(config.train.deterministic)  # as Lightning's Trainer(deterministic=...)
    module = FashionClassifier.from_config(config).to(device)
    module.network = _compiled(module.network, run)
    plain = PlainTraining.from_module(module, steps_per_epoch=len(batches))
    network = plain.network
    loader = _loader(batches, config.seed)

    sync()
    clock.start("train")
    plain.start_epoch(0)
    for x, y in loader:
        loss = plain.step(x, y)
        sync()
        clock.stamp("train")
    epoch_metrics = plain.end_epoch()  # after the timed steps, as Lightning's epoch end
    final_loss = float(loss.detach())
    if not np.isfinite(final_loss):
        raise RuntimeError(f"the training loss became {final_loss}")

    network.eval()
    sync()
    clock.start("inference")
    with torch.inference_mode(), plain.forward_context():
        for x, _ in loader:
            network(x).float()  # as FashionClassifier.predict_step hands its logits back
            sync()
            clock.stamp("inference")
    return {"final_loss": final_loss, "train_epoch_metrics": epoch_metrics}


def _lightning_run(
    config: Config, run: SpeedRun, batches: DeviceBatches, sync: Callable[[], None], clock: StepClock
) -> dict[str, Any]:
    """The Trainer `fmnist train` builds (`make_trainer`), with the callbacks `lightning_model.training.train`
    gives it, in its order, and the module's logging and torchmetrics; the progress bar as off a
    terminal (the worker's stdout is a pipe). Only the epoch count differs: one epoch of exactly the
    batches measured. The epoch's end (validation on one batch, the metrics row, early stopping,
    the checkpoint) comes after the last timed step."""
    warnings.filterwarnings("ignore", message=r".*(does not have many workers|GPU available but not used).*")

    class StepClockCallback(L.Callback):
        def on_train_batch_end(self, *args, **kwargs) -> None:
            sync()
            clock.stamp("train")

        def on_predict_batch_end(self, *args, **kwargs) -> None:
            sync()
            clock.stamp("inference")

    module = FashionClassifier.from_config(config)
    module.network = _compiled(module.network, run)
    rows: list[dict[str, float]] = []  # the metrics row EpochReport hands to the core's reporter
    x0, y0 = batches[0]
    with tempfile.TemporaryDirectory(prefix="fmnist-bench-run-") as tmp:
        run_dir = Path(tmp)
        nan_guard, callbacks = training_callbacks(config, run_dir, rows.append)
        trainer = make_trainer(config, run_dir, [*callbacks, StepClockCallback()])
        trainer.fit_loop.max_epochs = 1  # the loader holds exactly the warm-up and timed batches
        if trainer.strategy.root_device.type != run.device:
            raise RuntimeError(f"--device {run.device}: Lightning chose {trainer.strategy.root_device}")
        loader = _loader(batches, config.seed)
        sync()
        clock.start("train")
        one_batch = _loader([(x0, y0)], config.seed)  # validation, after the timed steps
        trainer.fit(module, train_dataloaders=loader, val_dataloaders=one_batch)
        nan_guard.watch.raise_if_diverged()
        sync()
        clock.start("inference")
        trainer.predict(module, dataloaders=loader, return_predictions=False)
    loss = trainer.callback_metrics.get("train/loss")
    epoch = {"loss": rows[-1]["train_loss"], "accuracy": rows[-1]["train_accuracy"]} if rows else None
    return {"final_loss": None if loss is None else float(loss), "train_epoch_metrics": epoch}


def fixed_batch_steps(
    config: Config, batch_size: int, steps_per_epoch: int
) -> tuple[Callable[[], torch.Tensor], dict[str, Any]]:
    """The plain loop's training step (`PlainTraining`, as `fmnist train` sets torch up: its
    allocator setting included) on the config's network and one batch of random pixels and labels
    (the allocator does not care what the numbers are); steps_per_epoch: the schedule's unit."""
    allocator = configure_torch(config)
    plain = PlainTraining.from_module(FashionClassifier.from_config(config), steps_per_epoch=steps_per_epoch)
    x = torch.randint(0, 256, (batch_size, 1, 28, 28)).float()
    y = torch.randint(0, 10, (batch_size,))
    plain.start_epoch(0)
    return (lambda: plain.step(x, y)), {"threads": torch.get_num_threads(), "allocator": allocator}
