"""The Keras 3 implementation: the network as a `keras.Sequential`, trained with `model.fit`.

Imports Keras (and its backend) only, never torch. KERAS_BACKEND picks TensorFlow (default), JAX
or torch as usual.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the CLI

from keras_model.model import build_model  # noqa: E402

__all__ = ["build_model"]
