"""bf16-mixed in plain torch: the autocast every step of a torch engine runs in under
`train.precision: bf16-mixed`, the one Lightning's MixedPrecision plugin opens around each step
(bfloat16, without the weight-cast cache), so the plain loop and Lightning round alike."""

from __future__ import annotations

import torch

from fmnist.config import Config


def autocast(device_type: str = "cpu", enabled: bool = True) -> torch.autocast:
    """bfloat16 autocast on `device_type`; enabled False: a context that changes nothing."""
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=enabled, cache_enabled=False)


def config_autocast(config: Config, device_type: str = "cpu") -> torch.autocast:
    """The autocast of `config`'s precision: bf16 under bf16-mixed, none under float32."""
    return autocast(device_type, enabled=config.train.precision == "bf16-mixed")
