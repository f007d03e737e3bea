"""The config every engine takes: its schema, its validation and its YAML files, under one name.

Every module imports configs from here. The parts: the dataclasses and their conversion to and
from plain mappings (fmnist.config_schema), the reader that validates a mapping with messages
naming each key (fmnist.config_validation), loading and saving YAML (fmnist.config_io).
"""

from __future__ import annotations

from fmnist.config_io import as_config, load_config, save_config
from fmnist.config_schema import (
    PRECISIONS,
    AugmentConfig,
    BatchNormConfig,
    CompareConfig,
    Config,
    ConvBlock,
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    Precision,
    ScheduleConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    with_overrides,
)
from fmnist.errors import ConfigError

__all__ = [
    "PRECISIONS",
    "AugmentConfig",
    "BatchNormConfig",
    "CompareConfig",
    "Config",
    "ConfigError",
    "ConvBlock",
    "DataConfig",
    "ModelConfig",
    "OptimizerConfig",
    "Precision",
    "ScheduleConfig",
    "TrainConfig",
    "as_config",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "save_config",
    "with_overrides",
]
