"""The configs that ship with the package, named without a path: `--config strong` reads the
packaged strong.yaml from anywhere, a checkout or not. The YAML files live in configs/ at the
repository's top and install as the package `fmnist_configs`; each describes itself in its first
comment line, which `fmnist configs` lists."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PACKAGE = "fmnist_configs"
SUFFIX = ".yaml"


def _folder() -> Path:
    # A regular package on disk (a wheel's install or an editable one) is a real folder.
    return Path(str(resources.files(PACKAGE)))


def packaged_configs() -> dict[str, Path]:
    """Every packaged config by name (its file name without .yaml), sorted by name."""
    files = sorted(_folder().glob(f"*{SUFFIX}"))
    return {path.name[: -len(SUFFIX)]: path for path in files}


def is_name(spec: str | Path) -> bool:
    """A bare name (`strong`), not a path: no folder and no suffix."""
    text = str(spec)
    return bool(text) and Path(text).name == text and not Path(text).suffix and text not in (".", "..")


def config_file(spec: str | Path) -> Path:
    """The file a `--config` value names. A file at that path wins, so every path keeps working
    (relative to the working folder, or absolute); otherwise a bare name is a packaged config. A
    value that is neither comes back as given, for the reader to say it cannot read it."""
    path = Path(spec)
    if path.is_file() or not is_name(spec):
        return path
    return packaged_configs().get(str(spec), path)


def describe(path: Path) -> str:
    """A config's first comment line: what it is, in one line."""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            return stripped.lstrip("#").strip()
        if stripped:
            break
    return ""
