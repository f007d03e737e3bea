"""Configs as YAML files: reading one (a path, or a packaged config's name; every error names the
file, then the key) and writing the fully resolved config a run used (its `config.yaml`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fmnist.config_schema import Config, config_from_dict, config_to_dict
from fmnist.errors import ConfigError, reason as error_reason
from fmnist.packaged_configs import config_file, is_name, packaged_configs


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config, given its path or a packaged config's name (`baseline`);
    every error names the file and the key."""
    spec, path = path, config_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        hint = f" (packaged configs: {', '.join(packaged_configs())})" if is_name(spec) else ""
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}{hint}") from None
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


def as_config(spec: str | Path | Config | Mapping[str, Any]) -> Config:
    """The config an API was handed in any of its forms: a `Config` as it is, a plain mapping (a
    checkpoint's hyperparameters: `config_to_dict`'s output) validated, else a packaged config's
    name or a YAML file's path (`load_config`)."""
    if isinstance(spec, Config):
        return spec
    if isinstance(spec, Mapping):
        return config_from_dict(dict(spec))
    return load_config(spec)


def config_yaml(config: Config) -> str:
    """The resolved config as the YAML text `load_config` reads back to the same config."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def save_config(config: Config, path: Path) -> None:
    from fmnist.rundir import atomic_write_text

    atomic_write_text(path, config_yaml(config))
