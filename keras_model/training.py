"""Training and prediction with Keras (`fmnist.capabilities.Training`) for every Keras engine."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from fmnist import console, rundir
from fmnist.config import Config
from fmnist.cpu_features import warn_if_emulated_bf16
from fmnist.placement import threads_asked
from fmnist.precision import Device, cpu_device, gpu_device
from fmnist.errors import RunDirError, reason as error_reason
from fmnist.capabilities import TrainOutcome
from fmnist.epoch_reporter import EpochReporter
from fmnist.splits import DataSplits, to_float_nhwc
from keras_model.callbacks import (
    EpochReport,
    InterruptAtBatchEnd,
    RestoreDropoutState,
    ScheduledLearningRate,
    StopOnNonFinite,
    WholeBackup,
    early_stopping,
)
from keras_model.data import EvalBatches, TrainBatches, fit_input
from keras_model.distribute import distribution_scope
from keras_model.losses import training_loss  # also registers the smoothed loss, for load_model
from keras_model.model import build_model


MODEL_FILE = "model.keras"  # the same for every Keras engine: one format, any backend loads it (keras_model.engine)


def seed_everything(config: Config) -> None:
    """Python, numpy and backend seeds; on TensorFlow also deterministic kernels (CPU reruns identical)."""
    keras.utils.set_random_seed(config.seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if config.train.deterministic:
            tf.config.experimental.enable_op_determinism()
        if not config.train.allow_tf32:
            tf.config.experimental.enable_tensor_float_32_execution(False)


def apply_threads() -> None:
    """On TensorFlow, the thread count `--threads` or the executor gave this process
    (`fmnist.placement`) set through its API too, not only its environment variables, so that
    TensorFlow reports it (`framework_threads`). Before TensorFlow starts: it fixes its pools then."""
    threads = threads_asked()
    if threads is None or keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow has started in this process: its pools are what they are
        pass


def framework_threads() -> dict[str, Any]:
    """The backend's thread pools as it reports them: TensorFlow's intra- and inter-op settings,
    or torch's pools (JAX has no such setting)."""
    backend = keras.backend.backend()
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


def on_cpu() -> bool:
    """Whether Keras computes on the CPU (keras.distribution lists devices on TensorFlow and JAX only)."""
    if keras.backend.backend() == "torch":  # where Keras puts a new tensor: "cpu" or "cuda:0"
        return str(keras.ops.convert_to_tensor(0.0).device).startswith("cpu")
    return all(d.startswith("cpu") for d in keras.distribution.list_devices())


def training_device(config: Config) -> Device:
    """Where `train` trains, asked without starting the backend's runtime (TensorFlow's devices
    are fixed when it starts: `distribution_scope` comes first in `train`): a GPU when the
    backend sees one (for TensorFlow, as many as train.devices asks for), else the CPU. A GPU's
    compute capability says whether bfloat16 is native."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus and len(gpus) >= config.train.devices:  # keras_model.distribute.replica_devices' rule
            details = tf.config.experimental.get_device_details(gpus[0])
            return gpu_device(details.get("device_name", gpus[0].name), details.get("compute_capability", (0, 0)))
    elif backend == "jax":
        import jax

        first = jax.devices()[0]
        if first.platform == "gpu":
            capability = str(getattr(first, "compute_capability", "0.0")).split(".")
            return gpu_device(first.device_kind, (int(capability[0]), int(capability[1])))
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return gpu_device(torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))
    return cpu_device()


def make_optimizer(config: Config) -> keras.optimizers.Optimizer:
    opt = config.train.optimizer
    if opt.name == "adam":
        return keras.optimizers.Adam(learning_rate=opt.lr, beta_1=opt.beta_1, beta_2=opt.beta_2, epsilon=opt.epsilon)
    if opt.name == "adamw":
        # Decoupled: every trainable variable w -= w * weight_decay * lr before each Adam update
        # (torch_blocks.optim.KerasAdam with weight_decay does the same).
        return keras.optimizers.AdamW(
            learning_rate=opt.lr,
            weight_decay=opt.weight_decay,
            beta_1=opt.beta_1,
            beta_2=opt.beta_2,
            epsilon=opt.epsilon,
        )
    return keras.optimizers.SGD(learning_rate=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov)


def compile_model(model: keras.Model, config: Config) -> keras.Model:
    model.compile(
        optimizer=make_optimizer(config),
        loss=training_loss(config.train.label_smoothing),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def model_summary(model: keras.Model, width: int = 100) -> str:
    """Keras' own summary table as text. Its rich console crops to the terminal width (80 when
    there is none), so COLUMNS is widened while it renders."""
    lines: list[str] = []
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width + 10)
    try:
        model.summary(print_fn=lambda text, line_break=True: lines.append(text), line_length=width)
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(lines)


def versions() -> dict[str, str]:
    """Keras, its backend, and that backend's framework version (read from the installed package)."""
    from importlib.metadata import PackageNotFoundError, version

    backend = keras.backend.backend()
    found = {"keras": keras.__version__, "keras_backend": backend}
    if backend == "tensorflow":
        import tensorflow as tf

        found["tensorflow"] = tf.__version__
    elif backend in ("jax", "torch"):
        try:
            found[backend] = version(backend)
        except PackageNotFoundError:
            pass
    return found


def completed_epochs(run_dir: Path) -> int:
    """Epochs finished before an interruption, from BackupAndRestore's metadata (0 if none)."""
    meta = Path(run_dir) / rundir.CHECKPOINT_DIR / "training_metadata.json"
    return int(rundir.read_json(meta)["epoch"]) if meta.exists() else 0


def fit(
    model: keras.Model,
    train_data: TrainBatches,
    val_data: EvalBatches | None,
    callbacks: list[keras.callbacks.Callback],
    quiet: bool = False,
) -> keras.callbacks.History:
    """model.fit over all epochs of `train_data`, batches in the shared order: the one training
    loop of the Keras engines, which a run (`train`), time to accuracy (`fit_budget`) and the
    speed measurement (`keras_model.speed`) differ from only by their callbacks and validation.
    `train_data`: `TrainBatches`, or any PyDataset with its `epochs` and `batches_per_epoch`.

    shuffle=False: fit() would otherwise permute the PyDataset's batch indices, mixing batches
    of different epochs; the order is already the shared per-epoch permutation. quiet: no
    progress bar even on a terminal (off one, fmnist.console prints the epochs).
    """
    return model.fit(
        fit_input(train_data),
        epochs=train_data.epochs,
        steps_per_epoch=train_data.batches_per_epoch,
        shuffle=False,
        validation_data=val_data,
        callbacks=callbacks,
        verbose=1 if console.live() and not quiet else 0,
    )


def train(
    config: Config, splits: DataSplits, run_dir: Path, report: EpochReporter | None, resume: bool = False
) -> TrainOutcome:
    apply_threads()  # first, and the devices next: TensorFlow fixes both when it starts
    scope = distribution_scope(config)
    seed_everything(config)
    warn_if_emulated_bf16(config.train.precision, on_cpu=on_cpu())
    t = config.train
    with scope:
        model = compile_model(build_model(config), config)
    first_epoch = completed_epochs(run_dir) if resume else 0
    train_data = TrainBatches(
        splits.train, t.batch_size, config.seed, t.epochs, first_epoch=first_epoch, augment=config.data.augment
    )
    val_data = EvalBatches(splits.val.images, splits.val.labels, t.eval_batch_size)
    nan_guard = StopOnNonFinite()
    # Restores the best epoch's weights when fit ends, so model.keras below is the best epoch's.
    stopper = early_stopping(t, run_dir / rundir.CHECKPOINT_DIR)
    stopped_before = stopper is not None and first_epoch > 0 and stopper.resume(first_epoch)
    callbacks = [
        # fmnist.schedules.lr_at_step, per epoch or per step: the rate Lightning's LambdaLR sets.
        ScheduledLearningRate(t, train_data.batches_per_epoch),
        nan_guard,
        InterruptAtBatchEnd(),  # Ctrl-C: on JAX the KeyboardInterrupt itself can be lost
        EpochReport(report),  # before the checkpoint: a saved epoch always has its metrics row
        *([stopper] if stopper is not None else []),  # before the checkpoint too: its state is saved with it
        # Restores weights, optimizer state, dropout generator state and the epoch counter from
        # the last finished epoch; the checkpoint stays until the run's files are all written.
        WholeBackup(str(run_dir / rundir.CHECKPOINT_DIR), delete_checkpoint=False),
        RestoreDropoutState(),
    ]
    start = time.perf_counter()
    if stopped_before:  # interrupted after early stopping had ended the training: only the restore is left
        model.set_weights(stopper.best_weights)
    else:
        fit(model, train_data, val_data, callbacks)
    train_seconds = time.perf_counter() - start
    nan_guard.watch.raise_if_diverged()
    with rundir.atomic_path(run_dir / MODEL_FILE) as tmp:
        model.save(tmp)
    logits = model.predict(EvalBatches(splits.test.images, None, t.eval_batch_size), verbose=0)
    return TrainOutcome(
        test_logits=np.asarray(logits),
        num_params=int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        summary=model_summary(model),
        train_seconds=train_seconds,
        versions=versions(),
        threads=framework_threads(),
    )


def load_model(run_dir: Path) -> keras.Model:
    """The run's model for inference, on whichever Keras backend this process runs.

    Uncompiled: a model saved by Keras on torch names its optimizer's class in Keras' torch
    backend, and compiling it from that record imports torch, on TensorFlow after TensorFlow (a
    segfault, docs/parity.md); prediction and export need no optimizer."""
    path = Path(run_dir) / MODEL_FILE
    rundir.check_model_archive(path, ".keras file")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)  # safe: refuses lambdas
    except Exception as exc:  # a truncated or foreign file fails deep inside the zip/h5 readers
        raise RunDirError(f"cannot load the Keras model {path}: {error_reason(exc)}") from None


def predict(run_dir: Path, images: np.ndarray, batch_size: int) -> np.ndarray:
    model = load_model(run_dir)
    return np.asarray(model.predict(EvalBatches(images, None, batch_size), verbose=0), dtype=np.float32)


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
    history = fit(model, data, None, [ScheduledLearningRate(t, data.batches_per_epoch), Trained()], quiet=True)
    return len(history.epoch)
