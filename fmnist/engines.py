"""The engines: every way this project runs the one network, by the name the command, run.json,
parity and reports use, and the one door through which the tools reach a framework.

An engine is a framework plus what fixes it at import: Keras on TensorFlow, JAX or torch (Keras
reads KERAS_BACKEND once, when it is first imported), or Lightning. `load(name)` sets that up and
imports the engine's module; the tools call the module's functions (`fmnist.backend_api.EngineModule`), never a
backend module by name. Two Keras engines cannot share a process, and TensorFlow cannot load
after torch without torch._dynamo first: tools that need two engines run each in its own
process (`fmnist.engine_job`) and compare what they write.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from types import ModuleType

from fmnist.errors import FmnistError


@dataclass(frozen=True)
class Engine:
    name: str
    label: str  # for reports and tables
    package: str  # the project package that implements it; its `engine` module is the contract
    extra: str  # the pip extra that installs its framework
    model_file: str  # what a finished run of it holds
    family: str  # "keras" or "lightning": one model format, one strategy set, one export path
    environment: dict[str, str] = field(default_factory=dict)  # fixed before the framework's import
    frameworks: tuple[str, ...] = ()  # top-level modules whose absence means "install the extra"

    @property
    def keras_backend(self) -> str | None:
        return self.environment.get("KERAS_BACKEND")


_KERAS = ("keras", "tensorflow")
ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine(
            "keras", "Keras (TensorFlow)", "keras_model", "keras", "model.keras", "keras",
            {"KERAS_BACKEND": "tensorflow"}, _KERAS,
        ),
        Engine(
            "keras-jax", "Keras (JAX)", "keras_model", "jax", "model.keras", "keras",
            {"KERAS_BACKEND": "jax"}, ("keras", "jax", "jaxlib"),
        ),
        Engine(
            "keras-torch", "Keras (torch)", "keras_model", "keras", "model.keras", "keras",
            {"KERAS_BACKEND": "torch"}, ("keras", "torch"),
        ),
        Engine(
            "lightning", "Lightning", "lightning_model", "lightning", "model.ckpt", "lightning",
            {}, ("torch", "lightning", "torchmetrics"),
        ),
    )
}  # fmt: skip
ENGINE_NAMES = tuple(ENGINES)
#: What `fmnist compare` and `fmnist parity` run when not told otherwise: the original pair.
DEFAULT_PAIR = ("keras", "lightning")
MODEL_FILE_NAMES = tuple(dict.fromkeys(e.model_file for e in ENGINES.values()))


def engine(name: str) -> Engine:
    if name not in ENGINES:
        raise FmnistError(f"unknown backend '{name}'; choose one of: {', '.join(ENGINES)}")
    return ENGINES[name]


def parse_engines(text: str, at_least: int = 2) -> tuple[str, ...]:
    """'keras,keras-jax' -> ('keras', 'keras-jax'): known names, each once, at least `at_least`."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        engine(name)
    if len(set(names)) != len(names):
        raise FmnistError(f"--backends names an engine twice: {text}")
    if len(names) < at_least:
        raise FmnistError(f"--backends needs at least {at_least} engines, comma-separated: got {text!r}")
    return names


def activate(name: str) -> Engine:
    """Fix what the engine's framework reads at import (KERAS_BACKEND), refusing a process where
    Keras is already loaded on another backend: it cannot change there."""
    spec = engine(name)
    wanted = spec.keras_backend
    if wanted is not None:
        loaded = sys.modules.get("keras")
        if loaded is not None:
            current = loaded.backend.backend()
            if current != wanted:
                raise FmnistError(
                    f"engine '{name}' needs Keras on {wanted}, but this process loaded Keras on {current}:"
                    " one Keras engine per process (run it in a new one)"
                )
        os.environ.update(spec.environment)
    return spec


def clash(name: str) -> str | None:
    """Why the engine cannot load in this process, given the frameworks already in it (None: it
    can): another Keras backend (KERAS_BACKEND is read once), or torch after TensorFlow without
    torch._dynamo first (its first optimizer step segfaults, and so does a model's first call)."""
    spec = engine(name)
    keras = sys.modules.get("keras")
    if spec.keras_backend is not None and keras is not None and keras.backend.backend() != spec.keras_backend:
        return f"this process runs Keras on {keras.backend.backend()}"
    needs_torch = spec.family == "lightning" or spec.keras_backend == "torch"
    if needs_torch and "tensorflow" in sys.modules and "torch._dynamo" not in sys.modules:
        return "this process loaded TensorFlow before torch"
    return None


def load(name: str) -> ModuleType:
    """The engine's module (`<package>.engine`), with its framework set up and imported."""
    spec = activate(name)
    try:
        return importlib.import_module(f"{spec.package}.engine")
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top in spec.frameworks or top in _KERAS:
            raise FmnistError(
                f"backend '{name}' needs {top}, which is not installed: pip install 'fmnist-parity[{spec.extra}]'"
            ) from None
        raise
