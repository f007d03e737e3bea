"""A folder made on another host, brought back as one archive and put in place atomically: it
is unpacked beside its destination under a hidden name, checked, then renamed onto it, so no
half-written folder ever appears under the destination's name."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path


def pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=".")
    return buffer.getvalue()


def unpack(archive: bytes, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(folder, filter="data")  # no links out, no absolute paths, no devices


def land(
    archive: bytes,
    destination: Path,
    check: Callable[[Path], list[str]] | None = None,
    owns: Callable[[str], bool] | None = None,
) -> list[str]:
    """Put the folder `archive` holds at `destination` if `check` finds no problem in it; returns
    the problems (then `destination` is left as it was). What `destination` held is replaced,
    except the names `owns` says are not the archive's to replace: those move into the new folder."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}.incoming-"))
    try:
        unpack(archive, incoming)
        problems = check(incoming) if check is not None else []
        if problems:
            return problems
        if destination.exists():
            for child in destination.iterdir():
                if owns is not None and not owns(child.name) and not (incoming / child.name).exists():
                    os.rename(child, incoming / child.name)
            old = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}.replaced-"))
            os.rename(destination, old / "run")
            os.rename(incoming, destination)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(incoming, destination)
        return []
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
