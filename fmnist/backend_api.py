"""The contract between the core and an engine (`fmnist.engines`): what its `engine` module
offers, what `train` gets and hands back.

Kept apart from `fmnist.training` so a backend imports only this small module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from fmnist import rundir
from fmnist.console import epoch_line
from fmnist.tensorboard_log import TensorBoardLog

if TYPE_CHECKING:
    from fmnist.config import Config
    from fmnist.precision import Device
    from fmnist.splits import DataSplits, Split


@dataclass
class TrainOutcome:
    """What a backend hands back after training (its model is already saved in the run dir)."""

    test_logits: np.ndarray
    num_params: int
    summary: str
    train_seconds: float
    versions: dict[str, str] = field(default_factory=dict)
    # The framework's thread pools as it reports them after training (torch.get_num_threads,
    # TensorFlow's intra- and inter-op settings): where `--threads` is seen to arrive.
    threads: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SpeedRun:
    """One throughput measurement an engine's `throughput` runs, framework-free so the benchmark
    (`benchmarks.worker`) decides the work and the engine only how its framework does it."""

    loop: str  # the loop timed: "keras" (fit/predict), "lightning" (the Trainer) or "plain torch"
    split: Split  # the training images (uint8 N x 28 x 28) and labels the batches index
    order: list[np.ndarray]  # every batch, warm-up first, as indices into `split`; full batches only
    device: str  # "cpu" or "cuda"; the engine refuses "cuda" where its framework sees no GPU
    threads: int | None = None  # the framework's intra-op threads; None: its default
    jit_compile: bool | None = None  # Keras' jit_compile; None: what compile_model chose
    torch_compile: bool = False  # torch.compile the network (the torch loops)


class StepClock(Protocol):
    """The benchmark's clock, read by an engine's step loop (`EngineModule.throughput`): the
    engine waits for the device before each call, so the time read covers the step's work."""

    def ready(self) -> None:
        """Data (and, where the loop builds it first, the model) in place: the memory baseline."""

    def start(self, phase: str) -> None:
        """Just before the first step of `phase` ("train" or "inference")."""

    def stamp(self, phase: str) -> None:
        """After each step of `phase`, once the device has finished it."""


class Backend(Protocol):
    def train(
        self, config: Config, splits: DataSplits, run_dir: Path, report: "EpochReporter | None", resume: bool = False
    ) -> TrainOutcome:
        """report is None in the extra processes of a multi-process training (they write nothing).
        A loss gone NaN or infinite ends it with `fmnist.divergence.TrainingDiverged`."""

    def predict(self, run_dir: Path, images: np.ndarray, batch_size: int) -> np.ndarray: ...

    def completed_epochs(self, run_dir: Path) -> int: ...

    def training_device(self, config: Config) -> Device:
        """The device `train` would train `config` on, and whether it computes bfloat16 natively
        (`fmnist.precision.cpu_device` or `gpu_device`): what `train.precision: auto` resolves by."""


class EngineModule(Backend, Protocol):
    """`<package>.engine` of an engine, as `fmnist.engines.load` returns it: training and
    prediction (above), and the steps parity needs, each a pure function of numpy in and out, so
    the engine can run in a process of its own (`fmnist.engine_job`). Weights are in the shared
    layout (`fmnist.weight_layout`); a `dtype` is "float32" or "float64", the numbers the model
    computes with (under a bf16-mixed config, "float32" means its mixed policy)."""

    def versions(self) -> dict[str, str]: ...

    def fit_budget(
        self,
        config: Config,
        splits: DataSplits,
        on_start: Callable[[], None],
        on_trained: Callable[[Callable[[], np.ndarray]], None],
    ) -> int:
        """The whole epoch budget as `train` runs it, without validation or files (time to
        accuracy): on_start() before fit, on_trained(test_logits) from the end-of-training hook."""

    def layer_table(self, config: Config) -> list[dict]:
        """Per layer of `fmnist.architecture.layer_plan`: name, output shape (H, W, C; or
        units), trainable parameter count."""

    def initial_weights(self, config: Config) -> dict[str, np.ndarray]:
        """The engine's own initial weights at `config.seed`, float32."""

    def logits(self, config: Config, weights: dict[str, np.ndarray], images: np.ndarray, dtype: str) -> np.ndarray:
        """Inference-mode logits of raw test images (N x 28 x 28) with these weights."""

    def lockstep(
        self,
        config: Config,
        weights: dict[str, np.ndarray],
        images: list[np.ndarray],
        labels: list[np.ndarray],
        dtype: str,
    ) -> dict:
        """Train from `weights` one step per batch with the config's optimizer, dropout as the
        config says: {"loss": per step, "grads": the first batch's gradients (state left as it
        was), "running": batch-norm running statistics after the last step}."""

    def bf16_trace(self, config: Config, batch: int) -> dict[str, Any]:
        """One training step of a bf16-mixed config on `batch` random images, as the engine's
        training runs it, every op the framework runs with its tensors' dtypes: {"vocabulary":
        whose op names ("tensorflow", "jax", "torch", "keras-torch"), "ops": [{"phase": forward, backward or
        optimizer, "layer", "op", "inputs": [dtype, ...], "outputs": [dtype, ...]}]}, plus
        "unavailable": why, where the engine cannot log them. Where each framework rounds is read
        from live tensors, not documentation (compare.bf16_table)."""

    def bf16_layer_outputs(
        self,
        config: Config,
        weights: dict[str, np.ndarray],
        pixels: np.ndarray,
        partner_outputs: list[np.ndarray] | None = None,
        partner_dtypes: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Per layer of the plan, training mode, under the config's precision (bf16-mixed or
        float32): {"name", "output": float32 numbers, NHWC (flatten: H, W, C order), "dtype" the
        layer computed it in, "note": why it is not comparable, or None}. Chained from raw
        `pixels` (N x 28 x 28); or each layer fed the other engine's output of the layer before,
        in its dtype (`partner_outputs`, `partner_dtypes`: that engine's chained answer), so a
        layer's difference is that layer's alone."""

    def bf16_kernels(self, config: Config, arrays: dict[str, np.ndarray], dropout_rates: list[float]) -> dict[str, Any]:
        """The kernels a bf16 training step runs, fed bfloat16-valued `arrays` (compare.
        bf16_accumulation names them), as the engine's training runs them: dense and conv
        forward, their weight and bias gradients, the config's input normalisation, dropout at
        each rate; float32 results, NHWC and HWIO. How a kernel accumulates shows only in its
        numbers. {"unavailable": why} where the engine cannot run them."""

    def run_weights(self, run_dir: Path) -> dict[str, np.ndarray]:
        """A run's trained weights in the shared layout, float32 (what `export_onnx` and
        `logits` take: an export is checked against the same weights in the engine)."""

    def export_onnx(self, config: Config, weights: dict[str, np.ndarray], path: Path) -> None:
        """The config's network with these weights, float32, written to ONNX by the framework's
        own exporter: input `pixels` [N, 28, 28, 1] raw, dynamic batch (`fmnist.onnx_model`)."""

    def export_versions(self) -> dict[str, str]:
        """The framework and exporter versions an export report records."""

    def inference_runners(self, run_dir: Path, threads: int) -> dict[str, Callable[[np.ndarray], Any]]:
        """In-process only (not an engine job): the run's float32 model as the framework's users
        call it, by name, on NHWC float32 pixels; what `fmnist benchmark-inference` times."""

    def throughput(self, config: Config, run: SpeedRun, clock: StepClock) -> dict[str, Any]:
        """In-process only (`benchmarks.worker`, one framework per process): `run.loop` trains one
        epoch of exactly `run.order`'s batches, then infers on them, reading `clock` around every
        step, as `fmnist train` would with this config. The loop, the device synchronisation and
        the framework's settings are the engine's; the clock, the batches and what the times mean
        are the benchmark's. Returns what only the framework knows: final_loss, flags, threads,
        and where it has them the device's peak memory, the allocator and the epoch's metrics."""

    def fixed_batch_steps(
        self, config: Config, batch_size: int, steps_per_epoch: int
    ) -> tuple[Callable[[], Any], dict[str, Any]]:
        """In-process only (`benchmarks.page_faults`): one training step of the engine's own loop
        (Lightning's: the plain torch loop it is measured against), on one random batch drawn at
        the config's seed, as a callable the caller repeats and times; and the settings it ran
        under ({"threads": ..., "allocator": ...}). What a step costs the allocator, no data in
        the way."""


class EpochReporter:
    """Called by both backends' epoch-end callbacks with one row of metrics.csv
    (`fmnist.rundir.metrics_row`)."""

    def __init__(self, run_dir: Path, tensorboard: TensorBoardLog, epochs: int = 0, echo: bool = False) -> None:
        """echo: print each epoch's line (fmnist.console.epoch_line, of `epochs`) to stdout."""
        self.csv = rundir.MetricsCSV(run_dir / rundir.METRICS_FILE)
        self.tensorboard = tensorboard
        self.epochs, self.echo = epochs, echo
        self.rows: list[dict[str, float]] = []
        self.cpu_file = Path(run_dir) / rundir.CPU_TIME_FILE
        self.cpu_before = 0.0  # CPU seconds of the earlier attempts of a resumed run

    def resume_from(self, epochs: int) -> None:
        """Continue after `epochs` finished epochs: later rows and events belong to the lost attempt
        (its CPU time was spent all the same, and is counted)."""
        self.rows = self.csv.truncate(epochs)
        self.tensorboard.purge_from(epochs)
        if self.cpu_file.exists():
            self.cpu_before = float(rundir.read_json(self.cpu_file)["cpu_seconds"])

    @property
    def cpu_seconds(self) -> float:
        """User + system CPU time of this run: this process since it started (imports and data
        loading included, all its threads), plus the earlier attempts'."""
        return self.cpu_before + time.process_time()

    def __call__(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        self.csv.append(row)
        self.tensorboard.log_epoch(row)
        if self.echo:
            print(epoch_line(row, self.epochs), flush=True)
        self.cpu_file.parent.mkdir(exist_ok=True)
        rundir.write_json(self.cpu_file, {"cpu_seconds": self.cpu_seconds})
