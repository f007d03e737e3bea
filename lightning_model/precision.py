"""Lightning's bf16-mixed context on the CPU, outside a Trainer: what its precision plugin wraps
each step in, for the checks that step the network by hand (parity's lockstep, bf16 op tables)."""

from __future__ import annotations

from contextlib import AbstractContextManager


def autocast() -> AbstractContextManager:
    from lightning.pytorch.plugins.precision import MixedPrecision

    return MixedPrecision("bf16-mixed", "cpu").forward_context()
