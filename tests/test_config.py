"""The config loader: the baseline loads, and every bad key or value is named in the message."""

from pathlib import Path

import pytest

from fmnist.config import ConfigError, as_config, config_from_dict, config_to_dict, load_config, with_overrides

REPO = Path(__file__).resolve().parents[1]


def test_baseline_is_the_original_network(baseline_config):
    model = baseline_config.model
    assert [b.filters for b in model.conv_blocks] == [32, 64]
    assert [b.dropout for b in model.conv_blocks] == [0.0, 0.25]
    assert model.dense == (128,) and model.dense_dropout == 0.5
    assert baseline_config.train.epochs == 15 and baseline_config.train.batch_size == 128


def test_round_trip(baseline_config):
    assert config_from_dict(config_to_dict(baseline_config)) == baseline_config


def test_an_api_takes_a_config_by_name_path_mapping_or_itself(baseline_config):
    """What the Lightning classes and LightningCLI are handed (`as_config`), all the same config;
    a mapping is validated as a file is."""
    for spec in ("baseline", REPO / "configs" / "baseline.yaml", config_to_dict(baseline_config), baseline_config):
        assert as_config(spec) == baseline_config
    with pytest.raises(ConfigError, match="seed"):
        as_config({**config_to_dict(baseline_config), "seed": -1})


def _raw(baseline_config, **changes):
    raw = config_to_dict(baseline_config)
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return raw


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"train__epochs": -1}, "train.epochs: value must be >= 1, got -1"),
        ({"train__batch_size": 0}, "train.batch_size: value must be >= 1, got 0"),
        ({"model__dense_dropout": 1.0}, "model.dense_dropout: value must be < 1.0"),
        ({"train__epochs": "ten"}, "train.epochs: expected a whole number, got 'ten'"),
        ({"train__optimizer__name": "rmsprop"}, "train.optimizer.name: got 'rmsprop', allowed: 'adam', 'adamw', 'sgd'"),
        ({"train__optimizer__lr": 0}, "train.optimizer.lr: value must be > 0.0"),
        ({"model__conv_blocks": []}, "model.conv_blocks: number of entries must be >= 1"),
        ({"train__deterministic": "yes"}, "train.deterministic: expected true or false"),
    ],
)
def test_bad_values_are_named(baseline_config, changes, expected):
    with pytest.raises(ConfigError) as info:
        config_from_dict(_raw(baseline_config, **changes))
    assert expected in str(info.value)


def test_unknown_key_suggests_the_closest(baseline_config):
    raw = _raw(baseline_config)
    raw["train"]["epohcs"] = 3
    with pytest.raises(ConfigError, match=r"unknown key 'train.epohcs' \(did you mean 'epochs'\?\)"):
        config_from_dict(raw)


def test_missing_required_key():
    with pytest.raises(ConfigError, match="missing required key 'model'"):
        config_from_dict({"name": "x"})


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML at line"):
        load_config(bad)


def test_overrides_are_validated_again(baseline_config):
    assert with_overrides(baseline_config, {"train.epochs": 3, "seed": None}).train.epochs == 3
    with pytest.raises(ConfigError, match="train.epochs"):
        with_overrides(baseline_config, {"train.epochs": 0})


def test_a_conv_that_does_not_fit_is_refused(baseline_config):
    from fmnist.architecture import layer_plan

    raw = _raw(baseline_config)
    raw["model"]["conv_blocks"] = [{"filters": 8, "kernel_size": 5, "pool": 2}] * 4
    with pytest.raises(ConfigError, match=r"conv_blocks\[2\]"):
        layer_plan(config_from_dict(raw))
