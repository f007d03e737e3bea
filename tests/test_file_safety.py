"""A user's files are never lost, mixed up or executed (docs/reliability.md lists every place the
code deletes, renames, reuses or unpickles a file; each has a test here or where named there):

- `--overwrite` removes only a run's own files, and a folder that is not a run is refused;
- `fmnist compare` reuses a run only when it was made with what is asked for, continues an
  unfinished matching one with --resume, and retrains stale ones only with --rerun-stale
  (test_compare_reuse.py);
- `compare --out` and `benchmark --out` never write over someone's files or earlier results;
- checkpoints and result files are read without running code planted in them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fmnist import rundir
from fmnist.config import save_config
from fmnist.errors import RunDirError
from fmnist.datasets import FILES
from file_safety import BASELINE, TINY, _listing, _tiny_config


# --------------------------------------------------------------------------------------------
# Run directories: --overwrite


@pytest.mark.parametrize("overwrite", [False, True])
def test_foreign_files_survive_overwrite(fmnist_cli, one_line_error, tmp_path, overwrite):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "thesis.tex").write_text("\\documentclass{article}\n")
    (folder / "notes.md").write_text("# notes\n")
    (folder / "figures").mkdir()
    (folder / "figures" / "plot.png").write_bytes(b"png")
    before = _listing(folder)
    result = fmnist_cli(
        "train",
        "--engine",
        "keras",
        "--config",
        str(BASELINE),
        *TINY,
        "--run-dir",
        str(folder),
        *(["--overwrite"] if overwrite else []),
    )
    one_line_error(result, str(folder), "holds no run of fmnist", "--overwrite or not")
    assert _listing(folder) == before


def test_run_dir_dot_in_a_checkout_is_refused(fmnist_cli, one_line_error, tmp_path):
    checkout = tmp_path / "checkout"
    for name, text in {
        "README.md": "# project\n",
        "pyproject.toml": "[project]\n",
        "Makefile": "all:\n",
        "fmnist/__init__.py": "",
        "configs/baseline.yaml": BASELINE.read_text(),
        ".git/HEAD": "ref: refs/heads/main\n",
        "metrics.csv": "epoch\n",
    }.items():
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text(text)
    before = _listing(checkout)
    for extra in ([], ["--overwrite"]):
        result = fmnist_cli("train", "--engine", "lightning", *TINY, "--run-dir", ".", *extra, cwd=checkout)
        one_line_error(result, "run directory . is not empty and holds no run of fmnist")
    assert _listing(checkout) == before


def test_overwrite_on_a_real_run_replaces_it_and_keeps_foreign_files(fmnist_cli, tmp_path, real_data_dir):
    run_dir = tmp_path / "run"
    common = [
        "train",
        "--engine",
        "keras",
        "--config",
        str(BASELINE),
        "--limit-train",
        "300",
        "--limit-test",
        "100",
        "--run-dir",
        str(run_dir),
        "--data-dir",
        str(real_data_dir),
    ]
    first = fmnist_cli(*common, "--epochs", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    (run_dir / "notes.md").write_text("mine\n")  # a user's note beside the run
    (run_dir / ".test_metrics.json.x1y2.tmp.json").write_text("{")  # left by a killed atomic write
    refused = fmnist_cli(*common, "--epochs", "2")
    assert refused.returncode == 2 and "already holds a run" in refused.stderr
    second = fmnist_cli(*common, "--epochs", "2", "--overwrite")
    assert second.returncode == 0, second.stderr[-3000:]
    assert (run_dir / "notes.md").read_text() == "mine\n"
    assert not (run_dir / ".test_metrics.json.x1y2.tmp.json").exists()
    assert [r["epoch"] for r in rundir.read_metrics(run_dir / "metrics.csv")] == [1, 2]  # the old row is gone
    info = rundir.read_run_info(run_dir)
    assert info["status"] == "finished" and info["config"]["train"]["epochs"] == 2


def test_remove_run_artifacts_removes_only_the_runs_own_files(tmp_path):
    for name in rundir.run_artifacts():
        if name in (rundir.TENSORBOARD_DIR, rundir.CHECKPOINT_DIR):
            (tmp_path / name / "sub").mkdir(parents=True)
            (tmp_path / name / "sub" / "f").write_text("x")
        else:
            (tmp_path / name).write_text("x")
    (tmp_path / ".model.keras.abc.tmp.keras").write_text("x")  # a killed atomic write
    keep = ["thesis.tex", "model.keras.bak", ".hidden", "runs", "config.yaml~"]
    for name in keep:
        (tmp_path / name).write_text("mine")
    removed = rundir.remove_run_artifacts(tmp_path)
    assert removed[-1] == rundir.RUN_INFO_FILE  # the marker last: a half-done removal is still a run
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


def test_a_symlinked_artifact_folder_is_unlinked_not_emptied(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("mine")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rundir.write_run_info(run_dir, {"engine": "keras", "status": "finished"})
    (run_dir / rundir.TENSORBOARD_DIR).symlink_to(elsewhere, target_is_directory=True)
    rundir.prepare_run_dir(run_dir, overwrite=True)
    assert (elsewhere / "precious.txt").read_text() == "mine"
    assert list(run_dir.iterdir()) == []


def test_a_run_json_that_is_not_ours_is_no_run_marker(tmp_path):
    (tmp_path / "run.json").write_text('{"name": "someone else\'s run"}\n')
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(RunDirError, match="holds no run of fmnist"):
        rundir.prepare_run_dir(tmp_path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "run.json"]


def test_the_run_marker_comes_first_so_a_run_crashed_at_its_start_is_a_run(tmp_path, monkeypatch, real_data_dir):
    from fmnist import training

    def crash(*args, **kwargs):
        assert (tmp_path / "run" / rundir.RUN_INFO_FILE).exists()
        raise RuntimeError("crashed at the start")

    from fmnist.precision import cpu_device

    engine = SimpleNamespace(training_device=lambda config: cpu_device())
    monkeypatch.setattr(training, "load_training", lambda name: engine)
    monkeypatch.setattr(training, "_train", crash)
    config = _tiny_config(seed=3)
    with pytest.raises(RuntimeError):
        training.train_run("keras", config, tmp_path / "run", data_dir=str(real_data_dir))
    info = rundir.read_run_info(tmp_path / "run")
    assert info["engine"] == "keras" and info["status"] == "training" and info["seed"] == 3
    assert info["precision"] == "float32" and info["config"]["data"]["limit_train"] == 300
    assert set(info["data_sha256"]) == {
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    }
    with pytest.raises(RunDirError, match="already holds a run"):
        rundir.prepare_run_dir(tmp_path / "run")
    rundir.prepare_run_dir(tmp_path / "run", overwrite=True)
    assert list((tmp_path / "run").iterdir()) == []


# --------------------------------------------------------------------------------------------
# fmnist benchmark: earlier results are never replaced


def test_benchmark_never_replaces_earlier_results(tmp_path, monkeypatch):
    from benchmarks.outputs import results_dir
    from benchmarks.plan import BenchmarkError

    monkeypatch.chdir(tmp_path)
    now = dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc)
    first = results_dir(None, "cpu", now)
    assert first == Path("benchmarks/results/2026-12-02-cpu")
    first.mkdir(parents=True)
    (first / "benchmark.json").write_text("{}")
    second = results_dir(None, "cpu", now)
    assert second == Path("benchmarks/results/2026-12-02-cpu-2")
    with pytest.raises(BenchmarkError, match="already holds benchmark results .*benchmark.json.*another --out"):
        results_dir(first, "cpu", now)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert results_dir(empty, "cpu", now) == empty


# --------------------------------------------------------------------------------------------
# Unpickling: a planted payload never runs


class Payload:
    """Unpickled by an unrestricted unpickler, it runs `touch MARKER`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _planted_checkpoint(path: Path, marker: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 0, "state_dict": {}, "x": Payload(marker)}, path)
    return path


def test_the_payload_is_real(tmp_path):
    """An unrestricted torch.load of the planted file does run it: the tests below mean something."""
    import torch

    marker = tmp_path / "ran"
    torch.load(_planted_checkpoint(tmp_path / "bad.ckpt", marker), weights_only=False)
    assert marker.exists()


def test_the_checkpoint_loader_refuses_a_payload(tmp_path):
    pytest.importorskip("lightning")
    from lightning_model.training import completed_epochs
    from torch_blocks.checkpoint import load_checkpoint

    marker = tmp_path / "ran"
    path = _planted_checkpoint(tmp_path / "checkpoints" / "last.ckpt", marker)
    with pytest.raises(RunDirError, match="holds code or objects a checkpoint never needs; refusing to load it"):
        load_checkpoint(path)
    with pytest.raises(RunDirError, match="refusing to load it"):
        completed_epochs(tmp_path)
    assert not marker.exists()


def test_resume_refuses_a_planted_checkpoint(fmnist_cli, one_line_error, tmp_path, real_data_dir):
    run_dir, marker = tmp_path / "sent-to-me", tmp_path / "ran"
    run_dir.mkdir()
    # the official files' checksums, as a run on them records: resume checks them first
    rundir.write_run_info(run_dir, {"engine": "lightning", "status": "training", "data_sha256": dict(FILES)})
    save_config(_tiny_config(), run_dir / rundir.CONFIG_FILE)
    checkpoint = _planted_checkpoint(run_dir / "checkpoints" / "last.ckpt", marker)
    result = fmnist_cli("train", "--resume", str(run_dir), "--data-dir", str(real_data_dir))
    one_line_error(result, str(checkpoint), "refusing to load it (weights_only)")
    assert not marker.exists()


def test_evaluate_refuses_a_planted_model(fmnist_cli, one_line_error, tmp_path, real_data_dir):
    run_dir, marker = tmp_path / "sent-to-me", tmp_path / "ran"
    run_dir.mkdir()
    save_config(_tiny_config(), run_dir / rundir.CONFIG_FILE)
    rundir.write_run_info(run_dir, {"engine": "lightning", "status": "finished"})  # sent along, as a run has it
    model = _planted_checkpoint(run_dir / "model.ckpt", marker)
    result = fmnist_cli("evaluate", str(run_dir), "--data-dir", str(real_data_dir))
    one_line_error(result, str(model), "refusing to load it (weights_only)")
    assert not marker.exists() and not (run_dir / rundir.EVALUATION_FILE).exists()


def test_a_keras_model_with_code_is_refused(tmp_path):
    keras = pytest.importorskip("keras")
    from keras_model.training import load_model

    marker = tmp_path / "ran"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    inputs = keras.Input((4,))
    command = f"touch {marker}"
    outputs = keras.layers.Lambda(lambda x: (os.system(command), x)[1])(inputs)
    keras.Model(inputs, outputs).save(run_dir / "model.keras")
    marker.unlink()  # building the model called the lambda; loading it must not
    with pytest.raises(RunDirError, match="cannot load the Keras model .*lambda"):
        load_model(run_dir)
    assert not marker.exists()


def test_results_holding_pickled_objects_are_refused(tmp_path):
    path = tmp_path / rundir.PREDICTIONS_FILE
    np.savez(path, logits=np.array([Payload(tmp_path / "ran")], dtype=object), labels=np.zeros(1, np.uint8))
    with pytest.raises(RunDirError, match="does not hold plain logits and labels"):
        rundir.read_predictions(path)
    assert not (tmp_path / "ran").exists()


def test_the_keras_early_stopping_state_is_read_without_pickle(tmp_path):
    pytest.importorskip("keras")
    from keras_model.callbacks import EarlyStoppingOnValAccuracy

    stopper = EarlyStoppingOnValAccuracy(patience=2, state_dir=tmp_path)
    np.savez(stopper.state_path(1), num_weights=np.array([Payload(tmp_path / "ran")], dtype=object))
    with pytest.raises(RunDirError, match="does not hold plain arrays"):
        stopper.resume(1)
    assert not (tmp_path / "ran").exists()


def test_the_keras_early_stopping_state_removes_only_its_own_old_files(tmp_path):
    keras = pytest.importorskip("keras")
    from keras_model.callbacks import EarlyStoppingOnValAccuracy

    (tmp_path / "notes.md").write_text("mine")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    stopper = EarlyStoppingOnValAccuracy(patience=5, state_dir=tmp_path)
    stopper.set_model(model)
    stopper.on_train_begin()
    for epoch in range(4):
        stopper.on_epoch_end(epoch, {"val_accuracy": 0.5 + 0.1 * epoch})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["early_stopping-3.npz", "early_stopping-4.npz", "notes.md"]


# --------------------------------------------------------------------------------------------
# An interrupted compare continues its unfinished run (slow: two trainings per engine)


def _rows(run_dir: Path) -> list[dict[str, float]]:
    path = run_dir / rundir.METRICS_FILE
    return rundir.read_metrics(path) if path.exists() else []


@pytest.mark.slow
def test_an_interrupted_compare_resumes_its_partial_run(fmnist_cli, tmp_path, real_data_dir):
    args = [
        "--config",
        str(BASELINE),
        "--seeds",
        "0",
        "--epochs",
        "3",
        "--limit-train",
        "8000",
        "--limit-test",
        "300",
        "--data-dir",
        str(real_data_dir),
    ]
    straight = fmnist_cli("compare", *args, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-3000:]

    out = tmp_path / "interrupted"
    script = Path(sys.executable).parent / "fmnist"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "fmnist_cli"]
    proc = subprocess.Popen(
        [*cmd, "compare", *args, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    run_dir = out / "runs" / "keras-seed0"  # the first run compare trains
    deadline = time.monotonic() + 300
    while len(_rows(run_dir)) < 1 or not (run_dir / "checkpoints" / "training_metadata.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the compare and its training process
    proc.wait(timeout=60)
    assert not (run_dir / rundir.TEST_METRICS_FILE).exists(), "killed too late: the run had finished"
    kept = _rows(run_dir)
    assert 1 <= len(kept) < 3

    resumed = fmnist_cli("compare", *args, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {run_dir}" in resumed.stdout
    rows = _rows(run_dir)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[: len(kept)] == kept  # the epochs before the interruption were kept, not redone
    assert json.loads((run_dir / rundir.TEST_METRICS_FILE).read_text())["resumed"] is True
    for engine in ("keras", "lightning"):
        a, b = (root / "runs" / f"{engine}-seed0" for root in (tmp_path / "straight", out))
        assert [{k: v for k, v in r.items() if k != "seconds"} for r in _rows(a)] == [
            {k: v for k, v in r.items() if k != "seconds"} for r in _rows(b)
        ]
        logits = [rundir.read_logits(d / rundir.PREDICTIONS_FILE) for d in (a, b)]
        assert np.array_equal(*logits)  # bit-identical test predictions
    summaries = [json.loads((root / "summary.json").read_text()) for root in (tmp_path / "straight", out)]
    for engine in ("keras", "lightning"):
        assert (
            summaries[0]["per_engine"][engine]["test_accuracy"] == summaries[1]["per_engine"][engine]["test_accuracy"]
        )


def test_a_wrong_run_dir_is_refused_before_the_framework_loads(run_with_blocked_imports, tmp_path, real_data_dir):
    """With torch and Lightning unimportable, `train` still names the folder it refuses: the refusal
    comes before the import, so a wrong --run-dir costs a second, not the import's seconds."""
    (tmp_path / "notes.md").write_text("mine")
    done = run_with_blocked_imports(
        ("torch", "lightning", "tensorflow", "keras"),
        f"""
        from fmnist_cli.main import main
        raise SystemExit(main(["train", "--engine", "lightning", "--run-dir", {str(tmp_path)!r},
                               "--data-dir", {str(real_data_dir)!r}]))
    """,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "is not empty and holds no run of fmnist" in done.stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.md"]
