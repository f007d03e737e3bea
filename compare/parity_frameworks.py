"""Both frameworks in one process, for the checks that hold the two models side by side (bf16
parity layer by layer, the export check): torch first."""

from __future__ import annotations


def _frameworks():
    """Lightning's engine first (torch with dynamo, which loads triton), then Keras' on TensorFlow:
    the other order segfaults."""
    from fmnist import engines

    engines.load("lightning")
    engines.load("keras")  # Keras without TensorFlow's start-up notices
    import keras
    import torch

    return torch, keras
