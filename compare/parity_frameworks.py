"""Both frameworks in one process, for the checks that hold the two models side by side (bf16
parity layer by layer, the export check): torch first."""

from __future__ import annotations


def _frameworks():
    """torch first (with dynamo, which loads triton), then Keras: the other order segfaults."""
    import torch
    import torch._dynamo  # noqa: F401

    import keras_model  # noqa: F401  (imports Keras without TensorFlow's start-up notices)
    import keras

    return torch, keras
