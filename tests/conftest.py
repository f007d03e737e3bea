"""Shared fixtures. torch (with torch._dynamo, which loads triton) is imported before anything
can import TensorFlow: the other order segfaults on the first optimizer step in one process."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

try:
    import torch  # noqa: F401
    import torch._dynamo  # noqa: F401
except ImportError:  # the core's tests run without torch
    pass

from fmnist.quiet import tensorflow_environment  # noqa: E402

tensorflow_environment()  # before any test module imports TensorFlow (via Keras)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real Fashion-MNIST files (FMNIST_DATA_DIR, as CI sets it); tests needing them skip otherwise."""
    path = os.environ.get("FMNIST_DATA_DIR") or str(REPO.parent / "shared" / "data" / "fashion-mnist")
    if not (Path(path) / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("real Fashion-MNIST data not found (set FMNIST_DATA_DIR)")
    return Path(path)


@pytest.fixture(scope="session")
def baseline_config():
    from fmnist.config import load_config

    return load_config(REPO / "configs" / "baseline.yaml")


@pytest.fixture
def tiny_images() -> tuple[np.ndarray, np.ndarray]:
    """200 random 28x28 uint8 images with balanced labels: enough for shape and overfit tests."""
    rng = np.random.default_rng(0)
    labels = np.arange(200, dtype=np.uint8) % 10
    return rng.integers(0, 256, size=(200, 28, 28), dtype=np.uint8), labels
