"""The package as a user installs it: the wheel built from this checkout, installed into a fresh
virtual environment, runs `fmnist` from a folder outside the checkout with nothing of the checkout
in sight: the configs it names, the engines it finds and the code it runs all come from the wheel.

The fresh environment borrows the test environment's installed dependencies (numpy, the
frameworks) through a .pth line naming that site-packages folder. Python processes the .pth files
of its own site-packages only, so the test environment's editable install of this project (a .pth
that maps the project's packages to the checkout) stays out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: What a wheel is built from: the checkout without its environments, outputs and published results.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis",
    "runs", "reports", "results", "docs", "gpu-bundle", ".whl",
)  # fmt: skip
PACKAGES = ("fmnist", "fmnist_cli", "fmnist_configs", "keras_model", "lightning_model", "compare", "executors")
PROBE = """
import importlib, importlib.metadata as md, json, sys
from fmnist.packaged_configs import packaged_configs
print(json.dumps({
    "files": {name: importlib.import_module(name).__file__ for name in sys.argv[1:]},
    "engines": {p.name: str(p.dist._path) for p in md.entry_points(group="fmnist.engines")},
    "configs": {name: str(path) for name, path in packaged_configs().items()},
}))
"""


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, argv))} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory, real_data_dir) -> tuple[Path, dict[str, str]]:
    """A fresh environment with the wheel installed (its python's folder), and the environment
    variables its commands run with."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCES)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"), str(source)], tmp, env)
    (wheel,) = (tmp / "dist").glob("fmnist_parity-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp, env)
    python = venv / "bin" / "python"
    _run([*pip, "--python", str(python), "install", "--no-deps", "-q", str(wheel)], tmp, env)
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp, env).stdout.strip()
    borrowed = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site) / "test-environment.pth").write_text("\n".join(sorted(borrowed)) + "\n")
    return venv / "bin", {**env, "FMNIST_DATA_DIR": str(real_data_dir)}


def _outside(tmp_path: Path) -> Path:
    work = tmp_path / "elsewhere"
    work.mkdir()
    assert REPO not in work.parents and not (work / "configs").exists()
    return work


@pytest.mark.slow
def test_the_wheel_runs_its_own_code_configs_and_engines(installed, tmp_path):
    bin_dir, env = installed
    venv = bin_dir.parent
    work = _outside(tmp_path)
    seen = json.loads(_run([str(bin_dir / "python"), "-c", PROBE, *PACKAGES], work, env).stdout)
    for name, file in seen["files"].items():
        assert venv in Path(file).parents, f"{name} imported from {file}, not the wheel"
    assert set(seen["engines"]) >= {"keras", "keras-jax", "keras-torch", "lightning"}, seen["engines"]
    for name, dist in seen["engines"].items():
        assert venv in Path(dist).parents, f"engine {name} declared by {dist}, not the wheel's metadata"
    assert sorted(seen["configs"]) == sorted(p.stem for p in (REPO / "configs").glob("*.yaml"))
    listed = _run([str(bin_dir / "fmnist"), "configs"], work, env).stdout.splitlines()
    assert [line.split()[0] for line in listed] == sorted(seen["configs"])


@pytest.mark.slow
def test_the_wheel_trains_and_checks_parity_from_a_config_name(installed, tmp_path):
    bin_dir, env = installed
    fmnist = str(bin_dir / "fmnist")
    work = _outside(tmp_path)
    began = time.perf_counter()
    _run(
        [fmnist, "train", "--config", "baseline", "--engine", "keras", "--limit-train", "600", "--limit-test", "200"]
        + ["--epochs", "1", "--run-dir", "runs/keras"],
        work,
        env,
    )
    run = work / "runs" / "keras"
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    assert (run / "test_metrics.json").is_file() and "name: baseline" in (run / "config.yaml").read_text()
    _run([fmnist, "parity", "--config", "baseline", "--images", "100", "--steps", "2"], work, env)
    assert (work / "reports" / "parity" / "parity.json").is_file()
    print(f"train and parity from the wheel: {time.perf_counter() - began:.0f} s")
