"""The configs that ship with the package: every file in configs/ is one, found by its name from any
folder; a path keeps working, and wins over a name; `fmnist configs` lists each in one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fmnist.config import ConfigError, load_config
from fmnist.packaged_configs import config_file, describe, is_name, packaged_configs

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(path.stem for path in (REPO / "configs").glob("*.yaml"))


def test_every_config_in_the_checkout_is_packaged():
    assert CONFIGS and list(packaged_configs()) == CONFIGS


@pytest.mark.parametrize("name", CONFIGS)
def test_a_name_reads_the_same_config_as_its_path(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the name alone finds it
    by_name = load_config(name)
    assert by_name == load_config(REPO / "configs" / f"{name}.yaml")
    assert by_name.name == name  # the name a run records is the one `--config` takes


def test_a_relative_path_is_read_from_the_working_folder(monkeypatch):
    monkeypatch.chdir(REPO)
    assert config_file("configs/strong.yaml") == Path("configs/strong.yaml")
    assert load_config("configs/strong.yaml") == load_config("strong")


def test_a_file_wins_over_a_packaged_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (REPO / "configs" / "baseline.yaml").read_text().replace("epochs: 15", "epochs: 3")
    Path("baseline").write_text(text)
    assert load_config("baseline").train.epochs == 3
    assert load_config("strong").name == "strong"


def test_an_unknown_name_lists_the_packaged_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"cannot read config basline: .*packaged configs: baseline, batchnorm"):
        load_config("basline")


def test_a_missing_path_is_not_taken_for_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for path in ("configs/baseline.yaml", "baseline.yaml", str(tmp_path / "baseline")):
        assert not is_name(path)
        with pytest.raises(ConfigError, match="cannot read config") as caught:
            load_config(path)
        assert "packaged configs" not in str(caught.value)


@pytest.mark.parametrize("name", CONFIGS)
def test_each_config_describes_itself_in_its_first_line(name):
    path = packaged_configs()[name]
    first = path.read_text().splitlines()[0]
    line = describe(path)
    assert first == f"# {line}", "the description is the file's first line"
    assert 20 <= len(line) <= 100 and line.endswith("."), line
    assert not re.search(r"#\d|issue", line, re.IGNORECASE), line


def test_fmnist_configs_lists_every_config_in_one_line(capsys):
    from fmnist_cli.main import main

    assert main(["configs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == CONFIGS
    for line, name in zip(lines, CONFIGS):
        assert line.split(None, 1)[1] == describe(packaged_configs()[name])


def test_the_default_config_is_a_name():
    from fmnist_cli.main import build_parser

    for command in ("train", "parity", "compare", "benchmark"):
        assert build_parser().parse_args([command]).config == Path("baseline")
