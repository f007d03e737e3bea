"""The Keras 3 implementation: the network as a `keras.Sequential`, trained with `model.fit`.

Imports Keras (and its backend) only, never torch. KERAS_BACKEND picks TensorFlow (default), JAX
or torch as usual.
"""

import os
import sys
from contextlib import contextmanager

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextmanager
def _quiet_stderr():
    """TensorFlow's C++ side prints start-up notices (oneDNN, CPU features) straight to file
    descriptor 2 while it is imported, whatever TF_CPP_MIN_LOG_LEVEL says; they would bury our
    one-line messages. Python errors raised meanwhile still propagate after the restore.
    Set FMNIST_TF_NOTICES=1 to see them."""
    if os.environ.get("FMNIST_TF_NOTICES") or "tensorflow" in sys.modules:
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


with _quiet_stderr():
    import keras  # noqa: E402,F401

from keras_model.model import build_model  # noqa: E402

__all__ = ["build_model"]
