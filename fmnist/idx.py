"""The IDX file format of (Fashion-)MNIST: read, check and write it with numpy alone.

Every problem with a file is a `DataError` whose one-line message names the file, so a user with
a damaged download learns which file to replace instead of seeing a numpy or zlib traceback.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from fmnist.errors import DataError

UBYTE = 0x08
"""The IDX type code for unsigned bytes, the only one Fashion-MNIST uses."""

MAGIC = {3: 0x00000803, 1: 0x00000801}
"""Magic number by number of dimensions: images (count, rows, cols) and labels (count)."""

_KIND = {3: "images", 1: "labels"}


def decompress_gzip(data: bytes, name: str) -> bytes:
    """Uncompress gzip bytes, turning zlib's many failure types into one clear `DataError`.

    A truncated download and a flipped bit both end here; the CRC at the end of the gzip stream
    catches the latter even when the deflate data still decodes.
    """
    try:
        return gzip.decompress(data)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        reason = str(exc) or type(exc).__name__
        raise DataError(f"{name} is not a valid gzip file (truncated or corrupted): {reason}") from None


def read_idx_bytes(path: Path) -> bytes:
    """The uncompressed bytes of an IDX file, gzip-compressed (`.gz`) or raw.

    Both forms exist in the wild: mirrors serve `.gz`, while some users keep the files unpacked.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if path.suffix == ".gz":
        return decompress_gzip(raw, str(path))
    return raw


def parse_idx(data: bytes, name: str, *, ndim: int | None = None) -> np.ndarray:
    """Check an IDX header against its payload and return the uint8 array it describes.

    `ndim` (1 for labels, 3 for images), when given, also rejects a valid file of the wrong
    kind, e.g. a labels file put where the images should be. The array is a writable copy, so
    callers (and frameworks wrapping it without copying) never hit a read-only buffer.
    """
    if len(data) < 4:
        raise DataError(f"{name}: IDX header too short ({len(data)} bytes, need at least 4)")
    (magic,) = struct.unpack(">I", data[:4])
    allowed = [MAGIC[ndim]] if ndim is not None else [MAGIC[3], MAGIC[1]]
    if magic not in allowed:
        expected = " or ".join(f"0x{m:08X}" for m in allowed)
        raise DataError(
            f"{name}: not an IDX uint8 {_what(ndim)} file: expected magic number {expected}, found 0x{magic:08X}"
        )
    dims = magic & 0xFF
    header_len = 4 + 4 * dims
    if len(data) < header_len:
        raise DataError(
            f"{name}: IDX header too short ({len(data)} bytes, need {header_len} for"
            f" {dims} dimension{'s' if dims > 1 else ''})"
        )
    shape = struct.unpack(f">{dims}I", data[4:header_len])
    expected_len = math.prod(shape)  # Python ints: numpy's int64 wraps for huge header dimensions
    found_len = len(data) - header_len
    if found_len < expected_len:
        raise DataError(
            f"{name}: truncated: expected {expected_len} bytes of data for shape"
            f" {_shape_text(shape)}, found {found_len}"
        )
    if found_len > expected_len:
        raise DataError(
            f"{name}: {found_len - expected_len} unexpected trailing bytes after the"
            f" {expected_len} bytes of data for shape {_shape_text(shape)}"
        )
    array = np.frombuffer(data, dtype=np.uint8, count=expected_len, offset=header_len)
    try:
        return array.reshape(shape).copy()
    except ValueError:  # e.g. 0 x 4294967295 x 4294967295: empty, but beyond what numpy can index
        raise DataError(f"{name}: the header's shape {_shape_text(shape)} is too large to represent") from None


def write_idx(array: np.ndarray) -> bytes:
    """The IDX bytes (uncompressed) of a uint8 array of 1 or 3 dimensions: `parse_idx`'s inverse.

    Lets tests build tiny, exact data files, and users export subsets in the original format.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"IDX files here hold uint8 only, got {array.dtype}")
    if array.ndim not in MAGIC:
        raise ValueError(f"IDX files here have 1 (labels) or 3 (images) dimensions, got {array.ndim}")
    header = struct.pack(f">I{array.ndim}I", MAGIC[array.ndim], *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def _what(ndim: int | None) -> str:
    return _KIND[ndim] if ndim is not None else "images/labels"


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)
