"""The Keras engines' export capability (`fmnist.capabilities.Export`): a model
built from weights in the shared layout, written to ONNX with Keras' own exporter
(`model.export(format="onnx")`, which runs tf2onnx on the TensorFlow backend), and the run's
model as Keras runs it for inference timing.

The export is float32: Keras refuses any other dtype policy, so a run trained under
mixed_bfloat16 is rebuilt with the float32 policy and given the same (float32) weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from fmnist import IMAGE_SHAPE, rundir
from fmnist.config import Config, load_config, with_overrides
from fmnist.onnx_model import INPUT_NAME
from keras_model.training import load_model
from keras_model.model import build_model, set_shared_weights, shared_weights

#: Beyond Keras: tf2onnx runs under Keras' exporter (`fmnist.capabilities.Export.needs`).
needs = ("onnx", "onnxruntime", "tf2onnx")


def run_weights(run_dir: Path) -> dict[str, np.ndarray]:
    """The run's trained weights (loaded in safe mode by the backend's loader), shared layout."""
    config = load_config(Path(run_dir) / rundir.CONFIG_FILE)
    return shared_weights(config, load_model(run_dir))


def float32_model(config: Config, weights: dict[str, np.ndarray]) -> keras.Model:
    """The config's network with the float32 policy and these weights (float32 in every policy:
    mixed policies keep float32 variables)."""
    model = build_model(with_overrides(config, {"train.precision": "float32"}))
    set_shared_weights(config, model, weights)
    return model


def export_onnx(config: Config, weights: dict[str, np.ndarray], path: Path) -> None:
    """Keras' exporter, input named `pixels` with a dynamic batch (the output is renamed by the caller)."""
    model = float32_model(config, weights)
    spec = keras.InputSpec(shape=(None, *IMAGE_SHAPE, 1), dtype="float32", name=INPUT_NAME)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Keras' tf2onnx patch probes np.object
        model.export(str(path), format="onnx", verbose=False, input_signature=[spec])


def inference_runners(run_dir: Path, threads: int) -> dict[str, Callable[[np.ndarray], Any]]:
    """The run's float32 model called as Keras users call it, on NHWC float32 pixels."""
    config = load_config(Path(run_dir) / rundir.CONFIG_FILE)
    model = float32_model(config, run_weights(run_dir))
    return {
        "keras: model(x)": lambda x: model(x, training=False).numpy(),
        "keras: predict_on_batch": model.predict_on_batch,
    }


def export_versions() -> dict[str, str]:
    import tensorflow as tf
    import tf2onnx

    return {"keras": keras.__version__, "tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__}
