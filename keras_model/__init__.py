"""The Keras 3 implementation: the network as a `keras.Sequential`, trained with `model.fit`, on
TensorFlow, JAX or torch (KERAS_BACKEND, set by the engine: `keras_model.engine`).

Importing the package imports no framework (the engines' declarations are read without one);
TensorFlow's environment defaults are set here, before any module of the package imports Keras.
"""

from typing import Any

from fmnist.quiet import tensorflow_environment

tensorflow_environment()


def __getattr__(name: str) -> Any:
    """`from keras_model import build_model`, with Keras imported (quietly) only then."""
    if name == "build_model":
        from fmnist.quiet import tensorflow_import

        with tensorflow_import():
            from keras_model.model import build_model

        return build_model
    raise AttributeError(name)


__all__ = ["build_model"]
