"""CLI smoke runs of both engines on a few hundred real images: every run-directory file is
written, `fmnist evaluate` reproduces the test accuracy, the same seed reruns identically, and
the TensorBoard event files of both engines carry the same tags."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fmnist import rundir
from fmnist.engines import DEFAULT_PAIR
from fmnist.rundir import METRICS_COLUMNS, RESULT_FILES

ENGINES = DEFAULT_PAIR
SMALL = ["--limit-train", "300", "--limit-test", "200", "--epochs", "2", "--batch-size", "64"]
#: SMALL's runs reach 49% (Keras) and 55.5% (Lightning) on the 200 test images; chance is 10%.
SMALL_FLOOR = 0.35
RUN_FILES = [
    "config.yaml",
    "metrics.csv",
    "test_metrics.json",
    "summary.txt",
    "curves.png",
    "confusion_matrix.png",
    "tensorboard",
    "test_predictions.npz",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, real_data_dir, fmnist) -> dict[str, Path]:
    """One small run per engine, shared by the tests below."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for engine in ENGINES:
        run_dir = root / engine
        result = fmnist(
            "train", "--engine", engine, *SMALL, "--run-dir", str(run_dir), "--data-dir", str(real_data_dir)
        )
        assert "test accuracy" in result.stdout
        (root / f"{engine}.stdout").write_text(result.stdout)
        out[engine] = run_dir
    return out


@pytest.mark.parametrize("engine", ENGINES)
def test_a_piped_training_prints_one_line_per_epoch(runs, engine):
    """Off a terminal both engines print the core's line per epoch, counted from 1, and no bar."""
    from fmnist import console

    stdout = (runs[engine].parent / f"{engine}.stdout").read_text()
    rows = rundir.read_metrics(runs[engine] / rundir.METRICS_FILE)
    assert [line for line in stdout.splitlines() if line.startswith("Epoch")] == [
        console.epoch_line(r, 2) for r in rows
    ]
    assert "\r" not in stdout and "━" not in stdout  # no progress-bar frames


@pytest.mark.parametrize("engine", ENGINES)
def test_run_directory_is_complete(runs, engine):
    run_dir = runs[engine]
    model_file = {"keras": "model.keras", "lightning": "model.ckpt"}[engine]
    for name in [*RUN_FILES, model_file]:
        assert (run_dir / name).exists(), name
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == METRICS_COLUMNS and [r["epoch"] for r in rows] == ["1", "2"]
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    for key in (
        "engine",
        "test_accuracy",
        "test_loss",
        "num_params",
        "confusion_matrix",
        "per_class",
        "train_seconds",
        "epochs",
        "seed",
        "versions",
    ):
        assert key in metrics, key
    assert metrics["engine"] == engine and metrics["num_params"] == 225_034
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["test_images"] == 200
    assert metrics["test_accuracy"] >= SMALL_FLOOR, "the network learned next to nothing in two epochs"
    assert not list(run_dir.glob(".*.tmp*")), "temporary files left behind"


@pytest.mark.parametrize("engine", ENGINES)
def test_evaluate_reproduces_the_test_accuracy(runs, engine, real_data_dir, fmnist):
    result = fmnist("evaluate", str(runs[engine]), "--data-dir", str(real_data_dir))
    trained = json.loads((runs[engine] / "test_metrics.json").read_text())
    evaluated = json.loads((runs[engine] / "evaluation.json").read_text())
    assert evaluated["test_accuracy"] == trained["test_accuracy"]
    assert evaluated["confusion_matrix"] == trained["confusion_matrix"]
    assert evaluated["test_loss"] == pytest.approx(trained["test_loss"], rel=1e-5)
    assert f"{trained['test_accuracy']:.2%}" in result.stdout


@pytest.mark.parametrize("engine", ENGINES)
def test_evaluate_with_flip_tta_reports_it_apart(runs, engine, real_data_dir, fmnist):
    result = fmnist("evaluate", str(runs[engine]), "--tta", "flip", "--data-dir", str(real_data_dir))
    trained = json.loads((runs[engine] / "test_metrics.json").read_text())
    evaluated = json.loads((runs[engine] / "evaluation.json").read_text())
    assert evaluated["test_accuracy"] == trained["test_accuracy"]  # plain accuracy untouched
    tta = evaluated["flip_tta"]
    assert sum(map(sum, tta["confusion_matrix"])) == tta["test_images"] == 200
    assert tta["test_loss"] != pytest.approx(trained["test_loss"], rel=1e-6)  # the mirror really was seen
    assert f"flip test-time augmentation: test accuracy {tta['test_accuracy']:.2%}" in result.stdout


@pytest.mark.parametrize("engine", ENGINES)
def test_same_seed_reruns_identically(runs, engine, real_data_dir, tmp_path, fmnist):
    again = tmp_path / "again"
    fmnist("train", "--engine", engine, *SMALL, "--run-dir", str(again), "--data-dir", str(real_data_dir))

    def numbers(run_dir):  # every column but the wall-clock seconds
        with (run_dir / "metrics.csv").open() as f:
            return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]

    assert numbers(again) == numbers(runs[engine])
    first, second = (json.loads((d / "test_metrics.json").read_text()) for d in (runs[engine], again))
    for key in ("test_accuracy", "test_loss", "confusion_matrix", "per_class"):
        assert first[key] == second[key], key
    import numpy as np

    logits = [np.load(d / "test_predictions.npz")["logits"] for d in (runs[engine], again)]
    assert np.array_equal(*logits)  # bit-identical, not just the same accuracy


def _tags(run_dir: Path) -> dict[str, set[str]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = {}
    for sub in sorted(p for p in (run_dir / "tensorboard").iterdir() if p.is_dir()):
        acc = EventAccumulator(str(sub))
        acc.Reload()
        tags[sub.name] = set(acc.Tags()["scalars"]) | set(acc.Tags()["images"])
    return tags


def test_tensorboard_tags_are_the_same_in_both_engines(runs):
    keras_tags, lightning_tags = _tags(runs["keras"]), _tags(runs["lightning"])
    assert keras_tags == lightning_tags
    assert keras_tags["train"] == {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"}
    assert keras_tags["validation"] == {"epoch_loss", "epoch_accuracy"}
    assert keras_tags["test"] == {"confusion_matrix", "predictions"}


def test_existing_run_dir_is_not_overwritten(runs, real_data_dir, fmnist):
    result = fmnist(
        "train",
        "--engine",
        "keras",
        *SMALL,
        "--run-dir",
        str(runs["keras"]),
        "--data-dir",
        str(real_data_dir),
        check=False,
    )
    assert result.returncode == 2
    assert "already holds a run" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_precision_override_and_the_emulated_bf16_warning(engine, real_data_dir, tmp_path, fmnist):
    """--precision lands in the run's config; bf16 on a CPU without bfloat16 instructions is
    announced (it is emulated there, 4-10x slower), and only then."""
    from fmnist.cpu_features import native_bf16

    run_dir = tmp_path / engine
    result = fmnist(
        "train",
        "--engine",
        engine,
        "--precision",
        "bf16-mixed",
        "--limit-train",
        "128",
        "--limit-test",
        "100",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--run-dir",
        str(run_dir),
        "--data-dir",
        str(real_data_dir),
    )
    assert "precision: bf16-mixed" in (run_dir / "config.yaml").read_text()
    assert ("without bfloat16 instructions" in result.stderr) == (native_bf16() is False)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--engine", "mxnet"], "invalid choice: 'mxnet'"),
        (["train", "--engine", "keras", "--epochs", "-3"], "must be at least 1, got -3"),
        (["train", "--engine", "keras", "--batch-size", "0"], "must be at least 1, got 0"),
        (["train", "--engine", "keras", "--precision", "fp16"], "invalid choice: 'fp16'"),
        (["train", "--engine", "keras", "--config", "missing.yaml"], "cannot read config missing.yaml"),
        (["evaluate", "/nonexistent/run"], "is not a directory"),
    ],
)
def test_bad_input_gets_one_line_and_no_traceback(args, message, fmnist):
    result = fmnist(*args, check=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_help_on_every_subcommand(fmnist):
    for command in ("train", "evaluate", "data"):
        assert "usage: fmnist" in fmnist(command, "--help").stdout


def test_data_command_says_where_the_data_is(real_data_dir, fmnist):
    assert str(real_data_dir) in fmnist("data", "--data-dir", str(real_data_dir)).stdout


def _git(*args: str, cwd: Path) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


def test_compare_reports_on_result_files_committed_and_cloned(runs, real_data_dir, tmp_path, fmnist):
    """Runs kept as their RESULT_FILES alone (no model, checkpoints or logs), committed under
    docs/results/ with the project's .gitignore, rebuild their report from a fresh clone: nothing
    the report needs is ignored, and the predictions hold no copy of the test labels."""
    repo = tmp_path / "repo"
    kept = repo / "docs" / "results" / "smoke" / "runs"
    for engine in ENGINES:
        (kept / engine).mkdir(parents=True)
        for name in RESULT_FILES:
            shutil.copy2(runs[engine] / name, kept / engine / name)
    shutil.copy2(Path(__file__).resolve().parents[1] / ".gitignore", repo / ".gitignore")
    _git("init", "-q", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-q", "-m", "runs", cwd=repo)
    clone = tmp_path / "clone"
    _git("clone", "-q", str(repo), str(clone), cwd=tmp_path)
    tracked = set(_git("ls-files", cwd=clone).split())
    for engine in ENGINES:
        for name in RESULT_FILES:
            assert f"docs/results/smoke/runs/{engine}/{name}" in tracked, (engine, name)
        with np.load(clone / "docs/results/smoke/runs" / engine / rundir.PREDICTIONS_FILE) as data:
            assert "labels" not in data.files and "logits" in data.files
    out = tmp_path / "report"
    cloned = clone / "docs" / "results" / "smoke" / "runs"
    result = fmnist(
        "compare",
        "--runs",
        str(cloned / "keras"),
        str(cloned / "lightning"),
        "--out",
        str(out),
        "--data-dir",
        str(real_data_dir),
    )
    for name in ("report.md", "report.html", "summary.json", "curves.png", "confusion_matrices.png"):
        assert (out / name).exists(), name
    assert "No equivalence claim is possible with one seed" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    accuracies = {b: json.loads((runs[b] / "test_metrics.json").read_text())["test_accuracy"] for b in ENGINES}
    assert summary["per_engine"]["keras"]["test_accuracy"]["mean"] == pytest.approx(accuracies["keras"])
    assert summary["per_engine"]["lightning"]["test_accuracy"]["mean"] == pytest.approx(accuracies["lightning"])


def test_parity_command_passes_and_writes_json(real_data_dir, tmp_path, fmnist):
    result = fmnist(
        "parity", "--steps", "2", "--images", "200", "--out", str(tmp_path), "--data-dir", str(real_data_dir)
    )
    report = json.loads((tmp_path / "parity.json").read_text())
    assert report["passed"] is True and "PASSED" in result.stdout
    assert report["engines"] == ["keras", "lightning"] and report["device"] == "cpu"
    assert "placement" not in report and "run_to_run" not in report  # neither asked for on the CPU
    assert {c["name"].split(":")[0] for c in report["checks"]} >= {
        "structure",
        "weight transfer keras -> lightning, float32",
        "weight transfer keras -> lightning, float64",
        "weight transfer lightning -> keras, float32",
        "weight transfer lightning -> keras, float64",
        "lockstep sgd_momentum, float32",
        "lockstep adam, float64",
    }


def test_lightning_live_bar_counts_epochs_from_one():
    """On a terminal Lightning's own bar runs; it numbers epochs as Keras and the log lines do."""
    from types import SimpleNamespace

    from lightning_model.callbacks import ProgressBar

    bar = ProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=15)
    assert [bar._get_train_description(e).strip() for e in (0, 14)] == ["Epoch 1/15", "Epoch 15/15"]


def test_parity_refuses_a_pair_it_cannot_check(real_data_dir, tmp_path, fmnist_cli, one_line_error):
    """Unknown engines, one engine, or three: one line each, before anything loads."""
    for engines, extra, message in (
        ("keras,flax", (), "unknown engine 'flax'"),
        ("keras", (), "at least 2"),
        ("keras,keras-jax,lightning", (), "two engines against each other, not 3"),
    ):
        result = fmnist_cli("parity", "--engines", engines, *extra, "--out", str(tmp_path / "p"))
        one_line_error(result, message)
    assert not (tmp_path / "p").exists()


def test_parity_on_cuda_refuses_in_one_line_where_there_is_no_gpu(real_data_dir, tmp_path, fmnist_cli, one_line_error):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the refusal is what a machine without one answers")
    result = fmnist_cli(
        "parity", "--device", "cuda", "--engines", "keras-jax,lightning", "--steps", "1", "--images", "10",
        "--out", str(tmp_path / "p"), "--data-dir", str(real_data_dir),
    )  # fmt: skip
    one_line_error(result, "engine's job: --device cuda: ", "sees no GPU")
    assert not (tmp_path / "p").exists()


def test_the_old_backend_flags_still_name_engines():
    from fmnist_cli.main import build_parser

    parse = build_parser().parse_args
    assert parse(["train", "--backend", "keras-jax"]).engine == "keras-jax"
    assert parse(["evaluate", "--backend", "keras", "runs/x"]).engine == "keras"
    assert parse(["parity", "--backends", "keras-torch,lightning"]).engines == "keras-torch,lightning"
    assert parse(["compare", "--backends", "keras,lightning"]).engines == "keras,lightning"
