"""The prepared GPU call (`benchmarks/gpu_run.sh`) as the GPU machine runs it, rehearsed on CPU:
from a bundle without wheels (Keras is installed here), its data from the bundle, the commit from
its manifest, no TensorFlow importable (the GPU image has none), and every part at a tiny size:
(a) parity on 100 images and 2 steps, (b) the benchmark at batch 32 and 3 steps, (c) a tiny
config's trainings. Each part's results in the results folder and under $OUT as it ends; a
budget spent in part (a) leaves (a)'s results and a log that says what was skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu_bundle, gpu_run

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_run.sh"
#: A `tensorflow` package first on the path that fails to import as a missing one does.
NO_TENSORFLOW = (
    "raise ModuleNotFoundError(\"No module named 'tensorflow' (none on the GPU image)\", name='tensorflow')\n"
)


def test_the_script_parses_and_refuses_to_start_without_a_bundle(tmp_path):
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    env = {**os.environ, "FMNIST_GPU_BUNDLE": str(tmp_path / "none")}
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert "no " + str(tmp_path / "none" / "manifest.json") in result.stderr and "gpu_bundle" in result.stderr


def rehearse(tmp_path: Path, data_dir: Path, *args: str) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """The script on CPU from a bundle of symlinks to the data, TensorFlow unimportable in every
    process it starts: (the completed process, the results folder, $OUT)."""
    bundle, out, site = tmp_path / "bundle", tmp_path / "OUT", tmp_path / "no-tensorflow"
    (bundle / "data").mkdir(parents=True)
    for stem in gpu_bundle.FILES:
        (bundle / "data" / f"{stem}.gz").symlink_to(data_dir / f"{stem}.gz")
    (bundle / "manifest.json").write_text(json.dumps({"source_revision": "abc1234"}))
    out.mkdir()
    (site / "tensorflow").mkdir(parents=True)
    (site / "tensorflow" / "__init__.py").write_text(NO_TENSORFLOW)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    env = {
        **os.environ,
        "FMNIST_GPU_BUNDLE": str(bundle),
        "PYTHON": sys.executable,
        "OUT": str(out),
        "PYTHONPATH": path,
    }
    env.pop("FMNIST_DATA_DIR", None)
    blocked = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True, env=env)
    assert "ModuleNotFoundError: No module named 'tensorflow'" in blocked.stderr  # as on the GPU image
    results = tmp_path / "results"
    common = ["--device", "cpu", "--results-root", str(results), "--strong-out", str(tmp_path / "strong")]
    common += ["--parity-images", "100", "--parity-steps", "2", "--parity-bf16-images", "32"]
    done = subprocess.run(
        ["bash", str(SCRIPT), *common, *args], capture_output=True, text=True, env=env, timeout=1800, cwd=tmp_path
    )
    folders = list(results.iterdir()) if results.is_dir() else []
    assert len(folders) == 1, done.stderr[-3000:]
    return done, folders[0], out


def outcomes(done: subprocess.CompletedProcess) -> dict[str, str]:
    """Each part's outcome as the run's last lines say it ("part: outcome")."""
    return dict(line.split(": ", 1) for line in done.stdout.splitlines() if line.split(":")[0] in gpu_run.PARTS)


@pytest.mark.slow  # three parts, each starting frameworks in fresh processes: minutes on two cores
def test_the_whole_call_rehearsed_on_cpu_without_tensorflow(tmp_path, real_data_dir):
    done, folder, out = rehearse(
        tmp_path,
        real_data_dir,
        *("--budget", "1500", "--parity-budget", "1500"),  # a slow CPU: every part runs whole
        *(
            "--benchmark-engines",
            "pytorch",
            "--variants",
            "eager",
            "--batch-size",
            "32",
            "--steps",
            "3",
            "--warmup",
            "1",
        ),
        *("--strong-config", "configs/baseline.yaml", "--strong-epochs", "1", "--strong-seeds", "0"),
        *("--strong-limit-train", "600", "--strong-limit-test", "200"),
    )
    said = outcomes(done)
    # bf16 parity passes on CPUs with AVX-512 only (docs/parity.md): its file is written either way.
    assert said["parity"] in ("float32 passed, bf16-mixed passed", "float32 passed, bf16-mixed FAILED"), done.stderr[
        -3000:
    ]
    assert done.returncode == (0 if said["parity"].endswith("bf16-mixed passed") else 1)

    parity = json.loads((folder / "parity.json").read_text())
    assert parity["passed"] and parity["device"] == "cpu" and parity["engines"] == ["keras-jax", "lightning"]
    spread = parity["run_to_run"]
    assert spread["lockstep"] == "adam, float32, 2 steps"  # baseline's own optimizer, run twice
    assert all(e["bitwise_equal"] for e in spread["engines"].values())  # the CPU's path is deterministic
    bf16 = json.loads((folder / "parity-bf16-mixed.json").read_text())
    assert bf16["device"] == "cpu" and bf16["run_to_run"]["lockstep"] == "adam, bf16-mixed, 2 steps"

    benchmark = json.loads((folder / "benchmark.json").read_text())
    (eager,) = benchmark["measurements"]
    assert eager["status"] == "ok" and len(eager["per_repeat_train_images_per_s"]) == gpu_run.REPEATS
    assert benchmark["settings"]["repeats_together"] and benchmark["settings"]["data"] == "real"
    assert benchmark["environment"]["source"]  # git's commit in a checkout, else the manifest's

    strong = json.loads((folder / "strong.json").read_text())
    assert strong["outcome"] == "2 of 2 runs finished" and strong["compare_exit"] == 0 and strong["verdicts"]
    for run in strong["runs"]:  # Keras on JAX trained without TensorFlow, beside Lightning
        assert run["status"] == "finished" and run["epochs_done"] == 1 and 0 < run["test_accuracy"] <= 1
        assert run["printed"][0] == "precision: float32" and len(run["epochs"]) == 1
    assert (tmp_path / "strong" / "report.md").is_file()  # the compare's own report

    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    names = ["benchmark.json", "benchmark.md", "benchmark.png", "parity-bf16-mixed.json", "parity.json", "strong.json"]
    assert files == sorted([gpu_run.LOG_NAME, *(f"{folder.name}/{n}" for n in names)])
    assert len(files) <= gpu_run.FILES_BACK
    log = (out / gpu_run.LOG_NAME).read_text()
    for part in gpu_run.PARTS:
        assert f"[gpu_run] {part}: {said[part]}" in log
    assert str(tmp_path) not in log and str(REPO) not in log  # published: no paths of the machine


@pytest.mark.slow
def test_a_budget_spent_in_the_first_part_leaves_its_results_and_says_what_it_skipped(tmp_path, real_data_dir):
    done, folder, out = rehearse(tmp_path, real_data_dir, "--budget", "3", "--parity-precisions", "float32")
    said = outcomes(done)
    assert said["parity"] == "float32 passed", done.stderr[-3000:]
    for part in ("benchmark", "strong"):
        assert said[part].startswith("skipped: not started, 0 s of the run's 3 s left")
    assert done.returncode == 0  # what the budget left out is not a failure
    assert json.loads((folder / "parity.json").read_text())["passed"]
    assert sorted(p.name for p in folder.iterdir()) == ["parity.json"]
    assert sorted(p.name for p in (out / folder.name).iterdir()) == ["parity.json"]
    log = (out / gpu_run.LOG_NAME).read_text()
    assert "[gpu_run] benchmark: skipped: not started" in log and "[gpu_run] strong: skipped: not started" in log


@pytest.mark.slow
def test_the_trainings_stop_cleanly_when_the_run_s_time_is_up(tmp_path, real_data_dir):
    """Part (c) alone with trainings longer than the run's time: interrupted as a Ctrl-C would at
    the budget, the runs kept unfinished (resumable by the same compare), and strong.json says so."""
    done, folder, out = rehearse(
        tmp_path,
        real_data_dir,
        *("--parts", "strong", "--budget", "75", "--strong-config", "configs/baseline.yaml"),
        *("--strong-epochs", "50", "--strong-limit-train", "6000", "--strong-limit-test", "200", "--strong-seeds", "0"),
    )
    said = outcomes(done)
    assert said["strong"].endswith("(stopped after 75 s of the run (its time budget))"), done.stderr[-3000:]
    assert done.returncode == 0  # what the budget stopped is not a failure
    strong = json.loads((out / folder.name / "strong.json").read_text())
    assert strong["stopped"] and strong["compare_exit"] == 130  # the compare and its trainings ended as on Ctrl-C
    assert {run["status"] for run in strong["runs"]} <= {"unfinished", "not started"}
    for run in strong["runs"]:
        assert (
            run["epochs_done"] < 50
            and not (tmp_path / "strong" / "runs" / f"{run['engine']}-seed0" / "test_metrics.json").exists()
        )
    assert "[gpu_run] strong: stopped after 75 s" in (out / gpu_run.LOG_NAME).read_text()
