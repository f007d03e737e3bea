"""One benchmark measurement in a process of its own: `python -m compare.bench_worker SPEC.json OUT.json`.

`compare.benchmark` starts one of these per (runner, variant, batch size, repeat), so each
framework has the process to itself (no TensorFlow/torch import-order trap, no shared thread
pools, a fresh peak-memory counter). The spec says what to measure; the result (or the error)
is written as JSON to OUT.json. Runners:

- `keras`:       `model.fit` / `model.predict` of `keras_model.build_model(config)` over the
                 project's own batch pipeline (`keras_model.data`), on the Keras backend named by
                 KERAS_BACKEND (set by the parent).
- `lightning`:   a real `L.Trainer.fit` / `.predict` of `FashionClassifier.from_config(config)`.
- `plain torch`: a hand-written loop (forward, cross-entropy, backward, the same KerasAdam) on
                 `build_network(config)`, over the very same batches: Lightning's reference.

Timing: a timestamp after every step, taken after device synchronisation; the first `warmup`
steps (which include tracing and compilation) are reported apart; throughput is timed images
over the time from the end of the last warm-up step to the end of the last step, so the data
pipeline between steps is counted.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

if os.environ.get("KERAS_BACKEND", "tensorflow") != "jax":
    try:  # torch (with dynamo) before anything can load TensorFlow: the other order crashes
        import torch  # noqa: F401
        import torch._dynamo  # noqa: F401
    except ImportError:
        pass

from fmnist.config import Config, load_config  # noqa: E402
from fmnist.splits import Split  # noqa: E402

TORCH_VARIANTS = ("eager", "channels_last", "bf16", "channels_last+bf16", "compile")
KERAS_VARIANTS = ("tf", "tf-graph", "tf-xla", "tf-bf16", "jax", "torch")
#: The config settings behind each variant: what `fmnist train` does with the same config. Each
#: variant sets every speed knob it names, so "eager" or "tf" is float32 even on a bf16 config.
_F32 = {"train.precision": "float32"}
_BF16 = {"train.precision": "bf16-mixed"}
VARIANT_OVERRIDES = {
    "eager": {"train.channels_last": False, **_F32},
    "channels_last": {"train.channels_last": True, **_F32},
    "bf16": {"train.channels_last": False, **_BF16},
    "channels_last+bf16": {"train.channels_last": True, **_BF16},
    "compile": {"train.channels_last": False, **_F32},
    **{v: _F32 for v in ("tf", "tf-graph", "tf-xla", "jax", "torch")},
    "tf-bf16": _BF16,
}


def variant_config(config: Config, variant: str) -> Config:
    from fmnist.config import with_overrides

    return with_overrides(config, VARIANT_OVERRIDES.get(variant, {}))


# --------------------------------------------------------------------------------------------
# process facts


def _proc_status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mib() -> float | None:
    """Peak resident memory of this process so far (VmHWM), MiB; None off Linux."""
    kib = _proc_status_kib("VmHWM")
    if kib is None:
        try:
            import resource

            kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        except Exception:
            return None
    return kib / 1024.0


def rss_mib() -> float | None:
    kib = _proc_status_kib("VmRSS")
    return None if kib is None else kib / 1024.0


# --------------------------------------------------------------------------------------------
# data


def training_images(spec: dict[str, Any], config: Config) -> tuple[Split, str]:
    """Real training images (the config's split) or synthetic uint8 images of the same shape."""
    needed = spec["batch_size"] * (spec["warmup"] + spec["steps"])
    if spec["data"] == "real":
        from fmnist.datasets import load_fashion_mnist
        from fmnist.splits import make_splits

        train = make_splits(load_fashion_mnist(spec.get("data_dir")), config).train
        return train, f"Fashion-MNIST training split ({len(train):,} images)"
    rng = np.random.default_rng(config.seed)
    n = min(max(needed, spec["batch_size"]), 60_000)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return Split(images, labels), f"synthetic uint8 images ({n:,}, 28x28)"


def batch_order(num_images: int, batch_size: int, num_batches: int, seed: int) -> list[np.ndarray]:
    """`num_batches` index arrays of full batches in the shared per-epoch order, epoch after epoch."""
    from fmnist.splits import epoch_permutation

    per_epoch = num_images // batch_size
    if per_epoch == 0:
        raise ValueError(f"batch size {batch_size} is larger than the {num_images} images available")
    out, epoch = [], 0
    while len(out) < num_batches:
        order = epoch_permutation(num_images, seed, epoch)
        out += [order[i * batch_size : (i + 1) * batch_size] for i in range(min(per_epoch, num_batches - len(out)))]
        epoch += 1
    return out


def timing_from_stamps(start: float, stamps: list[float], warmup: int, batch_size: int) -> dict[str, Any]:
    """Warm-up seconds (start to end of the last warm-up step), per-step times and throughput after it."""
    from compare.bench_stats import step_time_stats, throughput

    if len(stamps) <= warmup:
        raise RuntimeError(f"only {len(stamps)} steps ran; expected more than the {warmup} warm-up steps")
    timed = stamps[warmup - 1 :] if warmup else [start, *stamps]
    steps = np.diff(np.asarray(timed)).tolist()
    seconds = timed[-1] - timed[0]
    return {
        "steps": len(steps),
        "seconds": seconds,
        "images_per_s": throughput(len(steps) * batch_size, seconds),
        "step_seconds": steps,
        "step_time": step_time_stats(steps),
        "warmup_seconds": (stamps[warmup - 1] - start) if warmup else 0.0,
        "first_step_seconds": stamps[0] - start,
    }


# --------------------------------------------------------------------------------------------
# torch: Lightning and the plain loop


def _torch_setup(spec: dict[str, Any], config: Config):
    import torch

    from lightning_model.backend import configure_torch

    configure_torch(config)  # seeds, TF32 setting, as `fmnist train` does
    if spec.get("torch_threads"):
        torch.set_num_threads(int(spec["torch_threads"]))
    if spec["device"] == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: torch sees no CUDA device")
    device = torch.device(spec["device"])
    sync: Callable[[], None] = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    return torch, device, sync


class _DeviceBatches:
    """Batches (x float32 N x 1 x 28 x 28, y int64) gathered from a uint8 tensor that lives on
    the device: on a GPU no host loader is in the loop. On CPU this is the project's own
    `BatchDataset` work (index, unsqueeze, float)."""

    def __init__(self, torch, split: Split, order: list[np.ndarray], device, channels_last: bool) -> None:
        self.torch = torch
        self.images = torch.from_numpy(split.images).to(device)
        self.labels = torch.from_numpy(split.labels.astype(np.int64)).to(device)
        self.order = [torch.from_numpy(o).to(device) for o in order]
        self.channels_last = channels_last

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int):
        idx = self.order[i]
        x = self.images[idx].unsqueeze(1).float()
        if self.channels_last:
            x = x.contiguous(memory_format=self.torch.channels_last)
        return x, self.labels[idx]


def _torch_loader(torch, batches: _DeviceBatches):
    from torch.utils.data import DataLoader

    # batch_size=None: each item is a whole batch already (as in lightning_model.data).
    return DataLoader(batches, batch_size=None, shuffle=False, num_workers=0)


def measure_torch(spec: dict[str, Any], config: Config) -> dict[str, Any]:
    torch, device, sync = _torch_setup(spec, config)
    variant, runner = spec["variant"], spec["runner"]
    if variant not in TORCH_VARIANTS:
        raise ValueError(f"unknown torch variant {variant!r}")
    split, data_note = training_images(spec, config)
    bs, warmup, steps = spec["batch_size"], spec["warmup"], spec["steps"]
    order = batch_order(len(split), bs, warmup + steps, config.seed)
    batches = _DeviceBatches(torch, split, order, device, channels_last=config.train.channels_last)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = rss_mib()

    if runner == "lightning":
        train, infer, extra = _lightning_run(torch, spec, config, batches, sync)
    else:
        train, infer, extra = _plain_run(torch, spec, config, batches, device, sync)
    out = {"train": train, "inference": infer, "data": data_note, "rss_before_mib": rss_before, **extra}
    if device.type == "cuda":
        out["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
        out["peak_memory_kind"] = "torch.cuda.max_memory_allocated"
    out["threads"] = {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads()}
    out["flags"] = {
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    return out


def _compiled(torch, network, variant: str):
    return torch.compile(network) if variant == "compile" else network


def _plain_run(torch, spec, config, batches, device, sync):
    import torch.nn.functional as F

    from lightning_model.network import build_network
    from lightning_model.optim import KerasAdam

    torch.use_deterministic_algorithms(config.train.deterministic)  # as Lightning's Trainer(deterministic=...)
    variant = spec["variant"]
    network = build_network(config).to(device)
    if config.train.channels_last:  # as FashionClassifier does
        network = network.to(memory_format=torch.channels_last)
    network = _compiled(torch, network, variant)
    opt = config.train.optimizer
    optimizer = KerasAdam(network.parameters(), lr=opt.lr, beta_1=opt.beta_1, beta_2=opt.beta_2, epsilon=opt.epsilon)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.train.precision == "bf16-mixed")
    loader = _torch_loader(torch, batches)
    warmup = spec["warmup"]

    network.train()
    stamps: list[float] = []
    sync()
    start = time.perf_counter()
    for x, y in loader:
        with autocast:
            loss = F.cross_entropy(network(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        stamps.append(time.perf_counter())
    train = timing_from_stamps(start, stamps, warmup, spec["batch_size"])
    final_loss = float(loss.detach())
    if not np.isfinite(final_loss):
        raise RuntimeError(f"the training loss became {final_loss}")

    network.eval()
    stamps = []
    sync()
    start = time.perf_counter()
    with torch.inference_mode(), autocast:
        for x, _ in loader:
            network(x)
            sync()
            stamps.append(time.perf_counter())
    infer = timing_from_stamps(start, stamps, warmup, spec["batch_size"])
    return train, infer, {"final_loss": final_loss}


def _lightning_run(torch, spec, config, batches, sync):
    import warnings

    import lightning as L

    import lightning_model.backend  # noqa: F401  (its warning filters and log settings)
    from lightning_model.module import FashionClassifier

    warnings.filterwarnings("ignore", message=r".*(does not have many workers|GPU available but not used).*")

    class StepClock(L.Callback):
        def __init__(self) -> None:
            self.train: list[float] = []
            self.predict: list[float] = []

        def on_train_batch_end(self, *args, **kwargs) -> None:
            sync()
            self.train.append(time.perf_counter())

        def on_predict_batch_end(self, *args, **kwargs) -> None:
            sync()
            self.predict.append(time.perf_counter())

    variant, warmup = spec["variant"], spec["warmup"]
    module = FashionClassifier.from_config(config)
    module.network = _compiled(torch, module.network, variant)
    clock = StepClock()
    trainer = L.Trainer(
        accelerator="gpu" if spec["device"] == "cuda" else "cpu",
        devices=1,
        precision="bf16-mixed" if config.train.precision == "bf16-mixed" else "32-true",
        max_epochs=1,
        max_steps=len(batches),
        deterministic=config.train.deterministic,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        callbacks=[clock],
    )
    loader = _torch_loader(torch, batches)
    sync()
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    train = timing_from_stamps(start, clock.train, warmup, spec["batch_size"])
    sync()
    start = time.perf_counter()
    trainer.predict(module, dataloaders=loader, return_predictions=False)
    infer = timing_from_stamps(start, clock.predict, warmup, spec["batch_size"])
    loss = trainer.callback_metrics.get("train/loss")
    return train, infer, {"final_loss": None if loss is None else float(loss)}


# --------------------------------------------------------------------------------------------
# Keras


def measure_keras(spec: dict[str, Any], config: Config) -> dict[str, Any]:
    import keras_model  # noqa: F401  (TensorFlow's settings before it loads)
    import keras

    from keras_model.backend import compile_model
    from fmnist.splits import to_float_nhwc
    from keras_model.data import EvalBatches
    from keras_model.model import build_model

    variant = spec["variant"]
    if variant not in KERAS_VARIANTS:
        raise ValueError(f"unknown Keras variant {variant!r}")
    backend = keras.backend.backend()
    keras.utils.set_random_seed(config.seed)
    flags: dict[str, Any] = {}
    if backend == "tensorflow":
        import tensorflow as tf

        # XLA refuses TensorFlow's op determinism (Keras then silently drops jit_compile), so the
        # XLA variant runs without it; every other variant keeps the config's setting.
        deterministic = config.train.deterministic and variant != "tf-xla"
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

    split, data_note = training_images(spec, config)
    bs, warmup, steps = spec["batch_size"], spec["warmup"], spec["steps"]
    total = warmup + steps
    model = build_model(config)
    compile_model(model, config)
    if variant in ("tf-graph",):
        model.jit_compile = False
    elif variant == "tf-xla":
        model.jit_compile = True
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
            sync()
            self.train.append(time.perf_counter())

        def on_predict_batch_end(self, batch, logs=None) -> None:
            sync()
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


def _keras_sync(backend: str, device: str) -> Callable[[], None]:
    if device != "cuda":
        return lambda: None  # CPU kernels have finished when the step returns its logs
    if backend == "torch":
        import torch

        return torch.cuda.synchronize
    if backend == "jax":
        import jax

        return lambda: jax.effects_barrier()
    return lambda: None  # TensorFlow: the callback's logs are fetched to numpy, which waits


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


# --------------------------------------------------------------------------------------------


def versions(runner: str) -> dict[str, str]:
    found: dict[str, str] = {"python": sys.version.split()[0], "numpy": np.__version__}
    mods = ("torch", "lightning", "torchmetrics") if runner != "keras" else ("keras",)
    if runner == "keras":
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        mods += {"tensorflow": ("tensorflow",), "jax": ("jax", "jaxlib"), "torch": ("torch",)}.get(backend, ())
    for name in mods:
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__version__", None):
            found[name] = mod.__version__
    return found


def run(spec: dict[str, Any]) -> dict[str, Any]:
    began = time.perf_counter()
    result: dict[str, Any] = {"spec": spec}
    try:
        config = variant_config(load_config(spec["config"]), spec["variant"])
        measure = measure_keras if spec["runner"] == "keras" else measure_torch
        result.update(measure(spec, config))
        result["status"] = "ok"
    except Exception as exc:  # recorded, never fatal: the benchmark goes on with the others
        result["status"] = "error"
        result["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        result["traceback"] = traceback.format_exc(limit=8)
    result.setdefault("peak_memory_mib", peak_rss_mib())
    result.setdefault("peak_memory_kind", "process peak RSS (VmHWM)")
    result["process_rss_peak_mib"] = peak_rss_mib()
    result["versions"] = versions(spec["runner"])
    result["worker_seconds"] = time.perf_counter() - began
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m compare.bench_worker SPEC.json OUT.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    result = run(spec)
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
