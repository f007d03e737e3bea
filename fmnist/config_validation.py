"""The reader that turns a plain mapping (as read from YAML) into the config's frozen dataclasses,
so that every refusal names its key and what is allowed: an unknown key (with the closest known
one), a missing one, a wrong type, a value outside the range a field declares.

Generic: it knows dataclasses, `Literal`, optional values, tuples and plain types, not the
config's fields; each field declares its range with `rule_field` (fmnist.config_schema).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from typing import Any, Literal

from fmnist.errors import ConfigError


def rule_field(default: Any = dataclasses.MISSING, **rules: Any) -> Any:
    """A dataclass field with validation rules kept in its metadata: ge, gt, le, lt (on a list:
    its number of entries), item_ge (every entry of a list), pattern (a regex the text must match)."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: default, metadata=rules)
    return dataclasses.field(default=default, metadata=rules)


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
        return build(tp, value, key + ".")
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


def build(cls: type, raw: dict[str, Any], prefix: str = "") -> Any:
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
