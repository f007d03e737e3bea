"""The `lightning` engine's step loops for the benchmark (`fmnist.capabilities.Speed`), in the
benchmark's worker process, set up by the torch engines' shared `torch_blocks.speed.throughput`:

- `lightning`:   `fmnist train`'s Trainer (`lightning_model.training.make_trainer`) with the
                 callbacks it trains with, `.fit` and `.predict` of `FashionClassifier.from_config(config)`.
- `plain torch`: `torch_blocks.plain_loop.PlainTraining`, the module's training step as a plain
                 loop (the same loss, optimizer, schedule and checks), on the network the module
                 builds and with its torchmetrics objects, over the very same batches: Lightning's
                 reference (`torch_blocks.speed.plain_run`).

docs/speed.md ("What the two torch runners do") defines both. The clock, the batch order and
what the times mean are the benchmark's; here are the loops and the device synchronisation.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from fmnist.capabilities import SpeedRun, StepClock
from fmnist.config import Config
from lightning_model.training import make_trainer, training_callbacks
from lightning_model.module import FashionClassifier
from torch_blocks import speed
from torch_blocks.plain_loop import PlainTraining
from torch_blocks.speed import DeviceBatches, compiled, loader


def throughput(config: Config, run: SpeedRun, clock: StepClock) -> dict[str, Any]:
    """`run.loop` ("lightning" or "plain torch") timed by `clock`: see the module's docstring."""
    return speed.throughput(config, run, clock, {"lightning": _lightning_run, "plain torch": _plain_run})


def module_training(config: Config, run: SpeedRun | None, device: torch.device, steps_per_epoch: int) -> PlainTraining:
    """The plain loop on the module's network (on `device`, channels_last as the config says,
    compiled if the run says), with the optimizer its `configure_optimizers` builds outside a
    Trainer and its own train metrics: the same work as its training_step."""
    module = FashionClassifier.from_config(config).to(device)
    if run is not None:
        module.network = compiled(module.network, run)
    optimizer = module.configure_optimizers()["optimizer"]
    return PlainTraining(
        module.network, config, steps_per_epoch, optimizer, accuracy=module.train_accuracy, mean_loss=module.train_loss
    )


def _plain_run(
    config: Config,
    run: SpeedRun,
    batches: DeviceBatches,
    device: torch.device,
    sync: Callable[[], None],
    clock: StepClock,
) -> dict[str, Any]:
    return speed.plain_run(config, run, batches, device, sync, clock, module_training)


def _lightning_run(
    config: Config,
    run: SpeedRun,
    batches: DeviceBatches,
    device: torch.device,
    sync: Callable[[], None],
    clock: StepClock,
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
    module.network = compiled(module.network, run)
    rows: list[dict[str, float]] = []  # the metrics row EpochReport hands to the core's reporter
    x0, y0 = batches[0]
    with tempfile.TemporaryDirectory(prefix="fmnist-bench-run-") as tmp:
        run_dir = Path(tmp)
        nan_guard, callbacks = training_callbacks(config, run_dir, rows.append)
        trainer = make_trainer(config, run_dir, [*callbacks, StepClockCallback()])
        trainer.fit_loop.max_epochs = 1  # the loader holds exactly the warm-up and timed batches
        if trainer.strategy.root_device.type != device.type:
            raise RuntimeError(f"--device {run.device}: Lightning chose {trainer.strategy.root_device}")
        train_batches = loader(batches, config.seed)
        sync()
        clock.start("train")
        one_batch = loader([(x0, y0)], config.seed)  # validation, after the timed steps
        trainer.fit(module, train_dataloaders=train_batches, val_dataloaders=one_batch)
        nan_guard.watch.raise_if_diverged()
        sync()
        clock.start("inference")
        trainer.predict(module, dataloaders=train_batches, return_predictions=False)
    loss = trainer.callback_metrics.get("train/loss")
    epoch = {"loss": rows[-1]["train_loss"], "accuracy": rows[-1]["train_accuracy"]} if rows else None
    return {"final_loss": None if loss is None else float(loss), "train_epoch_metrics": epoch}


def fixed_batch_steps(
    config: Config, batch_size: int, steps_per_epoch: int
) -> tuple[Callable[[], torch.Tensor], dict[str, Any]]:
    """The plain loop's training step on the module (`module_training`), one random batch."""
    return speed.fixed_batch_steps(config, batch_size, steps_per_epoch, module_training)
