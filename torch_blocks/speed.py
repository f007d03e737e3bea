"""The torch engines' step loops for the benchmark (`fmnist.capabilities.Speed`), in the
benchmark's worker process: the set-up every torch loop is timed under (`throughput`: seeds and
numerics as `fmnist train`, threads, device, the batches on it, memory and flags read after), and
the plain torch loop itself (`plain_run`, `fixed_batch_steps`): `torch_blocks.plain_loop.
PlainTraining` over the very same batches, the `pytorch` engine's training and Lightning's
reference.

docs/speed.md ("What the two torch runners do") defines the loops. The clock, the batch order and
what the times mean are the benchmark's; here are the loops and the device synchronisation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader

from fmnist.capabilities import SpeedRun, StepClock
from fmnist.config import Config
from fmnist.splits import Split
from torch_blocks.network import training_network
from torch_blocks.plain_loop import PlainTraining
from torch_blocks.settings import configure_torch


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


class Loop(Protocol):
    """One runner's timed loop: train over `batches` once, then inference, stamping `clock`."""

    def __call__(
        self,
        config: Config,
        run: SpeedRun,
        batches: DeviceBatches,
        device: torch.device,
        sync: Callable[[], None],
        clock: StepClock,
    ) -> dict[str, Any]: ...


def loader(batches: Sequence[tuple[torch.Tensor, torch.Tensor]], seed: int) -> DataLoader:
    """batch_size=None: each item is a whole batch already. A generator of its own, as in
    torch_blocks.batches: a new iterator then draws nothing from torch's global generator, so
    dropout's masks do not depend on when each loop creates it."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(batches, batch_size=None, shuffle=False, num_workers=0, generator=generator)


def compiled(network: torch.nn.Module, run: SpeedRun) -> torch.nn.Module:
    return torch.compile(network) if run.torch_compile else network


def throughput(config: Config, run: SpeedRun, clock: StepClock, loops: Mapping[str, Loop]) -> dict[str, Any]:
    """`loops[run.loop]` timed by `clock`, set up as `fmnist train` sets torch up; what only torch
    knows (peak memory, allocator, threads, flags) added to its answer."""
    if run.loop not in loops:
        raise ValueError(f"this engine times the loops {', '.join(loops)}, not {run.loop!r}")
    if run.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: torch sees no CUDA device")
    device = torch.device(run.device)
    malloc = configure_torch(config, device)  # seeds, TF32 setting, deterministic kernels, allocator
    if run.threads:
        torch.set_num_threads(int(run.threads))
    sync: Callable[[], None] = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    batches = DeviceBatches(run.split, run.order, device, channels_last=config.train.channels_last)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    clock.ready()
    out = loops[run.loop](config, run, batches, device, sync, clock)
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


def plain_training(config: Config, run: SpeedRun | None, device: torch.device, steps_per_epoch: int) -> PlainTraining:
    """The plain loop on the config's network on `device`, laid out as the config says and
    compiled if the run says: what the `pytorch` engine trains."""
    network = training_network(config, device)
    return PlainTraining(compiled(network, run) if run else network, config, steps_per_epoch)


#: Builds the loop a runner times (after the seeds are set): (config, run, device, steps per epoch).
TrainingFactory = Callable[[Config, "SpeedRun | None", torch.device, int], PlainTraining]


def plain_run(
    config: Config,
    run: SpeedRun,
    batches: DeviceBatches,
    device: torch.device,
    sync: Callable[[], None],
    clock: StepClock,
    training: TrainingFactory = plain_training,
) -> dict[str, Any]:
    """The plain loop (`training` builds it) over every batch once, then inference on them under
    the same autocast."""
    plain = training(config, run, device, len(batches))
    network = plain.network
    batch_loader = loader(batches, config.seed)

    sync()
    clock.start("train")
    plain.start_epoch(0)
    for x, y in batch_loader:
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
    with torch.inference_mode(), plain.autocast():
        for x, _ in batch_loader:
            network(x).float()  # as FashionClassifier.predict_step hands its logits back
            sync()
            clock.stamp("inference")
    return {"final_loss": final_loss, "train_epoch_metrics": epoch_metrics}


def fixed_batch_steps(
    config: Config, batch_size: int, steps_per_epoch: int, training: TrainingFactory = plain_training
) -> tuple[Callable[[], torch.Tensor], dict[str, Any]]:
    """The plain loop's training step (`training` builds it, on the CPU, as `fmnist train` sets
    torch up: its allocator setting included) on one batch of random pixels and labels (the
    allocator does not care what the numbers are); steps_per_epoch: the schedule's unit."""
    device = torch.device("cpu")
    allocator = configure_torch(config, device)
    plain = training(config, None, device, steps_per_epoch)
    x = torch.randint(0, 256, (batch_size, 1, 28, 28)).float()
    y = torch.randint(0, 10, (batch_size,))
    plain.start_epoch(0)
    return (lambda: plain.step(x, y)), {"threads": torch.get_num_threads(), "allocator": allocator}
