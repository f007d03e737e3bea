"""Training and prediction with a plain PyTorch loop (`fmnist.capabilities.Training`): the shared
torch network (`torch_blocks.network`) trained by `torch_blocks.plain_loop.PlainTraining` over the
shared batches (`torch_blocks.batches`: the core's batch order and augmentation), every epoch
validated, reported to the core's `EpochReporter` (metrics.csv, TensorBoard, the console line)
and checkpointed (`pytorch_model.checkpoint`), the way the Lightning engine's Trainer does it:
the same numbers, step for step (tests/test_lightning_vs_plain_torch.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from fmnist import rundir
from fmnist.capabilities import TrainOutcome
from fmnist.config import Config
from fmnist.cpu_features import warn_if_emulated_bf16
from fmnist.epoch_reporter import EpochReporter
from fmnist.splits import DataSplits, Split, num_batches
from pytorch_model import checkpoint
from pytorch_model.progress import EpochBars
from torch_blocks.batches import batch_loader
from torch_blocks.early_stopping import BestWeights
from torch_blocks.network import training_network
from torch_blocks.plain_loop import Accuracy, MeanLoss, PlainTraining, loss_fn
from torch_blocks.precision import config_autocast
from torch_blocks.settings import configure_torch, torch_device, training_device  # noqa: F401  (the training capability's)


def versions() -> dict[str, str]:
    return {"torch": torch.__version__}


def completed_epochs(run_dir: Path) -> int:
    """Epochs finished before an interruption, from the last checkpoint (0 if none)."""
    state = checkpoint.load_epoch(run_dir)  # weights_only: a planted payload is refused here
    return 0 if state is None else state["completed_epochs"]


def _input(x: torch.Tensor, config: Config, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if config.train.channels_last else x


@torch.inference_mode()
def validate(network: torch.nn.Module, loader: DataLoader, config: Config, device: torch.device) -> dict[str, float]:
    """Loss (label-smoothed, as training's) and accuracy over every batch, in inference mode and the
    config's precision, as Lightning's validation loop computes them."""
    network.eval()
    loss, mean_loss, accuracy = loss_fn(config), MeanLoss(), Accuracy()
    with config_autocast(config, device.type):
        for x, y in loader:
            y = y.to(device, non_blocking=True)
            logits = network(_input(x, config, device))
            mean_loss.update(loss(logits, y), weight=len(y))
            accuracy.update(logits, y)
    return {"loss": float(mean_loss.compute()), "accuracy": float(accuracy.compute())}


@torch.inference_mode()
def infer(network: torch.nn.Module, loader: Iterable, config: Config, device: torch.device) -> np.ndarray:
    """Logits of every batch, in order, in the config's precision (bf16 autocast under bf16-mixed,
    as Lightning's predict runs), float32."""
    network.eval()
    with config_autocast(config, device.type):
        logits = [network(_input(x, config, device)).float().cpu() for x, _ in loader]
    return torch.cat(logits).numpy()


def _epoch(
    plain: PlainTraining, loader: DataLoader, epoch: int, device: torch.device, tick: Callable[[], None]
) -> None:
    """One epoch of steps in the shared batch order of `epoch`; stops at a non-finite loss."""
    loader.sampler.set_epoch(epoch)
    plain.start_epoch(epoch)
    for x, y in loader:
        plain.step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        tick()
        if plain.should_stop:
            break
    plain.watch.raise_if_diverged()  # a diverged run ends here, its last checkpoint intact


def summary(network: torch.nn.Module) -> str:
    """summary.txt: each layer's kind and trainable parameters, then the module itself."""
    lines = [f"{'layer':<24} {'type':<20} {'params':>10}"]
    for name, module in network.named_children():
        params = sum(p.numel() for p in module.parameters() if p.requires_grad)
        lines.append(f"{name:<24} {type(module).__name__:<20} {params:>10,}")
    total = sum(p.numel() for p in network.parameters() if p.requires_grad)
    lines.append(f"{'trainable parameters':<45} {total:>10,}")
    return "\n".join(lines) + "\n\n" + repr(network) + "\n"


def train(
    config: Config, splits: DataSplits, run_dir: Path, report: EpochReporter | None, resume: bool = False
) -> TrainOutcome:
    """Fit, save `model.pt`, predict the test set; with `resume`, from the last checkpoint."""
    t = config.train
    device = torch_device()
    configure_torch(config, device)
    warn_if_emulated_bf16(t.precision, on_cpu=device.type == "cpu")
    network = training_network(config, device)
    steps = num_batches(len(splits.train), t.batch_size)
    plain = PlainTraining(network, config, steps)
    stopping = BestWeights(t.early_stopping) if t.early_stopping else None
    state = checkpoint.load_epoch(run_dir) if resume else None
    first = 0
    if state is not None:
        network.load_state_dict(state["network"])
        plain.load_state_dict(state["loop"])
        if stopping is not None and state.get("early_stopping") is not None:
            stopping.load_state_dict(state["early_stopping"])
        first = state["completed_epochs"]
    train_batches = batch_loader(
        splits.train, t.batch_size, config.seed, shuffle=True, first_epoch=first, augment=config.data.augment
    )
    val_batches = batch_loader(splits.val, t.eval_batch_size)
    timer = rundir.EpochTimer()
    start = time.perf_counter()
    with EpochBars(t.epochs, steps) as bars:
        for epoch in range(first, t.epochs):
            if stopping is not None and stopping.rule.stopped:  # resumed after the epoch that stopped it
                break
            timer.restart()
            bars.start_epoch(epoch)
            _epoch(plain, train_batches, epoch, device, bars.step)
            fit = plain.end_epoch()
            val = validate(network, val_batches, config, device)
            row = rundir.metrics_row(
                epoch,
                train_loss=fit["loss"],
                train_accuracy=fit["accuracy"],
                val_loss=val["loss"],
                val_accuracy=val["accuracy"],
                lr=plain.lr,  # the rate of the epoch's last step, as every engine reports it
                seconds=timer.elapsed(),
            )
            bars.end_epoch(row)
            if report is not None:
                report(row)
            stop = stopping.update(epoch, val["accuracy"], network) if stopping is not None else False
            kept = stopping.state_dict() if stopping is not None else None
            checkpoint.save_epoch(run_dir, epoch + 1, network, plain.state_dict(), kept)
            if stop:
                break
    train_seconds = time.perf_counter() - start
    if stopping is not None:
        stopping.restore(network)  # model.pt holds the best epoch's weights
    checkpoint.save_model(run_dir, config, network, plain.state_dict())
    logits = infer(network, batch_loader(splits.test, t.eval_batch_size), config, device)
    return TrainOutcome(
        test_logits=logits,
        num_params=sum(p.numel() for p in network.parameters() if p.requires_grad),
        summary=summary(network),
        train_seconds=train_seconds,
        versions=versions(),
    )


def predict(run_dir: Path, images: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits of raw images (N x 28 x 28 uint8) from the run's model.pt, in its config's precision."""
    config, weights = checkpoint.load_model(run_dir)
    device = torch_device()
    configure_torch(config, device)
    network = training_network(config, device)
    network.load_state_dict(weights)
    labels = np.zeros(len(images), dtype=np.uint8)  # unused
    return infer(network, batch_loader(Split(images, labels), batch_size), config, device)


def fit_budget(
    config: Config,
    splits: DataSplits,
    on_start: Callable[[], None],
    on_trained: Callable[[Callable[[], np.ndarray]], None],
) -> int:
    """The config's whole epoch budget as `train` runs it (the plain loop, the shared batch order),
    without validation, checkpoints or files: what a time-to-accuracy measurement times.
    on_start() just before the first step; on_trained(predict) after the last. Returns the
    epochs trained."""
    t = config.train
    device = torch_device()
    configure_torch(config, device)
    network = training_network(config, device)
    plain = PlainTraining(network, config, num_batches(len(splits.train), t.batch_size))
    train_batches = batch_loader(splits.train, t.batch_size, config.seed, shuffle=True, augment=config.data.augment)
    on_start()
    for epoch in range(t.epochs):
        _epoch(plain, train_batches, epoch, device, lambda: None)
        plain.end_epoch()
    on_trained(lambda: infer(network, batch_loader(splits.test, t.eval_batch_size), config, device))
    return t.epochs
