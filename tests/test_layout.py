"""The layers: imports point only down, command -> compare, serving -> keras_model, lightning_model
-> fmnist (the core), and each backend imports its own framework only (docs/architecture.md)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("fmnist_cli", "benchmarks", "compare", "executors", "serving", "keras_model", "lightning_model", "fmnist")
KERAS = {"keras", "tensorflow", "tf2onnx", "jax"}
TORCH = {"torch", "lightning", "pytorch_lightning", "torchmetrics", "torchvision", "onnxscript"}
#: package -> the project packages and frameworks it may import (lazy imports inside functions too).
ALLOWED = {
    "fmnist": ({"fmnist"}, set()),
    "keras_model": ({"fmnist", "keras_model"}, KERAS),
    "lightning_model": ({"fmnist", "lightning_model"}, TORCH),
    "serving": ({"fmnist", "serving"}, set()),
    # Runs jobs in fresh processes, here or on Ray nodes: never a framework itself.
    "executors": ({"fmnist", "executors"}, set()),
    "compare": ({"fmnist", "keras_model", "lightning_model", "compare", "executors"}, KERAS | TORCH),
    # benchmark-inference times the export `fmnist export` makes and checks (compare.export_check).
    "benchmarks": ({"fmnist", "keras_model", "lightning_model", "compare", "benchmarks", "executors"}, KERAS | TORCH),
    "fmnist_cli": (set(PROJECT), set()),  # the command reaches frameworks only through the packages below
}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every import in a file, at module level or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", list(ALLOWED))
def test_imports_point_only_down(package):
    projects, frameworks = ALLOWED[package]
    wrong = {}
    for path in sorted((REPO / package).rglob("*.py")):
        names = imported_packages(path)
        bad = (names & set(PROJECT)) - projects | (names & (KERAS | TORCH)) - frameworks
        if bad:
            wrong[str(path.relative_to(REPO))] = sorted(bad)
    assert not wrong, f"imports pointing up or sideways: {wrong}"


def test_the_rule_table_covers_every_package():
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert packages - {"tests"} == set(ALLOWED)


def test_the_core_imports_with_everything_above_it_unimportable(run_with_blocked_imports):
    """Every core module imported in a process where the other packages and the frameworks cannot
    be: the static check above, confirmed by Python itself."""
    modules = sorted(f"fmnist.{p.stem}" for p in (REPO / "fmnist").glob("*.py") if p.stem != "__init__")
    blocked = tuple(set(PROJECT) - {"fmnist"} | KERAS | TORCH)
    done = run_with_blocked_imports(
        blocked,
        f"""
        import importlib, json, sys
        for name in {modules!r}:
            importlib.import_module(name)
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)))
    """,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
