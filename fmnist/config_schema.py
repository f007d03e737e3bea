"""The config schema every engine takes: frozen dataclasses, and their conversion to and from
plain mappings.

Every hyperparameter and every choice where Keras and PyTorch differ by default (initialisation,
Adam's epsilon, batch-norm conventions, TF32) is a named field here, so the engines can be
held to the same math. Each field declares its allowed range (`_f`), which the reader
(fmnist.config_validation) enforces: an unknown key or a bad value is refused with a message
naming the key and what is allowed, before any training starts.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Literal

from fmnist.config_validation import build, rule_field as _f
from fmnist.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class ConvBlock:
    """`convs` conv layers (each conv -> [batch norm] -> activation), then max-pool, then dropout."""

    filters: int = _f(ge=1)
    kernel_size: int = _f(3, ge=1)
    convs: int = _f(1, ge=1)
    stride: int = _f(1, ge=1)
    padding: Literal["valid", "same"] = "valid"
    batch_norm: bool = False
    pool: int = _f(2, ge=0)  # max-pool window and stride; 0 or 1 means no pooling
    dropout: float = _f(0.0, ge=0.0, lt=1.0)


@dataclass(frozen=True, kw_only=True)
class BatchNormConfig:
    """Keras conventions: running = momentum * running + (1 - momentum) * batch statistic.

    torch's BatchNorm2d momentum is the complement (Keras 0.99 = torch 0.01); the torch backend
    converts. Keras' default epsilon is 1e-3, torch's 1e-5: the config decides for both.
    """

    momentum: float = _f(0.99, gt=0.0, lt=1.0)
    epsilon: float = _f(1e-3, gt=0.0)


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    conv_blocks: tuple[ConvBlock, ...] = _f(ge=1)
    dense: tuple[int, ...] = _f((128,), item_ge=1)  # hidden dense layer widths, before the 10-way output
    dense_dropout: float = _f(0.5, ge=0.0, lt=1.0)  # after each hidden dense layer
    activation: Literal["relu"] = "relu"
    # glorot_uniform (Keras' default) or he_uniform, weights only; biases start at zero.
    init: Literal["glorot_uniform", "he_uniform"] = "glorot_uniform"
    batch_norm: BatchNormConfig = BatchNormConfig()


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """Training-batch augmentation, done once in numpy (fmnist.augment) so every engine trains on
    the very same images. All off by default: a config without `data.augment` trains as before."""

    crop_padding: int = _f(0, ge=0, le=14)  # random crop of the zero-padded image: shift by up to this many pixels
    flip: float = _f(0.0, ge=0.0, le=1.0)  # probability of a horizontal mirror
    erase: float = _f(0.0, ge=0.0, le=1.0)  # probability of random erasing (cutout) of one rectangle
    erase_scale: tuple[float, ...] = _f((0.02, 0.25), ge=2, le=2, item_ge=0.0)  # its area, fraction of the image
    erase_ratio: tuple[float, ...] = _f((0.3, 3.3), ge=2, le=2, item_ge=0.0)  # its height / width
    erase_value: int = _f(0, ge=0, le=255)  # the raw pixel value it is filled with (0: background black)

    def __post_init__(self) -> None:
        low, high = self.erase_scale
        if not 0.0 < low <= high <= 1.0:
            raise ConfigError(f"data.augment.erase_scale: need 0 < low <= high <= 1, got {list(self.erase_scale)}")
        low, high = self.erase_ratio
        if not 0.0 < low <= high:
            raise ConfigError(f"data.augment.erase_ratio: need 0 < low <= high, got {list(self.erase_ratio)}")

    @property
    def enabled(self) -> bool:
        return self.crop_padding > 0 or self.flip > 0.0 or self.erase > 0.0


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    val_fraction: float = _f(0.1, gt=0.0, lt=1.0)  # 60,000 -> 54,000 train / 6,000 validation
    split_seed: int = _f(0, ge=0)  # fixed across training seeds: every run validates on one set
    # Normalisation in raw pixel units, applied inside both models: (x - mean) / std.
    mean: float = 72.94  # Fashion-MNIST training-set pixel mean (0.2860 * 255)
    std: float = _f(90.02, gt=0.0)  # and standard deviation (0.3530 * 255)
    limit_train: int | None = _f(None, ge=10)  # use only the first N training images (smoke runs)
    limit_test: int | None = _f(None, ge=1)  # evaluate only the first N test images
    augment: AugmentConfig = AugmentConfig()  # training batches only


@dataclass(frozen=True, kw_only=True)
class OptimizerConfig:
    # adamw: Adam with decoupled weight decay, Keras semantics (w -= lr * weight_decay * w before
    # each Adam update, on every trainable variable, biases and batch-norm scales included).
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = _f(1e-3, gt=0.0)
    beta_1: float = _f(0.9, ge=0.0, lt=1.0)
    beta_2: float = _f(0.999, ge=0.0, lt=1.0)
    # Keras semantics: added to sqrt(v) *before* bias correction. torch.optim.Adam adds it after,
    # and no constant maps one onto the other, so the torch backend runs a Keras-exact Adam.
    epsilon: float = _f(1e-7, gt=0.0)
    momentum: float = _f(0.9, ge=0.0, lt=1.0)  # SGD only
    nesterov: bool = False  # SGD only
    weight_decay: float = _f(0.0, ge=0.0)  # adamw only

    def __post_init__(self) -> None:
        # Keras decays decoupled in every optimizer, torch's adam and sgd couple it to the
        # gradient (L2): only adamw means the same in both.
        if self.weight_decay > 0.0 and self.name != "adamw":
            raise ConfigError(
                f"train.optimizer.weight_decay: decoupled weight decay needs name 'adamw', got name {self.name!r}"
            )


@dataclass(frozen=True, kw_only=True)
class ScheduleConfig:
    """The learning rate of every step, from fmnist.schedules.lr_at_step in every engine.

    constant and cosine (down to min_lr) follow a linear warm-up of `warmup_epochs`; onecycle is
    torch's OneCycleLR (cosine up from lr * start_factor to lr at peak_fraction of the training,
    cosine down to min_lr at its last step; the momentum is not cycled).
    """

    name: Literal["constant", "cosine", "onecycle"] = "constant"
    # cosine: the learning rate of the last epoch's end; onecycle: of the last step
    min_lr: float = _f(0.0, ge=0.0)
    # constant, cosine: a linear rise to lr first; per epoch rounded to whole epochs, per step to steps
    warmup_epochs: float = _f(0.0, ge=0.0)
    per_step: bool = False  # a new learning rate every step; false: one per epoch, as the baseline
    peak_fraction: float = _f(0.3, gt=0.0, lt=1.0)  # onecycle: where it reaches lr (torch's pct_start)
    start_factor: float = _f(0.04, gt=0.0, le=1.0)  # onecycle: starts at lr * this (torch's 1 / div_factor)

    def __post_init__(self) -> None:
        if self.name == "onecycle" and self.warmup_epochs > 0.0:
            raise ConfigError(
                "train.schedule.warmup_epochs: onecycle has its own warm-up (peak_fraction); leave warmup_epochs at 0"
            )


Precision = Literal["float32", "bf16-mixed", "auto"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int = _f(15, ge=1)
    batch_size: int = _f(128, ge=1)
    eval_batch_size: int = _f(1000, ge=1)
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    label_smoothing: float = _f(0.0, ge=0.0, lt=1.0)  # targets (1 - e) * one_hot + e / 10, in the training loss
    # Early stopping on validation accuracy: stop after this many epochs without a new best, then
    # restore the best epoch's weights (Keras EarlyStopping semantics); 0: off, train every epoch.
    early_stopping: int = _f(0, ge=0)
    # TF32 matmuls on Ampere+ GPUs trade 3 decimal digits for speed; off keeps engines comparable.
    allow_tf32: bool = False
    deterministic: bool = True  # deterministic kernels: same seed, same numbers (CPU)
    # Speed knobs, the same math (rounding aside): float32 or bfloat16 mixed precision (Keras
    # policy mixed_bfloat16, Lightning precision bf16-mixed: weights and losses stay float32), or
    # auto: bf16-mixed where the device computes bfloat16 natively, float32 where it would be
    # emulated (fmnist.precision; a run records both what it asked and what it trained in);
    # torch's channels_last memory format (NHWC, as TensorFlow; its max-pool is far faster on CPU: docs/speed.md).
    precision: Precision = "float32"
    channels_last: bool = False
    # One training over several devices. batch_size stays the global batch, split evenly across
    # them, so the math is that of one device (batch norm statistics aside: per device).
    # Lightning: one process per device (strategy ddp; gloo on CPU, NCCL on GPUs), num_nodes
    # machines. Keras: one process, a replica per device (tf.distribute.MirroredStrategy; on
    # a machine without enough GPUs, logical CPU devices). auto: ddp or mirrored when devices > 1.
    devices: int = _f(1, ge=1)
    num_nodes: int = _f(1, ge=1)
    strategy: Literal["auto", "ddp", "mirrored"] = "auto"


@dataclass(frozen=True, kw_only=True)
class CompareConfig:
    """How `fmnist compare` judges the engines."""

    # Two one-sided tests: the engines count as equivalent when the confidence interval of the
    # difference of their mean test accuracies lies inside +/- margin (0.005 = 0.5 points).
    equivalence_margin: float = _f(0.005, gt=0.0, lt=1.0)
    alpha: float = _f(0.05, gt=0.0, lt=0.5)  # significance level of each one-sided test
    seeds: tuple[int, ...] = _f((0, 1, 2), item_ge=0)  # default seeds when --seeds is not given


@dataclass(frozen=True, kw_only=True)
class Config:
    # Part of run and report folder names (runs/<name>-<engine>-seed<N>-<time>), so no '/' or '..'.
    name: str = _f("baseline", pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]*")
    seed: int = _f(0, ge=0)
    data: DataConfig = DataConfig()
    model: ModelConfig = _f()
    train: TrainConfig = TrainConfig()
    compare: CompareConfig = CompareConfig()


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Validate a plain mapping (as read from YAML) into a Config."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of settings, got {type(raw).__name__}")
    return build(Config, raw)


def config_to_dict(config: Any) -> Any:
    """The fully resolved config as plain YAML-able values (tuples become lists)."""
    if dataclasses.is_dataclass(config):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, tuple):
        return [config_to_dict(v) for v in config]
    return config


def with_overrides(config: Config, overrides: dict[str, Any]) -> Config:
    """Apply dotted-key overrides (e.g. {'train.epochs': 3}) and validate the result again."""
    raw = config_to_dict(config)
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return config_from_dict(raw)
