"""The config schema both backends take, and its loader.

Every hyperparameter and every choice where Keras and PyTorch differ by default (initialisation,
Adam's epsilon, batch-norm conventions, TF32) is a named field here, so the two backends can be
held to the same math. Values are validated on load: an unknown key or a bad value is refused with
a message naming the key and what is allowed, before any training starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from fmnist.errors import ConfigError, reason as error_reason


def _f(default: Any = dataclasses.MISSING, **rules: Any) -> Any:
    """A dataclass field with validation rules kept in its metadata: ge, gt, le, lt (on a list:
    its number of entries), item_ge (every entry of a list), pattern (a regex the text must match)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default, metadata=rules)
    return field(default=default, metadata=rules)


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
    """Training-batch augmentation, done once in numpy (fmnist.augment) so both backends train on
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
    """The learning rate of every step, from fmnist.schedules.lr_at_step in both backends.

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


Precision = Literal["float32", "bf16-mixed"]
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
    # TF32 matmuls on Ampere+ GPUs trade 3 decimal digits for speed; off keeps backends comparable.
    allow_tf32: bool = False
    deterministic: bool = True  # deterministic kernels: same seed, same numbers (CPU)
    # Speed knobs, the same math (rounding aside): float32 or bfloat16 mixed precision (Keras
    # policy mixed_bfloat16, Lightning precision bf16-mixed: weights and losses stay float32);
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
    """How `fmnist compare` judges the two backends."""

    # Two one-sided tests: the backends count as equivalent when the confidence interval of the
    # difference of their mean test accuracies lies inside +/- margin (0.005 = 0.5 points).
    equivalence_margin: float = _f(0.005, gt=0.0, lt=1.0)
    alpha: float = _f(0.05, gt=0.0, lt=0.5)  # significance level of each one-sided test
    seeds: tuple[int, ...] = _f((0, 1, 2), item_ge=0)  # default seeds when --seeds is not given


@dataclass(frozen=True, kw_only=True)
class Config:
    # Part of run and report folder names (runs/<name>-<backend>-seed<N>-<time>), so no '/' or '..'.
    name: str = _f("baseline", pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]*")
    seed: int = _f(0, ge=0)
    data: DataConfig = DataConfig()
    model: ModelConfig = _f()
    train: TrainConfig = TrainConfig()
    compare: CompareConfig = CompareConfig()


# --------------------------------------------------------------------------------------------
# Validation: plain dataclasses plus a small typed reader, so every message can name its key.


def _closest(name: str, allowed: list[str]) -> str:
    match = difflib.get_close_matches(name, allowed, n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _read(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _read(inner, value, key)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: got {value!r}, allowed: {', '.join(map(repr, allowed))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a {_type_name(tp)}, got {value!r}")
        inner = typing.get_args(tp)[0]
        return tuple(_read(inner, v, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of settings, got {value!r}")
        return _build(tp, value, key + ".")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: expected a non-empty text, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {key}")  # a schema bug, not user input


def _check_range(key: str, value: Any, rules: dict[str, Any]) -> None:
    if value is None:
        return
    if "pattern" in rules and not re.fullmatch(rules["pattern"], value):
        raise ConfigError(
            f"{key}: it goes into folder names, so letters, digits, '_', '.' or '-' only,"
            f" starting with a letter or digit; got {value!r}"
        )
    if "item_ge" in rules:
        for i, item in enumerate(value):
            if not item >= rules["item_ge"]:
                raise ConfigError(f"{key}[{i}]: value must be >= {rules['item_ge']}, got {item!r}")
    sized = value if not isinstance(value, tuple) else len(value)
    what = "number of entries" if isinstance(value, tuple) else "value"
    for rule, op, text in (
        ("ge", lambda a, b: a >= b, ">="),
        ("gt", lambda a, b: a > b, ">"),
        ("le", lambda a, b: a <= b, "<="),
        ("lt", lambda a, b: a < b, "<"),
    ):
        if rule in rules and not op(sized, rules[rule]):
            raise ConfigError(f"{key}: {what} must be {text} {rules[rule]}, got {value!r}")


def _build(cls: type, raw: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in raw:
        if name not in fields:
            shown = name if isinstance(name, str) and name.isprintable() else repr(name)  # no newline
            raise ConfigError(
                f"unknown key '{prefix}{shown}'{_closest(str(name), list(fields))}; allowed here: {', '.join(fields)}"
            )
    values = {}
    for name, f in fields.items():
        key = prefix + name
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing required key '{key}' ({_type_name(hints[name])})")
            continue
        values[name] = _read(hints[name], raw[name], key)
        _check_range(key, values[name], dict(f.metadata))
    return cls(**values)


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Validate a plain mapping (as read from YAML) into a Config."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of settings, got {type(raw).__name__}")
    return _build(Config, raw)


def config_to_dict(config: Any) -> Any:
    """The fully resolved config as plain YAML-able values (tuples become lists)."""
    if dataclasses.is_dataclass(config):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, tuple):
        return [config_to_dict(v) for v in config]
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config; every error names the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (not UTF-8 at byte {exc.start})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML (nested too deeply)") from None
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        # PyYAML's constructors let these through for values such as `2001-13-45` (a date with
        # month 13), `!!int abc` or `!!bool maybe`.
        reason = error_reason(exc)
        raise ConfigError(f"{path}: not valid YAML: a value cannot be read ({reason})") from None
    try:
        return config_from_dict(raw if raw is not None else {})
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


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


def save_config(config: Config, path: Path) -> None:
    from fmnist.rundir import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))
