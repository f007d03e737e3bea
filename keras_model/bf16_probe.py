"""What a Keras engine computes under the mixed_bfloat16 policy, seen on live tensors, for the
bf16 parity checks (`fmnist parity --precision bf16-mixed`, compare.bf16_*): the dtype of every
op of a training step as the backend runs it, each layer's output, and the kernels a bf16 step
runs fed known numbers. Numpy in and out (`keras_model.engine` declares them as the engines' bf16
functions); the tools judge the numbers in another process.

The policy is Keras' own on every backend; the kernels, and how a training step is compiled, are
the backend's: on TensorFlow in a tf.function, as `model.fit` runs it (TensorFlow then fuses a
dense layer's bias add into its matmul: one rounding)."""

from __future__ import annotations

import re
from typing import Any

import keras
import numpy as np

from fmnist.config import Config
from fmnist.op_log import op_record
from keras_model.device import parity_device
from keras_model.training import compile_model, seed_everything
from keras_model.model import FLOAT32_IN_MIXED_PRECISION, build_model, set_shared_weights

#: Why a probe is missing on a backend, recorded in the result instead of the numbers.
NOT_ON_BACKEND = "not measured for Keras on {backend} yet: {what}"


def _backend() -> str:
    return keras.backend.backend()


def _float32(value: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(value, "float32")))


def _dtype(value: Any) -> str:
    return keras.backend.standardize_dtype(value.dtype)


def _compiled(fn: Any) -> Any:
    """fn as a training step runs on this backend: a tf.function on TensorFlow, else as it is."""
    if _backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    return fn


# ---------------------------------------------------------------- the op log of one training step


def _tensorflow_trace(config: Config, batch: int) -> dict[str, Any]:
    """The ops of `model.train_step` traced in a tf.function (the graph `model.fit` runs), with
    the layer each belongs to and its tensors' dtypes."""
    import tensorflow as tf

    seed_everything(config)  # the kernels training picks (deterministic ones change the loss's ops)
    model = compile_model(build_model(config), config)
    model.optimizer.build(model.trainable_variables)
    x, y = (tf.constant(a) for a in _train_step_input(batch))
    graph = tf.function(model.train_step).get_concrete_function((x, y)).graph
    names = {layer.name for layer in model.layers}
    optimizer_scope = model.optimizer.name
    ops = []
    for op in graph.get_operations():
        parts = op.name.split("/")
        layer = next((p.rsplit("_", 1)[0] for p in parts if p.rsplit("_", 1)[0] in names), "")
        phase = (
            "backward"
            if parts[0] == "gradient_tape"
            else "optimizer"
            if parts[0].startswith(optimizer_scope)
            else "forward"
        )
        ops.append(
            {
                "phase": phase,
                "layer": layer,
                "op": op.type,
                "inputs": [t.dtype.name for t in op.inputs],
                "outputs": [t.dtype.name for t in op.outputs],
            }
        )
    return {"vocabulary": "tensorflow", "ops": ops}


def _train_step_input(batch: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).uniform(0, 255, (batch, 28, 28, 1)).astype(np.float32)
    return x, np.arange(batch, dtype=np.int32) % 10


def _where(scopes: list[str], layers: set[str], optimizer: str) -> tuple[str, str]:
    """(phase, layer) of an op from the Keras name scopes it ran in, innermost last."""
    if any(s.startswith(optimizer) for s in scopes):
        return "optimizer", ""
    if "compile_loss" in scopes:
        return "forward", "loss"
    return "forward", next((s for s in reversed(scopes) if s in layers), "")


def _jax_trace(config: Config, batch: int) -> dict[str, Any]:
    """The jaxpr of `model.train_step` (what `model.fit` jit-compiles: gradient, optimizer,
    metrics), every primitive with its layer (Keras names a jax.named_scope per layer) and dtypes;
    a call (jit, custom_jvp) is read through to its primitives. Backward: a transposed op."""
    import jax

    seed_everything(config)
    model = compile_model(build_model(config), config)
    x, y = _train_step_input(batch)
    model._symbolic_build(data_batch=(x, y, None))  # optimizer and metrics variables, as fit builds them
    state = model._get_jax_state(
        trainable_variables=True, non_trainable_variables=True, optimizer_variables=True, metrics_variables=True
    )
    closed = jax.make_jaxpr(model.train_step)(state, (x, y, None))
    layers, optimizer, ops = {layer.name for layer in model.layers}, model.optimizer.name, []

    def dtypes(values: list[Any]) -> list[str]:
        return [str(v.aval.dtype) for v in values if hasattr(v.aval, "dtype")]

    def walk(jaxpr: Any, outer: str) -> None:
        for eqn in jaxpr.eqns:
            stack = f"{outer}/{eqn.source_info.name_stack}"
            inner = [getattr(v, "jaxpr", v) for v in eqn.params.values() if hasattr(getattr(v, "jaxpr", v), "eqns")]
            for sub in inner:  # a call: its primitives
                walk(sub, stack)
            if inner:
                continue
            scopes = [p for p in re.split(r"[/()]", stack) if p]
            phase, layer = _where(scopes, layers, optimizer)
            if phase == "forward" and "transpose" in scopes:
                phase = "backward"
            ops.append(
                {
                    "phase": phase,
                    "layer": layer,
                    "op": eqn.primitive.name,
                    "inputs": dtypes(eqn.invars),
                    "outputs": dtypes(eqn.outvars),
                }
            )

    walk(closed.jaxpr, "")
    return {"vocabulary": "jax", "ops": ops}


def _torch_trace(config: Config, batch: int) -> dict[str, Any]:
    """Every aten op of `model.train_on_batch` (Keras' torch train step, eager, as `model.fit`
    runs it: forward, loss, backward, optimizer) as it dispatches, with its layer (the Keras name
    scopes it runs in) and dtypes. Backward: an op the autograd engine runs."""
    import torch
    from keras.src.backend.common import global_state
    from torch.utils._python_dispatch import TorchDispatchMode

    seed_everything(config)
    model = compile_model(build_model(config), config)
    x, y = _train_step_input(batch)
    model.train_on_batch(x, y)  # built, optimizer and metrics variables made: the next step is a plain one
    layers, optimizer, ops = {layer.name for layer in model.layers}, model.optimizer.name, []

    class Log(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            scopes = [s.name for s in global_state.get_global_attribute("name_scope_stack", default=[]) or []]
            phase, layer = _where(scopes, layers, optimizer)
            if torch._C._current_autograd_node() is not None:
                phase = "backward"
            ops.append(op_record({"phase": phase, "layer": layer}, func, args, out))
            return out

    with Log():
        model.train_on_batch(x, y)
    return {"vocabulary": "keras-torch", "ops": ops}


def bf16_trace(config: Config, batch: int, device: str = "cpu") -> dict[str, Any]:
    """One training step under the config's bf16 policy, as the backend's training runs it,
    every op with its layer and dtypes."""
    parity_device(device)
    trace = {"tensorflow": _tensorflow_trace, "jax": _jax_trace, "torch": _torch_trace}.get(_backend())
    if trace is None:
        return {
            "vocabulary": _backend(),
            "ops": [],
            "unavailable": NOT_ON_BACKEND.format(backend=_backend(), what="op log"),
        }
    return trace(config, batch)


# ---------------------------------------------------------------- each layer's output


def bf16_layer_outputs(
    config: Config,
    weights: dict[str, np.ndarray],
    pixels: np.ndarray,
    partner_outputs: list[np.ndarray] | None = None,
    partner_dtypes: list[str] | None = None,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Each layer's output, training mode, under the config's precision (bf16-mixed: the
    mixed_bfloat16 policy). Chained from `pixels`, or, given the partner's outputs, each layer fed
    the partner's output of the layer before (in its dtype). On JAX and torch each op runs on its
    own, every bfloat16 value rounded as its dtype says (a jit-compiled JAX step may keep excess
    precision: `bf16_kernels` shows where)."""
    parity_device(device)
    model = build_model(config)
    set_shared_weights(config, model, weights)
    x = pixels.astype(np.float32)[..., None]

    def chained(x):
        outs = []
        for layer in model.layers:
            x = layer(x, training=True)
            outs.append(x)
        return outs

    def fed(x, *inputs):
        ins = [x, *(keras.ops.cast(v, d) for v, d in zip(inputs, partner_dtypes))]
        return [layer(v, training=True) for layer, v in zip(model.layers, ins)]

    if partner_outputs is None:
        outs = _compiled(chained)(x)
    else:
        outs = _compiled(fed)(x, *partner_outputs[:-1])
    return [
        {"name": layer.name, "output": _float32(o), "dtype": _dtype(o), "note": None}
        for layer, o in zip(model.layers, outs)
    ]


# ---------------------------------------------------------------- the kernels, fed known numbers


def _kernel_step(dense: Any, conv: Any, a: dict[str, np.ndarray]) -> list[Any]:
    """Forward of both layers and the gradients of sum(output * fed-back gradient), as the
    backend's training step computes them: (dense out, conv out, dense bias grad, conv kernel
    grad, conv bias grad). TensorFlow in a tf.function, JAX jit-compiled (as model.fit does),
    torch eagerly (as Keras' torch trainer runs)."""
    x, g, xi, gi = (a[k] for k in ("dense_input", "dense_grad", "conv_input", "conv_grad"))
    weights = [dense.bias, conv.kernel, conv.bias]

    def losses(yd: Any, yc: Any) -> Any:
        f32 = lambda t: keras.ops.cast(t, "float32")  # noqa: E731
        return keras.ops.sum(keras.ops.multiply(f32(yd), g)) + keras.ops.sum(keras.ops.multiply(f32(yc), gi))

    if _backend() == "tensorflow":
        import tensorflow as tf

        @tf.function
        def step(x, g, xi, gi):
            with tf.GradientTape(persistent=True) as tape:
                yd, yc = dense(x), conv(xi)
                loss_d = tf.reduce_sum(tf.cast(yd, tf.float32) * g)
                loss_c = tf.reduce_sum(tf.cast(yc, tf.float32) * gi)
            return (
                yd,
                yc,
                tape.gradient(loss_d, dense.bias),
                tape.gradient(loss_c, conv.kernel),
                tape.gradient(loss_c, conv.bias),
            )

        return list(step(x, g, xi, gi))
    if _backend() == "jax":
        import jax

        def loss(values: list[Any]) -> tuple[Any, tuple[Any, Any]]:
            with keras.StatelessScope(state_mapping=list(zip(weights, values))):
                yd, yc = dense(x), conv(xi)
            return losses(yd, yc), (yd, yc)

        grads, (yd, yc) = jax.jit(jax.grad(loss, has_aux=True))([w.value for w in weights])
        return [yd, yc, *grads]
    for w in weights:
        w.value.grad = None
    yd, yc = dense(x), conv(xi)
    losses(yd, yc).backward()
    return [yd, yc, *(w.value.grad for w in weights)]


def bf16_kernels(
    config: Config, arrays: dict[str, np.ndarray], dropout_rates: list[float], device: str = "cpu"
) -> dict[str, Any]:
    """The kernels a bf16 training step runs, fed bfloat16-valued numbers, as training runs them:
    a Dense and a Conv2D layer under mixed_bfloat16, forward and gradients in one step; the
    config's own input normalisation; dropout in the policy the model gives it. Outputs and
    gradients in the shared layout (NHWC, HWIO), float32."""
    parity_device(device)
    dense = keras.layers.Dense(arrays["dense_kernel"].shape[1], dtype="mixed_bfloat16")
    size, _, channels, filters = arrays["conv_kernel"].shape
    conv = keras.layers.Conv2D(filters, size, padding="same", dtype="mixed_bfloat16")
    dense.build((None, arrays["dense_kernel"].shape[0]))
    conv.build((None, *arrays["conv_input"].shape[1:3], channels))
    dense.set_weights([arrays["dense_kernel"], arrays["dense_bias"]])
    conv.set_weights([arrays["conv_kernel"], arrays["conv_bias"]])
    names = ("dense", "conv", "dense_bias_grad", "conv_kernel_grad", "conv_bias_grad")
    out = {name: _float32(t) for name, t in zip(names, _kernel_step(dense, conv, arrays))}

    bf16 = lambda t: keras.ops.cast(keras.ops.cast(t, "bfloat16"), "float32")  # noqa: E731  as the next layer sees it
    normalize = build_model(config).get_layer("normalize")
    out["normalize"] = _float32(_compiled(lambda x: bf16(normalize(x)))(arrays["pixels"][..., None]))[..., 0]
    for rate in dropout_rates:
        dtype = "float32" if "dropout" in FLOAT32_IN_MIXED_PRECISION else "mixed_bfloat16"
        layer = keras.layers.Dropout(rate, dtype=dtype, seed=1)
        drop = _compiled(lambda v: bf16(layer(keras.ops.cast(v, "bfloat16"), training=True)))
        out[f"dropout_{rate:g}"] = _float32(drop(arrays["dropout_input"]))
    return out
