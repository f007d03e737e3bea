"""The Keras engines, declared (`fmnist.engine.Engine`): Keras 3 on TensorFlow, JAX or torch.
One code, the backend KERAS_BACKEND names, which Keras reads once, at its import: two Keras
engines cannot share a process. Registered in pyproject.toml's `fmnist.engines` entry points.

Nothing here imports a framework: the registry reads these declarations in any process.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from fmnist.engine import NO_GPU, Engine
from torch_blocks.environment import DEVICE_ENVIRONMENT as TORCH_DEVICE_ENVIRONMENT

CAPABILITIES = {
    "training": "keras_model.training",
    "parity": "keras_model.parity",
    "export": "keras_model.export",
    "speed": "keras_model.speed",
    "bf16": "keras_model.bf16_probe",
    "state": "keras_model.state",
}


def loaded_environment() -> Mapping[str, str]:
    """KERAS_BACKEND as the Keras loaded in this process has it ({} before Keras loads)."""
    keras = sys.modules.get("keras")
    backend = getattr(getattr(keras, "backend", None), "backend", None)
    return {"KERAS_BACKEND": backend()} if callable(backend) else {}


def _keras(name: str, label: str, colour: str, backend: str, extra: str, frameworks: tuple[str, ...], **more) -> Engine:
    return Engine(
        name=name,
        label=label,
        colour=colour,
        model_format="keras",
        model_file="model.keras",
        extra=extra,
        frameworks=("keras", *frameworks),
        capabilities=CAPABILITIES,
        environment={"KERAS_BACKEND": backend},
        loaded_environment=loaded_environment,
        quiet_import=True,
        speed_loops=("keras",),  # model.fit / model.predict
        **more,
    )


TENSORFLOW = _keras(
    "keras",
    "Keras",
    "#E66100",  # orange, apart from Lightning's purple for colour-blind readers
    "tensorflow",
    "keras",
    ("tensorflow",),
    strategies=("auto", "mirrored"),  # tf.distribute.MirroredStrategy over the devices of one machine
    max_devices=None,
    constant_casts="float32",  # TensorFlow casts Python floats through float32
    speed_variants=("tf", "tf-xla", "tf-bf16", "tf-graph"),
)
JAX = _keras(
    "keras-jax",
    "Keras (JAX)",
    "#0072B2",  # the Okabe-Ito palette's blue
    "jax",
    "jax",
    ("jax", "jaxlib"),
    exported_by="keras",  # its .keras loads on TensorFlow, whose exporter (tf2onnx) writes the ONNX file
    speed_variants=("jax", "jax-bf16"),
    # JAX's own switch to the CPU (without it JAX also looks for a GPU, and warns when CUDA shows
    # none). On cuda, parity's jobs share the GPU (the other engine's, a second run's): JAX must
    # not take 75% of it at start. No deterministic mode: XLA's (--xla_gpu_deterministic_ops)
    # refuses to compile the max-pool's gradient (select-and-scatter has no deterministic GPU
    # kernel), so parity measures the run-to-run spread instead (docs/parity.md, "On a GPU").
    device_environment={
        "cpu": {**NO_GPU, "JAX_PLATFORMS": "cpu"},
        "cuda": {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"},
    },
)
TORCH = _keras(
    "keras-torch",
    "Keras (torch)",
    "#009E73",  # and its bluish green
    "torch",
    "keras",
    ("torch",),
    exported_by="keras",
    speed_variants=("torch",),
    device_environment=TORCH_DEVICE_ENVIRONMENT,
)
