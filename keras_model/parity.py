"""The steps `fmnist parity` compares (`fmnist.capabilities.Parity`), for every Keras engine
(`keras`, `keras-jax`, `keras-torch`: one code, the backend KERAS_BACKEND names).

Everything but the gradient is Keras' own API and runs on any backend; the gradient of one batch
is each backend's autodiff (TensorFlow's tape, `jax.grad` over `stateless_call`, torch's backward).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from fmnist.config import Config
from fmnist.precision import uses_bf16
from fmnist.weight_layout import keras_to_torch_arrays
from keras_model.device import parity_device, placement
from keras_model.training import compile_model
from keras_model.model import build_model, set_shared_weights, shared_weights

__all__ = ["initial_weights", "layer_table", "lockstep", "logits", "placement"]


@contextlib.contextmanager
def float_type(dtype: str) -> Iterator[None]:
    """Keras' global float type for the models built inside the block (restored afterwards).

    float64 off TensorFlow needs two switches more, or parts of the model quietly compute in
    float32: JAX's x64 mode, and Keras' own type promotion, which maps float64 to float32 on
    every backend but TensorFlow ("aligned with JAX's default"), so BatchNormalization, which
    computes in result_type(input, "float32"), would normalise a float64 model in float32
    (docs/parity.md, "Keras on JAX and torch")."""
    from keras.src.backend.common import dtypes as promotion

    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    demoted = promotion.BIT64_TO_BIT32_DTYPE.get("float64")
    x64 = None
    if keras.backend.backend() == "jax":
        import jax

        x64 = jax.config.jax_enable_x64
        jax.config.update("jax_enable_x64", x64 or dtype == "float64")
    if dtype == "float64":
        promotion.BIT64_TO_BIT32_DTYPE["float64"] = "float64"
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)
        promotion.BIT64_TO_BIT32_DTYPE["float64"] = demoted
        if x64 is not None:
            import jax

            jax.config.update("jax_enable_x64", x64)


def layer_table(config: Config, device: str = "cpu") -> list[dict[str, Any]]:
    parity_device(device)
    model = build_model(config)
    return [
        {
            "name": layer.name,
            "shape": [int(d) for d in layer.output.shape[1:]],
            "params": sum(int(np.prod(w.shape)) for w in layer.trainable_weights),
        }
        for layer in model.layers
    ]


def initial_weights(config: Config, device: str = "cpu") -> dict[str, np.ndarray]:
    parity_device(device)
    keras.utils.set_random_seed(config.seed)
    return shared_weights(config, build_model(config))


def logits(
    config: Config, weights: dict[str, np.ndarray], images: np.ndarray, dtype: str, device: str = "cpu"
) -> np.ndarray:
    parity_device(device)
    with float_type(dtype):
        model = build_model(config)
        set_shared_weights(config, model, weights)
        out = model.predict(images.astype(dtype)[..., None], batch_size=500, verbose=0)
    return np.asarray(out, np.float64)


def _gradients(model: keras.Model, x: np.ndarray, y: np.ndarray, graph: bool) -> list[Any]:
    """d(training loss)/d(trainable weights) of one batch, training mode, in
    `model.trainable_weights` order. graph (TensorFlow): in a tf.function, as model.fit runs it
    (in bfloat16 TensorFlow then fuses a dense layer's bias add into its matmul: one rounding)."""
    backend = keras.backend.backend()
    loss_fn = model.loss
    if backend == "tensorflow":
        import tensorflow as tf

        def tape(x, y):
            with tf.GradientTape() as g:
                loss = loss_fn(y, model(x, training=True))
            return g.gradient(loss, model.trainable_weights)

        return list(tf.function(tape)(x, y) if graph else tape(x, y))
    if backend == "jax":
        import jax

        fixed = [v.value for v in model.non_trainable_variables]

        def loss_of(trainable):
            out, _ = model.stateless_call(trainable, fixed, x, training=True)
            return loss_fn(y, out)

        return list(jax.grad(loss_of)([v.value for v in model.trainable_variables]))
    if backend == "torch":
        for v in model.trainable_variables:
            v.value.grad = None
        loss_fn(keras.ops.convert_to_tensor(y), model(keras.ops.convert_to_tensor(x), training=True)).backward()
        return [v.value.grad for v in model.trainable_variables]
    raise RuntimeError(f"no gradient for Keras on {backend}")


def step_gradients(config: Config, model: keras.Model, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The first batch's gradients in the shared layout; the batch-norm statistics the forward
    pass moved are put back, so the step that follows starts where it would without this."""
    state = [np.array(v.numpy()) for v in model.non_trainable_variables]
    grads = _gradients(model, x, y, graph=uses_bf16(config.train.precision))
    for v, value in zip(model.non_trainable_variables, state):
        v.assign(value)
    index = {id(v): i for i, v in enumerate(model.trainable_weights)}
    by_layer = {
        layer.name: [keras.ops.convert_to_numpy(grads[index[id(w)]]) for w in layer.trainable_weights]
        for layer in model.layers
    }
    return keras_to_torch_arrays(config, by_layer)


def lockstep(
    config: Config,
    weights: dict[str, np.ndarray],
    images: list[np.ndarray],
    labels: list[np.ndarray],
    dtype: str,
    casts: str = "float32",
    device: str = "cpu",
) -> dict[str, Any]:
    """Keras' own train_on_batch; `casts` is the backend's to decide (TensorFlow casts Python
    floats through float32, JAX and torch exactly: the engines declare which)."""
    parity_device(device)
    np_dtype = np.dtype(dtype)
    with float_type(dtype):
        model = compile_model(build_model(config), config)
        set_shared_weights(config, model, weights)
        out: dict[str, Any] = {"loss": []}
        for step, (x, y) in enumerate(zip(images, labels)):
            x = x.astype(np_dtype)[..., None]
            if step == 0:
                out["grads"] = step_gradients(config, model, x, y.astype(np.int32))
            out["loss"].append(float(model.train_on_batch(x, y.astype(np.int32))[0]))
        state = shared_weights(config, model)
    out["running"] = {k: v for k, v in state.items() if k.endswith(("running_mean", "running_var"))}
    return out
