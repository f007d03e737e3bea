"""What every throughput measurement shares, whichever engine's loop it times (`worker`, through
`fmnist.capabilities.Speed.throughput`), so all measure alike: the images, the batch
order, the step clock and its arithmetic, and the memory readings.

Timing: a timestamp after every step, taken after device synchronisation; the first `warmup`
steps (which include tracing and compilation) are reported apart; throughput is timed images
over the time from the end of the last warm-up step to the end of the last step, so the data
pipeline between steps is counted.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.stats import step_time_stats, throughput
from fmnist.config import Config
from fmnist.splits import Split


def _proc_status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mib() -> float | None:
    """Peak resident memory of this process so far (VmHWM), MiB; None off Linux."""
    kib = _proc_status_kib("VmHWM")
    if kib is None:
        try:
            import resource

            kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        except Exception:
            return None
    return kib / 1024.0


def rss_mib() -> float | None:
    kib = _proc_status_kib("VmRSS")
    return None if kib is None else kib / 1024.0


def training_images(spec: dict[str, Any], config: Config) -> tuple[Split, str]:
    """Real training images (the config's split) or synthetic uint8 images of the same shape."""
    needed = spec["batch_size"] * (spec["warmup"] + spec["steps"])
    if spec["data"] == "real":
        from fmnist.datasets import load_fashion_mnist
        from fmnist.splits import make_splits

        train = make_splits(load_fashion_mnist(spec.get("data_dir")), config).train
        return train, f"Fashion-MNIST training split ({len(train):,} images)"
    rng = np.random.default_rng(config.seed)
    n = min(max(needed, spec["batch_size"]), 60_000)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return Split(images, labels), f"synthetic uint8 images ({n:,}, 28x28)"


def batch_order(num_images: int, batch_size: int, num_batches: int, seed: int) -> list[np.ndarray]:
    """`num_batches` index arrays of full batches in the shared per-epoch order, epoch after epoch."""
    from fmnist.splits import epoch_permutation

    per_epoch = num_images // batch_size
    if per_epoch == 0:
        raise ValueError(f"batch size {batch_size} is larger than the {num_images} images available")
    out, epoch = [], 0
    while len(out) < num_batches:
        order = epoch_permutation(num_images, seed, epoch)
        out += [order[i * batch_size : (i + 1) * batch_size] for i in range(min(per_epoch, num_batches - len(out)))]
        epoch += 1
    return out


def timing_from_stamps(start: float, stamps: list[float], warmup: int, batch_size: int) -> dict[str, Any]:
    """Warm-up seconds (start to end of the last warm-up step), per-step times and throughput after it."""
    if len(stamps) <= warmup:
        raise RuntimeError(f"only {len(stamps)} steps ran; expected more than the {warmup} warm-up steps")
    timed = stamps[warmup - 1 :] if warmup else [start, *stamps]
    steps = np.diff(np.asarray(timed)).tolist()
    seconds = timed[-1] - timed[0]
    return {
        "steps": len(steps),
        "seconds": seconds,
        "images_per_s": throughput(len(steps) * batch_size, seconds),
        "step_seconds": steps,
        "step_time": step_time_stats(steps),
        "warmup_seconds": (stamps[warmup - 1] - start) if warmup else 0.0,
        "first_step_seconds": stamps[0] - start,
    }


class Stamps:
    """The step clock an engine's loop reads (`fmnist.capabilities.StepClock`): the memory before
    the run, and per phase the time just before the first step and after each step."""

    def __init__(self) -> None:
        self.rss_before: float | None = None
        self.starts: dict[str, float] = {}
        self.stamps: dict[str, list[float]] = {"train": [], "inference": []}

    def ready(self) -> None:
        self.rss_before = rss_mib()

    def start(self, phase: str) -> None:
        self.starts[phase] = time.perf_counter()

    def stamp(self, phase: str) -> None:
        self.stamps[phase].append(time.perf_counter())

    def timing(self, phase: str, warmup: int, batch_size: int) -> dict[str, Any]:
        """`timing_from_stamps` of the phase."""
        if phase not in self.starts:
            raise RuntimeError(f"the engine's loop never started its {phase} phase")
        return timing_from_stamps(self.starts[phase], self.stamps[phase], warmup, batch_size)
