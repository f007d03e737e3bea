"""Find, verify and load the four Fashion-MNIST files.

Every engine trains on exactly what this returns, so the checks live here once: the bytes match
the official release (SHA-256 of the uncompressed files), the shapes are 28x28, image and label
counts agree, and every label is a class. Any failure is a one-line `DataError` that says how
to fix it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np

from fmnist import CLASS_NAMES, IMAGE_SHAPE, NUM_CLASSES
from fmnist.errors import DataError
from fmnist.idx import parse_idx, read_idx_bytes

FILES: Mapping[str, str] = MappingProxyType(
    {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    }
)
"""File stem -> SHA-256 of its uncompressed bytes (official release), in the official order."""

DATA_DIR_ENV = "FMNIST_DATA_DIR"

# (split, images stem, labels stem)
_SPLITS = (
    ("train", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("test", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)


@dataclass(frozen=True)
class FashionMNIST:
    """The whole data set, raw: uint8 images (N x 28 x 28) and labels (N), in the official order."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    data_dir: Path
    #: File stem -> SHA-256 of its uncompressed bytes, as read: what a run records of its data.
    sha256: dict[str, str] = field(default_factory=dict)


def default_cache_dir() -> Path:
    """Where downloads go when no folder is given: the XDG user cache, shared by all runs."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says to ignore a relative value.
    base = Path(xdg).expanduser() if xdg and Path(xdg).expanduser().is_absolute() else Path.home() / ".cache"
    return base / "fmnist-parity" / "fashion-mnist"


def resolve_data_dir(data_dir: str | Path | None) -> tuple[Path, str]:
    """The folder to use and where that choice came from: `--data-dir`, `FMNIST_DATA_DIR` or `cache`.

    The source goes into error messages, so a user sees which setting pointed at a wrong folder.
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser(), "--data-dir"
    env = os.environ.get(DATA_DIR_ENV, "")
    if env:
        return Path(env).expanduser(), DATA_DIR_ENV
    return default_cache_dir(), "cache"


def load_fashion_mnist(
    data_dir: str | Path | None = None, *, download: bool = True, checksums: Mapping[str, str] | None = FILES
) -> FashionMNIST:
    """Load and check the four files from `data_dir` (see `resolve_data_dir`), downloading missing ones.

    Each file may be `<stem>.gz` (preferred) or the raw `<stem>`. `checksums` maps a stem to the
    SHA-256 of its uncompressed bytes; `None` skips verification (tiny test files), and a stem
    missing from the mapping is not verified.
    """
    folder, source = resolve_data_dir(data_dir)
    paths = {stem: _locate(stem, folder, source, download, checksums) for stem in FILES}
    arrays: dict[str, np.ndarray] = {}
    hashes: dict[str, str] = {}
    for stem, path in paths.items():
        arrays[stem], hashes[stem] = _read_verified(stem, path, checksums)
    for split, images_stem, labels_stem in _SPLITS:
        _check_split(split, arrays[images_stem], paths[images_stem], arrays[labels_stem], paths[labels_stem])
    return FashionMNIST(
        train_images=arrays["train-images-idx3-ubyte"],
        train_labels=arrays["train-labels-idx1-ubyte"],
        test_images=arrays["t10k-images-idx3-ubyte"],
        test_labels=arrays["t10k-labels-idx1-ubyte"],
        data_dir=folder,
        sha256=hashes,
    )


def load_test_split(
    data_dir: str | Path | None = None, checksums: Mapping[str, str] | None = FILES
) -> tuple[np.ndarray, np.ndarray]:
    """The official test images and labels alone, verified and never downloaded: all that checking
    a trained model needs (`fmnist export`, and `fmnist serve` on a run, which exports it). A
    missing file is named, with where it was looked for. `checksums` as for `load_fashion_mnist`."""
    folder, source = resolve_data_dir(data_dir)
    split, images_stem, labels_stem = _SPLITS[1]
    paths = {stem: _locate(stem, folder, source, False, checksums) for stem in (images_stem, labels_stem)}
    images, labels = (_read_verified(stem, path, checksums)[0] for stem, path in paths.items())
    _check_split(split, images, paths[images_stem], labels, paths[labels_stem])
    return images, labels


def _read_verified(stem: str, path: Path, checksums: Mapping[str, str] | None) -> tuple[np.ndarray, str]:
    """The file's array and the SHA-256 of its uncompressed bytes, checked against `checksums`."""
    data = read_idx_bytes(path)
    # The structure first: "truncated" or "wrong magic number" says more than a checksum does.
    array = parse_idx(data, str(path), ndim=3 if "images" in stem else 1)
    found = hashlib.sha256(data).hexdigest()
    expected = checksums.get(stem) if checksums is not None else None
    if expected is not None and found != expected.lower():
        raise DataError(
            f"{path}: checksum mismatch: the uncompressed bytes should have SHA-256"
            f" {expected}, found {found}; delete the file to download it again, or"
            f" replace it with the official one"
        )
    return array, found


def describe(data: FashionMNIST) -> str:
    """A few lines for `fmnist data`: where the data is, how much there is and how classes are spread."""
    images = data.train_images.shape[1:]
    lines = [
        f"Fashion-MNIST in {data.data_dir}",
        f"  train: {len(data.train_labels):,} images, test: {len(data.test_labels):,} images,"
        f" {images[0]}x{images[1]} uint8",
    ]
    train_counts = np.bincount(data.train_labels, minlength=NUM_CLASSES)
    test_counts = np.bincount(data.test_labels, minlength=NUM_CLASSES)
    if len(set(train_counts.tolist())) == 1 and len(set(test_counts.tolist())) == 1:
        lines.append(
            f"  classes: {NUM_CLASSES}, balanced: {train_counts[0]:,} train and {test_counts[0]:,} test images each"
        )
    else:
        lines.append(f"  classes: {NUM_CLASSES} (train / test images):")
        width = max(len(name) for name in CLASS_NAMES)
        for k, name in enumerate(CLASS_NAMES):
            lines.append(f"    {k} {name:<{width}}  {train_counts[k]:>7,} / {test_counts[k]:>6,}")
    return "\n".join(lines)


def _locate(stem: str, folder: Path, source: str, download: bool, checksums: Mapping[str, str] | None) -> Path:
    """The file for `stem` in `folder` (`.gz` first, then raw), downloaded there when missing and allowed."""
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    missing = f"Fashion-MNIST file {stem}.gz (or {stem}) not found in {folder} (from {source})"
    if not download:
        raise DataError(
            f"{missing}; pass --data-dir DIR or set {DATA_DIR_ENV} to a folder holding it"
            f" (`fmnist data` downloads the four files into {default_cache_dir()})"
        )
    fix = (
        f"pass --data-dir DIR or set {DATA_DIR_ENV} to a folder holding the four Fashion-MNIST files,"
        f" or connect to the internet to download them into {default_cache_dir()}"
    )
    from fmnist.download import download_file  # only needed when something is missing

    try:
        return download_file(f"{stem}.gz", folder, checksums.get(stem) if checksums is not None else None)
    except DataError as exc:
        raise DataError(f"{missing} and downloading it failed ({exc}); {fix}") from None


def _check_split(split: str, images: np.ndarray, images_path: Path, labels: np.ndarray, labels_path: Path) -> None:
    """Shapes, counts and label range: what the training code assumes without checking."""
    if images.shape[1:] != IMAGE_SHAPE:
        raise DataError(
            f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, expected {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]}"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{split} split: {len(images)} images in {images_path} but {len(labels)} labels"
            f" in {labels_path}; the counts must match"
        )
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        index = int(bad[0])
        raise DataError(
            f"{labels_path}: label {int(labels[index])} at index {index} is outside"
            f" 0..{NUM_CLASSES - 1} ({bad.size} bad label{'s' if bad.size > 1 else ''})"
        )
