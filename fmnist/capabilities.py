"""What an engine can do (`fmnist.engine.Engine.capabilities`): six small interfaces, each
offered by one module of the engine's package, and the plain data they take and give.

- `Training`: train a run, predict with it, say how far an interrupted one got;
- `Parity`: the steps `fmnist parity` compares, pure functions of numpy in and out;
- `Export`: a run's weights to ONNX with the framework's own exporter, and its inference;
- `Speed`: the benchmark's step loops, read by the benchmark's clock;
- `Bf16Probe`: where a bf16-mixed training step rounds, read from live tensors;
- `RunState`: a run's training state out of the engine's own files and into them (`fmnist convert`).

Parity, Bf16Probe and RunState functions, and `Training.predict`, may run in a process of their own
(`fmnist.engine_job`: `JOB_FUNCTIONS`); the others run in the caller's process. Kept apart from
`fmnist.training` so an engine imports only this small module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from fmnist.config import Config
    from fmnist.epoch_reporter import EpochReporter
    from fmnist.precision import Device
    from fmnist.splits import DataSplits, Split


@dataclass
class TrainOutcome:
    """What an engine hands back after training (its model is already saved in the run dir)."""

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
    """The benchmark's clock, read by an engine's step loop (`Speed.throughput`): the
    engine waits for the device before each call, so the time read covers the step's work."""

    def ready(self) -> None:
        """Data (and, where the loop builds it first, the model) in place: the memory baseline."""

    def start(self, phase: str) -> None:
        """Just before the first step of `phase` ("train" or "inference")."""

    def stamp(self, phase: str) -> None:
        """After each step of `phase`, once the device has finished it."""


class Training(Protocol):
    """Train a run and use it: `fmnist train`, `evaluate`, `predict`, time to accuracy."""

    def train(
        self, config: Config, splits: DataSplits, run_dir: Path, report: EpochReporter | None, resume: bool = False
    ) -> TrainOutcome | None:
        """Fit, save the model in `run_dir`, predict the test set. report is None in the extra
        processes of a multi-process training (they write nothing, and return None). A loss gone
        NaN or infinite ends it with `fmnist.divergence.TrainingDiverged`."""

    def predict(self, run_dir: Path, images: np.ndarray, batch_size: int) -> np.ndarray:
        """Logits of raw images (N x 28 x 28 uint8) from a finished run of this engine's format."""

    def completed_epochs(self, run_dir: Path) -> int:
        """Epochs an interrupted run finished, from its checkpoint (0 if none)."""

    def training_device(self, config: Config) -> Device:
        """The device `train` would train `config` on, and whether it computes bfloat16 natively
        (`fmnist.precision.cpu_device` or `gpu_device`): what `train.precision: auto` resolves by."""

    def versions(self) -> dict[str, str]:
        """The framework versions a run records."""

    def fit_budget(
        self,
        config: Config,
        splits: DataSplits,
        on_start: Callable[[], None],
        on_trained: Callable[[Callable[[], np.ndarray]], None],
    ) -> int:
        """The whole epoch budget as `train` runs it, without validation or files (time to
        accuracy): on_start() before fit, on_trained(test_logits) from the end-of-training hook.
        Returns the epochs trained."""


class Parity(Protocol):
    """The steps `fmnist parity` compares between engines. Weights are in the shared layout
    (`fmnist.weight_layout`); a `dtype` is "float32" or "float64", the numbers the model computes
    with (under a bf16-mixed config, "float32" means its mixed policy). `device` is where they are
    computed, "cpu" or "cuda": on "cuda" at full float32 precision (no TF32) and deterministic
    where the framework can be (`placement`); numpy in and out either way."""

    def placement(self, device: str) -> dict:
        """Set this process up to compute on `device` as the other functions do there: {"device":
        its name, "settings": what was set for the numbers, one line each}. Refuses (FmnistError,
        one line) a device the framework does not see: never the CPU in a GPU's name."""

    def layer_table(self, config: Config, device: str = "cpu") -> list[dict]:
        """Per layer of `fmnist.architecture.layer_plan`: name, output shape (H, W, C; or
        units), trainable parameter count."""

    def initial_weights(self, config: Config, device: str = "cpu") -> dict[str, np.ndarray]:
        """The engine's own initial weights at `config.seed`, float32."""

    def logits(
        self, config: Config, weights: dict[str, np.ndarray], images: np.ndarray, dtype: str, device: str = "cpu"
    ) -> np.ndarray:
        """Inference-mode logits of raw test images (N x 28 x 28) with these weights."""

    def lockstep(
        self,
        config: Config,
        weights: dict[str, np.ndarray],
        images: list[np.ndarray],
        labels: list[np.ndarray],
        dtype: str,
        casts: str = "float32",
        device: str = "cpu",
    ) -> dict:
        """Train from `weights` one step per batch with the config's optimizer, dropout as the
        config says: {"loss": per step, "grads": the first batch's gradients (state left as it
        was), "running": batch-norm running statistics after the last step}. casts: how the
        optimizer's Python-float constants reach the variables ("float32" or "exact"), for an
        engine whose `constant_casts` is "follow"; the others do as their framework does."""


class Export(Protocol):
    """A run's model outside its framework: ONNX from the framework's own exporter."""

    #: Modules the exporter needs beyond the framework, checked first: exporters fail deep
    #: inside when they are missing.
    needs: tuple[str, ...]

    def run_weights(self, run_dir: Path) -> dict[str, np.ndarray]:
        """A run's trained weights in the shared layout, float32 (what `export_onnx` and
        `Parity.logits` take: an export is checked against the same weights in the engine)."""

    def export_onnx(self, config: Config, weights: dict[str, np.ndarray], path: Path) -> None:
        """The config's network with these weights, float32, written to ONNX by the framework's
        own exporter: input `pixels` [N, 28, 28, 1] raw, dynamic batch (`fmnist.onnx_model`)."""

    def export_versions(self) -> dict[str, str]:
        """The framework and exporter versions an export report records."""

    def inference_runners(self, run_dir: Path, threads: int) -> dict[str, Callable[[np.ndarray], Any]]:
        """The run's float32 model as the framework's users call it, by name, on NHWC float32
        pixels; what `fmnist benchmark-inference` times."""


class Speed(Protocol):
    """The benchmark's step loops, in the benchmark's worker process (one framework per process)."""

    def throughput(self, config: Config, run: SpeedRun, clock: StepClock) -> dict[str, Any]:
        """The engine's training loop over exactly `run.order`'s batches for one epoch, then
        inference on them, reading `clock` around every step, as `fmnist train` would with this
        config. The loop, the device synchronisation and the framework's settings are the
        engine's; the clock, the batches and what the times mean are the benchmark's. Returns what
        only the framework knows: final_loss, flags, threads, and where it has them the device's
        peak memory, the allocator and the epoch's metrics."""

    def fixed_batch_steps(
        self, config: Config, batch_size: int, steps_per_epoch: int
    ) -> tuple[Callable[[], Any], dict[str, Any]]:
        """One training step of the engine's own loop on one random batch drawn at the config's
        seed, as a callable the caller repeats and times, and the settings it ran under
        ({"threads": ..., "allocator": ...}): what a step costs the allocator, no data in the way."""


class Bf16Probe(Protocol):
    """Where a bf16-mixed training step rounds, as the engine's training runs it; on `device` as
    the Parity functions compute there (`Parity.placement`)."""

    def bf16_trace(self, config: Config, batch: int, device: str = "cpu") -> dict[str, Any]:
        """One training step of a bf16-mixed config on `batch` random images, every op the
        framework runs with its tensors' dtypes: {"vocabulary": whose op names ("tensorflow",
        "jax", "torch", "keras-torch"), "ops": [{"phase": forward, backward or optimizer, "layer",
        "op", "inputs": [dtype, ...], "outputs": [dtype, ...]}]}, plus "unavailable": why, where
        the engine cannot log them (parity.bf16_table reads them)."""

    def bf16_layer_outputs(
        self,
        config: Config,
        weights: dict[str, np.ndarray],
        pixels: np.ndarray,
        partner_outputs: list[np.ndarray] | None = None,
        partner_dtypes: list[str] | None = None,
        device: str = "cpu",
    ) -> list[dict[str, Any]]:
        """Per layer of the plan, training mode, under the config's precision: {"name", "output":
        float32 numbers, NHWC (flatten: H, W, C order), "dtype" the layer computed it in, "note":
        why it is not comparable, or None}. Chained from raw `pixels` (N x 28 x 28); or each layer
        fed the other engine's output of the layer before, in its dtype (`partner_outputs`,
        `partner_dtypes`), so a layer's difference is that layer's alone."""

    def bf16_kernels(
        self, config: Config, arrays: dict[str, np.ndarray], dropout_rates: list[float], device: str = "cpu"
    ) -> dict[str, Any]:
        """The kernels a bf16 training step runs, fed bfloat16-valued `arrays` (compare.
        bf16_accumulation names them): dense and conv forward, their weight and bias gradients,
        the input normalisation, dropout at each rate; float32 results, NHWC and HWIO.
        {"unavailable": why} where the engine cannot run them."""


class RunState(Protocol):
    """A run's whole training state in the engine-free form of `fmnist.run_state` (numpy, the
    shared weight layout), read from the engine's own files and written into them so that its
    load and resume paths take it: what carries a run to another engine (`fmnist convert`).
    Paths are strings (the calls may travel to a process of their own)."""

    def read_state(self, run_dir: str) -> dict[str, Any]:
        """The state a run's files hold: a finished run's model file, else its epoch checkpoint
        (`fmnist.run_state.make_state`)."""

    def write_state(self, config: Config, state: dict[str, Any], run_dir: str, finished: bool) -> None:
        """`state` as the engine's own files in `run_dir`: its model file (`finished`), else the
        epoch checkpoint its `train(resume=True)` continues from. Writes nothing else."""

    def continue_steps(
        self, run_dir: str, images: list[np.ndarray], labels: list[np.ndarray], steps_per_epoch: int, dtype: str
    ) -> dict[str, Any]:
        """The run's training continued one step per batch from its files, as its resume would
        (weights, optimizer state and step count, the schedule at its position), dropout as the
        config says, in float32 or float64: {"loss": per step}."""


#: Capability name (what an engine declares, `fmnist.engine.CAPABILITIES`) -> its interface.
INTERFACES: dict[str, type] = {
    "training": Training,
    "parity": Parity,
    "export": Export,
    "speed": Speed,
    "bf16": Bf16Probe,
    "state": RunState,
}


def functions(capability: str) -> tuple[str, ...]:
    """The functions an engine's module must offer for `capability`."""
    interface = INTERFACES[capability]
    return tuple(n for n, v in vars(interface).items() if callable(v) and not n.startswith("_"))


#: What an engine job (`fmnist.engine_job`) may call, in a process of its own: function -> capability.
JOB_FUNCTIONS: dict[str, str] = {
    **{fn: "parity" for fn in functions("parity")},
    **{fn: "bf16" for fn in functions("bf16")},
    **{fn: "state" for fn in functions("state")},
    "predict": "training",
}
