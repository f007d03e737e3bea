"""`build_model(config)`: the config's network as a Keras model taking raw pixels (NHWC)."""

from __future__ import annotations

import keras
import numpy as np

from fmnist import IMAGE_SHAPE
from fmnist.architecture import LayerSpec, layer_plan
from fmnist.config import Config
from fmnist.precision import uses_bf16
from fmnist.weight_layout import keras_to_torch_arrays, torch_to_keras_arrays


#: Layers that compute in float32 under the mixed_bfloat16 policy, as the torch network does under
#: bf16 autocast: the input normalisation (torch's is a float32 multiply-add, rounded once to
#: bfloat16 by the first conv) and dropout (drawn and scaled in float32, rounded once by the
#: next layer; in bfloat16 Keras drew its uniform numbers with 8 bits and dropped too many units).
#: docs/parity.md, "bfloat16 mixed precision", has the measurements.
FLOAT32_IN_MIXED_PRECISION = ("normalize", "dropout")


def _layer(spec: LayerSpec, init: str, dtype: str | None) -> keras.layers.Layer:
    a = spec.args
    if dtype == "mixed_bfloat16" and spec.kind in FLOAT32_IN_MIXED_PRECISION:
        dtype = "float32"
    named = {"name": spec.name, "dtype": dtype}
    if spec.kind == "normalize":
        # x * (1/std) + (-mean/std): the torch network does the same two float32 operations. The
        # constants are rounded to float32 here: TensorFlow's cast of a Python float goes through
        # float32, JAX's and torch's do not, and in float64 parity they would differ by 2e-8.
        scale, offset = float(np.float32(1.0 / a["std"])), float(np.float32(-a["mean"] / a["std"]))
        return keras.layers.Rescaling(scale=scale, offset=offset, **named)
    if spec.kind == "conv":
        return keras.layers.Conv2D(
            a["filters"],
            a["kernel_size"],
            strides=a["stride"],
            padding=a["padding"],
            use_bias=a["use_bias"],
            kernel_initializer=init,
            bias_initializer="zeros",
            **named,
        )
    if spec.kind == "batch_norm":
        return keras.layers.BatchNormalization(momentum=a["momentum"], epsilon=a["epsilon"], **named)
    if spec.kind == "relu":
        return keras.layers.ReLU(**named)
    if spec.kind == "max_pool":
        return keras.layers.MaxPooling2D(pool_size=a["pool"], **named)
    if spec.kind == "dropout":
        return keras.layers.Dropout(a["rate"], **named)
    if spec.kind == "flatten":
        return keras.layers.Flatten(**named)
    if spec.kind == "dense":
        # No softmax: the model returns logits and the loss is computed from_logits, which is
        # numerically safer and matches torch's cross_entropy.
        return keras.layers.Dense(a["units"], kernel_initializer=init, bias_initializer="zeros", **named)
    raise ValueError(f"unknown layer kind {spec.kind!r}")


def build_model(config: Config) -> keras.Model:
    """Raw pixel values in (float32, N x 28 x 28 x 1, 0-255), logits out (N x 10)."""
    # mixed_bfloat16: bfloat16 compute, float32 weights (Lightning's bf16-mixed autocast does the
    # same); otherwise Keras' global policy (float32, or float64 in the parity check).
    dtype = "mixed_bfloat16" if uses_bf16(config.train.precision) else None
    layers = [_layer(spec, config.model.init, dtype) for spec in layer_plan(config)]
    return keras.Sequential([keras.Input(shape=(*IMAGE_SHAPE, 1), name="pixels"), *layers], name=config.name)


def shared_weights(config: Config, model: keras.Model) -> dict[str, np.ndarray]:
    """The model's weights in the shared layout (`fmnist.weight_layout`): what crosses engines."""
    return keras_to_torch_arrays(config, {layer.name: layer.get_weights() for layer in model.layers})


def set_shared_weights(config: Config, model: keras.Model, weights: dict[str, np.ndarray]) -> None:
    for name, values in torch_to_keras_arrays(config, weights).items():
        layer = model.get_layer(name)
        layer.set_weights([v.astype(w.dtype) for v, w in zip(values, layer.get_weights())])
