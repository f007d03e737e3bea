"""An engine from another distribution: a package and its `fmnist.engines` entry point, installed
beside the project without an edit to it, is listed by the command and trains like the project's
own (`fmnist.engines` reads the entry points of every distribution on the path)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

from fmnist import engines

ENGINE = """
from fmnist.engine import Engine

# The pytorch engine's capability modules under another name: what a plug-in declares is its own.
SIXTH = Engine(
    name="sixth",
    label="Sixth engine",
    colour="#999999",
    model_format="torch state dict",
    model_file="model.pt",
    extra="pytorch",
    frameworks=("torch",),
    capabilities={"training": "pytorch_model.training", "parity": "pytorch_model.parity"},
    import_first=("torch", "torch._dynamo"),
)
"""


def install_sixth_engine(site: Path) -> dict[str, str]:
    """A distribution `sixth-engine` in `site` as pip would leave it (the package and its
    .dist-info with the entry point); the environment that puts `site` on Python's path."""
    package = site / "sixth_engine"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "engine.py").write_text(textwrap.dedent(ENGINE))
    info = site / "sixth_engine-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sixth-engine\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[fmnist.engines]\nsixth = sixth_engine.engine:SIXTH\n")
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)}


def test_an_engine_installed_by_another_distribution_is_listed_and_trains(tmp_path, real_data_dir, fmnist):
    env = install_sixth_engine(tmp_path / "site")
    assert "sixth" not in engines.names()  # not in this process: only where its distribution is on the path
    listed = fmnist("train", "--help", env=env).stdout
    assert "sixth (Sixth engine)" in " ".join(listed.split())
    run_dir = tmp_path / "run"
    fmnist(
        "train", "--engine", "sixth", "--limit-train", "300", "--limit-test", "100", "--epochs", "1",
        "--run-dir", str(run_dir), "--data-dir", str(real_data_dir), env=env,
    )  # fmt: skip
    assert json.loads((run_dir / "run.json").read_text())["engine"] == "sixth"
    result = json.loads((run_dir / "test_metrics.json").read_text())
    assert result["engine"] == "sixth" and result["epochs_trained"] == 1 and result["test_images"] == 100
    assert (run_dir / "model.pt").is_file()
