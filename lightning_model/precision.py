"""Lightning's bf16-mixed context outside a Trainer: what its precision plugin wraps
each step in, for the checks that step the network by hand (parity's lockstep, bf16 op tables)."""

from __future__ import annotations

from contextlib import AbstractContextManager


def autocast(device_type: str = "cpu") -> AbstractContextManager:
    """The context on `device_type` ("cpu" or "cuda"), as the Trainer's plugin opens it there."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    return MixedPrecision("bf16-mixed", device_type).forward_context()
