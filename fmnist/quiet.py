"""TensorFlow's settings before it loads, and its start-up notices kept out of the CLI's output.

TensorFlow's C++ side prints notices (oneDNN, CPU features) straight to file descriptor 2 while
it is imported, whatever TF_CPP_MIN_LOG_LEVEL says; they would bury our one-line messages. It
is imported by Keras, and by TensorBoard's event writer when TensorFlow is installed.

TensorFlow switches its oneDNN kernels on by default only on CPUs with AVX-512 VNNI/BF16 or AMX.
On an AVX2-only CPU they made Keras 3.7x faster on strong.yaml (318 against 87 images/s,
benchmarks/results/2026-12-01-cpu-avx2-strong-onednn), so they are on everywhere unless the user
sets TF_ENABLE_ONEDNN_OPTS=0: the same kernels on every CPU, as on the ones measured first.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

SHOW_ENV = "FMNIST_TF_NOTICES"  # set to 1 to see the notices


def tensorflow_environment() -> None:
    """Defaults for TensorFlow's environment variables (the user's own values win); they are read
    when TensorFlow loads, so this must run before anything imports it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


@contextmanager
def tensorflow_import() -> Iterator[None]:
    """Silences fd 2 while TensorFlow loads; Python errors raised meanwhile still propagate."""
    tensorflow_environment()
    if os.environ.get(SHOW_ENV) or "tensorflow" in sys.modules:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
