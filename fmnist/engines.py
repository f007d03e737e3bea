"""The engines: every way this project runs the one network, found through the Python entry
points of the group `fmnist.engines` (pyproject.toml's `[project.entry-points."fmnist.engines"]`),
so an engine from another installed distribution is found without editing this one.

Each entry point names an `fmnist.engine.Engine` object; the registry reads the declarations
(no framework is imported for that) and refuses a broken one by name. The tools reach a
framework only through an engine's capabilities (`Engine.capability`), and run engines that
cannot share a process in processes of their own (`fmnist.engine_job`).
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from fmnist.comma_list import parse_list
from fmnist.engine import CAPABILITIES, Engine
from fmnist.errors import FmnistError

GROUP = "fmnist.engines"
#: What `fmnist compare` and `fmnist parity` run when not told otherwise: the original pair.
DEFAULT_PAIR = ("keras", "lightning")


def _points() -> list[EntryPoint]:
    """The installed entry points of the group; where this project runs from a checkout that is
    not installed (`python -m fmnist_cli` on a machine given a copy of the tree), its own engines
    read from the pyproject.toml beside the package instead."""
    points = list(entry_points(group=GROUP))
    if points:
        return points
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    try:
        import tomllib  # Python 3.11+

        declared = tomllib.loads(pyproject.read_text())["project"]["entry-points"][GROUP]
    except (ImportError, OSError, KeyError, ValueError):
        return []
    return [EntryPoint(name, value, GROUP) for name, value in declared.items()]


@functools.cache
def _registry() -> dict[str, Engine]:
    found: dict[str, Engine] = {}
    for point in sorted(_points(), key=lambda p: _order(p.name)):
        try:
            spec = point.load()
        except Exception as exc:  # a broken plug-in names itself, and the rest still work
            raise FmnistError(f"the engine entry point {point.name} = {point.value} does not load: {exc}") from None
        if not isinstance(spec, Engine) or spec.name != point.name:
            raise FmnistError(f"the engine entry point {point.name} = {point.value} is no Engine named {point.name}")
        unknown = set(spec.capabilities) - set(CAPABILITIES)
        if unknown:
            raise FmnistError(f"engine '{spec.name}' declares unknown capabilities: {', '.join(sorted(unknown))}")
        if spec.name in found:
            raise FmnistError(f"two installed distributions declare the engine '{spec.name}'")
        dist = point.dist.name if getattr(point, "dist", None) is not None else "(this checkout)"
        found[spec.name] = Engine(**{**spec.__dict__, "distribution": dist, "peers": all_engines})
    if not found:
        raise FmnistError("no engine is installed: install the project (pip install -e .), which declares its engines")
    return found


def _order(name: str) -> tuple[int, str]:
    """The project's own engines in the order the reports show them, then any other by name."""
    own = ("keras", "keras-jax", "keras-torch", "pytorch", "lightning")
    return (own.index(name), "") if name in own else (len(own), name)


def all_engines() -> tuple[Engine, ...]:
    return tuple(_registry().values())


def names() -> tuple[str, ...]:
    return tuple(_registry())


def engine(name: str) -> Engine:
    registry = _registry()
    if name not in registry:
        raise FmnistError(f"unknown engine '{name}'; choose one of: {', '.join(registry)}")
    return registry[name]


class _ByEngine(dict):
    """An engine's declared property by name; for an engine not installed here (a run committed
    elsewhere, say), `default` (None: its name)."""

    def __init__(self, values: dict[str, str], default: str | None = None) -> None:
        super().__init__(values)
        self.default = default

    def __missing__(self, name: str) -> str:
        return name if self.default is None else self.default


def labels() -> dict[str, str]:
    """How reports and checks name each engine: what the engine declares (`Engine.label`)."""
    return _ByEngine({e.name: e.label for e in all_engines()})


def colours() -> dict[str, str]:
    """The colour each engine's curves and bars have in every figure (`Engine.colour`)."""
    return _ByEngine({e.name: e.colour for e in all_engines()}, default="#7F7F7F")


def model_files() -> tuple[str, ...]:
    """Every file name a finished run of some engine holds its model in."""
    return tuple(dict.fromkeys(e.model_file for e in all_engines()))


def parse_engines(text: str, at_least: int = 2) -> tuple[str, ...]:
    """'keras,keras-jax' -> ('keras', 'keras-jax'): known names, each once, at least `at_least`."""
    chosen = tuple(parse_list(text, None, "--engines", repeats=False))
    for name in chosen:
        engine(name)  # an unknown one refused by name, with the installed ones
    if len(chosen) < at_least:
        raise FmnistError(f"--engines needs at least {at_least} engines, comma-separated: got {text!r}")
    return chosen


def clash(name: str) -> str | None:
    """Why engine `name` cannot load in this process (None: it can); `Engine.clash`."""
    return engine(name).clash()


def exporter(name: str) -> Engine:
    """The engine that exports (and serves) runs of engine `name`."""
    spec = engine(name)
    return engine(spec.exported_by) if spec.exported_by else spec
