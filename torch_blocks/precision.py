"""bf16-mixed in plain torch: the autocast every step of a torch engine runs in under
`train.precision: bf16-mixed`, the one Lightning's MixedPrecision plugin opens around each step
(bfloat16, without the weight-cast cache), so the plain loop and Lightning round alike."""

from __future__ import annotations

import contextlib

import torch

from fmnist.config import Config
from fmnist.precision import uses_bf16


def autocast(device_type: str = "cpu", enabled: bool = True) -> torch.autocast:
    """bfloat16 autocast on `device_type`; enabled False: a context that changes nothing."""
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=enabled, cache_enabled=False)


def config_autocast(config: Config, device_type: str = "cpu") -> contextlib.AbstractContextManager:
    """What a forward pass runs in under `config`'s precision, as Lightning's precision plugins:
    a new bf16 autocast under bf16-mixed (MixedPrecision's), and under float32 nothing at all
    (32-true enters no autocast, not even a disabled one, whose entry costs a little every step)."""
    return autocast(device_type) if uses_bf16(config.train.precision) else contextlib.nullcontext()
