"""The data set on a node that shares no filesystem with the driver: the driver's files travel
through Ray's object store (once per node: tasks on one node share the object), and each node
writes them into its own cache, verified by the SHA-256 the driver's data was read with."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fmnist.datasets import FILES, default_cache_dir
from fmnist.errors import DataError
from fmnist.idx import read_idx_bytes


def pack_data(data_dir: Path, sha256: dict[str, str]) -> dict[str, Any]:
    """The four files as stored (gzip or raw) and the SHA-256 of their uncompressed bytes."""
    files = {}
    for stem in FILES:
        for name in (f"{stem}.gz", stem):
            if (Path(data_dir) / name).is_file():
                files[name] = (Path(data_dir) / name).read_bytes()
                break
        else:
            raise DataError(f"{data_dir} holds no {stem}(.gz) to send to the Ray nodes")
    return {"files": files, "sha256": dict(sha256)}


def data_key(sha256: dict[str, str]) -> str:
    return hashlib.sha256("".join(f"{k}={v};" for k, v in sorted(sha256.items())).encode()).hexdigest()[:16]


def verify(folder: Path, sha256: dict[str, str]) -> None:
    for stem, expected in sha256.items():
        path = folder / f"{stem}.gz" if (folder / f"{stem}.gz").is_file() else folder / stem
        found = hashlib.sha256(read_idx_bytes(path)).hexdigest()
        if found != expected:
            raise DataError(f"{path}: SHA-256 {found[:12]}... on this node, {expected[:12]}... sent by the driver")


def ensure_data(packed: dict[str, Any], root: Path | None = None) -> Path:
    """The node's copy of the driver's data (written once, then reused), verified each time."""
    root = Path(root) if root is not None else default_cache_dir().parent / "ray-data"
    folder = root / data_key(packed["sha256"])
    if not folder.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".incoming-"))
        try:
            for name, data in packed["files"].items():
                (tmp / name).write_bytes(data)
            verify(tmp, packed["sha256"])
            os.rename(tmp, folder)  # atomic; another task on this node may have won the race
        except OSError:
            if not folder.is_dir():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    verify(folder, packed["sha256"])
    return folder
