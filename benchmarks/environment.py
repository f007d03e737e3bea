"""The machine and checkout a benchmark ran on, recorded beside its figures, and what it can run
(a CUDA device, each Keras backend's package). No framework imported: torch is asked in a child
process."""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
from typing import Any

import numpy as np

from fmnist import engines

from benchmarks import REPO
from benchmarks.plan import BenchmarkError
from fmnist.cpu_features import cpu_model, kernel_flags, native_bf16


def cuda_available() -> bool:
    """Whether a CUDA device is visible, asked of torch in a child process (the parent stays framework-free)."""
    if importlib.util.find_spec("torch") is None:
        return False
    code = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise BenchmarkError(f"--device: unknown {device!r}; choose from auto, cpu, cuda")
    if device == "cpu":
        return "cpu"
    has_cuda = cuda_available()
    if device == "cuda" and not has_cuda:
        raise BenchmarkError("--device cuda: no CUDA device is visible to torch; use --device cpu")
    return "cuda" if has_cuda else "cpu"


def missing_frameworks(engine: str) -> str | None:
    """Why an engine's measurement cannot run here (a framework it declares is not installed), or None."""
    spec = engines.engine(engine)
    missing = [f for f in spec.frameworks if importlib.util.find_spec(f) is None]
    if missing:
        return f"{', '.join(missing)} not installed (pip install 'fmnist-parity[{spec.extra}]' to measure {engine})"
    return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def gpu_name() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


#: The commit measured, for a copy of the checkout that git cannot ask (the GPU machine gets the
#: working tree without .git): `benchmarks/gpu_run.sh` sets it from the bundle's manifest.
SOURCE_REVISION_ENV = "FMNIST_SOURCE_REVISION"


def source_revision() -> str | None:
    """The git commit measured ('+dirty' with uncommitted changes); outside a checkout, what
    FMNIST_SOURCE_REVISION says, else None."""
    from_git = _git_revision()
    return from_git if from_git is not None else (os.environ.get(SOURCE_REVISION_ENV) or None)


def _git_revision() -> str | None:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=20
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def hardware() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_flags": kernel_flags(),
        "native_bf16": native_bf16(),
        "gpu": gpu_name(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def framework_versions(engine: str) -> dict[str, str]:
    """The versions of what a measurement process loaded for `engine` (the frameworks it declares),
    read from the modules it imported: nothing is imported here."""
    found: dict[str, str] = {"python": sys.version.split()[0], "numpy": np.__version__}
    for name in engines.engine(engine).frameworks:
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__version__", None):
            found[name] = mod.__version__
    return found
