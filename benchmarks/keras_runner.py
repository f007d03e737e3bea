"""The Keras side of a benchmark measurement, in a worker process (`benchmarks.worker`):
`model.fit` / `model.predict` of `keras_model.build_model(config)` over the very batches the
torch runners get, on the Keras backend named by KERAS_BACKEND (set by the parent from the
variant table)."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from benchmarks.measuring import batch_order, rss_mib, timing_from_stamps, training_images
from benchmarks.variants import Variant
from fmnist.config import Config


def measure_keras(spec: dict[str, Any], config: Config, variant: Variant) -> dict[str, Any]:
    """Training and inference timings of Keras on the worker's backend."""
    import keras_model  # noqa: F401  (TensorFlow's settings before it loads)
    import keras

    from keras_model.backend import compile_model
    from fmnist.splits import to_float_nhwc
    from keras_model.data import EvalBatches
    from keras_model.model import build_model

    backend = keras.backend.backend()
    if backend != variant.keras_backend:
        raise RuntimeError(
            f"variant {variant.name!r} runs on Keras' {variant.keras_backend}, this process on {backend}"
        )
    keras.utils.set_random_seed(config.seed)
    flags: dict[str, Any] = {}
    if backend == "tensorflow":
        import tensorflow as tf

        # XLA refuses TensorFlow's op determinism (Keras then silently drops jit_compile), so the
        # XLA variant runs without it; every other variant keeps the config's setting.
        deterministic = config.train.deterministic and variant.jit_compile is not True
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        if not config.train.allow_tf32:
            tf.config.experimental.enable_tensor_float_32_execution(False)
        if spec.get("tf_threads"):
            tf.config.threading.set_intra_op_parallelism_threads(int(spec["tf_threads"]))
            tf.config.threading.set_inter_op_parallelism_threads(int(spec["tf_threads"]))
        flags["op_determinism"] = deterministic
        if spec["device"] == "cuda" and not tf.config.list_physical_devices("GPU"):
            raise RuntimeError("--device cuda: TensorFlow sees no GPU (tensorflow-cpu is installed?)")
    if spec["device"] == "cuda":
        _require_gpu(backend)  # else Keras would quietly measure the CPU

    split, data_note = training_images(spec, config)
    bs, warmup, steps = spec["batch_size"], spec["warmup"], spec["steps"]
    total = warmup + steps
    model = build_model(config)
    compile_model(model, config)
    if variant.jit_compile is not None:
        model.jit_compile = variant.jit_compile
    flags["jit_compile"] = bool(model.jit_compile)
    flags["dtype_policy"] = model.layers[-1].dtype_policy.name

    order = batch_order(len(split), bs, total, config.seed)

    class Batches(keras.utils.PyDataset):
        """The very batches the torch runners get, built as `keras_model.data.TrainBatches` does
        (index the uint8 images, float32 NHWC, int32 labels), full batches only."""

        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)

        def __len__(self) -> int:
            return len(order)

        def __getitem__(self, i: int):
            idx = order[i]
            return to_float_nhwc(split.images[idx]), split.labels[idx].astype(np.int32)

    train_data = Batches()
    sync = _keras_sync(backend, spec["device"])

    class StepClock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.train: list[float] = []
            self.predict: list[float] = []

        def on_train_batch_end(self, batch, logs=None) -> None:
            sync(self.model)
            self.train.append(time.perf_counter())

        def on_predict_batch_end(self, batch, logs=None) -> None:
            sync(self.model)
            self.predict.append(time.perf_counter())

    clock = StepClock()
    rss_before = rss_mib()
    start = time.perf_counter()
    history = model.fit(train_data, epochs=1, steps_per_epoch=total, shuffle=False, callbacks=[clock], verbose=0)
    train = timing_from_stamps(start, clock.train, warmup, bs)
    loss = float(history.history["loss"][-1])
    if not np.isfinite(loss):
        raise RuntimeError(f"the training loss became {loss}")

    eval_data = EvalBatches(split.images[np.concatenate(order)], None, bs)
    start = time.perf_counter()
    model.predict(eval_data, callbacks=[clock], verbose=0)
    infer = timing_from_stamps(start, clock.predict, warmup, bs)

    out: dict[str, Any] = {
        "train": train,
        "inference": infer,
        "data": data_note,
        "rss_before_mib": rss_before,
        "final_loss": loss,
        "flags": flags,
        "threads": _keras_threads(backend),
    }
    peak = _keras_device_peak(backend, spec["device"])
    if peak is not None:
        out["peak_memory_mib"], out["peak_memory_kind"] = peak
    return out


def _keras_sync(backend: str, device: str) -> Callable[[Any], None]:
    """What the step clock calls, with the model, before it reads the time: waits for the step's
    device work. On CPU nothing: the callback list has already turned the step's logs into
    Python numbers, which waits for them."""
    if device != "cuda":
        return lambda model: None
    if backend == "torch":
        import torch

        return lambda model: torch.cuda.synchronize()
    if backend == "jax":
        return _jax_wait
    return lambda model: None  # TensorFlow: the callback's logs are fetched to numpy, which waits


def _jax_wait(model: Any) -> None:
    """Blocks until the JAX step has finished on the device. JAX dispatches asynchronously, and
    during fit/predict Keras holds the updated weights and optimizer state in `model._jax_state`
    (they reach the variables only at the end of the epoch): waiting for all of it waits for the
    step's last kernel, whichever output the callback list happened to convert."""
    import jax

    jax.block_until_ready(getattr(model, "_jax_state", None))


def _require_gpu(backend: str) -> None:
    """Refuses to measure `--device cuda` on a Keras backend that sees no GPU."""
    if backend == "jax":
        import jax

        if jax.default_backend() != "gpu":
            raise RuntimeError(
                f"--device cuda: JAX runs on {jax.default_backend()} (no CUDA plugin for jax installed?)"
            )
    elif backend == "torch":
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda: torch sees no CUDA device")


def _keras_threads(backend: str) -> dict[str, Any]:
    if backend == "tensorflow":
        import tensorflow as tf

        return {
            "tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            "note": "0 = TensorFlow's default (all logical CPUs)",
        }
    if backend == "torch":
        import torch

        return {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads()}
    return {}


def _keras_device_peak(backend: str, device: str) -> tuple[float, str] | None:
    if device != "cuda":
        return None
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, "tf get_memory_info peak"
        if backend == "torch":
            import torch

            return torch.cuda.max_memory_allocated() / 2**20, "torch.cuda.max_memory_allocated"
        if backend == "jax":
            import jax

            stats = jax.devices()[0].memory_stats() or {}
            if "peak_bytes_in_use" in stats:
                return stats["peak_bytes_in_use"] / 2**20, "jax peak_bytes_in_use"
    except Exception:
        return None
    return None
