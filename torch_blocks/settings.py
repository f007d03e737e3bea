"""torch's process settings as `fmnist train` runs every torch engine: seeds, TF32, deterministic
algorithms, the allocator. Lightning's Trainer sets some of these itself (`seed_everything`,
`deterministic=`); the plain loop sets them here, to the same values."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from fmnist.config import Config
from fmnist.precision import Device, cpu_device, gpu_device
from fmnist.malloc import retain_freed_memory
from torch_blocks.environment import CUBLAS_WORKSPACE_CONFIG


def seed_everything(seed: int) -> None:
    """Python's, numpy's and torch's generators from `seed`, as Lightning's `seed_everything`."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every device's generator too


def numerics(config: Config) -> dict[str, Any]:
    """TF32 off unless the config allows it (it costs 3 decimal digits in matmuls), and glibc told
    to keep freed memory (fmnist.malloc: torch's steps stop faulting pages in). Returns the
    allocator setting, for a benchmark to record."""
    precision = "high" if config.train.allow_tf32 else "highest"
    torch.set_float32_matmul_precision(precision)
    torch.backends.cudnn.allow_tf32 = config.train.allow_tf32
    return retain_freed_memory()


def deterministic(config: Config, device: torch.device) -> None:
    """torch's deterministic algorithms as the config says, as Lightning's `Trainer(deterministic=)`."""
    if config.train.deterministic:
        torch.backends.cudnn.benchmark = False  # its autotuner picks kernels by timing
        if device.type == "cuda":  # cuBLAS refuses deterministic mode without a fixed workspace
            for key, value in CUBLAS_WORKSPACE_CONFIG.items():
                os.environ.setdefault(key, value)
    torch.use_deterministic_algorithms(config.train.deterministic)


def configure_torch(config: Config, device: torch.device | None = None) -> dict[str, Any]:
    """Seeds, numerics and deterministic algorithms for a training on `device` (default: the one
    `torch_device` picks). Returns the allocator setting."""
    seed_everything(config.seed)
    deterministic(config, device or torch_device())
    return numerics(config)


def torch_device() -> torch.device:
    """A GPU where torch sees one, else the CPU: what Lightning's `accelerator="auto"` picks."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def training_device(config: Config) -> Device:
    """Where a torch engine trains (`torch_device`), and whether it computes bfloat16 natively (a
    GPU's compute capability, a CPU's flags): what `train.precision: auto` resolves by."""
    if torch.cuda.is_available():
        return gpu_device(torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))
    return cpu_device()
