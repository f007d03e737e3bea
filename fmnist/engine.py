"""What an engine is: one way to run the network (a framework, and what fixes it at import),
declared by the package that implements it and found through the `fmnist.engines` entry points
(`fmnist.engines`).

An `Engine` says what it is (name, label, colour, the model format it saves, the environment set
before its framework's import, the frameworks and pip extra it needs, its strategies, what it
cannot share a process with) and what it can do: a few capabilities (`fmnist.capabilities`), each
a module of its package, imported only when a tool asks for it. Tools ask an engine for a
capability or a declared property; none compares an engine's name.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from fmnist.errors import FmnistError

#: What an engine may offer; each name's interface is in `fmnist.capabilities`.
CAPABILITIES = ("training", "parity", "export", "speed", "bf16", "state")
#: A process's environment that shows it no GPU (CUDA's own variable, which every framework reads).
NO_GPU: Mapping[str, str] = {"CUDA_VISIBLE_DEVICES": ""}


@dataclass(frozen=True)
class Engine:
    name: str  # what `--engine`, run.json and reports call it
    label: str  # for reports and tables
    colour: str  # its colour in every figure
    #: The model format its runs are saved in ("keras", "torch checkpoint", ...): engines of one
    #: format load each other's runs (`fmnist evaluate --engine`), and export through one of them.
    model_format: str
    model_file: str  # what a finished run of it holds
    extra: str  # the pip extra that installs its framework
    frameworks: tuple[str, ...]  # top-level modules it imports; their absence means "install the extra"
    #: capability name (one of `CAPABILITIES`) -> the module of its package offering it.
    capabilities: Mapping[str, str]
    environment: Mapping[str, str] = field(default_factory=dict)  # set before the framework's import
    #: Set, by device ("cpu", "cuda"), in a process of its own that computes on that device
    #: (`fmnist.engine_job`: parity's checks) before its framework loads: on "cpu" what keeps the
    #: framework off any GPU (JAX and TensorFlow take one by default), on "cuda" what it reads at
    #: start-up to share the GPU with the other jobs and to run deterministically.
    device_environment: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: {"cpu": NO_GPU})
    #: Modules that must be in the process before another engine's framework is imported (torch
    #: and torch._dynamo before TensorFlow: the other order segfaults on the first optimizer step).
    import_first: tuple[str, ...] = ()
    #: The value each `environment` variable has in this process, read from the framework if it is
    #: loaded (KERAS_BACKEND is read once, at Keras' import): {} when it is not.
    loaded_environment: Callable[[], Mapping[str, str]] | None = None
    strategies: tuple[str, ...] = ("auto",)  # train.strategy values it trains with
    max_devices: int | None = 1  # devices one training may use (None: as many as there are)
    max_nodes: int | None = 1  # machines one training may span
    #: The engine that exports and serves its runs where its own framework has no exporter of its
    #: format here (a Keras run on JAX is exported by Keras on TensorFlow); None: itself.
    exported_by: str | None = None
    #: How its optimizer casts Python-float constants (learning rate, betas, epsilon): "float32"
    #: (through float32, as TensorFlow does), "exact" (to the variables' dtype), or "follow" (either,
    #: as told: `Parity.lockstep(casts=...)`, so it can match any partner in float64).
    constant_casts: str = "exact"
    #: Its framework prints start-up notices straight to the terminal while it loads (TensorFlow):
    #: capability modules are imported with them silenced (`fmnist.quiet`).
    quiet_import: bool = False
    #: Variants of the speed benchmark it runs (`benchmarks.variants`), in table order.
    speed_variants: tuple[str, ...] = ()
    #: The loops its speed capability times (`fmnist.capabilities.SpeedRun.loop`), the first the
    #: reference: each other loop's images/s over it, measured back to back, is what that loop adds
    #: (Lightning's Trainer over the same training step as a plain loop).
    speed_loops: tuple[str, ...] = ()
    distribution: str = ""  # the installed distribution that declared it (set by the registry)
    #: The engines installed beside it (set by the registry that found it; none for a declaration
    #: on its own): whose frameworks may already be in a process it joins.
    peers: Callable[[], tuple[Engine, ...]] = field(default=tuple, repr=False, compare=False)

    def offers(self, capability: str) -> bool:
        return capability in self.capabilities

    def capability(self, capability: str) -> Any:
        """The module offering `capability`, its framework set up first (`activate`) and imported."""
        if capability not in self.capabilities:
            offered = ", ".join(sorted(self.capabilities)) or "nothing"
            raise FmnistError(f"engine '{self.name}' offers no {capability} (it offers: {offered})")
        self.activate()
        from fmnist.quiet import tensorflow_import

        with tensorflow_import() if self.quiet_import else contextlib.nullcontext():
            return self._import(self.capabilities[capability])

    def activate(self) -> None:
        """Fix what the framework reads at import, refusing a process where it cannot load; the
        modules it needs first are imported here."""
        why = self.clash()
        if why:
            raise FmnistError(f"engine '{self.name}' cannot load in this process: {why} (run it in a new one)")
        os.environ.update(self.environment)
        for module in self.import_first:
            self._import(module)

    def _import(self, module: str) -> ModuleType:
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as exc:
            top = (exc.name or "").split(".")[0]
            if top in self.frameworks:
                raise FmnistError(
                    f"engine '{self.name}' needs {top}, which is not installed:"
                    f" pip install 'fmnist-parity[{self.extra}]'"
                ) from None
            raise

    def clash(self, loaded: Mapping[str, ModuleType] | None = None) -> str | None:
        """Why the engine cannot load in this process (None: it can): a setting its framework read
        at import differs (another Keras backend), or another engine's framework came before the
        modules it needs first."""
        import sys

        modules = sys.modules if loaded is None else loaded
        found = self.loaded_environment() if self.loaded_environment is not None else {}
        for key, wanted in self.environment.items():
            if key in found and found[key] != wanted:
                return f"it needs {key}={wanted}, and this process runs with {key}={found[key]}"
        if self.import_first and not all(m in modules for m in self.import_first):
            early = sorted({f for e in self.peers() for f in e.frameworks if f in modules and f not in self.frameworks})
            if early:
                return f"it needs {' and '.join(self.import_first)} imported before {', '.join(early)}"
        return None

    def check_training(self, strategy: str, devices: int, nodes: int) -> str | None:
        """Why the engine cannot train so (None: it can), before any run directory is made; the
        message names the engines that can."""

        def others(can: Callable[[Engine], bool]) -> str:
            names = [e.name for e in self.peers() if e.name != self.name and can(e)]
            return f"; {', '.join(names)} can" if names else ""

        if strategy not in self.strategies:
            return f"train.strategy: '{strategy}' is not one of {self.name}'s ({', '.join(self.strategies)})" + others(
                lambda e: strategy in e.strategies
            )
        if self.max_devices is not None and devices > self.max_devices:
            return f"train.devices: {self.name} trains on {self.max_devices} device(s), not {devices}" + others(
                lambda e: e.max_devices is None or e.max_devices >= devices
            )
        if self.max_nodes is not None and nodes > self.max_nodes:
            return f"train.num_nodes: {self.name} trains on {self.max_nodes} machine(s), not {nodes}" + others(
                lambda e: e.max_nodes is None or e.max_nodes >= nodes
            )
        return None
