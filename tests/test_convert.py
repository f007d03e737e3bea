"""`fmnist convert`: a run carried to another engine (convert.conversion) keeps what its training
holds, and the other engine takes it. The proofs of docs/parity.md ("Carrying a run to another
engine"), on tiny data:
- the converted model's logits equal the original's within parity's float32 rule, every class
  the same (checked by every conversion, and asserted here);
- a round trip (Keras -> Lightning -> Keras, and the reverse) gives back the weights, Adam's
  moments and step count bit for bit;
- without dropout (each framework draws its own masks), the converted run's next 10 training
  steps give the losses of the original continuing itself, within parity's float32 lockstep
  tolerance, and `fmnist train --resume` finishes it in the other engine;
- bad input gets one line and nothing is written.
The full-size run (interrupted at epoch 7 of 15, finished in Lightning) is
docs/results/convert-2026-12-07/run.py: no full-size training runs in a test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fmnist import rundir

#: `fmnist train` stopped as Ctrl-C stops it, at the end of epoch N + 1 before its row is written:
#: the run keeps epoch N's checkpoint (the engines write the checkpoint after the row).
INTERRUPTED = """
import sys
from fmnist import epoch_reporter
stop_after = int(sys.argv[1])
report = epoch_reporter.EpochReporter.__call__
def stop(self, row):
    if len(self.rows) == stop_after:
        raise KeyboardInterrupt
    report(self, row)
epoch_reporter.EpochReporter.__call__ = stop
from fmnist_cli.main import main
sys.exit(main(sys.argv[2:]))
"""
STEPS = 10  # the next steps compared: one epoch of 1,280 training images at batch 128


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _fake_run(folder: Path, engine: str = "keras", finished: bool = True, **overrides) -> Path:
    """A run directory's marker, config and finished marker: what the refusals read (no model)."""
    from fmnist.config import load_config, save_config, with_overrides

    folder.mkdir(parents=True)
    (folder / rundir.RUN_INFO_FILE).write_text(json.dumps({"engine": engine, "status": "finished"}))
    save_config(with_overrides(load_config("baseline"), overrides), folder / rundir.CONFIG_FILE)
    if finished:
        (folder / rundir.TEST_METRICS_FILE).write_text("{}")
    return folder


# --- the layout of the moments and the state's own checks (numpy) ---------------------------------


def test_moments_travel_in_the_weights_layout_without_running_statistics(bn_same_stride_config):
    from fmnist.weight_layout import keras_to_torch_arrays, layout_keys, torch_to_keras_arrays

    config = bn_same_stride_config
    rng = np.random.default_rng(0)
    params = layout_keys(config, parameters_only=True)
    shapes = {k: v.shape for k, v in _layout_shapes(config).items()}
    moments = {k: rng.standard_normal(shapes[k]).astype(np.float32) for k in params}
    assert not any(k.endswith(("running_mean", "running_var")) for k in params)
    assert set(params) < set(layout_keys(config))
    back = keras_to_torch_arrays(config, torch_to_keras_arrays(config, moments))
    assert set(back) == set(moments) and all(np.array_equal(back[k], moments[k]) for k in moments)


def _layout_shapes(config) -> dict[str, np.ndarray]:
    """The layout's arrays of `config`'s network, from the torch network's state dict."""
    torch = pytest.importorskip("torch")
    from torch_blocks.network import build_network

    torch.manual_seed(0)
    return {k: v.numpy() for k, v in build_network(config).state_dict().items()}


def test_a_state_whose_steps_do_not_fit_its_epochs_is_refused():
    from fmnist.errors import FmnistError
    from fmnist.run_state import check_consistent, differences, make_state

    weights = {"w": np.ones(3, np.float32)}
    state = make_state(
        engine="keras",
        config={},
        finished=False,
        epochs=2,
        steps=20,
        weights=weights,
        optimizer={"name": "adam", "m": weights, "v": weights},
    )
    check_consistent(state, steps_per_epoch=10)
    with pytest.raises(FmnistError, match="21 steps"):
        check_consistent({**state, "steps": 21}, steps_per_epoch=10)
    with pytest.raises(FmnistError, match="no finished epoch"):
        check_consistent({**state, "epochs": 0, "steps": 0}, steps_per_epoch=10)
    moved = {**state, "weights": {"w": np.array([1, 1, 1.5], np.float32)}}
    assert differences(state, state) == {"weights": 0.0, "m": 0.0, "v": 0.0, "epochs_equal": True, "steps_equal": True}
    assert differences(state, moved)["weights"] == 0.5


# --- bad input: one line, nothing written -----------------------------------------------------------


@pytest.mark.parametrize(
    "case, parts",
    [
        ("unknown engine", ["unknown engine 'mxnet'", "lightning"]),
        ("not a run", ["holds no run of fmnist"]),
        ("out holds files", ["holds files already"]),
        ("same engine", ["a run of keras already"]),
        ("out inside the run", ["inside the run being converted"]),
        ("no checkpoint", ["neither finished nor holds an epoch checkpoint"]),
        ("sgd", ["whose state is not carried", "Adam and AdamW"]),
        ("early stopping, unfinished", ["early stopping's count and best weights are not carried"]),
    ],
)
def test_bad_input_gets_one_line_and_nothing_is_written(case, parts, tmp_path, fmnist_cli, one_line_error):
    run, to, out = tmp_path / "run", "lightning", tmp_path / "out"
    if case == "not a run":
        run.mkdir()
        (run / "notes.txt").write_text("mine")
    elif case == "no checkpoint":
        _fake_run(run, finished=False)
    elif case == "sgd":
        _fake_run(run, **{"train.optimizer.name": "sgd"})
    elif case == "early stopping, unfinished":
        _fake_run(run, finished=False, **{"train.early_stopping": 3})
        (run / rundir.CHECKPOINT_DIR).mkdir()
        (run / rundir.CHECKPOINT_DIR / "latest.weights.h5").write_bytes(b"")
    else:
        _fake_run(run)
    if case == "unknown engine":
        to = "mxnet"
    elif case == "same engine":
        to = "keras"
    elif case == "out holds files":
        out.mkdir()
        (out / "keep.txt").write_text("someone's")
    elif case == "out inside the run":
        out = run / "converted"
    before = _tree(tmp_path)
    one_line_error(fmnist_cli("convert", str(run), "--to", to, "--out", str(out)), *parts)
    assert _tree(tmp_path) == before


# --- a finished run ----------------------------------------------------------------------------------


def _convert(run: Path, to: str, out: Path, data_dir: Path) -> dict:
    from convert.conversion import convert_run

    return convert_run(run, to, out=out, data_dir=str(data_dir))


def _check_finished(source: Path, result: dict, out: Path) -> None:
    """The checks the conversion made, and the new run's files: what the target measured."""
    logits = result["check"]["logits"]
    assert logits["passed"] and logits["identical_predictions"] == logits["images"]
    assert logits["max_abs_logit_diff"] <= logits["allowed"]
    assert result["check"]["state"] == {"weights": 0.0, "m": 0.0, "v": 0.0, "epochs_equal": True, "steps_equal": True}
    info = rundir.read_json(out / rundir.RUN_INFO_FILE)
    assert info["engine"] == result["engine"] and info["converted_from"]["engine"] == result["source"]
    before, after = (rundir.read_json(r / rundir.TEST_METRICS_FILE) for r in (source, out))
    assert after["engine"] == result["engine"] and after["converted_from"]["run"] == source.resolve().name
    # float32 runs, every class the same: the same accuracy, the loss to float32 rounding
    assert after["test_accuracy"] == before["test_accuracy"]
    assert after["test_loss"] == pytest.approx(before["test_loss"], rel=1e-5)
    assert (out / rundir.CONFIG_FILE).read_text() == (source / rundir.CONFIG_FILE).read_text()
    assert rundir.read_metrics(out / rundir.METRICS_FILE) == rundir.read_metrics(source / rundir.METRICS_FILE)
    assert not (out / rundir.CHECKPOINT_DIR).exists()


def test_a_finished_keras_run_converts_to_lightning(keras_run, real_data_dir, tmp_path, fmnist):
    out = tmp_path / "keras-run-lightning"
    done = fmnist("convert", str(keras_run), "--to", "lightning", "--out", str(out), "--data-dir", str(real_data_dir))
    assert f"-> lightning: {out}" in done.stdout and "identical classes" in done.stdout
    result = {"source": "keras", "engine": "lightning", "check": rundir.read_json(out / "run.json")["conversion_check"]}
    _check_finished(keras_run, result, out)


@pytest.mark.slow  # four conversions and the states read: a minute or two
@pytest.mark.parametrize("there", [("keras", "lightning"), ("lightning", "keras"), ("keras", "pytorch")])
def test_a_round_trip_gives_back_weights_moments_and_steps(there, request, real_data_dir, tmp_path):
    from convert.checks import round_trip

    home, away = there
    original = request.getfixturevalue(f"{home}_run")
    first, back = tmp_path / away, tmp_path / f"{away}-{home}"
    _check_finished(original, _convert(original, away, first, real_data_dir), first)
    _check_finished(first, _convert(first, home, back, real_data_dir), back)
    same = round_trip(original, back)
    assert same["optimizer"] and same["steps"] > 0
    assert {k: same[k] for k in ("weights", "m", "v", "epochs_equal", "steps_equal")} == {
        "weights": 0.0,
        "m": 0.0,
        "v": 0.0,
        "epochs_equal": True,
        "steps_equal": True,
    }


@pytest.mark.slow  # exports, a report and the served app on a converted run of each direction
@pytest.mark.parametrize("there", [("keras", "lightning"), ("lightning", "keras")])
def test_every_command_takes_a_converted_run(there, request, real_data_dir, tmp_path, fmnist):
    from fmnist_cli.main import main

    home, away = there
    original = request.getfixturevalue(f"{home}_run")
    out = tmp_path / away
    _convert(original, away, out, real_data_dir)
    data = ["--data-dir", str(real_data_dir)]
    fmnist("evaluate", str(out), *data)
    fmnist("export", str(out), *data)
    assert rundir.read_json(out / rundir.EXPORT_REPORT_FILE)["passed"]
    fmnist("compare", "--runs", str(original), str(out), "--out", str(tmp_path / "report"), *data)
    assert (tmp_path / "report" / "report.md").is_file()
    from PIL import Image

    from fmnist.datasets import load_fashion_mnist

    images = load_fashion_mnist(str(real_data_dir)).test_images[:20]
    (tmp_path / "pngs").mkdir()
    for i, x in enumerate(images):
        Image.fromarray(x).save(tmp_path / "pngs" / f"{i:02d}.png")
    assert main(["predict", str(out), str(tmp_path / "pngs"), "--json"]) == 0
    from serving.models import load_models

    models = load_models([str(out)], data_dir=str(real_data_dir), log=lambda _: None)
    assert len(models) == 1


# --- an interrupted run, continued in the other engine -------------------------------------------------


@pytest.fixture(scope="module")
def no_dropout_config(tmp_path_factory) -> Path:
    """Batch norm, no dropout (each framework draws its own masks), 1,280 training images:
    one epoch is 10 steps of 128; two epochs, stopped after the first."""
    from parity.checks import without_dropout
    from fmnist.config import load_config, save_config, with_overrides

    path = tmp_path_factory.mktemp("config") / "batchnorm-no-dropout.yaml"
    overrides = {"data.limit_train": 1422, "data.limit_test": 500, "train.epochs": 2}
    save_config(without_dropout(with_overrides(load_config("batchnorm"), overrides)), path)
    return path


def _interrupted(engine: str, config: Path, run_dir: Path, data_dir: Path) -> Path:
    command = [sys.executable, "-c", INTERRUPTED, "1", "train", "--engine", engine, "--config", str(config)]
    done = subprocess.run(
        [*command, "--run-dir", str(run_dir), "--data-dir", str(data_dir), "--threads", "1"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 130, done.stderr[-3000:]
    assert len(rundir.read_metrics(run_dir / rundir.METRICS_FILE)) == 1
    return run_dir


@pytest.mark.slow  # two short trainings, their conversion, the continuation and both resumes: a few minutes
@pytest.mark.parametrize("there", [("keras", "lightning"), ("lightning", "keras")])
def test_an_interrupted_run_continues_in_the_other_engine_as_it_would_at_home(
    there, no_dropout_config, real_data_dir, tmp_path, fmnist
):
    from convert.checks import continuation

    home, away = there
    original = _interrupted(home, no_dropout_config, tmp_path / home, real_data_dir)
    converted = tmp_path / f"{home}-{away}"
    result = _convert(original, away, converted, real_data_dir)
    assert result["check"]["logits"]["passed"] and (result["epochs"], result["steps"]) == (1, STEPS)
    assert (converted / rundir.CPU_TIME_FILE).is_file()

    loss = continuation(original, converted, STEPS, str(real_data_dir))
    assert loss["epoch"] == 2 and loss["float32_pass"], loss
    assert max(loss["float64_rel_diff"]) < 1e-12  # the same state, the same math

    itself = tmp_path / f"{home}-itself"
    shutil.copytree(original, itself)
    for run in (itself, converted):
        done = fmnist("train", "--resume", str(run), "--data-dir", str(real_data_dir), "--threads", "1")
        assert f"resuming {run} after epoch 1 of 2" in done.stdout
    rows = {run: rundir.read_metrics(run / rundir.METRICS_FILE) for run in (itself, converted)}
    assert [r["epoch"] for r in rows[converted]] == [1, 2]
    home_row, away_row = rows[itself][1], rows[converted][1]
    assert away_row["lr"] == pytest.approx(home_row["lr"], rel=1e-6)  # the schedule's position
    # the epoch's mean loss over the same ten steps, within what the steps were allowed
    assert abs(away_row["train_loss"] - home_row["train_loss"]) / home_row["train_loss"] <= max(loss["float32_allowed"])
    finished = rundir.read_json(converted / rundir.TEST_METRICS_FILE)
    assert finished["engine"] == away and finished["resumed"] is True
