"""`python -m benchmarks.gpu_bundle`: gathers, here, what the prepared GPU run needs and the GPU
machine lacks, into one git-ignored folder (`gpu-bundle/`) that the device tool carries there.

That machine has torch, Lightning and JAX but neither TensorFlow nor Keras, and no network. The
project itself needs no wheel: the working tree travels and the run starts from its root. What
does not travel is gathered here:

- `wheels/`: Keras at the version measured on CPU, and the two packages it needs that the GPU
  image does not have (`GPU_WHEELS`), downloaded for the GPU machine's Python and platform;
- `data/`: the four Fashion-MNIST files (a copy of the data set: the folder must never be
  committed);
- `manifest.json`: what is in it, the sizes, and the commit it was built from (the GPU machine
  gets no `.git`, so `gpu_run.sh` hands this commit to the benchmark's record).

The device tool carries at most `CARRY_LIMIT_MIB` (the working tree included), so the build
refuses a bundle that would not fit. Run it right before the GPU run: it is quick once pip's
cache holds the wheels.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import REPO
from benchmarks.environment import source_revision
from fmnist.datasets import FILES
from fmnist.errors import FmnistError

BUNDLE_DIR = REPO / "gpu-bundle"
MANIFEST = "manifest.json"
#: Keras and what it needs beyond the GPU image's packages (it has numpy, absl-py, h5py,
#: ml-dtypes, rich and packaging), pinned to the versions installed here.
GPU_WHEELS = ("keras", "namex", "optree")
#: The GPU image's Python (its `python3`), which the compiled wheel (optree) is chosen for.
GPU_PYTHON = "3.12"
#: pip matches a manylinux tag exactly, so every tag an x86-64 wheel may carry is named.
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
#: What the device tool carries in one call: the working tree and the bundle together.
CARRY_LIMIT_MIB = 64
#: Left free under the limit, for files added to the tree between the build and the run.
MARGIN_MIB = 4

#: (requirements, destination folder, python version) -> None: fetches the wheels.
Downloader = Callable[[Sequence[str], Path, str], None]


class BundleError(FmnistError):
    """A bundle that cannot be built or would not fit."""


def pinned_requirements(packages: Sequence[str] = GPU_WHEELS) -> list[str]:
    """'name==version' of each package as installed here: the GPU measures the Keras measured on CPU."""
    out = []
    for name in packages:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            raise BundleError(f"{name} is not installed here: install the project with its extras first") from None
    return out


def data_files(data_dir: Path) -> list[Path]:
    """The four compressed IDX files the benchmark loads (and verifies) from `data_dir`."""
    files = [data_dir / f"{stem}.gz" for stem in FILES]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise BundleError(f"{data_dir} lacks {', '.join(missing)}: point --data-dir (or FMNIST_DATA_DIR) at the data")
    return files


def pip_download(requirements: Sequence[str], dest: Path, python_version: str) -> None:
    """The wheels, no dependencies, binary only, for CPython `python_version` on x86-64 Linux."""
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    cmd += ["--python-version", python_version, "--implementation", "cp", *platforms, "-d", str(dest), *requirements]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = " / ".join(result.stderr.strip().splitlines()[-3:])
        raise BundleError(f"pip download {' '.join(requirements)} failed: {tail}")


def tree_bytes(exclude: Path | None = None) -> int | None:
    """Bytes of the working tree the device tool sends (tracked and untracked-not-ignored files),
    the bundle's own files left out; None where git cannot say."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode != 0:
        return None
    total = 0
    for name in filter(None, listed.stdout.decode().split("\0")):
        path = REPO / name
        if exclude is not None and path.resolve().is_relative_to(exclude.resolve()):
            continue
        if path.is_file():
            total += path.stat().st_size
    return total


def check_size(
    bundle: int, tree: int | None, limit_mib: float = CARRY_LIMIT_MIB, margin_mib: float = MARGIN_MIB
) -> None:
    """Refuses a bundle that, with the working tree, would leave less than the margin under the limit."""
    total = bundle + (tree or 0)
    if total > (limit_mib - margin_mib) * 2**20:
        raise BundleError(
            f"the bundle ({bundle / 2**20:.1f} MiB) and the working tree ({(tree or 0) / 2**20:.1f} MiB) make"
            f" {total / 2**20:.1f} MiB: the device tool carries {limit_mib} MiB at most, and {margin_mib} MiB are"
            " kept free"
        )


def is_ignored(path: Path) -> bool | None:
    """Whether git ignores `path` (it must: the bundle holds the data set); None where git cannot say."""
    try:
        result = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=REPO, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {0: True, 1: False}.get(result.returncode)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entries(folder: Path) -> list[dict[str, Any]]:
    return [
        {"file": p.name, "bytes": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(folder.iterdir())
        if p.is_file()
    ]


def manifest(out: Path, requirements: Sequence[str], python_version: str, tree: int | None) -> dict[str, Any]:
    """What the bundle at `out` holds (files, sizes, SHA-256), what it was built for, and from which commit."""
    wheels, data = _entries(out / "wheels"), _entries(out / "data")
    return {
        "schema": "fmnist-gpu-bundle/1",
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "source_revision": source_revision(),
        "python_version": python_version,
        "requirements": list(requirements),
        "wheels": wheels,
        "data": data,
        "bundle_bytes": sum(e["bytes"] for e in wheels + data),
        "tree_bytes": tree,
        "carry_limit_mib": CARRY_LIMIT_MIB,
    }


def build(
    out: Path = BUNDLE_DIR,
    *,
    data_dir: Path,
    python_version: str = GPU_PYTHON,
    packages: Sequence[str] = GPU_WHEELS,
    download: Downloader = pip_download,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Builds (or refreshes) the bundle at `out` and returns its manifest; BundleError if it cannot
    be built or would not fit. The wheels are fetched afresh into a new folder each time, so an
    older version or another Python's wheel never stays beside the new one (two versions of one
    package stop the whole install)."""
    from fmnist.datasets import load_fashion_mnist

    requirements = pinned_requirements(packages)
    sources = data_files(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(dir=out, prefix=".wheels-"))
    try:
        download(requirements, fresh, python_version)
        fetched = sorted(p.name for p in fresh.glob("*.whl"))
        if len(fetched) != len(requirements):
            raise BundleError(f"expected {len(requirements)} wheels, got {', '.join(fetched) or 'none'}")
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    shutil.rmtree(out / "wheels", ignore_errors=True)
    fresh.chmod(0o755)  # mkdtemp's folder is private
    fresh.rename(out / "wheels")
    (out / "data").mkdir(exist_ok=True)
    for src in sources:
        dst = out / "data" / src.name
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, dst)
    load_fashion_mnist(out / "data", download=False)  # the copy that travels is the official data
    tree = tree_bytes(exclude=out)
    result = manifest(out, requirements, python_version, tree)
    check_size(result["bundle_bytes"], tree)
    (out / MANIFEST).write_text(json.dumps(result, indent=2) + "\n")
    log(
        f"[gpu-bundle] {out}: {', '.join(requirements)} for Python {python_version}, the four data files;"
        f" {result['bundle_bytes'] / 2**20:.1f} MiB (+ {(tree or 0) / 2**20:.1f} MiB of working tree,"
        f" limit {CARRY_LIMIT_MIB} MiB); commit {result['source_revision']}"
    )
    if is_ignored(out) is False:
        log(
            f"[gpu-bundle] warning: git does not ignore {out.name}/, which holds the data set:"
            f" add /{out.name}/ to .gitignore"
        )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_bundle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=BUNDLE_DIR, help=f"bundle folder (default: {BUNDLE_DIR.name}/)")
    parser.add_argument(
        "--python-version", default=GPU_PYTHON, help=f"the GPU machine's Python (default: {GPU_PYTHON})"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="the four Fashion-MNIST .gz files (default: FMNIST_DATA_DIR, else the user cache)"
    )
    args = parser.parse_args(argv)
    from fmnist.datasets import resolve_data_dir

    data_dir = args.data_dir or resolve_data_dir(None)[0]
    try:
        build(args.out, data_dir=data_dir, python_version=args.python_version)
    except FmnistError as exc:
        print(f"gpu_bundle: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
