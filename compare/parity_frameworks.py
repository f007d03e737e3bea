"""Both frameworks in one process, for the checks that run them side by side: torch first, and
Keras' global float type switched for the models built inside a block."""

from __future__ import annotations

from typing import Any


def _frameworks():
    """torch first (with dynamo, which loads triton), then Keras: the other order segfaults."""
    import torch
    import torch._dynamo  # noqa: F401

    import keras_model  # noqa: F401  (imports Keras without TensorFlow's start-up notices)
    import keras

    return torch, keras


def _float_precision(keras: Any, dtype: str):
    """Keras' global float type for the models built inside the block (restored afterwards)."""
    from contextlib import contextmanager

    @contextmanager
    def block():
        floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
        keras.config.set_floatx(dtype)
        keras.config.set_dtype_policy(dtype)
        try:
            yield
        finally:
            keras.config.set_floatx(floatx)
            keras.config.set_dtype_policy(policy)

    return block()
