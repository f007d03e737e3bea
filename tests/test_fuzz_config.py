"""Property-based fuzzing of the config loader: whatever dicts or YAML it gets, it either
returns a `Config` whose values obey the schema or raises `ConfigError` with a one-line message
naming the file: never another exception, which the CLI would show as a traceback.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from hypothesis import example, given, note, settings
from hypothesis import strategies as st

from fmnist.architecture import layer_plan
from fmnist.config import Config, config_from_dict, config_to_dict, load_config
from fmnist.errors import ConfigError
from fuzzing import FUZZ, FUZZ_FILES, assert_one_line, event


# --------------------------------------------------------------------------------------------
# Config loader: random nested dicts built from the real schema


def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


JUNK = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from([-1, 0, 1, 2, 3, 27, 28, 29, 10**6, -(10**6), 2**63, 10**400]),
        st.integers(-1000, 1000),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1.0, 0.999999, 1e-300, 5e-324, 1e308]),
        st.text(max_size=12),
        st.sampled_from(["", "\n", "a\nb", "valid", "same", "adam", "relu", "true", "1e-3", "../x"]),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)
"""Values of random types: what a user, or a mangled YAML file, could put anywhere."""


def in_range_int(rules: dict[str, Any]) -> st.SearchStrategy[int]:
    lo = rules.get("ge", rules.get("gt", -6) + 1)
    hi = rules.get("le", rules.get("lt", lo + 41) - 1)
    return st.integers(lo, min(lo + 40, hi))


def in_range_float(rules: dict[str, Any]) -> st.SearchStrategy[float]:
    lo = rules.get("ge", rules.get("gt", -300.0))
    hi = rules.get("le", rules.get("lt", max(lo, 0) + 300.0))
    floats = st.floats(lo, hi, exclude_min="gt" in rules, exclude_max="lt" in rules)
    # YAML reads `lr: 1` as an int: whole numbers in range are valid floats too
    first = math.ceil(lo) + ("gt" in rules and lo == math.ceil(lo))
    last = math.floor(hi) - ("lt" in rules and hi == math.floor(hi))
    return st.one_of(floats, st.integers(first, last)) if first <= last else floats


class Fuzzer:
    """Draws a raw config: mostly in-range values, with junk, deletions and extra keys at `chaos` rates."""

    def __init__(self, draw: Any, junk: float, delete: float, extra: float) -> None:
        self.draw, self.junk, self.delete, self.extra = draw, junk, delete, extra

    def chance(self, p: float, label: str) -> bool:
        return p > 0 and self.draw.draw(st.floats(0, 1), label=label) < p

    def value(self, tp: Any, rules: dict[str, Any], key: str) -> Any:
        if self.chance(self.junk, f"junk {key}"):
            return self.draw.draw(JUNK, label=key)
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            if self.draw.draw(st.booleans(), label=f"{key} is None"):
                return None
            (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
            return self.value(inner, rules, key)
        if origin is Literal:
            return self.draw.draw(st.sampled_from(typing.get_args(tp)), label=key)
        if origin is tuple:
            inner = typing.get_args(tp)[0]
            count = self.draw.draw(st.integers(rules.get("ge", 0), rules.get("le", 3)), label=f"len {key}")
            item_rules = {"ge": rules["item_ge"]} if "item_ge" in rules else {}
            return [self.value(inner, item_rules, f"{key}[{i}]") for i in range(count)]
        if dataclasses.is_dataclass(tp):
            return self.mapping(tp, key)
        if tp is bool:
            return self.draw.draw(st.booleans(), label=key)
        if tp is int:
            return self.draw.draw(in_range_int(rules), label=key)
        if tp is float:
            return self.draw.draw(in_range_float(rules), label=key)
        if tp is str:
            return self.draw.draw(st.from_regex(rules.get("pattern", r".+"), fullmatch=True).filter(bool), label=key)
        raise AssertionError(f"the fuzzer does not know {tp!r}")

    def mapping(self, cls: type, key: str) -> dict[str, Any]:
        raw: dict[str, Any] = {}
        types_ = hints(cls)
        for f in dataclasses.fields(cls):
            if not required(f) and self.chance(self.delete, f"delete {key}.{f.name}"):
                continue
            if required(f) and self.chance(self.delete / 4, f"delete required {key}.{f.name}"):
                continue
            raw[f.name] = self.value(types_[f.name], dict(f.metadata), f"{key}.{f.name}")
        if self.chance(self.extra, f"extra key in {key}"):
            names = [f.name for f in dataclasses.fields(cls)]
            extra = self.draw.draw(
                st.one_of(
                    st.text(max_size=8),
                    st.sampled_from(names).map(lambda n: n[:-1]),  # a typo: last letter dropped
                    st.sampled_from(names).map(lambda n: n[1] + n[0] + n[2:] if len(n) > 1 else n + n),
                    st.sampled_from(["epohcs", "a\nb", "lr", "filters"]),
                    st.integers(-3, 3),
                    st.none(),
                ),
                label=f"extra key in {key}",
            )
            raw[extra] = self.draw.draw(JUNK, label=f"extra value in {key}")
        return raw


chaos = st.sampled_from([(0.0, 0.0, 0.0), (0.02, 0.05, 0.02), (0.05, 0.1, 0.05), (0.2, 0.2, 0.2), (0.6, 0.3, 0.5)])


def draw_raw(draw: Any, rates: tuple[float, float, float]) -> Any:
    if draw.draw(st.integers(0, 30), label="not a mapping") == 0:
        return draw.draw(JUNK, label="whole config")
    return Fuzzer(draw, *rates).mapping(Config, "config")


def assert_obeys_schema(obj: Any, key: str = "config") -> None:
    """Every value an accepted config holds is of its type and inside its field's range."""
    for f in dataclasses.fields(obj):
        value, tp, rules = getattr(obj, f.name), hints(type(obj))[f.name], dict(f.metadata)
        where = f"{key}.{f.name}={value!r}"
        if dataclasses.is_dataclass(value):
            assert_obeys_schema(value, f"{key}.{f.name}")
            continue
        if typing.get_origin(tp) is Literal:
            assert value in typing.get_args(tp), where
        if isinstance(value, float):
            assert math.isfinite(value), where
        if isinstance(value, tuple):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    assert_obeys_schema(item, f"{key}.{f.name}[{i}]")
                elif "item_ge" in rules:
                    assert item >= rules["item_ge"], where
        if value is None:
            continue
        sized = len(value) if isinstance(value, tuple) else value
        if "ge" in rules:
            assert sized >= rules["ge"], where
        if "gt" in rules:
            assert sized > rules["gt"], where
        if "le" in rules:
            assert sized <= rules["le"], where
        if "lt" in rules:
            assert sized < rules["lt"], where
    if isinstance(obj, Config):
        assert obj.train.epochs >= 1 and obj.train.batch_size >= 1 and obj.train.optimizer.lr > 0
        assert obj.model.dense_dropout < 1 and all(b.dropout < 1 for b in obj.model.conv_blocks)
        assert all(units >= 1 for units in obj.model.dense) and all(s >= 0 for s in obj.compare.seeds)


def check_accepted(config: Config) -> None:
    """Schema ranges hold, the config round-trips, and the layer plan is built or refused cleanly."""
    assert isinstance(config, Config)
    assert_obeys_schema(config)
    assert config_from_dict(config_to_dict(config)) == config
    if sum(b.convs for b in config.model.conv_blocks) > 50:
        return  # layer_plan would build a plan this long; the schema sets no upper bound
    try:
        plan = layer_plan(config)
    except ConfigError as exc:
        assert_one_line(exc, "model.conv_blocks[")
        return
    assert plan[-1].out_shape == (10,)
    assert all(d >= 1 for layer in plan for d in layer.out_shape)


def check_config_from_dict(raw: Any) -> Config | None:
    note(f"raw config: {raw!r}")
    try:
        config = config_from_dict(raw)
    except ConfigError as exc:
        assert_one_line(exc, "")
        event("refused")
        return None
    event("accepted")
    check_accepted(config)
    return config


@FUZZ
@given(draw=st.data(), rates=chaos)
@example(draw=None, rates=None)
def test_config_from_dict(draw: Any, rates: tuple[float, float, float]) -> None:
    if draw is None:  # hand-picked raw configs that fuzzing once found or that must stay refused
        base = {"model": {"conv_blocks": [{"filters": 4}]}}
        for bad in (
            {**base, "train": {"optimizer": {"lr": math.nan}}},
            {**base, "train": {"optimizer": {"lr": math.inf}}},
            {**base, "data": {"mean": -math.inf}},
            {**base, "train": {"optimizer": {"lr": 10**400}}},
            {**base, "train": {"ep\nochs": 3}},
            {**base, "name": "../../etc"},
            {**base, "name": "a\nb"},
            {**base, "compare": {"seeds": [0, -1]}},
            {"model": {"conv_blocks": [{"filters": 4}], "dense": [0]}},
            {"model": {"conv_blocks": [{"filters": 4}], "dense": [128, -5]}},
        ):
            assert check_config_from_dict(bad) is None, bad
        return
    check_config_from_dict(draw_raw(draw, rates))


def obey_cross_field_rules(raw: dict[str, Any]) -> dict[str, Any]:
    """Per-field ranges are drawn by the fuzzer; these rules tie fields together (each refusal of
    them has its own test in tests/test_schedules.py and tests/test_augment.py)."""
    augment = raw.get("data", {}).get("augment", {})
    for key, top in (("erase_scale", 1.0), ("erase_ratio", math.inf)):
        if key in augment:  # 0 < low <= high (<= 1 for the area)
            low, high = sorted(min(max(v, 1e-3), top) for v in augment[key])
            augment[key] = [low, high]
    train = raw.get("train", {})
    optimizer, schedule = train.get("optimizer", {}), train.get("schedule", {})
    if optimizer.get("name") != "adamw":
        optimizer["weight_decay"] = 0.0  # decoupled weight decay belongs to adamw only
    if schedule.get("name") == "onecycle":
        schedule["warmup_epochs"] = 0.0  # onecycle has its own warm-up
    return raw


@settings(max_examples=100, deadline=None)
@given(draw=st.data())
def test_in_range_configs_are_accepted(draw: Any) -> None:
    """No junk, no deletions of required keys: the validator must accept (no false refusals)."""
    raw = obey_cross_field_rules(Fuzzer(draw, 0.0, 0.0, 0.0).mapping(Config, "config"))
    config = config_from_dict(raw)
    check_accepted(config)


YAML_SNIPPETS = [
    "",
    "~",
    "[]",
    "- a\n- b\n",
    "3",
    "'text'",
    "{",
    "model: [\n",
    "\t- x",
    "a: b: c",
    "? [1, 2]\n: 3",
    "name: 2001-13-45",
    "name: 2001-02-30",
    "seed: !!int abc",
    "seed: !!float abc",
    "seed: !!bool maybe",
    "seed: !!timestamp x",
    "seed: !!int 0o99",
    "seed: !!int '0x'",
    "seed: !!python/name:os.system",
    "seed: !!binary '!!!'",
    "seed: !!set {1: 2}",
    "<<: 3",
    "train: &a {optimizer: *a}",
    "model: " + "[" * 3000 + "]" * 3000,
    "model: " + "{a: " * 200 + "1" + "}" * 200,
    "train:\n  optimizer:\n    lr: .nan\n",
    "train:\n  optimizer:\n    lr: .inf\n",
    "data: {mean: -.inf}",
    "train: {optimizer: {lr: 1" + "0" * 400 + "}}",
    "\ufeffname: x",
    "name: x\x00",
    "name: \x85",
    "train:\n  epohcs: 3\n",
]


@FUZZ_FILES
@given(draw=st.data(), rates=chaos, form=st.sampled_from(["dump", "mutated", "text", "bytes", "snippet"]))
def test_load_config(scratch: Path, draw: Any, rates: tuple[float, float, float], form: str) -> None:
    path = scratch / "fuzz.yaml"
    base = "model: {conv_blocks: [{filters: 4}]}\n"
    if form in ("dump", "mutated"):
        text = yaml.safe_dump(draw_raw(draw, rates), sort_keys=False)
        if form == "mutated" and text:
            at = draw.draw(st.integers(0, len(text)), label="at")
            cut = draw.draw(st.integers(0, 5), label="cut")
            text = text[:at] + draw.draw(st.text(max_size=4), label="insert") + text[at + cut :]
        content = text.encode("utf-8", "surrogatepass")
    elif form == "text":
        content = (base + draw.draw(st.text(max_size=60), label="text")).encode("utf-8", "surrogatepass")
    elif form == "bytes":
        content = draw.draw(st.binary(max_size=80), label="bytes")
    else:
        content = (base + draw.draw(st.sampled_from(YAML_SNIPPETS), label="snippet")).encode("utf-8", "surrogatepass")
    path.write_bytes(content)
    note(f"file content: {content!r}")
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert_one_line(exc, str(path))
        event(f"{form}: refused")
        return
    event(f"{form}: accepted")
    check_accepted(config)
    # What is accepted survives a YAML round trip too (what save_config writes into a run).
    again = scratch / "again.yaml"
    again.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    assert load_config(again) == config


@pytest.mark.parametrize("snippet", YAML_SNIPPETS)
def test_load_config_snippets(tmp_path: Path, snippet: str) -> None:
    """Every hand-picked YAML oddity, each time (the fuzz test above only samples them)."""
    path = tmp_path / "c.yaml"
    path.write_bytes(("model: {conv_blocks: [{filters: 4}]}\n" + snippet).encode("utf-8", "surrogatepass"))
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert_one_line(exc, str(path))
    else:
        check_accepted(config)


def test_unreadable_config_files(tmp_path: Path) -> None:
    for path, content in (
        (tmp_path / "latin1.yaml", "name: caf\u00e9\n".encode("latin-1")),
        (tmp_path / "binary.yaml", b"\xff\xfe\x00bad"),
        (tmp_path / "missing.yaml", None),
        (tmp_path, None),
    ):
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(ConfigError) as exc:
            load_config(path)
        assert_one_line(exc.value, str(path))
