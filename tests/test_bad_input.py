"""The bad-input catalogue, through the real `fmnist` command: every bad config, argument, data
folder or run directory ends with exit code 2 and one line on stderr, `fmnist: error: ...`, naming
what is wrong and where (argparse's own usage errors: the usage, then `fmnist ...: error: ...`).
No traceback unless `--debug`.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "configs" / "baseline.yaml"
FMNIST = Path(sys.executable).parent / "fmnist"
NO_NETWORK = "http://127.0.0.1:9/"  # the discard port: nothing listens, a download fails at once
# Added to `train` commands that must be refused: should one be accepted, it trains in seconds.
TINY = ["--limit-train", "300", "--limit-test", "100", "--epochs", "1"]


@pytest.fixture(scope="module")
def env(tmp_path_factory, real_data_dir) -> dict[str, str]:
    """No mirror reachable, an empty user cache, the real data in FMNIST_DATA_DIR."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    return {
        **os.environ,
        "FMNIST_MIRRORS": NO_NETWORK,
        "XDG_CACHE_HOME": str(cache),
        "FMNIST_DATA_DIR": str(real_data_dir),
    }


def fmnist(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(FMNIST), *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def assert_clean_error(result: subprocess.CompletedProcess, *parts: str) -> str:
    """Exit 2, and stderr is exactly one line, `fmnist: error: ...`, holding every part."""
    shown = f"exit code {result.returncode}, stderr:\n{result.stderr[-4000:]}"
    print(shown)  # the catalogue: `pytest -rA tests/test_bad_input.py` lists what the user saw
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, shown
    assert result.returncode == 2, shown
    lines = lines_of(result.stderr)
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}; {shown}"
    assert lines[0].startswith("fmnist: error: "), shown
    for part in parts:
        assert part in lines[0], f"{part!r} not in the message; {shown}"
    return lines[0]


def assert_usage_error(result: subprocess.CompletedProcess, *parts: str) -> str:
    """argparse's form: `usage: fmnist ...` (wrapped over indented lines), then `fmnist CMD: error: ...`."""
    shown = f"exit code {result.returncode}, stderr:\n{result.stderr[-4000:]}"
    print(shown)
    assert "Traceback" not in result.stderr, shown
    assert result.returncode == 2, shown
    lines = lines_of(result.stderr)
    assert lines[0].startswith("usage: fmnist"), shown
    assert all(line.startswith(" ") for line in lines[1:-1]), shown  # the usage, wrapped
    assert re.match(r"fmnist( [a-z]+)?: error: ", lines[-1]), shown
    for part in parts:
        assert part in lines[-1], f"{part!r} not in the message; {shown}"
    return lines[-1]


# --------------------------------------------------------------------------------------------
# Config files and command-line overrides (refused before any run directory is created)

BASE_TEXT = BASELINE.read_text()


def edited(old: str, new: str) -> str:
    assert old in BASE_TEXT, old
    return BASE_TEXT.replace(old, new, 1)


CONFIG_CASES = {
    "unknown key": (edited("  epochs: 15", "  epohcs: 15"), ["unknown key 'train.epohcs'", "did you mean 'epochs'"]),
    "wrong type": (edited("  batch_size: 128", '  batch_size: "big"'), ["train.batch_size", "whole number", "'big'"]),
    "negative epochs": (edited("  epochs: 15", "  epochs: -3"), ["train.epochs", ">= 1", "-3"]),
    "dropout 1.0": (edited("  dense_dropout: 0.5", "  dense_dropout: 1.0"), ["model.dense_dropout", "< 1.0"]),
    "batch size 0": (edited("  batch_size: 128", "  batch_size: 0"), ["train.batch_size", ">= 1", "got 0"]),
    "lr nan": (edited("lr: 0.001", "lr: .nan"), ["train.optimizer.lr", "nan"]),
    "lr inf": (edited("lr: 0.001", "lr: .inf"), ["train.optimizer.lr", "inf"]),
    "mean -inf": (edited("  mean: 72.94", "  mean: -.inf"), ["data.mean", "-inf"]),
    "dense width 0": (edited("  dense: [128]", "  dense: [0]"), ["model.dense[0]", ">= 1"]),
    "name with a path": (edited("name: baseline", "name: ../../outside"), ["name", "'../../outside'"]),
    "not a mapping": ("- a\n- b\n", ["must be a mapping", "got list"]),
    "invalid YAML": ("train: {epochs: 3\nmodel: [\n", ["not valid YAML at line"]),
    "YAML date with month 13": (edited("name: baseline", "name: 2001-13-45"), ["not valid YAML", "month"]),
    "YAML tag it cannot build": (edited("seed: 0", "seed: !!int abc"), ["not valid YAML"]),
    "not UTF-8": ("\xff\xfe bad bytes\n", ["not a text file"]),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_bad_config_file(env, tmp_path, case):
    text, parts = CONFIG_CASES[case]
    path = tmp_path / "bad.yaml"
    path.write_bytes(text.encode("latin-1") if case == "not UTF-8" else text.encode())
    run_dir = tmp_path / "run"
    result = fmnist(
        env, tmp_path, "train", "--engine", "keras", "--config", str(path), "--run-dir", str(run_dir), *TINY
    )  # the file is validated before the overrides are applied
    assert_clean_error(result, str(path), *parts)
    assert not run_dir.exists()


def test_missing_config_file(env, tmp_path):
    path = tmp_path / "nope.yaml"
    result = fmnist(env, tmp_path, "train", "--engine", "lightning", "--config", str(path))
    assert_clean_error(result, f"cannot read config {path}", "No such file")


def test_config_is_a_directory(env, tmp_path):
    result = fmnist(env, tmp_path, "train", "--engine", "keras", "--config", str(tmp_path))
    assert_clean_error(result, f"cannot read config {tmp_path}")


@pytest.mark.parametrize(
    "args, parts",
    [
        pytest.param(args, parts, id=" ".join(args))
        for args, parts in [
            (["--epochs", "-1"], ["argument --epochs", "at least 1", "-1"]),
            (["--epochs", "2.5"], ["argument --epochs", "whole number", "'2.5'"]),
            (["--batch-size", "0"], ["argument --batch-size", "at least 1", "0"]),
            (["--lr", "-1"], ["argument --lr", "> 0", "-1"]),
            (["--lr", "abc"], ["argument --lr", "'abc'"]),
            (["--lr", "nan"], ["argument --lr", "nan"]),
            (["--seed", "-2"], ["argument --seed", "at least 0"]),
            (["--engine", "mxnet"], ["argument --engine", "'mxnet'", "keras", "lightning"]),
        ]
    ],
)
def test_bad_override(env, tmp_path, args, parts):
    full = ["--engine", "keras", *args] if "--engine" not in args else args
    result = fmnist(env, tmp_path, "train", "--config", str(BASELINE), *full)
    assert_usage_error(result, *parts)


def test_lr_inf_override(env, tmp_path):
    """argparse takes `inf` as a positive float; the config check must still refuse it."""
    run_dir = tmp_path / "run"
    result = fmnist(
        env,
        tmp_path,
        "train",
        "--engine",
        "keras",
        "--config",
        str(BASELINE),
        "--lr",
        "inf",
        "--run-dir",
        str(run_dir),
        *TINY,
    )
    assert_clean_error(result, "train.optimizer.lr", "inf")
    assert not run_dir.exists()


def test_unknown_command(env, tmp_path):
    assert_usage_error(fmnist(env, tmp_path, "trian"), "invalid choice", "'trian'")


# --------------------------------------------------------------------------------------------
# Data folders (`fmnist data --data-dir DIR`)

IMAGES = ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")
LABELS = ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, real_data_dir) -> Path:
    """The four real files: labels as the .gz copies, images uncompressed (raw bytes to damage)."""
    folder = tmp_path_factory.mktemp("pristine")
    for name in LABELS:
        shutil.copyfile(real_data_dir / name, folder / name)
    for stem in IMAGES:
        (folder / stem).write_bytes(gzip.decompress((real_data_dir / f"{stem}.gz").read_bytes()))
    return folder


def data_dir(pristine: Path, tmp_path: Path, leave_out: str | None = None) -> Path:
    """A folder linking the pristine files (cheap), to replace one of them with a damaged copy."""
    folder = tmp_path / "data"
    folder.mkdir()
    for path in pristine.iterdir():
        if path.name != leave_out:
            (folder / path.name).symlink_to(path)
    return folder


def replace(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.unlink()
    path.write_bytes(content)
    return path


def test_good_data_folder(env, tmp_path, pristine):
    """The control: the folder the damaged cases start from is fine."""
    result = fmnist(env, tmp_path, "data", "--data-dir", str(data_dir(pristine, tmp_path)))
    assert result.returncode == 0 and "train: 60,000 images, test: 10,000 images" in result.stdout, result.stderr


def test_truncated_images_file(env, tmp_path, pristine):
    folder = data_dir(pristine, tmp_path)
    path = replace(folder, "t10k-images-idx3-ubyte", (pristine / "t10k-images-idx3-ubyte").read_bytes()[:1_000_000])
    result = fmnist(env, tmp_path, "data", "--data-dir", str(folder))
    assert_clean_error(result, str(path), "truncated", "expected 7840000 bytes", "found 999984")


def test_bit_flip_is_a_checksum_mismatch(env, tmp_path, pristine):
    from fmnist.datasets import FILES

    folder = data_dir(pristine, tmp_path)
    data = bytearray((pristine / "t10k-images-idx3-ubyte").read_bytes())
    data[5000] ^= 0x10  # one bit of one pixel: the structure is intact, only the checksum can tell
    path = replace(folder, "t10k-images-idx3-ubyte", bytes(data))
    result = fmnist(env, tmp_path, "data", "--data-dir", str(folder))
    message = assert_clean_error(result, str(path), "checksum mismatch", FILES["t10k-images-idx3-ubyte"])
    found = re.search(r"found ([0-9a-f]{64})", message)
    assert found and found.group(1) != FILES["t10k-images-idx3-ubyte"], message


def test_wrong_magic_number(env, tmp_path, pristine):
    folder = data_dir(pristine, tmp_path)
    data = bytearray((pristine / "t10k-images-idx3-ubyte").read_bytes())
    data[3] = 0x01  # 0x00000803 (images) -> 0x00000801 (labels)
    path = replace(folder, "t10k-images-idx3-ubyte", bytes(data))
    result = fmnist(env, tmp_path, "data", "--data-dir", str(folder))
    assert_clean_error(result, str(path), "magic number", "0x00000803", "found 0x00000801")


def test_truncated_gzip_file(env, tmp_path, pristine):
    folder = data_dir(pristine, tmp_path)
    cut = (pristine / "train-labels-idx1-ubyte.gz").read_bytes()[:10_000]
    path = replace(folder, "train-labels-idx1-ubyte.gz", cut)
    result = fmnist(env, tmp_path, "data", "--data-dir", str(folder))
    assert_clean_error(result, str(path), "not a valid gzip file")


def test_missing_file_without_network(env, tmp_path, pristine):
    folder = data_dir(pristine, tmp_path, leave_out="t10k-images-idx3-ubyte")
    before = sorted(p.name for p in folder.iterdir())
    result = fmnist(env, tmp_path, "data", "--data-dir", str(folder))
    assert_clean_error(
        result,
        "t10k-images-idx3-ubyte",
        f"not found in {folder}",
        "(from --data-dir)",
        "downloading it failed",
        "127.0.0.1",
        "FMNIST_DATA_DIR",
    )
    assert sorted(p.name for p in folder.iterdir()) == before  # no half download left behind


def test_empty_data_folder(env, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    result = fmnist(env, tmp_path, "data", "--data-dir", str(folder))
    assert_clean_error(result, "train-images-idx3-ubyte", f"not found in {folder}", "FMNIST_DATA_DIR")
    assert list(folder.iterdir()) == []


def test_empty_folder_from_the_environment(env, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    result = fmnist({**env, "FMNIST_DATA_DIR": str(folder)}, tmp_path, "data")
    assert_clean_error(result, f"not found in {folder}", "(from FMNIST_DATA_DIR)")


def test_data_dir_is_a_file(env, tmp_path):
    path = tmp_path / "a-file"
    path.write_text("x")
    result = fmnist(env, tmp_path, "data", "--data-dir", str(path))
    assert_clean_error(result, str(path))


# --------------------------------------------------------------------------------------------
# Run directories (`fmnist evaluate RUN_DIR`)

MODEL_FILES = {"keras": "model.keras", "lightning": "model.ckpt"}


@pytest.fixture(scope="module")
def runs(keras_run, lightning_run) -> dict[str, Path]:
    """One tiny finished run per engine (conftest's, trained once per session), to damage copies of."""
    return {"keras": keras_run, "lightning": lightning_run}


def run_copy(runs: dict[str, Path], engine: str, tmp_path: Path) -> Path:
    copy = tmp_path / f"{engine}-run"
    shutil.copytree(runs[engine], copy)
    return copy


def test_evaluate_missing_directory(env, tmp_path):
    path = tmp_path / "no-such-run"
    assert_clean_error(fmnist(env, tmp_path, "evaluate", str(path)), str(path), "not a directory")


def test_evaluate_a_file(env, tmp_path):
    path = tmp_path / "a-file"
    path.write_text("x")
    assert_clean_error(fmnist(env, tmp_path, "evaluate", str(path)), str(path))


def test_evaluate_directory_without_model(env, tmp_path):
    """A folder without run.json is no run (nothing guesses the engine from file names); one whose
    run.json names an engine but lacks its model says which file is missing."""
    path = tmp_path / "empty-run"
    path.mkdir()
    assert_clean_error(fmnist(env, tmp_path, "evaluate", str(path)), str(path), "holds no run of fmnist", "run.json")
    (path / "run.json").write_text('{"engine": "keras-torch", "status": "finished"}')
    assert_clean_error(fmnist(env, tmp_path, "evaluate", str(path)), str(path), "holds no model (model.keras)")


# One check refuses all three (rundir.check_model_archive, tests/test_training_rules.py): the
# command's path once per engine here, the other kinds of damage in the slow tier.
@pytest.mark.parametrize(
    "damage",
    ["truncated", pytest.param("garbage", marks=pytest.mark.slow), pytest.param("empty", marks=pytest.mark.slow)],
)
@pytest.mark.parametrize("engine", list(MODEL_FILES))
def test_evaluate_damaged_model(env, tmp_path, runs, engine, damage):
    run_dir = run_copy(runs, engine, tmp_path)
    model = run_dir / MODEL_FILES[engine]
    content = {"truncated": model.read_bytes()[:1000], "garbage": b"this is not a model\n" * 10, "empty": b""}[damage]
    model.write_bytes(content)
    result = fmnist(env, tmp_path, "evaluate", str(run_dir))
    message = assert_clean_error(result, str(model), "truncated or corrupted")
    assert "not found" not in message.lower(), message  # it is there, only damaged
    assert not (run_dir / "evaluation.json").exists()


@pytest.mark.parametrize("engine", list(MODEL_FILES))
def test_evaluate_without_config(env, tmp_path, runs, engine):
    run_dir = run_copy(runs, engine, tmp_path)
    (run_dir / "config.yaml").unlink()
    result = fmnist(env, tmp_path, "evaluate", str(run_dir))
    assert_clean_error(result, str(run_dir / "config.yaml"))


def test_evaluate_with_a_broken_config(env, tmp_path, runs):
    run_dir = run_copy(runs, "lightning", tmp_path)
    (run_dir / "config.yaml").write_text("train: {epochs: 0}\n")
    result = fmnist(env, tmp_path, "evaluate", str(run_dir))
    assert_clean_error(result, str(run_dir / "config.yaml"))


# --------------------------------------------------------------------------------------------
# --debug


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(env, tmp_path, where):
    path = tmp_path / "nope.yaml"
    args = ["train", "--engine", "keras", "--config", str(path)]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    result = fmnist(env, tmp_path, *args)
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr, result.stderr
    assert "ConfigError" in result.stderr and str(path) in result.stderr


# --------------------------------------------------------------------------------------------
# Devices, strategies and --resume (refused before any run directory is created)


@pytest.mark.parametrize(
    "args, parts",
    [
        pytest.param(args, parts, id=" ".join(args))
        for args, parts in [
            (
                ["--engine", "keras", "--devices", "2", "--strategy", "ddp"],
                ["train.strategy", "'ddp'", "lightning can"],
            ),
            (["--engine", "lightning", "--strategy", "mirrored"], ["train.strategy", "'mirrored'", "keras can"]),
            (
                ["--engine", "keras", "--num-nodes", "2"],
                ["train.num_nodes", "keras trains on 1 machine", "lightning can"],
            ),
            (["--engine", "keras-jax", "--devices", "2"], ["train.devices", "keras-jax trains on 1 device", "keras"]),
        ]
    ],
)
def test_strategy_the_engine_lacks(env, tmp_path, args, parts):
    run_dir = tmp_path / "run"
    result = fmnist(env, tmp_path, "train", "--config", str(BASELINE), *args, "--run-dir", str(run_dir), *TINY)
    assert_clean_error(result, *parts)
    assert not run_dir.exists()


def test_resume_a_directory_without_a_run(env, tmp_path):
    assert_clean_error(fmnist(env, tmp_path, "train", "--resume", str(tmp_path)), "holds no run to resume")


def test_resume_with_overrides(env, tmp_path):
    result = fmnist(env, tmp_path, "train", "--resume", str(tmp_path), "--epochs", "3", "--lr", "0.1")
    assert_clean_error(result, "--resume continues a run with its own settings", "--epochs", "--lr")
