"""The Keras engines (`keras`, `keras-jax`, `keras-torch`: one code, the backend KERAS_BACKEND
names, set by `fmnist.engines`) behind the contract of `fmnist.backend_api.EngineModule`.

Training and prediction are `keras_model.backend`'s, the benchmark's step loops
`keras_model.speed`'s; here are the steps parity needs. Everything but the gradient is Keras' own
API and runs on any backend; the gradient of one batch is each backend's autodiff (TensorFlow's
tape, `jax.grad` over `stateless_call`, torch's backward).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np

from fmnist.config import Config
from fmnist.precision import uses_bf16
from fmnist.splits import DataSplits, to_float_nhwc
from fmnist.weight_layout import keras_to_torch_arrays
from keras_model.backend import (
    compile_model,
    completed_epochs,
    predict,
    seed_everything,
    train,
    training_device,
    versions,
)
from keras_model.callbacks import ScheduledLearningRate
from keras_model.data import TrainBatches, fit_input
from keras_model.bf16_probe import bf16_kernels, bf16_layer_outputs, bf16_trace
from keras_model.export import export_onnx, export_versions, inference_runners, run_weights
from keras_model.model import build_model, set_shared_weights, shared_weights
from keras_model.speed import fixed_batch_steps, throughput

__all__ = [
    "bf16_kernels",
    "bf16_layer_outputs",
    "bf16_trace",
    "completed_epochs",
    "export_onnx",
    "export_versions",
    "fit_budget",
    "fixed_batch_steps",
    "inference_runners",
    "initial_weights",
    "layer_table",
    "lockstep",
    "logits",
    "predict",
    "run_weights",
    "throughput",
    "train",
    "training_device",
    "versions",
]


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


def layer_table(config: Config) -> list[dict[str, Any]]:
    model = build_model(config)
    return [
        {
            "name": layer.name,
            "shape": [int(d) for d in layer.output.shape[1:]],
            "params": sum(int(np.prod(w.shape)) for w in layer.trainable_weights),
        }
        for layer in model.layers
    ]


def initial_weights(config: Config) -> dict[str, np.ndarray]:
    keras.utils.set_random_seed(config.seed)
    return shared_weights(config, build_model(config))


def logits(config: Config, weights: dict[str, np.ndarray], images: np.ndarray, dtype: str) -> np.ndarray:
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
    config: Config, weights: dict[str, np.ndarray], images: list[np.ndarray], labels: list[np.ndarray], dtype: str
) -> dict[str, Any]:
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


def fit_budget(
    config: Config,
    splits: DataSplits,
    on_start: Callable[[], None],
    on_trained: Callable[[Callable[[], np.ndarray]], None],
) -> int:
    """The config's whole epoch budget as `train` runs it (network, optimizer, schedule, batch
    order, augmentation), without validation, checkpoints or files: what a time-to-accuracy
    measurement times. on_start() just before fit; on_trained(predict) from fit's end-of-training
    hook, before the framework's teardown, with the test set's logits to hand. Returns the epochs
    trained."""
    seed_everything(config)
    model = compile_model(build_model(config), config)
    t = config.train
    data = TrainBatches(splits.train, t.batch_size, config.seed, t.epochs, augment=config.data.augment)

    def test_logits() -> np.ndarray:
        # predict_on_batch, not model.predict: a predict() inside fit leaves a tf.data pipeline
        # whose teardown costs seconds.
        x, size = to_float_nhwc(splits.test.images), t.eval_batch_size
        return np.concatenate(
            [np.asarray(model.predict_on_batch(x[i : i + size]), dtype=np.float32) for i in range(0, len(x), size)]
        )

    class Trained(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            on_trained(test_logits)

    on_start()
    history = model.fit(
        fit_input(data),
        epochs=t.epochs,
        steps_per_epoch=data.batches_per_epoch,
        shuffle=False,
        verbose=0,
        callbacks=[ScheduledLearningRate(t, data.batches_per_epoch), Trained()],
    )
    return len(history.epoch)
