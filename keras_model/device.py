"""Where a Keras engine's parity computes (`fmnist.capabilities.Parity.placement`): the CPU as
ever, or the GPU at full float32 precision (no TF32), deterministic where the backend can be.
The backend is the one KERAS_BACKEND named; each is set up its own way."""

from __future__ import annotations

from typing import Any

import keras

from fmnist.cpu_features import cpu_model
from fmnist.errors import FmnistError

#: Said of Keras on JAX on a GPU: why no deterministic mode is set (docs/parity.md, "On a GPU").
JAX_NOT_DETERMINISTIC = (
    "no deterministic mode: XLA's (--xla_gpu_deterministic_ops) refuses to compile the max-pool's"
    " gradient (select-and-scatter has no deterministic GPU kernel); the run-to-run spread is measured instead"
)


def placement(device: str) -> dict[str, Any]:
    """This process set up to compute on `device`: {"device": its name, "settings": what was set}.
    Refuses (one line) a device the backend does not see."""
    if device == "cpu":
        return {"device": cpu_model(), "settings": []}
    if device != "cuda":
        raise FmnistError(f"device {device!r}: parity computes on cpu or cuda")
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax()
    if backend == "tensorflow":
        return _tensorflow()
    from torch_blocks.parity import placement as torch_placement  # Keras on torch: torch's own settings

    return torch_placement(device)


def parity_device(device: str) -> None:
    """`placement`, for a parity function to call before it builds anything (cheap when repeated)."""
    if device != "cpu":
        placement(device)


def _jax() -> dict[str, Any]:
    import jax

    try:
        gpus = jax.devices("gpu")
    except RuntimeError:  # no GPU platform at all (a CPU-only jaxlib, or JAX_PLATFORMS=cpu)
        gpus = []
    if not gpus:
        platforms = ", ".join(sorted({d.platform for d in jax.devices()}))
        raise FmnistError(f"--device cuda: JAX {jax.__version__} sees no GPU (its devices: {platforms})")
    if jax.devices()[0].platform != "gpu":
        raise FmnistError(f"--device cuda: JAX computes on {jax.devices()[0].platform} by default, not the GPU")
    jax.config.update("jax_default_matmul_precision", "highest")  # read when a function is traced
    return {
        "device": gpus[0].device_kind,
        "settings": [
            "float32 at full precision: jax_default_matmul_precision = 'highest' (matmuls and convolutions, no TF32)",
            JAX_NOT_DETERMINISTIC,
        ],
    }


def _tensorflow() -> dict[str, Any]:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        raise FmnistError(
            f"--device cuda: TensorFlow {tf.__version__} sees no GPU (built with CUDA: {tf.test.is_built_with_cuda()})"
        )
    tf.config.experimental.enable_tensor_float_32_execution(False)
    tf.config.experimental.enable_op_determinism()
    details = tf.config.experimental.get_device_details(gpus[0])
    return {
        "device": details.get("device_name", gpus[0].name),
        "settings": [
            "TF32 off: tf.config.experimental.enable_tensor_float_32_execution(False)",
            "deterministic ops: tf.config.experimental.enable_op_determinism()",
        ],
    }
