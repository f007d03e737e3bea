"""The Keras engines' step loops for the benchmark (`throughput`, `fixed_batch_steps` of
`fmnist.backend_api.EngineModule`), in the benchmark's worker process: `model.fit` /
`model.predict` of `keras_model.build_model(config)` over the very batches the torch loops get,
on the Keras backend the engine set (KERAS_BACKEND). The clock, the batch order and what the
times mean are the benchmark's; here are the loops and the device synchronisation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from fmnist.capabilities import SpeedRun, StepClock
from fmnist.config import Config
from fmnist.splits import to_float_nhwc
from keras_model.training import compile_model, seed_everything
from keras_model.data import EvalBatches
from keras_model.model import build_model


def throughput(config: Config, run: SpeedRun, clock: StepClock) -> dict[str, Any]:
    """Training (one `fit` epoch of `run.order`'s batches) and inference (`predict` on them) of
    Keras on this process's backend, timed by `clock`."""
    backend = keras.backend.backend()
    keras.utils.set_random_seed(config.seed)
    flags: dict[str, Any] = {}
    if backend == "tensorflow":
        import tensorflow as tf

        # XLA refuses TensorFlow's op determinism (Keras then silently drops jit_compile), so the
        # XLA variant runs without it; every other variant keeps the config's setting.
        deterministic = config.train.deterministic and run.jit_compile is not True
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        if not config.train.allow_tf32:
            tf.config.experimental.enable_tensor_float_32_execution(False)
        if run.threads:
            tf.config.threading.set_intra_op_parallelism_threads(int(run.threads))
            tf.config.threading.set_inter_op_parallelism_threads(int(run.threads))
        flags["op_determinism"] = deterministic
        if run.device == "cuda" and not tf.config.list_physical_devices("GPU"):
            raise RuntimeError("--device cuda: TensorFlow sees no GPU (tensorflow-cpu is installed?)")
    if run.device == "cuda":
        _require_gpu(backend)  # else Keras would quietly measure the CPU

    split, order = run.split, run.order
    model = build_model(config)
    compile_model(model, config)
    if run.jit_compile is not None:
        model.jit_compile = run.jit_compile
    flags["jit_compile"] = bool(model.jit_compile)
    flags["dtype_policy"] = model.layers[-1].dtype_policy.name

    class Batches(keras.utils.PyDataset):
        """The very batches the torch loops get, built as `keras_model.data.TrainBatches` does
        (index the uint8 images, float32 NHWC, int32 labels), full batches only."""

        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)

        def __len__(self) -> int:
            return len(order)

        def __getitem__(self, i: int):
            idx = order[i]
            return to_float_nhwc(split.images[idx]), split.labels[idx].astype(np.int32)

    sync = device_sync(backend, run.device)

    class StepClockCallback(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None) -> None:
            sync(self.model)
            clock.stamp("train")

        def on_predict_batch_end(self, batch, logs=None) -> None:
            sync(self.model)
            clock.stamp("inference")

    stamps = StepClockCallback()
    clock.ready()
    clock.start("train")
    history = model.fit(Batches(), epochs=1, steps_per_epoch=len(order), shuffle=False, callbacks=[stamps], verbose=0)
    loss = float(history.history["loss"][-1])
    if not np.isfinite(loss):
        raise RuntimeError(f"the training loss became {loss}")

    eval_data = EvalBatches(split.images[np.concatenate(order)], None, len(order[0]))
    clock.start("inference")
    model.predict(eval_data, callbacks=[stamps], verbose=0)

    out: dict[str, Any] = {"final_loss": loss, "flags": flags, "threads": _keras_threads(backend)}
    peak = _keras_device_peak(backend, run.device)
    if peak is not None:
        out["peak_memory_mib"], out["peak_memory_kind"] = peak
    return out


def device_sync(backend: str, device: str) -> Callable[[Any], None]:
    """What the step clock calls, with the model, before it reads the time: waits for the step's
    device work. On CPU nothing: the callback list has already turned the step's logs into
    Python numbers, which waits for them."""
    if device != "cuda":
        return lambda model: None
    if backend == "torch":
        import torch  # Keras' backend here: loaded already

        return lambda model: torch.cuda.synchronize()
    if backend == "jax":
        return jax_wait
    return lambda model: None  # TensorFlow: the callback's logs are fetched to numpy, which waits


def jax_wait(model: Any) -> None:
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


def fixed_batch_steps(
    config: Config, batch_size: int, steps_per_epoch: int
) -> tuple[Callable[[], Any], dict[str, Any]]:
    """`train_on_batch` of the compiled model (the step `fit` runs) on one batch of random pixels
    and labels; steps_per_epoch is unused: the schedule is a fit callback, and the allocator does
    not care what the learning rate is. Keras leaves the allocator as it is (no `fmnist.malloc`)."""
    seed_everything(config)
    model = compile_model(build_model(config), config)
    rng = np.random.default_rng(config.seed)
    x = to_float_nhwc(rng.integers(0, 256, size=(batch_size, 28, 28), dtype=np.uint8))
    y = rng.integers(0, 10, size=batch_size).astype(np.int32)
    facts = {
        "threads": _keras_threads(keras.backend.backend()),
        "allocator": {"allocator": "as the process found it (Keras sets none)"},
    }
    return (lambda: model.train_on_batch(x, y)), facts
