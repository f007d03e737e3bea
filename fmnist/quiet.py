"""Keeps TensorFlow's start-up notices out of the CLI's output.

TensorFlow's C++ side prints notices (oneDNN, CPU features) straight to file descriptor 2 while
it is imported, whatever TF_CPP_MIN_LOG_LEVEL says; they would bury our one-line messages. It
is imported by Keras, and by TensorBoard's event writer when TensorFlow is installed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

SHOW_ENV = "FMNIST_TF_NOTICES"  # set to 1 to see the notices


@contextmanager
def tensorflow_import() -> Iterator[None]:
    """Silences fd 2 while TensorFlow loads; Python errors raised meanwhile still propagate."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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
