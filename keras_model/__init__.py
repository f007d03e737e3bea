"""The Keras 3 implementation: the network as a `keras.Sequential`, trained with `model.fit`.

Imports Keras (and its backend) only, never torch. KERAS_BACKEND picks TensorFlow (default), JAX
or torch as usual.
"""

from fmnist.quiet import tensorflow_import

with tensorflow_import():
    import keras  # noqa: F401

from keras_model.model import build_model  # noqa: E402

__all__ = ["build_model"]
