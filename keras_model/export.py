"""A Keras run's model to ONNX with Keras' own exporter (`model.export(format="onnx")`, which
runs tf2onnx on the TensorFlow backend), and the float32 reference it is checked against.

The export is float32: Keras refuses any other dtype policy, so a run trained under
mixed_bfloat16 is rebuilt with the float32 policy and given the same (float32) weights. That
rebuilt model is also the reference the ONNX file is checked against.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
import numpy as np

from fmnist import IMAGE_SHAPE, rundir
from fmnist.config import load_config, with_overrides
from fmnist.onnx_model import INPUT_NAME
from keras_model.backend import load_model
from keras_model.model import build_model

REFERENCE = "the Keras model rebuilt with the float32 dtype policy and the run's weights"
PREDICT_BATCH = 500


def float32_model(run_dir: Path) -> keras.Model:
    """The run's model (loaded in safe mode by the backend's loader), in float32."""
    config = load_config(Path(run_dir) / rundir.CONFIG_FILE)
    trained = load_model(run_dir)
    model = build_model(with_overrides(config, {"train.precision": "float32"}))
    model.set_weights(trained.get_weights())  # float32 in every policy: mixed policies keep float32 variables
    return model


def export_onnx(model: keras.Model, path: Path) -> None:
    """Keras' exporter, input named `pixels` with a dynamic batch (the output is renamed by the caller)."""
    spec = keras.InputSpec(shape=(None, *IMAGE_SHAPE, 1), dtype="float32", name=INPUT_NAME)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Keras' tf2onnx patch probes np.object
        model.export(str(path), format="onnx", verbose=False, input_signature=[spec])


def logits(model: keras.Model, images: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """The model's logits for raw [N, 28, 28] pixels, computed in float32 or float64 (a float64
    clone with the same weights cast up: what float32 rounding is measured against)."""
    if dtype != "float32":
        model = _cast(model, dtype)
    x = np.asarray(images, dtype=dtype).reshape(-1, *IMAGE_SHAPE, 1)
    return np.asarray(model.predict(x, batch_size=PREDICT_BATCH, verbose=0), dtype=np.float64)


def _cast(model: keras.Model, dtype: str) -> keras.Model:
    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        return layer.__class__.from_config({**layer.get_config(), "dtype": dtype})

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights([w.astype(dtype) for w in model.get_weights()])
    return copy


def versions() -> dict[str, str]:
    import tensorflow as tf
    import tf2onnx

    return {"keras": keras.__version__, "tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__}
